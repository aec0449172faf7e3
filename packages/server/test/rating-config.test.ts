import { ConfigError, parseConfig } from '@openclaw-edge/server';
import { describe, expect, it } from 'vitest';

const issues = (yaml: string) => {
  try {
    parseConfig(yaml, 'test.yaml', {});
  } catch (error) {
    if (error instanceof ConfigError)
      return error.issues.map((i) => `${i.line ?? '-'} ${i.path}: ${i.message}`);
    throw error;
  }
  return [];
};

describe('rating config', () => {
  it('accepts a full pricing, budgets and ledger section', () => {
    const config = parseConfig(
      `
pricing:
  currency: EUR
  versions:
    - effective_from: "2026-01-01T00:00:00+01:00"
      models:
        - { match: "m-*", input: 0.15, output: "0.60", long_context: { above_input_tokens: 1000, input: 1 } }
      default: { input: 1 }
budgets:
  time_zone: America/New_York
  default: [{ name: d, amount: 5, window: day, on_error: deny }]
  agents: [{ match: "x-*", budgets: [{ name: h, amount: "0.5", per: hour, on_error: allow }] }]
ledger: { driver: sqlite, group_commit_ms: 0 }
`,
      'test.yaml',
      {},
    );
    expect(config.budgets.thresholds).toEqual([0.8, 1]);
    expect(config.ledger).toMatchObject({
      driver: 'sqlite',
      group_commit_ms: 0,
      sqlite_synchronous: 'full',
    });
    expect(config.usage.unknown_agents).toBe('accept');
  });

  it('names the field and line of each problem', () => {
    const found = issues(`pricing:
  currency: USD
  versions:
    - effective_from: "2026-01-01T00:00:00Z"
      models:
        - { match: m, input: "1.1234567", output: -1 }
budgets:
  time_zone: Mars/Base
  default:
    - { name: d, amount: 5, on_error: deny }
    - { name: e, amount: 5, window: day }
`);
    expect(found).toEqual(
      expect.arrayContaining([
        '6 pricing.versions[0].models[0].input: at most 6 decimals (micro-units)',
        expect.stringMatching(/^6 pricing\.versions\[0\]\.models\[0\]\.output: /),
        '8 budgets.time_zone: must be an IANA time zone such as Europe/Berlin',
        '10 budgets.default[0]: give exactly one of window (calendar) or per (rolling)',
        expect.stringMatching(/^11 budgets\.default\[1\]\.on_error: /),
      ]),
    );
  });

  it('checks what the schema cannot: duplicate versions and budget names, a postgres URL', () => {
    expect(
      issues(`pricing:
  currency: USD
  versions:
    - { effective_from: "2026-01-01T00:00:00Z" }
    - { effective_from: "2026-01-01T00:00:00Z" }
budgets:
  default:
    - { name: d, amount: 5, window: day, on_error: deny }
    - { name: d, amount: 6, window: week, on_error: deny }
ledger: { driver: postgres }
`),
    ).toEqual([
      '10 ledger.url: the postgres ledger needs a URL (ledger.url or DATABASE_URL)',
      '4 pricing.versions: two versions have the same effective_from',
      `9 budgets.default[1].name: duplicates another budget's name "d"`,
    ]);
  });

  it('DATABASE_URL and OPENCLAW_EDGE_LEDGER_DRIVER choose the fleet ledger', () => {
    const config = parseConfig('{}', 'env', {
      DATABASE_URL: 'postgres://u@db/x',
      OPENCLAW_EDGE_LEDGER_DRIVER: 'postgres',
    });
    expect(config.ledger).toMatchObject({ driver: 'postgres', url: 'postgres://u@db/x' });
  });
});
