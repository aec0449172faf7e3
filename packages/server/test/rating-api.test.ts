import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExposition, value } from './exposition.js';
import { call, type Edge, eventually, scratchDir, startEdge, writeConfig } from './harness.js';

// One real server with the SQLite ledger; each test uses its own agent ids.
let edge: Edge;
const scratch = scratchDir();
const NOW = new Date().toISOString();

beforeAll(async () => {
  const config = writeConfig(
    scratch.dir,
    `
data_dir: ${scratch.dir}/data
server: { max_batch: 50 }
limits:
  - { name: requests, capacity: 1000, refill: 1000, per: second }
  - { name: tokens, resource: tokens, capacity: 10000000, refill: 10000000, per: day }
agents:
  - { match: "known-*", limits: [{ name: requests, capacity: 1000, refill: 1000, per: second }] }
  - { match: "slow-*", limits: [{ name: requests, capacity: 1, refill: 1, per: hour }] }
pricing:
  currency: USD
  versions:
    - effective_from: "2020-01-01T00:00:00Z"
      models:
        - { match: "gpt-*", input: "2.50", cached_input: "1.25", output: "10" }
        - match: claude-tiered
          input: "3"
          output: "15"
          tiers: [{ from_monthly_tokens: 1000, input: "1", output: "5" }]
      default: { input: "1", output: "1", request: "0.01" }
budgets:
  time_zone: Europe/Berlin
  default:
    - { name: daily, amount: "1.00", window: day, on_error: deny }
  agents:
    - match: "rich-*"
      budgets: [{ name: monthly, amount: "1000", window: month, on_error: allow }]
usage:
  max_future_ms: 60000
`,
  );
  edge = await startEdge({ configPath: config });
});

afterAll(async () => {
  expect(await edge.stop()).toBe(0);
  scratch.cleanup();
});

const event = (id: string, agent: string, extra: Record<string, unknown> = {}) => ({
  event_id: id,
  agent_id: agent,
  time: NOW,
  model: 'gpt-4o',
  input_tokens: 1000,
  output_tokens: 1000,
  ...extra,
});

describe('POST /v1/usage', () => {
  it('prices one event, charges the budget, and says what is left in the body and a header', async () => {
    const r = await call(edge.url, 'POST', '/v1/usage', event('u1-a', 'usage-1'));
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('recorded');
    expect(r.body.rating).toMatchObject({
      currency: 'USD',
      cost_micros: 12_500,
      cost: '0.0125',
      lines_micros: { input: 2500, output: 10_000 },
      rule: 'gpt-*',
    });
    expect(r.body.budgets).toEqual([
      expect.objectContaining({ name: 'daily', spent_micros: 12_500, remaining_micros: 987_500 }),
    ]);
    expect(r.headers.get('openclaw-budget')).toMatch(/^"daily";r=987500;t=\d+$/);
  });

  it('a replay returns the original rating and charges nothing twice, also inside one batch', async () => {
    const first = await call(edge.url, 'POST', '/v1/usage', event('u2-a', 'usage-2'));
    const replay = await call(
      edge.url,
      'POST',
      '/v1/usage',
      // Same id with different tokens: the stored rating wins.
      event('u2-a', 'usage-2', { input_tokens: 999_999 }),
    );
    expect(replay.body.status).toBe('duplicate');
    expect((replay.body.rating as { cost_micros: number }).cost_micros).toBe(12_500);
    // Every part of the rating comes back as first answered, rebuilt from the stored row.
    expect(replay.body.rating).toEqual(first.body.rating);
    const batch = await call(edge.url, 'POST', '/v1/usage', {
      events: [event('u2-b', 'usage-2'), event('u2-b', 'usage-2'), event('u2-a', 'usage-2')],
    });
    expect(batch.body).toMatchObject({ recorded: 1, duplicate: 2, rejected: 0 });
    const usage = await call(edge.url, 'GET', '/v1/agents/usage-2/usage');
    expect(usage.body).toMatchObject({ total_events: 2, total_cost_micros: 25_000 });
    // A batch reports each agent's budgets once, after all its events.
    const budgets = batch.body.budgets as Record<string, { spent_micros: number }[]>;
    expect(budgets['usage-2']?.[0]?.spent_micros).toBe(25_000);
  });

  it('rejects bad items with reasons and records the rest', async () => {
    const r = await call(edge.url, 'POST', '/v1/usage', {
      events: [
        event('u3-ok', 'usage-3'),
        event('u3-neg', 'usage-3', { input_tokens: -5 }),
        { agent_id: 'usage-3', time: NOW, model: 'm', input_tokens: 1, output_tokens: 1 },
        event('u3-future', 'usage-3', { time: new Date(Date.now() + 3_600_000).toISOString() }),
        event('u3-time', 'usage-3', { time: 'yesterday' }),
        event('u3-extra', 'usage-3', { colour: 'blue' }),
        'not an object',
      ],
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ recorded: 1, duplicate: 0, rejected: 6 });
    const errors = (r.body.results as { error?: { code: string; field?: string } }[]).map(
      (x) => x.error && [x.error.code, x.error.field],
    );
    expect(errors).toEqual([
      undefined,
      ['INVALID_EVENT', 'events[1].input_tokens'],
      ['INVALID_EVENT', 'events[2].event_id'],
      ['EVENT_IN_FUTURE', 'time'],
      ['INVALID_EVENT', 'events[4].time'],
      ['INVALID_EVENT', 'events[5].colour'],
      ['INVALID_EVENT', 'events[6]'],
    ]);
  });

  it('refuses model names the ledger cannot store as text, alone, and records the rest', async () => {
    const r = await call(edge.url, 'POST', '/v1/usage', {
      events: [
        event('u7-nul', 'usage-7', { model: 'gpt-\u0000' }),
        event('u7-half', 'usage-7', { model: 'gpt-\ud800' }),
        event('u7-ok', 'usage-7', { model: 'gpt-😀' }),
      ],
    });
    expect(r.body).toMatchObject({ recorded: 1, rejected: 2 });
    const errors = (r.body.results as { error?: { field?: string } }[]).map((x) => x.error?.field);
    expect(errors).toEqual(['events[0].model', 'events[1].model', undefined]);
  });

  it('a single bad event answers its problem', async () => {
    const r = await call(
      edge.url,
      'POST',
      '/v1/usage',
      event('u4', 'usage-4', { output_tokens: 1.5 }),
    );
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'INVALID_EVENT', field: 'output_tokens', event_id: 'u4' });
    const batchTooBig = await call(edge.url, 'POST', '/v1/usage', {
      events: Array.from({ length: 51 }, (_, i) => event(`big-${i}`, 'usage-4')),
    });
    expect(batchTooBig.status).toBe(400);
    expect(batchTooBig.body.code).toBe('INVALID_REQUEST');
  });

  it('graduated tiers price from the month-to-date volume, counted from the ledger', async () => {
    const tiered = (id: string) =>
      event(id, 'usage-5', { model: 'claude-tiered', input_tokens: 600, output_tokens: 0 });
    const first = await call(edge.url, 'POST', '/v1/usage', tiered('t1'));
    const second = await call(edge.url, 'POST', '/v1/usage', tiered('t2'));
    const third = await call(edge.url, 'POST', '/v1/usage', tiered('t3'));
    const tierOf = (r: typeof first) => r.body.rating as { tier: number; cost_micros: number };
    expect(tierOf(first)).toMatchObject({ tier: 0, cost_micros: 1800 });
    expect(tierOf(second)).toMatchObject({ tier: 0, cost_micros: 1800 }); // 600 before it
    expect(tierOf(third)).toMatchObject({ tier: 1, cost_micros: 600 }); // 1200 before it
  });

  it('a batch mixing tiered, plain and bad events answers each in its place', async () => {
    // usage-6's tier volume is not in memory: its tiered events wait for the read, the rest not.
    const r = await call(edge.url, 'POST', '/v1/usage', {
      events: [
        event('t6-a', 'usage-6', { model: 'claude-tiered', input_tokens: 600, output_tokens: 0 }),
        event('t6-bad', 'usage-6', { output_tokens: 'many' }),
        event('t6-b', 'usage-6'),
        event('t6-c', 'usage-6', { model: 'claude-tiered', input_tokens: 600, output_tokens: 0 }),
      ],
    });
    expect(r.body).toMatchObject({ recorded: 3, rejected: 1 });
    const results = r.body.results as { status: string; event_id: string; rating?: object }[];
    expect(results.map((x) => [x.event_id, x.status])).toEqual([
      ['t6-a', 'recorded'],
      ['t6-bad', 'rejected'],
      ['t6-b', 'recorded'],
      ['t6-c', 'recorded'],
    ]);
    // Events of one request are priced at the volume before the request (none here).
    expect(results[0]?.rating).toMatchObject({ tier: 0, cost_micros: 1800, rule: 'claude-tiered' });
    expect(results[3]?.rating).toMatchObject({ tier: 0, cost_micros: 1800 });
    expect(results[2]?.rating).toMatchObject({ cost_micros: 12_500, rule: 'gpt-*' });
    const next = await call(
      edge.url,
      'POST',
      '/v1/usage',
      event('t6-d', 'usage-6', { model: 'claude-tiered', input_tokens: 600, output_tokens: 0 }),
    );
    expect(next.body.rating).toMatchObject({ tier: 1, cost_micros: 600 }); // 1200 before it
    const budgets = r.body.budgets as Record<string, { spent_micros: number }[]>;
    expect(budgets['usage-6']?.[0]?.spent_micros).toBe(1800 + 12_500 + 1800);
  });
});

describe('POST /v1/rate', () => {
  it('dry run prices and checks without charging', async () => {
    const r = await call(edge.url, 'POST', '/v1/rate', {
      agent_id: 'rate-1',
      model: 'other',
      input_tokens: 500_000,
      output_tokens: 600_000,
      dry_run: true,
    });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ allowed: false, denied_by: 'daily', dry_run: true });
    expect((r.body.rating as { cost_micros: number }).cost_micros).toBe(1_110_000);
    const after = await call(edge.url, 'GET', '/v1/agents/rate-1/usage');
    expect(after.body.total_events).toBe(0);
  });

  it('charges limits and budget all or none, records, and denies with 402 once the budget is spent', async () => {
    const req = (id: string) => ({
      event_id: id,
      agent_id: 'rate-2',
      model: 'gpt-4o',
      input_tokens: 40_000,
      output_tokens: 30_000, // $0.10 + $0.30 = 400,000 micros
    });
    const a = await call(edge.url, 'POST', '/v1/rate', req('r2-a'));
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ allowed: true, ledger: 'recorded' });
    const tokensBefore = (a.body.limits as { name: string; remaining: number }[]).find(
      (l) => l.name === 'tokens',
    )?.remaining;
    expect(tokensBefore).toBe(10_000_000 - 70_000);
    expect((await call(edge.url, 'POST', '/v1/rate', req('r2-b'))).status).toBe(200);
    const denied = await call(edge.url, 'POST', '/v1/rate', req('r2-c'));
    expect(denied.status).toBe(402);
    expect(denied.body).toMatchObject({ code: 'BUDGET_EXCEEDED', budget: 'daily' });
    // The denial gave the rate-limit tokens back.
    const agent = await call(edge.url, 'GET', '/v1/agents/rate-2');
    const tokens = (agent.body.limits as { name: string; remaining: number }[]).find(
      (l) => l.name === 'tokens',
    );
    expect(tokens?.remaining).toBeGreaterThanOrEqual(10_000_000 - 140_000);
    expect(tokens?.remaining).toBeLessThan(10_000_000 - 140_000 + 1000);
    // A replay of a recorded request still gets its answer, with the budget spent.
    const replay = await call(edge.url, 'POST', '/v1/rate', req('r2-a'));
    expect(replay.status).toBe(200);
    expect(replay.body.ledger).toBe('duplicate');
    const usage = await call(edge.url, 'GET', '/v1/agents/rate-2/usage');
    expect(usage.body).toMatchObject({ total_events: 2, total_cost_micros: 800_000 });
  });

  it('a rate-limited request is denied with 429 and neither recorded nor charged to the budget', async () => {
    const req = (id: string) => ({
      event_id: id,
      agent_id: 'slow-1',
      model: 'gpt-4o',
      input_tokens: 1000,
      output_tokens: 1000,
    });
    expect((await call(edge.url, 'POST', '/v1/rate', req('s1'))).status).toBe(200);
    const denied = await call(edge.url, 'POST', '/v1/rate', req('s2'));
    expect(denied.status).toBe(429);
    expect(denied.body).toMatchObject({ code: 'RATE_LIMITED', limit: 'requests' });
    const usage = await call(edge.url, 'GET', '/v1/agents/slow-1/usage');
    expect(usage.body).toMatchObject({ total_events: 1, total_cost_micros: 12_500 });
    const probe = await call(edge.url, 'POST', '/v1/rate', { ...req('s3'), dry_run: true });
    expect((probe.body.budgets as { spent_micros: number }[])[0]?.spent_micros).toBe(12_500);
  });

  it('needs an event id unless dry run, and a priced model', async () => {
    const r = await call(edge.url, 'POST', '/v1/rate', { agent_id: 'rate-3', model: 'gpt-4o' });
    expect(r.status).toBe(400);
    expect(r.body.field).toBe('body.event_id');
  });
});

describe('reservations', () => {
  it('concurrent reservations cannot together pass the budget', async () => {
    const reserve = () =>
      call(edge.url, 'POST', '/v1/reservations', {
        agent_id: 'rsv-1',
        model: 'gpt-4o',
        input_tokens: 4000,
        max_tokens: 29_000, // $0.01 + $0.29 = 300,000 micros
      });
    const results = await Promise.all(Array.from({ length: 6 }, reserve));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 201, 201, 402, 402, 402]);
  });

  it('settle charges the actual cost and refunds the rest; repeating it answers the same', async () => {
    const created = await call(edge.url, 'POST', '/v1/reservations', {
      agent_id: 'rsv-2',
      model: 'gpt-4o',
      prompt_chars: 16_000, // 4000 tokens
      max_tokens: 29_000,
    });
    expect(created.status).toBe(201);
    expect(created.body.held_micros).toBe(300_000);
    const budgets = created.body.budgets as { remaining_micros: number }[];
    expect(budgets[0]?.remaining_micros).toBe(700_000);
    const id = String(created.body.reservation_id);
    const settled = await call(edge.url, 'POST', `/v1/reservations/${id}/settle`, {
      input_tokens: 4000,
      output_tokens: 1000,
    });
    expect(settled.status).toBe(200);
    expect(settled.body).toMatchObject({
      status: 'settled',
      ledger: 'recorded',
      event_id: `rsv-${id}`,
    });
    expect((settled.body.rating as { cost_micros: number }).cost_micros).toBe(20_000);
    expect((settled.body.budgets as { remaining_micros: number }[])[0]?.remaining_micros).toBe(
      980_000,
    );
    expect(settled.headers.get('openclaw-budget')).toMatch(/"daily";r=980000;/);
    const again = await call(edge.url, 'POST', `/v1/reservations/${id}/settle`, {
      input_tokens: 4000,
      output_tokens: 1000,
    });
    expect(again.body).toMatchObject({ status: 'settled', replayed: true });
    const usage = await call(edge.url, 'GET', '/v1/agents/rsv-2/usage');
    expect(usage.body).toMatchObject({ total_events: 1, total_cost_micros: 20_000 });
    const cancel = await call(edge.url, 'POST', `/v1/reservations/${id}/cancel`);
    expect(cancel.status).toBe(409);
    expect(cancel.body.code).toBe('RESERVATION_CLOSED');
  });

  it('cancel refunds everything and expiry refunds an abandoned hold', async () => {
    const hold = (ttl?: number) =>
      call(edge.url, 'POST', '/v1/reservations', {
        agent_id: 'rsv-3',
        model: 'gpt-4o',
        cost_micros: 600_000,
        ...(ttl === undefined ? {} : { ttl_ms: ttl }),
      });
    const a = await hold();
    expect(a.status).toBe(201);
    expect((await hold()).status).toBe(402);
    const cancelled = await call(
      edge.url,
      'POST',
      `/v1/reservations/${a.body.reservation_id}/cancel`,
    );
    expect(cancelled.body.status).toBe('cancelled');
    expect((cancelled.body.budgets as { remaining_micros: number }[])[0]?.remaining_micros).toBe(
      1_000_000,
    );
    const b = await hold(1000);
    expect(b.status).toBe(201);
    expect((await hold()).status).toBe(402);
    await eventually(async () => (await hold()).status === 201, 5000);
    const late = await call(edge.url, 'POST', `/v1/reservations/${b.body.reservation_id}/settle`, {
      input_tokens: 1,
      output_tokens: 1,
    });
    expect(late.status).toBe(409);
    expect(late.body.detail).toMatch(/expired/);
  });

  it('metrics count events, replays, rejections, reservations, denials and threshold crossings', async () => {
    const scrape = async () => {
      const { samples } = parseExposition(await (await fetch(`${edge.url}/metrics`)).text());
      return (name: string, labels: Record<string, string> = {}) => value(samples, name, labels);
    };
    const before = await scrape();
    // $0.85 of output against the $1.00 daily budget: crosses 0.8, not 1.
    const big = event('m-1', 'metrics-1', { input_tokens: 0, output_tokens: 85_000 });
    expect((await call(edge.url, 'POST', '/v1/usage', big)).status).toBe(200);
    expect((await call(edge.url, 'POST', '/v1/usage', big)).body.status).toBe('duplicate');
    const bad = await call(edge.url, 'POST', '/v1/usage', {
      events: [event('m-2', 'metrics-1', { input_tokens: -1 })],
    });
    expect(bad.status).toBe(200);
    // $0.20 more cannot be held: $0.15 is left.
    const denied = await call(edge.url, 'POST', '/v1/reservations', {
      agent_id: 'metrics-1',
      model: 'gpt-4o',
      cost_micros: 200_000,
    });
    expect(denied.status).toBe(402);
    const held = await call(edge.url, 'POST', '/v1/reservations', {
      agent_id: 'metrics-2',
      model: 'gpt-4o',
      cost_micros: 1000,
      ttl_ms: 1000,
    });
    expect(held.status).toBe(201);
    await eventually(async () => {
      const now = await scrape();
      return (
        now('openclaw_reservations_total', { outcome: 'expired' }) ===
        before('openclaw_reservations_total', { outcome: 'expired' }) + 1
      );
    }, 10_000);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) =>
      after(name, labels) - before(name, labels);
    expect(delta('openclaw_ledger_events_total', { outcome: 'recorded' })).toBe(1);
    expect(delta('openclaw_ledger_events_total', { outcome: 'duplicate' })).toBe(1);
    expect(delta('openclaw_usage_events_rejected_total')).toBe(1);
    expect(delta('openclaw_budget_denials_total', { reason: 'exhausted' })).toBe(1);
    expect(delta('openclaw_reservations_total', { outcome: 'created' })).toBe(1);
    expect(delta('openclaw_reservations_active')).toBe(0); // the hold expired
    const crossings = (t: string) =>
      after('openclaw_budget_threshold_crossings_total', { budget: 'daily', threshold: t }) -
      (() => {
        try {
          return before('openclaw_budget_threshold_crossings_total', {
            budget: 'daily',
            threshold: t,
          });
        } catch {
          return 0; // no crossing of that threshold yet: no series
        }
      })();
    expect(crossings('0.8')).toBe(1);
  });

  it('unknown reservations are 404 and bad bodies 400', async () => {
    const r = await call(edge.url, 'POST', '/v1/reservations/nope/settle', {
      input_tokens: 1,
      output_tokens: 1,
    });
    expect(r.status).toBe(404);
    expect(r.body.code).toBe('RESERVATION_NOT_FOUND');
    const bad = await call(edge.url, 'POST', '/v1/reservations', {
      agent_id: 'x',
      model: 'm',
      max_tokens: -1,
    });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('INVALID_REQUEST');
  });
});

describe('GET /v1/agents/{id}/usage', () => {
  it('groups by model, hour and day in the budget time zone', async () => {
    const t = (iso: string) => ({ time: iso });
    await call(edge.url, 'POST', '/v1/usage', {
      events: [
        event('g1', 'usage-g', t('2026-03-10T22:30:00Z')), // Mar 10 23:30 Berlin
        event('g2', 'usage-g', t('2026-03-10T23:30:00Z')), // Mar 11 00:30 Berlin
        event('g3', 'usage-g', { ...t('2026-03-10T23:45:00Z'), model: 'other' }),
      ],
    });
    const q = '?from=2026-03-10T00:00:00Z&to=2026-03-12T00:00:00Z';
    const byModel = await call(edge.url, 'GET', `/v1/agents/usage-g/usage${q}&group_by=model`);
    expect(byModel.body.groups).toEqual([
      expect.objectContaining({ model: 'gpt-4o', events: 2, cost_micros: 25_000 }),
      expect.objectContaining({ model: 'other', events: 1, cost_micros: 12_000 }),
    ]);
    const byDay = await call(edge.url, 'GET', `/v1/agents/usage-g/usage${q}&group_by=day`);
    expect(
      (byDay.body.groups as { start: string; events: number }[]).map((g) => [g.start, g.events]),
    ).toEqual([
      ['2026-03-09T23:00:00.000Z', 1],
      ['2026-03-10T23:00:00.000Z', 2],
    ]);
    const byHour = await call(edge.url, 'GET', `/v1/agents/usage-g/usage${q}&group_by=hour`);
    expect((byHour.body.groups as unknown[]).length).toBe(2);
    const bad = await call(
      edge.url,
      'GET',
      '/v1/agents/usage-g/usage?from=2026-03-12T00:00:00Z&to=2026-03-10T00:00:00Z',
    );
    expect(bad.status).toBe(400);
    const badGroup = await call(edge.url, 'GET', '/v1/agents/usage-g/usage?group_by=week');
    expect(badGroup.status).toBe(400);
  });

  it('the routes are in the OpenAPI document', async () => {
    const doc = await call(edge.url, 'GET', '/v1/openapi.json');
    const paths = Object.keys(doc.body.paths as object);
    for (const p of [
      '/v1/usage',
      '/v1/rate',
      '/v1/reservations',
      '/v1/reservations/{id}/settle',
      '/v1/reservations/{id}/cancel',
      '/v1/agents/{agent_id}/usage',
    ]) {
      expect(paths).toContain(p);
    }
  });
});
