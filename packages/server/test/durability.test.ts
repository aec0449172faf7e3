import { request } from 'node:http';
import { join } from 'node:path';
import { type LedgerStore, openPostgresLedger, openSqliteLedger } from '@openclaw-edge/server';
import { afterEach, describe, expect, it } from 'vitest';
import { call, type Edge, scratchDir, startEdge, writeConfig } from './harness.js';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from './postgres.js';

/**
 * No acknowledged event is lost or counted twice: a client streams usage while the server is
 * killed with SIGKILL, the server restarts, the client replays every event it sent (answered
 * or not), and the ledger holds each event exactly once and the budget charged each once.
 */

const running: Edge[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop('SIGKILL')));
  for (const c of cleanups.splice(0)) await c();
});

const WORKERS = 16;
const BATCH = 20;
const AGENTS = 4;
/** input 1000 tokens at $1 per million = 1000 micro-units per event. */
const COST = 1000;

const event = (id: string, agent: string) => ({
  event_id: id,
  agent_id: agent,
  time: new Date().toISOString(),
  model: 'm',
  input_tokens: 1000,
  output_tokens: 0,
});

async function start(configPath: string): Promise<Edge> {
  const edge = await startEdge({ configPath });
  running.push(edge);
  return edge;
}

async function killDuringStream(edge: Edge) {
  const sent = new Map<string, string>(); // event id → agent
  const acked = new Set<string>();
  let seq = 0;
  let killed = false;
  const worker = async (w: number) => {
    while (!killed) {
      const events = Array.from({ length: BATCH }, () => {
        const id = `w${w}-${seq++}`;
        const agent = `dur-${seq % AGENTS}`;
        sent.set(id, agent);
        return event(id, agent);
      });
      try {
        const r = await call(edge.url, 'POST', '/v1/usage', { events });
        if (r.status !== 200) continue;
        for (const res of r.body.results as { status: string; event_id: string }[]) {
          if (res.status === 'recorded' || res.status === 'duplicate') acked.add(res.event_id);
        }
      } catch {
        return; // connection reset by the kill: these events stay unacknowledged
      }
    }
  };
  const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
  // Kill mid-stream, once a good number of events were acknowledged. The workers' requests may
  // all have been answered at that instant (one group commit answers every waiting request), so
  // the kill comes the moment one more batch has been written to the server: that batch is
  // certainly in flight, and can never be acknowledged.
  const deadline = Date.now() + 10_000;
  while (acked.size < 1500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  killed = true;
  const last = Array.from({ length: BATCH }, (_, k) => {
    const id = `last-${k}`;
    sent.set(id, `dur-${k % AGENTS}`);
    return event(id, `dur-${k % AGENTS}`);
  });
  await new Promise<void>((resolve) => {
    const body = JSON.stringify({ events: last });
    const { port } = new URL(edge.url);
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/usage',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    req.on('error', () => {}); // reset by the kill: the point
    req.on('finish', () => {
      edge.proc.kill('SIGKILL');
      resolve();
    });
    req.end(body);
  });
  await Promise.all(workers);
  await edge.stop('SIGKILL');
  running.splice(running.indexOf(edge), 1);
  return { sent, acked };
}

async function replayAndCheck(
  configPath: string,
  sent: Map<string, string>,
  acked: Set<string>,
  openStore: () => Promise<LedgerStore>,
) {
  expect(acked.size).toBeGreaterThan(0);
  expect(sent.size).toBeGreaterThan(acked.size); // some were in flight when the server died
  const edge = await start(configPath);
  const ids = [...sent.keys()];
  const statuses = new Map<string, string>();
  for (let i = 0; i < ids.length; i += 200) {
    const events = ids.slice(i, i + 200).map((id) => event(id, sent.get(id) as string));
    const r = await call(edge.url, 'POST', '/v1/usage', { events });
    expect(r.status).toBe(200);
    for (const res of r.body.results as { status: string; event_id: string }[]) {
      statuses.set(res.event_id, res.status);
    }
  }
  // Every acknowledged event was durable: its replay is a duplicate, never a new record.
  for (const id of acked) expect(statuses.get(id), id).toBe('duplicate');
  for (const s of statuses.values()) expect(['recorded', 'duplicate']).toContain(s);

  // The ledger through the API: every event once, each charged once.
  let total = 0;
  for (let a = 0; a < AGENTS; a++) {
    const agent = `dur-${a}`;
    const expected = [...sent.values()].filter((x) => x === agent).length;
    const usage = await call(edge.url, 'GET', `/v1/agents/${agent}/usage`);
    expect(usage.body.total_events).toBe(expected);
    expect(usage.body.total_cost_micros).toBe(expected * COST);
    total += expected;
    // The in-memory budget after restart and replay matches the ledger: no double charge.
    const probe = await call(edge.url, 'POST', '/v1/rate', {
      agent_id: agent,
      model: 'm',
      dry_run: true,
    });
    const budget = (probe.body.budgets as { spent_micros: number }[])[0];
    expect(budget?.spent_micros).toBe(expected * COST);
  }
  expect(total).toBe(sent.size);
  expect(await edge.stop()).toBe(0);
  running.splice(running.indexOf(edge), 1);

  // And in the database itself.
  const store = await openStore();
  try {
    const rows = await store.get([...acked]);
    expect(rows).toHaveLength(acked.size);
  } finally {
    await store.close();
  }
}

const yaml = (dataDir: string, ledger: string) => `
data_dir: ${dataDir}
snapshot: { enabled: false }
limits: [{ name: requests, capacity: 1000000000, refill: 1000000000, per: second }]
pricing:
  currency: USD
  versions: [{ effective_from: "2020-01-01T00:00:00Z", default: { input: 1 } }]
budgets:
  default: [{ name: monthly, amount: "1000000", window: month, on_error: deny }]
ledger: ${ledger}
`;

const pgUp = await postgresAvailable();

describe('SIGKILL while streaming usage', () => {
  it('SQLite: each acknowledged event is in the ledger exactly once after restart and replay', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const data = join(s.dir, 'data');
    const config = writeConfig(s.dir, yaml(data, '{ driver: sqlite }'));
    const { sent, acked } = await killDuringStream(await start(config));
    await replayAndCheck(config, sent, acked, async () => openSqliteLedger(data));
  });

  it.skipIf(!pgUp)(
    'PostgreSQL: each acknowledged event is in the ledger exactly once after restart and replay',
    async () => {
      const s = scratchDir();
      const schema = uniqueSchema('kill');
      cleanups.push(s.cleanup, () => dropSchema(schema));
      const config = writeConfig(
        s.dir,
        yaml(
          join(s.dir, 'data'),
          `{ driver: postgres, url: "${DATABASE_URL}", schema: ${schema} }`,
        ),
      );
      const { sent, acked } = await killDuringStream(await start(config));
      await replayAndCheck(config, sent, acked, () => openPostgresLedger(DATABASE_URL, schema));
    },
  );
});
