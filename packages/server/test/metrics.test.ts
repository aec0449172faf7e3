import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeService } from '../src/service.js';
import { find, parseExposition, type Sample, value } from './exposition.js';
import { call, scratchDir, writeConfig } from './harness.js';

const root = join(import.meta.dirname, '..', '..', '..');
const scratch = scratchDir();
let service: EdgeService;

/** Families docs/metrics.md promises, with their labels. */
function documentedFamilies(): Map<string, string[]> {
  const doc = readFileSync(join(root, 'docs', 'metrics.md'), 'utf8');
  const families = new Map<string, string[]>();
  for (const m of doc.matchAll(/^\| `(openclaw_[a-z_]+)` \| \w+ \| ([^|]*)\|/gm)) {
    families.set(
      m[1] as string,
      [...(m[2] as string).matchAll(/`(\w+)`/g)].map((l) => l[1] as string),
    );
  }
  return families;
}

async function scrape(
  accept?: string,
): Promise<{ text: string; type: string | null; samples: Sample[]; families: Set<string> }> {
  const res = await fetch(`${service.address}/metrics`, accept ? { headers: { accept } } : {});
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, type: res.headers.get('content-type'), ...parseExposition(text) };
}

const check = (agent: string, cost: number) =>
  call(service.address, 'POST', '/v1/check', {
    agent_id: agent,
    cost: { requests: 1, tokens: cost },
  });

beforeAll(async () => {
  const config = writeConfig(
    scratch.dir,
    `
data_dir: ${scratch.dir}/data
server: { port: 0 }
metrics: { top_agents: 2, rank_interval_ms: 3600000 }
limits:
  - { name: requests, capacity: 10, refill: 10, per: day }
  - { name: tokens, resource: tokens, capacity: 1000, refill: 1000, per: day }
logging: { level: silent }
`,
  );
  service = await EdgeService.start({ configPath: config, watchConfig: false, env: {} });
});

afterAll(async () => {
  await service.stop();
  scratch.cleanup();
});

describe('GET /metrics', () => {
  it('emits exactly the families docs/metrics.md lists, with their labels', async () => {
    await check('labels-probe', 1);
    service.metrics?.rank();
    const { samples, families } = await scrape();
    const documented = documentedFamilies();
    const ours = [...families].filter((f) => f.startsWith('openclaw_')).sort();
    // OpenMetrics-style family names drop `_total`; prom-client's text format keeps it.
    expect(ours).toEqual([...documented.keys()].sort());
    for (const s of samples.filter((x) => x.name.startsWith('openclaw_'))) {
      const family = [...documented.keys()].find((f) => s.name === f || s.name.startsWith(`${f}_`));
      const allowed = [...(documented.get(family as string) ?? []), 'le'];
      for (const label of Object.keys(s.labels))
        expect(allowed, `${s.name} label ${label}`).toContain(label);
    }
  });

  it('per-agent series for the top agents only, __other__ sums the rest, aggregates sum everyone', async () => {
    const volumes: Record<string, number> = { 'hot-a': 6, 'hot-b': 4, 'cold-c': 2, 'cold-d': 1 };
    let denied = 0;
    for (const [agent, n] of Object.entries(volumes)) {
      for (let i = 0; i < n; i++) {
        const r = await check(agent, 100);
        expect(r.status).toBe(200);
      }
    }
    // hot-a spends its last tokens: 7th request needs 100 tokens with 400 left, then 5 more... deny
    // once it runs out of the request limit (10 per day).
    for (let i = 0; i < 6; i++) if ((await check('hot-a', 10)).status === 429) denied++;
    expect(denied).toBe(2);
    service.metrics?.rank();
    const before = await scrape();
    const { samples } = before;

    const perAgent = find(samples, 'openclaw_agent_token_bucket', { limit: 'tokens' });
    expect(perAgent.map((s) => s.labels.agent_id).sort()).toEqual(['__other__', 'hot-a', 'hot-b']);
    const remaining = async (agent: string) => {
      const r = await call(service.address, 'GET', `/v1/agents/${agent}`);
      const limits = r.body.limits as { name: string; remaining: number }[];
      return limits.find((l) => l.name === 'tokens')?.remaining ?? Number.NaN;
    };
    expect(
      value(samples, 'openclaw_agent_token_bucket', { agent_id: 'hot-b', limit: 'tokens' }),
    ).toBeCloseTo(await remaining('hot-b'), 0);
    const others = ['cold-c', 'cold-d', 'labels-probe'];
    let otherSum = 0;
    for (const a of others) otherSum += await remaining(a);
    expect(
      value(samples, 'openclaw_agent_token_bucket', { agent_id: '__other__', limit: 'tokens' }),
    ).toBeCloseTo(otherSum, 0);
    expect(
      value(samples, 'openclaw_agent_bucket_capacity', { agent_id: '__other__', limit: 'tokens' }),
    ).toBe(3000);

    let allSum = otherSum;
    for (const a of ['hot-a', 'hot-b']) allSum += await remaining(a);
    expect(value(samples, 'openclaw_token_bucket_capacity', { limit: 'tokens' })).toBe(5000);
    expect(value(samples, 'openclaw_token_bucket_available', { limit: 'tokens' })).toBeCloseTo(
      allSum,
      0,
    );
    expect(value(samples, 'openclaw_token_bucket_utilisation', { limit: 'tokens' })).toBeCloseTo(
      1 - allSum / 5000,
      3,
    );
    expect(
      value(samples, 'openclaw_rating_api_token_bucket_fill', { limit: 'tokens' }),
    ).toBeCloseTo(allSum / 5000, 3);
    expect(value(samples, 'openclaw_token_bucket_fill_rate', { limit: 'tokens' })).toBeCloseTo(
      (5 * 1000) / 86400,
      9,
    );
    expect(value(samples, 'openclaw_agents_tracked')).toBe(5);

    // Usage: hot-a was charged 6·100 + 4·10 tokens (two of its checks were denied).
    expect(
      value(samples, 'openclaw_tokens_used_total', { agent_id: 'hot-a', resource: 'tokens' }),
    ).toBe(640);
    expect(
      value(samples, 'openclaw_tokens_used_total', { agent_id: 'hot-b', resource: 'requests' }),
    ).toBe(4);
    expect(
      value(samples, 'openclaw_tokens_used_total', { agent_id: '__other__', resource: 'tokens' }),
    ).toBe(1 + 300 + 400 + 640);
    expect(value(samples, 'openclaw_rating_api_requests_total', { decision: 'denied' })).toBe(2);
    expect(value(samples, 'openclaw_rating_api_requests_total', { decision: 'allowed' })).toBe(
      1 + 13 + 4,
    );
    const checks = value(samples, 'openclaw_http_request_duration_seconds_count', {
      method: 'POST',
      route: '/v1/check',
      code: '200',
    });
    expect(checks).toBe(1 + 13 + 4);

    // After the ranking, hot agents' charges are theirs; the other counter does not move.
    await check('hot-b', 5);
    const after = (await scrape()).samples;
    expect(
      value(after, 'openclaw_tokens_used_total', { agent_id: 'hot-b', resource: 'tokens' }),
    ).toBe(405);
    expect(
      value(after, 'openclaw_tokens_used_total', { agent_id: '__other__', resource: 'tokens' }),
    ).toBe(1341);
  });

  it('speaks OpenMetrics when the scraper asks for it', async () => {
    const om = await scrape(
      'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5',
    );
    expect(om.type).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    expect(om.text.trimEnd().endsWith('# EOF')).toBe(true);
    expect(om.text).toContain('# TYPE openclaw_rating_api_requests counter');
    const plain = await scrape('text/plain');
    expect(plain.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(plain.text).not.toContain('# EOF');
  });

  it('keeps per-agent series bounded with thousands of agents', async () => {
    for (let i = 0; i < 2000; i++)
      service.limiter.check(`crowd-${i}`, { requests: 1, tokens: 1 }, Date.now());
    service.metrics?.rank();
    const { samples } = await scrape();
    const agents = new Set(
      find(samples, 'openclaw_agent_token_bucket').map((s) => s.labels.agent_id),
    );
    expect(agents.size).toBe(3);
    expect(value(samples, 'openclaw_agents_tracked')).toBe(2005);
    expect(value(samples, 'openclaw_token_bucket_capacity', { limit: 'requests' })).toBe(20050);
  });
});

describe('metrics access and config', () => {
  it('needs the metrics scope once API keys are configured, and can be switched off', async () => {
    const dir = scratchDir();
    const { sha256 } = await import('../src/auth/api-keys.js');
    const config = writeConfig(
      dir.dir,
      `
data_dir: ${dir.dir}/data
server: { port: 0 }
logging: { level: silent }
api_keys:
  - { name: checker, sha256: ${sha256('check-key').toString('hex')}, scopes: [check] }
  - { name: prometheus, sha256: ${sha256('scrape-key').toString('hex')}, scopes: [metrics] }
`,
    );
    const keyed = await EdgeService.start({ configPath: config, watchConfig: false, env: {} });
    try {
      const get = (key?: string) =>
        fetch(
          `${keyed.address}/metrics`,
          key ? { headers: { authorization: `Bearer ${key}` } } : {},
        );
      expect((await get()).status).toBe(401);
      const forbidden = await get('check-key');
      expect(forbidden.status).toBe(403);
      expect(((await forbidden.json()) as { code: string }).code).toBe('FORBIDDEN');
      expect((await get('scrape-key')).status).toBe(200);
    } finally {
      await keyed.stop();
    }
    const off = await EdgeService.start({
      configPath: writeConfig(
        dir.dir,
        `data_dir: ${dir.dir}/off\nserver: { port: 0 }\nmetrics: { enabled: false }\nlogging: { level: silent }\n`,
        'off.yaml',
      ),
      watchConfig: false,
      env: {},
    });
    try {
      expect((await fetch(`${off.address}/metrics`)).status).toBe(404);
    } finally {
      await off.stop();
      dir.cleanup();
    }
  });
});
