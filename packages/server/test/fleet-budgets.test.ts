import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  call,
  type Edge,
  eventually,
  freePorts,
  meshReplication,
  scratchDir,
  startEdge,
  writeConfig,
} from './harness.js';

// Two real `openclaw-edge serve` processes replicating over the mesh, each with its own SQLite
// ledger (own data_dir): a replica's ledger never holds the other's usage, so whatever a replica
// knows of the other's spend came through replication.
const scratch = scratchDir();
const edges: Edge[] = [];
afterEach(async () => {
  await Promise.all(edges.splice(0).map((e) => e.stop('SIGKILL')));
});
afterAll(() => scratch.cleanup());

function replicaConfig(
  id: string,
  meshPort: number,
  peers: readonly string[],
  snapshots = false,
): string {
  return writeConfig(
    scratch.dir,
    `
node_id: ${id}
data_dir: ${scratch.dir}/${id}
snapshot: { enabled: ${snapshots} }
limits:
  - { name: requests, capacity: 1000, refill: 1000, per: second }
pricing:
  currency: USD
  versions:
    - effective_from: "2020-01-01T00:00:00Z"
      models:
        - { match: "gpt-*", input: "2.50", output: "10" }
budgets:
  time_zone: UTC
  default:
    - { name: daily, amount: "0.10", window: day, on_error: deny }
${meshReplication(meshPort, peers)}
`,
    `${id}.yaml`,
  );
}

/** Usage costing `micros` at gpt-* prices: 2.50 per million input tokens. */
const usage = (eventId: string, agent: string, micros: number) => ({
  event_id: eventId,
  agent_id: agent,
  time: new Date().toISOString(),
  model: 'gpt-4o',
  input_tokens: micros / 2.5,
  output_tokens: 0,
});

async function dailySpent(edge: Edge, agent: string): Promise<number> {
  const r = await call(edge.url, 'POST', '/v1/rate', {
    ...usage('probe', agent, 0),
    dry_run: true,
  });
  expect(r.status).toBe(200);
  return (r.body.budgets as { name: string; spent_micros: number }[])[0]?.spent_micros ?? -1;
}

describe('calendar budgets across replicas (mesh, real processes)', () => {
  it('a replica sees what another committed and denies what only its own view would admit', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const [a, b] = await Promise.all(
      ['ba', 'bb'].map((id, i) =>
        startEdge({ configPath: replicaConfig(id, ports[i] as number, peers) }),
      ),
    );
    edges.push(a as Edge, b as Edge);
    const A = a as Edge;
    const B = b as Edge;
    const agent = 'fleet-agent-1';
    // B has loaded the agent's budget (empty ledger) before A's usage: its seed is 0.
    expect(await dailySpent(B, agent)).toBe(0);

    const recorded = await call(A.url, 'POST', '/v1/usage', usage('fleet-u1', agent, 75_000));
    expect(recorded.status).toBe(200);
    expect(recorded.body.status).toBe('recorded');
    const t0 = Date.now();
    await eventually(async () => (await dailySpent(B, agent)) === 75_000, 2000);
    expect(Date.now() - t0).toBeLessThan(2000);

    // 37,500 fits B's own spend (0 of 100,000) but not the fleet's (75,000 of 100,000).
    const denied = await call(B.url, 'POST', '/v1/rate', usage('fleet-r1', agent, 37_500));
    expect(denied.status).toBe(402);
    expect(denied.body).toMatchObject({ code: 'BUDGET_EXCEEDED', budget: 'daily' });

    // What still fits the fleet is admitted, and once recorded A counts it too.
    const admitted = await call(B.url, 'POST', '/v1/rate', usage('fleet-r2', agent, 25_000));
    expect(admitted.status).toBe(200);
    expect(admitted.body.ledger).toBe('recorded');
    expect((admitted.body.budgets as { spent_micros: number }[])[0]?.spent_micros).toBe(100_000);
    await eventually(async () => (await dailySpent(A, agent)) === 100_000, 2000);
    const onA = await call(A.url, 'POST', '/v1/rate', usage('fleet-r3', agent, 2_500));
    expect(onA.status).toBe(402);

    // A reservation's hold stays on its replica; the settled usage is shared.
    const other = 'fleet-agent-2';
    expect(await dailySpent(B, other)).toBe(0);
    const held = await call(A.url, 'POST', '/v1/reservations', {
      agent_id: other,
      model: 'gpt-4o',
      cost_micros: 50_000,
    });
    expect(held.status).toBe(201);
    await new Promise((resolve) => setTimeout(resolve, 300)); // six sync intervals
    expect(await dailySpent(B, other)).toBe(0);
    const settled = await call(
      A.url,
      'POST',
      `/v1/reservations/${held.body.reservation_id}/settle`,
      {
        input_tokens: 12_000,
        output_tokens: 0,
      },
    );
    expect(settled.status).toBe(200);
    expect(settled.body.ledger).toBe('recorded');
    await eventually(async () => (await dailySpent(B, other)) === 30_000, 2000);

    // The counters are not limits: no replica reports them as unknown limit entries. Each
    // holds one daily window per agent that spent (the gauge follows the next tick).
    for (const edge of [A, B]) {
      const status = (await call(edge.url, 'GET', '/v1/replication')).body;
      expect(status.unknown_limit_entries).toBe(0);
      await eventually(async () =>
        /\nopenclaw_replication_budget_windows 2\n/.test(
          String((await call(edge.url, 'GET', '/metrics')).body.raw),
        ),
      );
    }
  });

  it('a fleet restarted at once still counts what each replica committed (snapshots keep the counters)', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const configs = ['sa', 'sb'].map((id, i) => replicaConfig(id, ports[i] as number, peers, true));
    const start = () => Promise.all(configs.map((configPath) => startEdge({ configPath })));
    const [a, b] = (await start()) as [Edge, Edge];
    edges.push(a, b);
    const agent = 'fleet-agent-3';
    expect((await call(a.url, 'POST', '/v1/usage', usage('fleet-s1', agent, 75_000))).status).toBe(
      200,
    );
    await eventually(async () => (await dailySpent(b, agent)) === 75_000, 2000);
    // Both stop (a final snapshot each) and come back: b's own ledger never held a's usage,
    // and a's new run has not counted anything yet.
    expect(await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')])).toEqual([0, 0]);
    const [a2, b2] = (await start()) as [Edge, Edge];
    edges.push(a2, b2);
    expect(await dailySpent(b2, agent)).toBe(75_000);
    expect(await dailySpent(a2, agent)).toBe(75_000);
    const denied = await call(b2.url, 'POST', '/v1/rate', usage('fleet-s2', agent, 37_500));
    expect(denied.status).toBe(402);
  });
});
