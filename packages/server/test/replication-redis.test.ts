import { definePolicy } from '@openclaw-edge/core';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisTransport, stateTtlFor } from '../src/replication/redis.js';
import type { ReplicationTransport } from '../src/replication/replicator.js';
import { FaultProxy } from './fault-proxy.js';
import { call, type Edge, eventually, scratchDir, startEdge, writeConfig } from './harness.js';
import {
  dropPrefix,
  OwnRedis,
  OwnRedisCluster,
  REDIS_URL,
  redisAvailable,
  uniquePrefix,
} from './redis.js';
import {
  forgedDelta,
  remaining,
  SECRET,
  type Replica as Shared,
  startInProcessReplica,
} from './replicas.js';

type Replica = Shared<RedisTransport>;

const running: Shared<ReplicationTransport>[] = [];
const prefixes: { url: string; prefix: string }[] = [];

async function stopAll(): Promise<void> {
  await Promise.all(running.splice(0).map((r) => r.replicator.stop()));
}

afterEach(stopAll);
afterAll(async () => {
  for (const { url, prefix } of prefixes.splice(0)) await dropPrefix(url, prefix);
});

/** A prefix for one test; its keys in the shared Redis are deleted after the file. */
function newPrefix(label: string): string {
  const prefix = uniquePrefix(label);
  prefixes.push({ url: REDIS_URL, prefix });
  return prefix;
}

function startReplica(
  nodeId: string,
  prefix: string,
  options: { url?: string; cluster?: boolean; incarnation?: number; startupMs?: number } = {},
): Promise<Replica> {
  return startInProcessReplica(
    running,
    nodeId,
    (limiter) =>
      new RedisTransport({
        url: options.url ?? REDIS_URL,
        cluster: options.cluster ?? false,
        prefix,
        memberTtlMs: 2000,
        membershipIntervalMs: 100,
        stateTtlMs: (agentId, replicas) => stateTtlFor(limiter.policyFor(agentId).limits, replicas),
        timeoutMs: 1000,
        fullScanIntervalMs: 1000,
        batchSize: 50,
      }),
    options,
  );
}

/** Charges `agents` agents `cost` tokens each, `times` times, on every replica given. */
function charge(replicas: readonly Replica[], agents: number, times: number, prefix = 'agent') {
  const now = Date.now();
  for (const r of replicas) {
    for (let a = 0; a < agents; a++) {
      for (let k = 0; k < times; k++) {
        expect(r.limiter.check(`${prefix}-${a}`, 1, now).allowed).toBe(true);
      }
    }
  }
}

/** Every replica sees every agent at `expected` remaining (within refill since the charge). */
async function converged(replicas: readonly Replica[], agents: number, expected: number) {
  await eventually(() =>
    replicas.every((r) =>
      [...Array(agents).keys()].every((a) => remaining(r, `agent-${a}`) <= expected + 0.5),
    ),
  );
  for (const r of replicas) {
    for (let a = 0; a < agents; a++) expect(remaining(r, `agent-${a}`)).toBeCloseTo(expected, 0);
  }
}

/** Node ids holding a field in an agent's key. */
async function fieldsOf(url: string, key: string): Promise<string[]> {
  const client = new Redis(url);
  try {
    return (await client.hkeys(key)).sort();
  } finally {
    client.disconnect();
  }
}

const redisUp = await redisAvailable();

describe.skipIf(!redisUp)('redis replication (in-process replicas, the shared Redis)', () => {
  it('converges three replicas after traffic on all of them, and keeps state in Redis', async () => {
    const prefix = newPrefix('converge');
    const replicas = await Promise.all(['r1', 'r2', 'r3'].map((id) => startReplica(id, prefix)));
    await eventually(() => replicas.every((r) => r.replicator.peers().length === 2));
    charge(replicas, 20, 10);
    await converged(replicas, 20, 70);
    // Heartbeats through the channel move every sync point to within a few intervals of now.
    await eventually(() => replicas.every((r) => Date.now() - r.limiter.syncPointMs < 300));
    const key = replicas[0]?.transport.agentKey('agent-3') as string;
    expect(key).toBe(`${prefix}:a:{agent-3}`);
    await eventually(async () => (await fieldsOf(REDIS_URL, key)).length === 3);
    expect(await fieldsOf(REDIS_URL, key)).toEqual(['r1', 'r2', 'r3']);
    // The key expires once every bucket in it would be full again: 100 tokens at 1/min, 3 replicas.
    const client = new Redis(REDIS_URL);
    const ttl = await client.pttl(key);
    client.disconnect();
    expect(ttl).toBeGreaterThan(3 * 100 * 60_000);
    expect(ttl).toBeLessThanOrEqual(3 * 100 * 60_000 + 60_000);
  });

  it('catches a cold replica up from Redis before it serves', async () => {
    const prefix = newPrefix('cold');
    const early = await Promise.all(['r1', 'r2'].map((id) => startReplica(id, prefix)));
    charge(early, 20, 15);
    await converged(early, 20, 70);
    // Nothing changes from here on: r3 can only learn the state from Redis, not from deltas.
    const late = await startReplica('r3', prefix);
    for (let a = 0; a < 20; a++) {
      expect(remaining(late, `agent-${a}`)).toBeCloseTo(
        remaining(early[0] as Replica, `agent-${a}`),
        0,
      );
    }
    // One read of Redis: the start-up pulls reuse the catch-up scan's pull points.
    expect(late.transport.stats.scans).toBe(1);
    expect(late.limiter.check('agent-0', 71, Date.now()).allowed).toBe(false);
  });

  it('bounds the catch-up at start by startup_sync_ms, and merges the rest while serving', async () => {
    const prefix = newPrefix('slow-start');
    const [early] = await Promise.all([startReplica('r1', prefix)]);
    const now = Date.now();
    for (let a = 0; a < 2000; a++) early?.limiter.check(`slow-${a}`, 5, now);
    // Redis holds all 2,000 agents before the late replica starts.
    await eventually(async () => {
      const client = new Redis(REDIS_URL);
      try {
        return (await client.keys(`${prefix}:a:*`)).length === 2000;
      } finally {
        client.disconnect();
      }
    });
    // The late replica reaches Redis through a proxy that delays every answer by 30 ms: its
    // scan (pages of 50 keys: 80 round trips) takes seconds; the start waits 300 ms of it.
    const proxy = await FaultProxy.start(Number(new URL(REDIS_URL).port || 6379));
    try {
      proxy.slow(30);
      const late = await startReplica('r2', prefix, {
        url: `redis://127.0.0.1:${proxy.port}`,
        startupMs: 300,
      });
      // Ready before its catch-up finished (it took the whole scan before).
      expect(late.transport.stats.scans).toBe(0);
      const merged = () => {
        let n = 0;
        for (let a = 0; a < 2000; a++) if (remaining(late, `slow-${a}`) < 95.5) n++;
        return n;
      };
      expect(merged()).toBeLessThan(2000);
      // The catch-up goes on in the background; the first rewrite waits for it, not a 2nd scan.
      await eventually(() => late.transport.stats.rewrites >= 1, 15_000);
      expect(merged()).toBe(2000);
      expect(late.transport.stats.scans).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('carries runtime policy overrides through the channel, and to replicas that start later', async () => {
    const prefix = newPrefix('overrides');
    const [a, b] = await Promise.all(['r1', 'r2'].map((id) => startReplica(id, prefix)));
    if (a === undefined || b === undefined) throw new Error('unreachable');
    const gold = definePolicy([{ name: 'rpm', capacity: 500, refill: 500, per: 'minute' }]);
    a.limiter.setOverride('vip', gold, Date.now());
    a.replicator.overrideChanged('vip', gold);
    await eventually(() => b.limiter.getOverride('vip') !== undefined);
    // r3 starts after the change: it finds it in Redis.
    const c = await startReplica('r3', prefix);
    expect(c.limiter.getOverride('vip')?.limits[0]?.capacityTokens).toBe(500);
  });

  it('keeps state through a full fleet restart (new incarnations)', async () => {
    const prefix = newPrefix('restart');
    const first = await Promise.all(['r1', 'r2'].map((id) => startReplica(id, prefix)));
    charge(first, 10, 20);
    await converged(first, 10, 60);
    await stopAll();
    // A clean stop leaves the fleet at once.
    const client = new Redis(REDIS_URL);
    expect(await client.hlen(`${prefix}:members`)).toBe(0);
    client.disconnect();
    const second = await Promise.all(['r1', 'r2'].map((id) => startReplica(id, prefix)));
    for (const r of second) {
      for (let a = 0; a < 10; a++) expect(remaining(r, `agent-${a}`)).toBeCloseTo(60, 0);
    }
    charge(second, 10, 5);
    await converged(second, 10, 50);
  });

  it('rejects and counts malformed and unsigned messages on the channel, and keeps going', async () => {
    const prefix = newPrefix('malformed');
    const [a, b] = await Promise.all(['a', 'b'].map((id) => startReplica(id, prefix)));
    if (a === undefined || b === undefined) throw new Error('unreachable');
    const forged = forgedDelta('a');
    const before = b.replicator.stats.rejected;
    const client = new Redis(REDIS_URL);
    for (const message of [
      forged,
      Buffer.from('garbage'),
      forged.subarray(0, 20),
      Buffer.alloc(0),
    ]) {
      await client.publish(`${prefix}:deltas`, message);
    }
    // A forged state field is refused by the next scan, never merged.
    await client.hset(`${prefix}:a:{victim}`, 'a', forged);
    client.disconnect();
    await eventually(() => b.replicator.stats.rejected >= before + 4);
    expect(b.replicator.stats.rejected).toBe(before + 4);
    a.limiter.check('after', 5, Date.now());
    await eventually(() => remaining(b, 'after') < 96);
    const fieldsBefore = b.transport.stats.rejectedFields;
    expect(await b.transport.pull('a')).toBeDefined();
    expect(b.transport.stats.rejectedFields).toBeGreaterThan(fieldsBefore);
    expect(b.limiter.agents()).not.toContain('victim');
  });
});

describe.skipIf(!redisUp)('redis replication on a Redis Cluster (three masters of its own)', () => {
  let cluster: OwnRedisCluster | undefined;
  beforeAll(async () => {
    cluster = await OwnRedisCluster.start(3);
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  /** Agent keys under `prefix` on each master. */
  async function keysPerMaster(prefix: string): Promise<number[]> {
    return Promise.all(
      (cluster as OwnRedisCluster).nodes.map(async (node) => {
        const client = new Redis(node.url);
        try {
          return (await client.keys(`${prefix}:a:*`)).length;
        } finally {
          client.disconnect();
        }
      }),
    );
  }

  it('converges through the cluster, spreads agents over every master, and catches a cold replica up', async () => {
    const url = (cluster as OwnRedisCluster).url;
    const prefix = uniquePrefix('cluster');
    const early = await Promise.all(
      ['r1', 'r2'].map((id) => startReplica(id, prefix, { url, cluster: true })),
    );
    await eventually(() => early.every((r) => r.replicator.peers().length === 1));
    charge(early, 30, 10);
    // Deltas travel over the cluster's pub/sub.
    await converged(early, 30, 80);
    // Each agent's key lives on the master owning its slot: all 30 written, on every master.
    await eventually(async () => (await keysPerMaster(prefix)).reduce((a, b) => a + b) === 30);
    for (const count of await keysPerMaster(prefix)) expect(count).toBeGreaterThan(0);
    // A replica that starts now learns the state by scanning every master, in one read.
    const late = await startReplica('r3', prefix, { url, cluster: true });
    for (let a = 0; a < 30; a++) {
      expect(remaining(late, `agent-${a}`)).toBeCloseTo(
        remaining(early[0] as Replica, `agent-${a}`),
        0,
      );
    }
    expect(late.transport.stats.scans).toBe(1);
    expect(late.transport.stats.writeFailures).toBe(0);
    expect(late.limiter.check('agent-0', 81, Date.now()).allowed).toBe(false);
  });
});

describe.skipIf(!redisUp)('redis replication through an outage (a redis-server of its own)', () => {
  let own: OwnRedis | undefined;
  afterEach(async () => {
    await stopAll();
    await own?.stop();
  });

  it('keeps deciding while Redis is down, then converges and repopulates it', async () => {
    own = await OwnRedis.start();
    const url = own.url;
    const prefix = uniquePrefix('outage');
    const replicas = await Promise.all(['r1', 'r2'].map((id) => startReplica(id, prefix, { url })));
    await eventually(() => replicas.every((r) => r.replicator.peers().length === 1));
    charge(replicas, 10, 10);
    await converged(replicas, 10, 80);

    await own.stop();
    // Every check decides at once, on local state: Redis is not on the decision path.
    const started = performance.now();
    charge(replicas, 10, 10);
    expect(performance.now() - started).toBeLessThan(200);
    await eventually(() => replicas.every((r) => r.transport.stats.dropped > 0));
    expect(remaining(replicas[0] as Replica, 'agent-0')).toBeCloseTo(70, 0);
    // Down is not gone: membership stays.
    for (const r of replicas) expect(r.replicator.peers()).toHaveLength(1);

    await own.restart(); // empty: no persistence
    await converged(replicas, 10, 60);
    for (let a = 0; a < 10; a++) {
      const key = `${prefix}:a:{agent-${a}}`;
      await eventually(async () => (await fieldsOf(url, key)).length === 2);
    }
    for (const r of replicas) expect(r.transport.stats.rewrites).toBeGreaterThanOrEqual(2);
  });
});

describe.skipIf(!redisUp)('redis unreachable at start (a redis-server of its own)', () => {
  let own: OwnRedis | undefined;
  afterEach(async () => {
    await stopAll();
    await own?.stop();
  });

  it('starts on local state without waiting, and writes it once Redis answers', async () => {
    own = await OwnRedis.start();
    await own.stop();
    const url = own.url;
    const prefix = uniquePrefix('late-redis');
    const started = performance.now();
    const r1 = await startReplica('r1', prefix, { url });
    expect(performance.now() - started).toBeLessThan(3000);
    charge([r1], 5, 10);
    await own.restart();
    const r2 = await startReplica('r2', prefix, { url });
    // r2 started after Redis came back; r1's rewrite on reconnect hands it r1's charges.
    await eventually(() => remaining(r2, 'agent-4') < 90.5);
    await converged([r1, r2], 5, 90);
  });
});

describe.skipIf(!redisUp)('redis replication between real edge processes', () => {
  const scratch = scratchDir();
  const edges: Edge[] = [];
  let own: OwnRedis | undefined;
  afterEach(async () => {
    await Promise.all(edges.splice(0).map((e) => e.stop()));
    await own?.stop();
    own = undefined;
  });
  afterAll(() => scratch.cleanup());
  const configFor = (nodeId: string, prefix: string, url = REDIS_URL, cluster = false) =>
    writeConfig(
      scratch.dir,
      [
        `node_id: ${nodeId}`,
        `data_dir: ${JSON.stringify(`${scratch.dir}/${nodeId}`)}`,
        'snapshot: { enabled: false }',
        'limits: [{ name: rpm, capacity: 100, refill: 1, per: minute }]',
        'replication:',
        '  transport: redis',
        `  secret: ${SECRET}`,
        '  sync_interval_ms: 20',
        `  redis: { url: ${JSON.stringify(url)}, cluster: ${cluster}, prefix: ${prefix}, timeout_ms: 500 }`,
      ].join('\n'),
      `${nodeId}-${prefix}.yaml`,
    );
  const remainingAt = async (edge: Edge) => {
    const r = await call(edge.url, 'GET', '/v1/agents/shared-agent');
    return (r.body.limits as { remaining: number }[])[0]?.remaining;
  };

  it('shares an agent between two edges, and a third edge starts with the state', async () => {
    const prefix = newPrefix('edges');
    for (const id of ['e1', 'e2']) {
      edges.push(await startEdge({ configPath: configFor(id, prefix) }));
    }
    const [e1, e2] = edges as [Edge, Edge];
    for (let i = 0; i < 10; i++) {
      await call(e1.url, 'POST', '/v1/check', { agent_id: 'shared-agent' });
    }
    for (let i = 0; i < 5; i++) {
      await call(e2.url, 'POST', '/v1/check', { agent_id: 'shared-agent' });
    }
    await eventually(async () => (await remainingAt(e1)) === 85 && (await remainingAt(e2)) === 85);
    const e3 = await startEdge({ configPath: configFor('e3', prefix) });
    edges.push(e3);
    expect(await remainingAt(e3)).toBe(85);
  });

  it('shares an agent through a Redis Cluster (redis.cluster: true)', async () => {
    const cluster = await OwnRedisCluster.start(3);
    try {
      const prefix = uniquePrefix('edge-cluster');
      for (const id of ['c1', 'c2']) {
        edges.push(await startEdge({ configPath: configFor(id, prefix, cluster.url, true) }));
      }
      const [c1, c2] = edges as [Edge, Edge];
      for (const [edge, times] of [
        [c1, 7],
        [c2, 3],
      ] as const) {
        for (let i = 0; i < times; i++) {
          expect(
            (await call(edge.url, 'POST', '/v1/check', { agent_id: 'shared-agent' })).status,
          ).toBe(200);
        }
      }
      await eventually(
        async () => (await remainingAt(c1)) === 90 && (await remainingAt(c2)) === 90,
      );
      const e3 = await startEdge({ configPath: configFor('c3', prefix, cluster.url, true) });
      edges.push(e3);
      expect(await remainingAt(e3)).toBe(90);
    } finally {
      await Promise.all(edges.splice(0).map((e) => e.stop()));
      await cluster.stop();
    }
  });

  it('keeps answering while its Redis is stopped, and converges once it is back', async () => {
    own = await OwnRedis.start();
    const prefix = uniquePrefix('edge-outage');
    for (const id of ['o1', 'o2']) {
      edges.push(await startEdge({ configPath: configFor(id, prefix, own.url) }));
    }
    const [o1, o2] = edges as [Edge, Edge];
    const check = (edge: Edge) =>
      call(edge.url, 'POST', '/v1/check', { agent_id: 'shared-agent', cost: 5 });
    expect((await check(o1)).status).toBe(200);
    await eventually(async () => (await remainingAt(o2)) === 95);
    await own.stop();
    // Redis is off the decision path: both edges decide at once, on their own state.
    const started = performance.now();
    for (const edge of [o1, o1, o2]) expect((await check(edge)).status).toBe(200);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await remainingAt(o2)).toBe(90); // o1's outage charges have not reached o2
    await own.restart(); // empty: no persistence
    await eventually(
      async () => (await remainingAt(o1)) === 80 && (await remainingAt(o2)) === 80,
      15_000,
    );
  });
});
