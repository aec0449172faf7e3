import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type Edge, scratchDir, startEdge, writeConfig } from './harness.js';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from './postgres.js';

/**
 * What happens when the ledger goes away under a running server (its PostgreSQL schema is
 * dropped): fail-closed budgets deny, fail-open ones admit and say so, usage is refused with
 * LEDGER_UNAVAILABLE and nothing is acknowledged.
 */

const pgUp = await postgresAvailable();

describe.skipIf(!pgUp)('ledger outage (PostgreSQL)', () => {
  let edge: Edge;
  const scratch = scratchDir();
  const schema = uniqueSchema('outage');

  beforeAll(async () => {
    const config = writeConfig(
      scratch.dir,
      `
data_dir: ${join(scratch.dir, 'data')}
agents:
  - { match: "open-*", limits: [{ name: requests, capacity: 100, refill: 100, per: second }] }
  - { match: "closed-*", limits: [{ name: requests, capacity: 100, refill: 100, per: second }] }
pricing:
  currency: USD
  versions: [{ effective_from: "2020-01-01T00:00:00Z", default: { input: 1, output: 1 } }]
budgets:
  agents:
    - match: "open-*"
      budgets: [{ name: daily, amount: 1, window: day, on_error: allow }]
    - match: "closed-*"
      budgets:
        - { name: daily, amount: 1, window: day, on_error: allow }
        - { name: monthly, amount: 10, window: month, on_error: deny }
usage:
  unknown_agents: reject
ledger: { driver: postgres, url: "${DATABASE_URL}", schema: ${schema} }
`,
    );
    edge = await startEdge({ configPath: config });
  });

  afterAll(async () => {
    await edge.stop('SIGKILL');
    scratch.cleanup();
    await dropSchema(schema);
  });

  const reserve = (agent: string) =>
    call(edge.url, 'POST', '/v1/reservations', { agent_id: agent, model: 'm', max_tokens: 1000 });

  it('refuses events of agents no rule names, when configured to', async () => {
    const r = await call(edge.url, 'POST', '/v1/usage', {
      event_id: 'x1',
      agent_id: 'stranger',
      time: new Date().toISOString(),
      model: 'm',
      input_tokens: 1,
      output_tokens: 1,
    });
    expect(r.status).toBe(422);
    expect(r.body.code).toBe('UNKNOWN_AGENT');
  });

  it('with the ledger gone: fail-closed denies, fail-open admits and says so, usage is not acknowledged', async () => {
    expect((await reserve('open-0')).status).toBe(201); // loaded while the ledger was up
    await dropSchema(schema);
    const closed = await reserve('closed-1');
    expect(closed.status).toBe(503);
    expect(closed.body.code).toBe('BUDGET_UNAVAILABLE');
    const open = await reserve('open-1');
    expect(open.status).toBe(201);
    expect(String(open.body.budgets_unchecked)).toMatch(/ledger is unavailable/);
    const usage = await call(edge.url, 'POST', '/v1/usage', {
      event_id: 'lost-1',
      agent_id: 'open-0',
      time: new Date().toISOString(),
      model: 'm',
      input_tokens: 1,
      output_tokens: 1,
    });
    expect(usage.status).toBe(503);
    expect(usage.body.code).toBe('LEDGER_UNAVAILABLE');
  });
});
