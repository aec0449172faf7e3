import {
  compilePriceBook,
  type PriceBookSpec,
  type PricingSpecError,
  type Rating,
  rate,
  type Usage,
} from '@openclaw-edge/rating';
import { describe, expect, it } from 'vitest';

const usage = (u: Partial<Usage>): Usage => ({
  inputTokens: 0,
  cachedInputTokens: 0,
  cacheWriteTokens: 0,
  outputTokens: 0,
  reasoningTokens: 0,
  requests: 1,
  ...u,
});

const spec: PriceBookSpec = {
  currency: 'USD',
  versions: [
    {
      effective_from: '2026-01-01T00:00:00Z',
      models: [
        {
          match: 'claude-*',
          input: '3',
          cached_input: '0.30',
          cache_write: '3.75',
          output: '15',
          reasoning: '15',
          request: '0.001',
          long_context: { above_input_tokens: 200_000, input: '6', output: '22.50' },
          tiers: [{ from_monthly_tokens: 1_000_000, input: '2', output: '10' }],
        },
        { match: 'claude-haiku', input: '1', output: '5' },
      ],
      default: { input: '10', output: '10' },
    },
    {
      effective_from: '2026-06-01T00:00:00Z',
      models: [{ match: 'claude-*', input: '1.50', output: '7.50' }],
    },
  ],
};
const book = compilePriceBook(spec);
const JAN = Date.parse('2026-01-15T00:00:00Z');
const JUL = Date.parse('2026-07-15T00:00:00Z');

const rated = (model: string, u: Partial<Usage>, t = JAN, volume = 0): Rating => {
  const r = rate(book, model, usage(u), t, volume);
  if ('unpriced' in r) throw new Error(r.reason);
  return r;
};

describe('pricing', () => {
  it('prices every token class and the request, and the total is the sum of the lines', () => {
    const r = rated('claude-sonnet', {
      inputTokens: 1000,
      cachedInputTokens: 10_000,
      cacheWriteTokens: 2000,
      outputTokens: 500,
      reasoningTokens: 300,
    });
    expect(r.lines).toEqual({
      input: 3000, // 1000 × $3/M = $0.003
      cached_input: 3000, // 10k × $0.30/M
      cache_write: 7500,
      output: 7500,
      reasoning: 4500,
      request: 1000,
    });
    expect(r.costMicros).toBe(26_500);
    expect(r.rule).toBe('claude-*');
    expect(r.currency).toBe('USD');
  });

  it('an exact rule wins over a pattern; unknown models fall to the default', () => {
    expect(rated('claude-haiku', { inputTokens: 1_000_000 }).costMicros).toBe(1_000_000);
    const d = rated('gpt-x', { inputTokens: 1_000_000 });
    expect(d.rule).toBe('*default*');
    expect(d.costMicros).toBe(10_000_000);
  });

  it('a long prompt prices the whole request at the long-context prices, counting cached input', () => {
    const short = rated('claude-sonnet', { inputTokens: 200_000, outputTokens: 1000, requests: 0 });
    expect(short.longContext).toBe(false);
    expect(short.costMicros).toBe(600_000 + 15_000);
    const long = rated('claude-sonnet', {
      inputTokens: 190_000,
      cachedInputTokens: 10_001,
      outputTokens: 1000,
      requests: 0,
    });
    expect(long.longContext).toBe(true);
    // input at $6, output at $22.50, cached input inherits the base $0.30.
    expect(long.lines.input).toBe(1_140_000);
    expect(long.lines.output).toBe(22_500);
    expect(long.lines.cached_input).toBe(3000);
  });

  it('graduated tiers apply from the month-to-date volume on', () => {
    const below = rated('claude-sonnet', { inputTokens: 100_000, requests: 0 }, JAN, 999_999);
    expect(below.tier).toBe(0);
    expect(below.costMicros).toBe(300_000);
    const above = rated('claude-sonnet', { inputTokens: 100_000, requests: 0 }, JAN, 1_000_000);
    expect(above.tier).toBe(1);
    expect(above.costMicros).toBe(200_000);
    // Classes the tier leaves out inherit the base price.
    expect(
      rated('claude-sonnet', { cachedInputTokens: 100_000, requests: 0 }, JAN, 5e6).costMicros,
    ).toBe(30_000);
  });

  it('an event is rated with the prices valid at its time, never later ones', () => {
    expect(rated('claude-sonnet', { inputTokens: 100_000, requests: 0 }, JAN).costMicros).toBe(
      300_000,
    );
    const july = rated('claude-sonnet', { inputTokens: 100_000, requests: 0 }, JUL);
    expect(july.costMicros).toBe(150_000);
    expect(july.priceVersionMs).toBe(Date.parse('2026-06-01T00:00:00Z'));
    // The last instant before the change still gets the old price.
    const edge = Date.parse('2026-06-01T00:00:00Z') - 1;
    expect(rated('claude-sonnet', { inputTokens: 100_000, requests: 0 }, edge).costMicros).toBe(
      300_000,
    );
  });

  it('says why an event cannot be priced', () => {
    const before = rate(book, 'claude-sonnet', usage({}), Date.parse('2025-12-31T23:59:59Z'));
    expect(before).toMatchObject({
      unpriced: true,
      reason: expect.stringMatching(/no price version/),
    });
    // The June version has no default.
    expect(rate(book, 'gpt-x', usage({}), JUL)).toMatchObject({
      unpriced: true,
      reason: expect.stringMatching(/no pricing rule matches model "gpt-x"/),
    });
  });

  it('rounds each line half to even at the micro-unit', () => {
    const b = compilePriceBook({
      currency: 'EUR',
      versions: [
        { effective_from: '2026-01-01T00:00:00Z', default: { input: '0.50', output: '1.50' } },
      ],
    });
    const r = rate(b, 'm', usage({ inputTokens: 5, outputTokens: 1, requests: 0 }), JAN);
    if ('unpriced' in r) throw new Error(r.reason);
    expect(r.lines.input).toBe(2); // 2.5 → 2
    expect(r.lines.output).toBe(2); // 1.5 → 2
    expect(r.costMicros).toBe(4);
  });

  it('rejects a bad book naming the field', () => {
    const bad = (s: PriceBookSpec) => {
      try {
        compilePriceBook(s);
      } catch (e) {
        return (e as PricingSpecError).message;
      }
      return 'accepted';
    };
    expect(bad({ currency: 'usd', versions: [] })).toMatch(/^currency: /);
    expect(
      bad({ currency: 'USD', versions: [{ effective_from: 'yesterday', models: [] }] }),
    ).toMatch(/^versions\.0\.effective_from: /);
    expect(
      bad({
        currency: 'USD',
        versions: [
          { effective_from: '2026-01-01T00:00:00Z', models: [{ match: 'm', output: '0.1234567' }] },
        ],
      }),
    ).toBe('versions.0.models.0.output: at most 6 decimals (micro-units)');
    expect(
      bad({
        currency: 'USD',
        versions: [
          {
            effective_from: '2026-01-01T00:00:00Z',
            models: [
              {
                match: 'm',
                tiers: [
                  { from_monthly_tokens: 10, input: '1' },
                  { from_monthly_tokens: 5, input: '1' },
                ],
              },
            ],
          },
        ],
      }),
    ).toMatch(/tiers\.1\.from_monthly_tokens: tiers must ascend/);
  });
});
