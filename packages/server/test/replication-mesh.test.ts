import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from './fault-proxy.js';
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

// Real `openclaw-edge serve` processes replicating over the mesh on loopback. Limits refill per
// day, so nothing refills measurably during a test and every replica must report exactly what
// the fleet spent.
const CAPACITY = 100;

const scratch = scratchDir();
const edges: Edge[] = [];
const proxies: FaultProxy[] = [];
afterEach(async () => {
  await Promise.all(edges.splice(0).map((e) => e.stop('SIGKILL')));
  await Promise.all(proxies.splice(0).map((p) => p.close()));
});
afterAll(() => scratch.cleanup());

function replicaConfig(
  id: string,
  meshPort: number,
  peers: readonly string[],
  extra = '',
  snapshots = false,
): string {
  return writeConfig(
    scratch.dir,
    `
node_id: ${id}
data_dir: ${scratch.dir}/${id}
snapshot: { enabled: ${snapshots} }
limits:
  - { name: daily, capacity: ${CAPACITY}, refill: ${CAPACITY}, per: day }
${meshReplication(meshPort, peers)}
${extra}`,
    `${id}.yaml`,
  );
}

async function check(edge: Edge, agent: string, cost = 1): Promise<boolean> {
  const r = await call(edge.url, 'POST', '/v1/check', { agent_id: agent, cost });
  if (r.status !== 200 && r.status !== 429) throw new Error(`check answered ${r.status}`);
  return r.status === 200;
}

async function capacity(edge: Edge, agent: string): Promise<number | undefined> {
  const r = await call(edge.url, 'GET', `/v1/agents/${agent}`);
  return (r.body.limits as { capacity: number }[])[0]?.capacity;
}

async function remaining(edge: Edge, agent: string): Promise<number> {
  const r = await call(edge.url, 'GET', `/v1/agents/${agent}`);
  const limits = r.body.limits as { remaining: number }[];
  return Math.round((limits[0] as { remaining: number }).remaining);
}

describe('mesh replication between real processes', () => {
  it('three replicas converge after traffic on all of them', async () => {
    const ports = await freePorts(3);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    edges.push(
      ...(await Promise.all(
        ['m1', 'm2', 'm3'].map((id, i) =>
          startEdge({ configPath: replicaConfig(id, ports[i] as number, peers) }),
        ),
      )),
    );
    // 30 agents; every replica charges every agent 5 tokens (shared mode: within each share).
    const agents = Array.from({ length: 30 }, (_, i) => `conv-${i}`);
    for (const edge of edges) {
      for (const a of agents) expect(await check(edge, a, 5)).toBe(true);
    }
    await eventually(async () => {
      for (const edge of edges) {
        for (const a of agents) if ((await remaining(edge, a)) !== CAPACITY - 15) return false;
      }
      return true;
    });
    const metrics = await call(edges[0]?.url as string, 'GET', '/metrics');
    const text = String(metrics.body.raw);
    expect(text).toMatch(/openclaw_replication_peers\{state="known"\} 2/);
    expect(text).toMatch(/openclaw_replication_peers\{state="reachable"\} 2/);
    expect(text).toMatch(
      /openclaw_replication_deltas_total\{direction="received",outcome="ok"\} [1-9]/,
    );
    // Heard from each peer within the last second (sync every 50 ms).
    const lags = [...text.matchAll(/openclaw_replication_lag_seconds\{peer="(m\d)"\} (\S+)/g)];
    expect(lags.map((m) => m[1]).sort()).toEqual(['m2', 'm3']);
    for (const m of lags) expect(Number(m[2])).toBeLessThan(1);
    // Operators see the same through GET /v1/replication.
    const status = (await call(edges[0]?.url as string, 'GET', '/v1/replication')).body as {
      transport: string;
      node_id: string;
      peers: { node_id: string; reachable: boolean; synced: boolean; lag_ms: number }[];
    };
    expect(status.transport).toBe('mesh');
    expect(status.node_id).toBe('m1');
    expect(status.peers.map((p) => [p.node_id, p.reachable, p.synced])).toEqual([
      ['m2', true, true],
      ['m3', true, true],
    ]);
    for (const p of status.peers) expect(p.lag_ms).toBeLessThan(1000);
    // A runtime policy override set on one replica reaches the others.
    const put = await call(edges[0]?.url as string, 'PUT', '/v1/agents/vip-agent/policy', {
      limits: [{ name: 'daily', capacity: 500, refill: 500, per: 'day' }],
    });
    expect(put.status).toBe(200);
    await eventually(async () => {
      const r = await call(edges[2]?.url as string, 'GET', '/v1/agents/vip-agent');
      return (r.body.limits as { capacity: number }[])[0]?.capacity === 500;
    });
    // A graceful stop sends what the replica charged last, and exits 0.
    const [first, second] = edges as [Edge, Edge];
    expect(await check(first, 'final', 7)).toBe(true);
    expect(await first.stop('SIGTERM')).toBe(0);
    await eventually(async () => (await remaining(second, 'final')) === CAPACITY - 7);
  });

  it('a killed and restarted replica catches up from its peers before it serves', async () => {
    const ports = await freePorts(3);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const configs = ['k1', 'k2', 'k3'].map((id, i) => replicaConfig(id, ports[i] as number, peers));
    edges.push(...(await Promise.all(configs.map((c) => startEdge({ configPath: c })))));
    const [a, , c] = edges as [Edge, Edge, Edge];
    expect(await c.stop('SIGKILL')).toBe(null);
    edges.splice(2, 1);
    // While k3 is down, k1 spends 20 of agent "late"'s tokens.
    for (let i = 0; i < 4; i++) expect(await check(a, 'late', 5)).toBe(true);
    // k3 restarts with no snapshot: only its peers can tell it about those 20.
    const restarted = await startEdge({ configPath: configs[2] as string });
    edges.push(restarted);
    expect(await remaining(restarted, 'late')).toBe(CAPACITY - 20);
    expect(await remaining(a, 'late')).toBe(CAPACITY - 20);
  });

  it('keeps deciding through a partition, stays within one bucket, and converges after the heal', async () => {
    const ports = await freePorts(3);
    // Every directed link goes through its own proxy, so the test can cut any of them.
    const link = new Map<string, FaultProxy>();
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        if (i === j) continue;
        const proxy = await FaultProxy.start(ports[j] as number);
        proxies.push(proxy);
        link.set(`${i}>${j}`, proxy);
      }
    }
    const ids = ['p1', 'p2', 'p3'];
    edges.push(
      ...(await Promise.all(
        ids.map((id, i) => {
          const peers = [0, 1, 2]
            .filter((j) => j !== i)
            .map((j) => `127.0.0.1:${link.get(`${i}>${j}`)?.port}`);
          return startEdge({ configPath: replicaConfig(id, ports[i] as number, peers) });
        }),
      )),
    );
    // Partition {p1} | {p2, p3}.
    for (const [key, proxy] of link) if (key.includes('0')) proxy.cut();
    // Both sides hammer one agent, far beyond the limit.
    let admitted = 0;
    const hammer = async (edge: Edge) => {
      for (let i = 0; i < 80; i++) if (await check(edge, 'hot')) admitted++;
    };
    await Promise.all(edges.map(hammer));
    // Each side spent only out of its share: together at most one bucket (shares of one cut sum
    // to at most what remained), where independent optimistic replicas could admit 3 × 100.
    expect(admitted).toBeGreaterThan(0);
    expect(admitted).toBeLessThanOrEqual(CAPACITY);
    for (const proxy of link.values()) proxy.heal();
    await eventually(async () => {
      const seen = await Promise.all(edges.map((e) => remaining(e, 'hot')));
      return seen.every((r) => r === CAPACITY - admitted);
    }, 15_000);
  });

  it('refuses to start on a peer port already taken, naming the setting', async () => {
    const [port, other] = await freePorts(2);
    const peers = [`127.0.0.1:${port}`, `127.0.0.1:${other}`];
    edges.push(await startEdge({ configPath: replicaConfig('t1', port as number, peers) }));
    await expect(
      startEdge({ configPath: replicaConfig('t2', port as number, peers) }),
    ).rejects.toThrow(/EADDRINUSE.*replication\.mesh\.port/s);
  });

  it('keeps the order of runtime overrides across restarts: no replica takes back an older one', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`);
    const configs = ['o1', 'o2'].map((id, i) =>
      replicaConfig(id, ports[i] as number, peers, '', true),
    );
    const start = (i: number) => startEdge({ configPath: configs[i] as string });
    const put = (edge: Edge, agent: string, capacity: number) =>
      call(edge.url, 'PUT', `/v1/agents/${agent}/policy`, {
        limits: [{ name: 'daily', capacity, refill: capacity, per: 'day' }],
      });
    const [a, b] = await Promise.all([start(0), start(1)]);
    edges.push(a, b);
    expect((await put(a, 'vip', 500)).status).toBe(200);
    expect((await put(a, 'gone', 300)).status).toBe(200);
    await eventually(
      async () => (await capacity(b, 'vip')) === 500 && (await capacity(b, 'gone')) === 300,
    );
    // o2 goes away; o1 changes one override, removes the other, and restarts too.
    expect(await b.stop('SIGTERM')).toBe(0);
    expect((await put(a, 'vip', 700)).status).toBe(200);
    expect((await call(a.url, 'DELETE', '/v1/agents/gone/policy')).status).toBe(204);
    expect(await a.stop('SIGTERM')).toBe(0);
    // Each comes back with its own snapshot: o2's holds the older settings.
    const [a2, b2] = await Promise.all([start(0), start(1)]);
    edges.push(a2, b2);
    await eventually(async () => {
      for (const edge of [a2, b2]) {
        if ((await capacity(edge, 'vip')) !== 700) return false;
        if ((await capacity(edge, 'gone')) !== CAPACITY) return false;
      }
      return true;
    });
  });
});
