import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Edge, scratchDir, startEdge, writeConfig } from './harness.js';

// One real server process on loopback for the API behaviour; each test uses its own agent ids.
let edge: Edge;
const scratch = scratchDir();

beforeAll(async () => {
  const config = writeConfig(
    scratch.dir,
    `
data_dir: ${scratch.dir}/data
server:
  max_batch: 10
  body_limit_bytes: 4096
limits:
  - { name: burst, capacity: 5, refill: 2, per: second }
  - { name: tokens, resource: tokens, capacity: 1000, refill: 1000, per: minute }
tiers:
  gold:
    limits:
      - { name: burst, capacity: 50, refill: 50, per: second }
agents:
  - { match: "vip-*", tier: gold }
`,
  );
  edge = await startEdge({ configPath: config });
});

afterAll(async () => {
  expect(await edge.stop()).toBe(0);
  scratch.cleanup();
});

describe('POST /v1/check', () => {
  it('admits exactly the burst, then 429 with Retry-After and RateLimit headers', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await call(edge.url, 'POST', '/v1/check', { agent_id: 'burst-1' });
      expect(r.status).toBe(200);
      expect(r.body.allowed).toBe(true);
    }
    const denied = await call(edge.url, 'POST', '/v1/check', { agent_id: 'burst-1' });
    expect(denied.status).toBe(429);
    expect(denied.headers.get('content-type')).toContain('application/problem+json');
    expect(denied.body).toMatchObject({
      code: 'RATE_LIMITED',
      allowed: false,
      limit: 'burst',
      status: 429,
    });
    // One token refills in 500 ms: Retry-After rounds up to whole seconds, retry_after_ms is exact.
    expect(denied.headers.get('retry-after')).toBe('1');
    expect(Number(denied.body.retry_after_ms)).toBeGreaterThan(0);
    expect(Number(denied.body.retry_after_ms)).toBeLessThanOrEqual(500);
    expect(denied.headers.get('ratelimit-policy')).toBe('"burst";q=5;w=3, "tokens";q=1000;w=60');
    expect(denied.headers.get('ratelimit')).toMatch(/^"burst";r=0;t=\d+$/);
  });

  it('admits again once the wait it announced has passed', async () => {
    for (let i = 0; i < 5; i++) await call(edge.url, 'POST', '/v1/check', { agent_id: 'refill-1' });
    const denied = await call(edge.url, 'POST', '/v1/check', { agent_id: 'refill-1' });
    expect(denied.status).toBe(429);
    await new Promise((r) => setTimeout(r, Number(denied.body.retry_after_ms) + 20));
    const again = await call(edge.url, 'POST', '/v1/check', { agent_id: 'refill-1' });
    expect(again.status).toBe(200);
  });

  it('charges a cost object by resource and reports every limit', async () => {
    const r = await call(edge.url, 'POST', '/v1/check', {
      agent_id: 'tok-1',
      cost: { requests: 1, tokens: 900 },
    });
    expect(r.status).toBe(200);
    expect(r.body.limit).toBe('tokens');
    expect(r.body.limits).toMatchObject([
      { name: 'burst', remaining: 4, capacity: 5 },
      { name: 'tokens', remaining: 100, capacity: 1000 },
    ]);
    const tooMuch = await call(edge.url, 'POST', '/v1/check', {
      agent_id: 'tok-1',
      cost: { requests: 1, tokens: 200 },
    });
    expect(tooMuch.status).toBe(429);
    // Denied: nothing charged, the burst still has 4.
    const state = await call(edge.url, 'GET', '/v1/agents/tok-1');
    expect(state.body.limits).toMatchObject([
      { name: 'burst', remaining: 4 },
      { name: 'tokens', remaining: 100 },
    ]);
  });

  it('says a cost above capacity can never be admitted (422, no Retry-After)', async () => {
    const r = await call(edge.url, 'POST', '/v1/check', {
      agent_id: 'huge-1',
      cost: { tokens: 5000 },
    });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('COST_EXCEEDS_CAPACITY');
    expect(r.headers.get('retry-after')).toBeNull();
  });

  it('applies tiers from config by pattern', async () => {
    const r = await call(edge.url, 'POST', '/v1/check', { agent_id: 'vip-7', cost: 40 });
    expect(r.status).toBe(200);
    expect(r.body.limits).toMatchObject([{ name: 'burst', capacity: 50, remaining: 10 }]);
  });

  it('checks only the named limits, and names unknown ones', async () => {
    const r = await call(edge.url, 'POST', '/v1/check', {
      agent_id: 'named-1',
      cost: 3,
      limits: ['burst'],
    });
    expect(r.status).toBe(200);
    const bad = await call(edge.url, 'POST', '/v1/check', {
      agent_id: 'named-1',
      limits: ['nope'],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('UNKNOWN_LIMIT');
  });
});

describe('batch, refund and reading quota', () => {
  it('answers batch items in order, each on its own', async () => {
    const r = await call(edge.url, 'POST', '/v1/check/batch', {
      checks: [
        { agent_id: 'batch-1', cost: 5 },
        { agent_id: 'batch-1', cost: 1 },
        { agent_id: 'batch-2', cost: 1, limits: ['missing'] },
        { agent_id: 'batch-2', cost: 1 },
      ],
    });
    expect(r.status).toBe(200);
    const results = r.body.results as Record<string, unknown>[];
    expect(results.map((x) => x.allowed)).toEqual([true, false, false, true]);
    expect(results[1]).toMatchObject({ code: 'RATE_LIMITED' });
    expect(results[2]).toMatchObject({ error: { code: 'UNKNOWN_LIMIT' } });
  });

  it('refuses a batch above the configured maximum', async () => {
    const checks = Array.from({ length: 11 }, (_, i) => ({ agent_id: `b-${i}` }));
    const r = await call(edge.url, 'POST', '/v1/check/batch', { checks });
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('INVALID_REQUEST');
  });

  it('refund gives tokens back, never past capacity', async () => {
    await call(edge.url, 'POST', '/v1/check', {
      agent_id: 'refund-1',
      cost: { requests: 1, tokens: 800 },
    });
    const r = await call(edge.url, 'POST', '/v1/refund', {
      agent_id: 'refund-1',
      cost: { tokens: 300 },
    });
    expect(r.status).toBe(200);
    expect(r.body.limits).toMatchObject([
      { name: 'burst', refunded: 0 },
      { name: 'tokens', refunded: 300 },
    ]);
    const more = await call(edge.url, 'POST', '/v1/refund', {
      agent_id: 'refund-1',
      cost: { tokens: 5000 },
    });
    const tokens = (more.body.limits as Record<string, unknown>[])[1];
    expect(tokens?.remaining).toBe(1000);
    expect(Number(tokens?.refunded)).toBeLessThanOrEqual(500);
  });

  it('reads an unknown agent as full without creating it', async () => {
    const r = await call(edge.url, 'GET', '/v1/agents/never-seen');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      tracked: false,
      limits: [{ remaining: 5 }, { remaining: 1000 }],
    });
  });
});

describe('runtime policy overrides', () => {
  it('PUT sets limits or a tier at once, keeping the tokens already spent; DELETE restores config', async () => {
    await call(edge.url, 'POST', '/v1/check', { agent_id: 'ovr-1', cost: 3 });
    const put = await call(edge.url, 'PUT', '/v1/agents/ovr-1/policy', {
      limits: [{ name: 'burst', capacity: 100, refill: 10, per: 'second' }],
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      override: true,
      limits: [{ name: 'burst', capacity: 100, remaining: 97 }],
    });
    const tier = await call(edge.url, 'PUT', '/v1/agents/ovr-1/policy', { tier: 'gold' });
    expect(tier.body).toMatchObject({ limits: [{ capacity: 50 }] });
    const del = await call(edge.url, 'DELETE', '/v1/agents/ovr-1/policy');
    expect(del.status).toBe(204);
    const after = await call(edge.url, 'GET', '/v1/agents/ovr-1');
    expect(after.body).toMatchObject({
      override: false,
      limits: [{ capacity: 5 }, { capacity: 1000 }],
    });
    expect((await call(edge.url, 'DELETE', '/v1/agents/ovr-1/policy')).status).toBe(404);
  });

  it('rejects unknown tiers and invalid limits with coded errors', async () => {
    const tier = await call(edge.url, 'PUT', '/v1/agents/ovr-2/policy', { tier: 'platinum' });
    expect(tier.status).toBe(400);
    expect(tier.body.code).toBe('UNKNOWN_TIER');
    const both = await call(edge.url, 'PUT', '/v1/agents/ovr-2/policy', {
      tier: 'gold',
      limits: [],
    });
    expect(both.status).toBe(400);
    const zero = await call(edge.url, 'PUT', '/v1/agents/ovr-2/policy', {
      limits: [{ name: 'x', capacity: 0, refill: 1, per: 'second' }],
    });
    expect(zero.status).toBe(400);
    expect(String(zero.body.detail)).toMatch(/capacity/);
  });
});

describe('bad input gets a 4xx with a code, never a 5xx', () => {
  const cases: [string, string, unknown, number, string][] = [
    ['malformed JSON', 'POST /v1/check', '{"agent_id": "x",', 400, 'MALFORMED_JSON'],
    ['wrong type', 'POST /v1/check', { agent_id: 42 }, 400, 'INVALID_REQUEST'],
    ['negative cost', 'POST /v1/check', { agent_id: 'x', cost: -1 }, 400, 'INVALID_REQUEST'],
    ['unknown field', 'POST /v1/check', { agent_id: 'x', costs: 1 }, 400, 'INVALID_REQUEST'],
    ['missing agent', 'POST /v1/check', {}, 400, 'INVALID_REQUEST'],
    ['id too long', 'POST /v1/check', { agent_id: 'a'.repeat(257) }, 400, 'INVALID_REQUEST'],
    ['control character', 'POST /v1/check', { agent_id: 'a\u0001b' }, 400, 'INVALID_REQUEST'],
    [
      'huge body',
      'POST /v1/check',
      { agent_id: 'x', pad: 'y'.repeat(10_000) },
      413,
      'BODY_TOO_LARGE',
    ],
    ['unknown route', 'GET /v1/nothing', undefined, 404, 'NOT_FOUND'],
    ['array body', 'POST /v1/refund', [1, 2], 400, 'INVALID_REQUEST'],
  ];
  for (const [name, route, body, status, code] of cases) {
    it(name, async () => {
      const [method, path] = route.split(' ') as [string, string];
      const r = await call(edge.url, method, path, body);
      expect(r.status).toBe(status);
      expect(r.body.code).toBe(code);
      expect(r.headers.get('content-type')).toContain('application/problem+json');
    });
  }

  it('unsupported media type is 415', async () => {
    const r = await call(edge.url, 'POST', '/v1/check', 'agent_id=x', {
      'content-type': 'text/plain',
    });
    expect(r.status).toBe(415);
  });

  it('unicode agent ids work in bodies and paths', async () => {
    const id = 'агент-🤖-エージェント';
    expect((await call(edge.url, 'POST', '/v1/check', { agent_id: id })).status).toBe(200);
    const r = await call(edge.url, 'GET', `/v1/agents/${encodeURIComponent(id)}`);
    expect(r.body).toMatchObject({
      agent_id: id,
      tracked: true,
      limits: [{ remaining: 4 }, { remaining: 999 }],
    });
  });

  it('random bodies never produce a 5xx', async () => {
    const bodies = [
      'null',
      '[]',
      '""',
      '0',
      'true',
      '{"agent_id": null}',
      '{"agent_id": "x", "cost": {"tokens": "1"}}',
      '{"agent_id": "x", "cost": {"": 1}}',
      '{"agent_id": "x", "limits": []}',
      '{"agent_id": "x", "limits": ["a","a"]}',
      '{"agent_id": "x", "cost": 1e400}',
      '{"__proto__": {"agent_id": "x"}}',
      '{"agent_id": "x", "cost": {"__proto__": 1}}',
      '\u0000',
      '{"checks": "x"}',
    ];
    for (const body of bodies) {
      for (const path of ['/v1/check', '/v1/check/batch', '/v1/refund']) {
        const r = await call(edge.url, 'POST', path, body);
        expect(r.status, `${path} ${body}`).toBeGreaterThanOrEqual(400);
        expect(r.status, `${path} ${body}`).toBeLessThan(500);
      }
    }
  });
});

describe('service endpoints', () => {
  it('healthz and readyz answer, with request ids echoed', async () => {
    const h = await call(edge.url, 'GET', '/healthz', undefined, { 'x-request-id': 'trace-123' });
    expect(h.status).toBe(200);
    expect(h.headers.get('x-request-id')).toBe('trace-123');
    expect((await call(edge.url, 'GET', '/readyz')).body.status).toBe('ready');
  });

  it('serves an OpenAPI document listing every route', async () => {
    const r = await call(edge.url, 'GET', '/v1/openapi.json');
    expect(r.body.openapi).toBe('3.1.0');
    expect(Object.keys(r.body.paths as object).sort()).toEqual([
      '/healthz',
      '/metrics',
      '/readyz',
      '/v1/agents/{agent_id}',
      '/v1/agents/{agent_id}/policy',
      '/v1/agents/{agent_id}/usage',
      '/v1/check',
      '/v1/check/batch',
      '/v1/openapi.json',
      '/v1/rate',
      '/v1/refund',
      '/v1/replication',
      '/v1/reservations',
      '/v1/reservations/{id}/cancel',
      '/v1/reservations/{id}/settle',
      '/v1/usage',
    ]);
  });
});
