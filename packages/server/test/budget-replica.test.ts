import { type BucketEntry, decodeEntries, definePolicy, encodeEntries } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BudgetReplica, budgetLimitName, parseBudgetLimit } from '../src/rating/budget-replica.js';
import { computeDigest, digestBucketOf, entriesOfBuckets } from '../src/replication/digest.js';
import { MeshTransport } from '../src/replication/mesh.js';
import { RedisTransport, stateTtlFor } from '../src/replication/redis.js';
import type { ReplicationTransport } from '../src/replication/replicator.js';
import { eventually, freePorts } from './harness.js';
import { dropPrefix, REDIS_URL, redisAvailable, uniquePrefix } from './redis.js';
import { policy, type Replica, remaining, startInProcessReplica } from './replicas.js';

const DAY = 86_400_000;
const start = Date.UTC(2026, 2, 10);
/** Every window is a UTC day in these tests. */
const dayEnd = (_agent: string, _budget: string, startMs: number) => startMs + DAY;

describe('budget counters', () => {
  it('go to the snapshot once per change, and a later run takes them back as other slots', () => {
    const first = new BudgetReplica('a#1', dayEnd);
    const peer = new BudgetReplica('b#1', dayEnd);
    first.add('agent', 'daily', start, 3_000);
    peer.add('agent', 'daily', start - DAY, 9_000); // yesterday's window
    peer.add('agent', 'daily', start, 1_000);
    first.merge(peer.entriesOfAgent('agent'), start + 1);
    const rows = first.drainSnapshot();
    expect(rows.map((r) => [r.slot, r.micros, r.endMs]).sort()).toEqual([
      ['a#1', 3_000, start + DAY],
      ['b#1', 1_000, start + DAY],
    ]);
    expect(first.drainSnapshot()).toEqual([]);
    // The next run (incarnation 2) counts on a new slot beside the restored ones.
    const next = new BudgetReplica('a#2', dayEnd);
    next.restore(
      [
        ...rows,
        {
          ...rows[0],
          limit: budgetLimitName('daily', start - DAY),
          endMs: start,
        } as (typeof rows)[0],
      ],
      start + 1,
    );
    next.add('agent', 'daily', start, 500);
    expect(next.fleetSpent('agent', 'daily', start)).toBe(4_500);
    expect(next.fleetSpent('agent', 'daily', start - DAY)).toBe(0);
  });

  it('merge by the larger value per slot; the fleet spend is the sum of the slots', () => {
    const a = new BudgetReplica('a#1', dayEnd);
    const b = new BudgetReplica('b#1', dayEnd);
    a.add('agent', 'daily', start, 3_000_000);
    b.add('agent', 'daily', start, 1_000_000);
    const now = start + 1000;
    // Through the codec: the reserved limit name passes its validation.
    const wire = (r: BudgetReplica) => decodeEntries(encodeEntries(r.entriesOfAgent('agent')));
    b.merge(wire(a), now);
    a.merge(wire(b), now);
    expect(a.fleetSpent('agent', 'daily', start)).toBe(4_000_000);
    expect(b.fleetSpent('agent', 'daily', start)).toBe(4_000_000);
    // Merging old state again, or twice, changes nothing (max, not add).
    const old = wire(a);
    a.add('agent', 'daily', start, 500_000);
    b.merge(wire(a), now);
    b.merge(old, now);
    b.merge(wire(a), now);
    expect(b.fleetSpent('agent', 'daily', start)).toBe(4_500_000);
    // A peer never lowers this replica's own counter.
    a.merge(old, now);
    expect(a.fleetSpent('agent', 'daily', start)).toBe(4_500_000);
    // Another window and another budget are counted apart.
    expect(b.fleetSpent('agent', 'daily', start + DAY)).toBe(0);
    expect(b.fleetSpent('agent', 'weekly', start)).toBe(0);
  });

  it('the reserved limit name cannot be configured, so no limit collides with a counter', () => {
    expect(() =>
      definePolicy([
        { name: budgetLimitName('daily', start), capacity: 1, refill: 1, per: 'minute' },
      ]),
    ).toThrow(/name/);
  });

  it('a restarted replica counts in a new slot, beside its old one', () => {
    const before = new BudgetReplica('a#1', dayEnd);
    before.add('agent', 'daily', start, 2_000_000);
    const after = new BudgetReplica('a#2', dayEnd);
    after.add('agent', 'daily', start, 1_000_000);
    after.merge(before.entriesOfAgent('agent'), start);
    expect(after.fleetSpent('agent', 'daily', start)).toBe(3_000_000);
  });

  it('only its own additions are drained for sending, once', () => {
    const a = new BudgetReplica('a#1', dayEnd);
    const b = new BudgetReplica('b#1', dayEnd);
    b.add('other', 'daily', start, 5);
    a.merge(b.entriesOfAgent('other'), start);
    a.add('agent', 'daily', start, 7);
    expect([...a.drainDirty()]).toEqual(['agent']);
    expect([...a.drainDirty()]).toEqual([]);
  });

  it('drops windows that ended, and refuses entries of ended windows or malformed ones', () => {
    const a = new BudgetReplica('a#1', dayEnd);
    a.add('agent', 'daily', start, 1);
    a.add('agent', 'daily', start + DAY, 2);
    expect(a.prune(start + DAY)).toBe(1);
    expect(a.size).toBe(1);
    expect(a.fleetSpent('agent', 'daily', start)).toBe(0);
    const entry = (limit: string, epochMs: number, consumed: number): BucketEntry => ({
      agentId: 'agent',
      limit,
      state: {
        revision: 0,
        params: 0,
        epochMs,
        overflow: 0,
        slots: new Map([['b#1', { consumed, refunded: 0 }]]),
      },
    });
    const skipped = a.merge(
      [
        entry(budgetLimitName('daily', start), start, 9), // ended
        entry(budgetLimitName('daily', start + DAY), start, 9), // epoch differs from the name
        entry('$budget:daily', start + DAY, 9), // no window start
        entry(budgetLimitName('daily', start + DAY), start + DAY, 0.5), // not whole micro-units
      ],
      start + DAY,
    );
    expect(skipped).toBe(4);
    expect(a.fleetSpent('agent', 'daily', start + DAY)).toBe(2);
    expect(parseBudgetLimit(budgetLimitName('a@b', start))).toEqual({
      budget: 'a@b',
      windowStartMs: start,
    });
  });

  it('hands out the agents of the digest buckets asked for', async () => {
    const a = new BudgetReplica('a#1', dayEnd);
    a.add('x', 'daily', start, 1);
    a.add('y', 'daily', start, 1);
    // The repair and pull path: the limiter's agents of those buckets, and the counters'.
    const limiter = new Limiter({ nodeId: 'a', incarnation: 1, defaultPolicy: policy });
    const { entries } = await entriesOfBuckets(
      limiter,
      [digestBucketOf('x')],
      () => start,
      Number.POSITIVE_INFINITY,
      a,
    );
    const got = entries.map((e) => e.agentId);
    expect(got).toContain('x');
    if (digestBucketOf('y') !== digestBucketOf('x')) expect(got).not.toContain('y');
  });
});

describe('budget counters over mesh replication (in-process replicas)', () => {
  const running: Replica<ReplicationTransport>[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.replicator.stop()));
  });
  const now = Date.now();
  const windowStart = now - (now % DAY);

  function start2(nodeId: string, port: number, peer: number, budgets: BudgetReplica) {
    return startInProcessReplica(
      running,
      nodeId,
      () =>
        new MeshTransport({
          host: '127.0.0.1',
          port,
          peers: [`127.0.0.1:${peer}`],
          timeoutMs: 1000,
          maxEntriesPerMessage: 500,
        }),
      { budgets },
    );
  }

  it('deltas carry the counters to the peer, which keeps them apart from its limiter', async () => {
    const [pa, pb] = await freePorts(2);
    const ba = new BudgetReplica('a#1', dayEnd);
    const bb = new BudgetReplica('b#1', dayEnd);
    const a = await start2('a', pa as number, pb as number, ba);
    const b = await start2('b', pb as number, pa as number, bb);
    ba.add('agent-1', 'daily', windowStart, 1_250_000);
    bb.add('agent-1', 'daily', windowStart, 250_000);
    await eventually(
      () =>
        bb.fleetSpent('agent-1', 'daily', windowStart) === 1_500_000 &&
        ba.fleetSpent('agent-1', 'daily', windowStart) === 1_500_000,
      5000,
    );
    expect(b.replicator.status().unknown_limit_entries).toBe(0);
    expect(a.replicator.status().unknown_limit_entries).toBe(0);
    // Budget counters never become limiter buckets.
    expect([...b.limiter.agents()]).not.toContain('agent-1');
  });

  it('a replica that starts later gets the counters in its start-up pull (the digest covers them)', async () => {
    const [pa, pb] = await freePorts(2);
    const ba = new BudgetReplica('a#1', dayEnd);
    const a = await start2('a', pa as number, pb as number, ba);
    ba.add('agent-2', 'daily', windowStart, 4_000_000);
    // Sent while the peer is down: that delta is lost.
    a.replicator.tick();
    const digestBefore = await computeDigest(a.limiter, Date.now, undefined, ba);
    expect(digestBefore.lanes.some((x) => x !== 0)).toBe(true);
    const bb = new BudgetReplica('b#1', dayEnd);
    await start2('b', pb as number, pa as number, bb);
    await eventually(() => bb.fleetSpent('agent-2', 'daily', windowStart) === 4_000_000, 5000);
  });
});

const redisUp = await redisAvailable();

describe.skipIf(!redisUp)('budget counters over Redis replication (in-process replicas)', () => {
  const running: Replica<ReplicationTransport>[] = [];
  const prefix = uniquePrefix('budgets');
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.replicator.stop()));
  });
  afterAll(() => dropPrefix(REDIS_URL, prefix));
  const now = Date.now();
  const windowStart = now - (now % DAY);

  function startOn(nodeId: string, budgets: BudgetReplica) {
    return startInProcessReplica(
      running,
      nodeId,
      (limiter) =>
        new RedisTransport({
          url: REDIS_URL,
          cluster: false,
          prefix,
          memberTtlMs: 2000,
          membershipIntervalMs: 100,
          stateTtlMs: (agentId, replicas) =>
            stateTtlFor(limiter.policyFor(agentId).limits, replicas),
          timeoutMs: 1000,
          fullScanIntervalMs: 1000,
          batchSize: 50,
        }),
      { budgets },
    );
  }

  it('an agent key keeps limiter state and counters together, for replicas that start later', async () => {
    const ba = new BudgetReplica('r1#1', dayEnd);
    const bb = new BudgetReplica('r2#1', dayEnd);
    const r1 = await startOn('r1', ba);
    const r2 = await startOn('r2', bb);
    await eventually(
      () => r1.replicator.peers().length === 1 && r2.replicator.peers().length === 1,
    );
    // A delta with only the limiter changed, then one with only the counter changed, and the
    // other way round on the other replica: each must leave the whole agent in Redis.
    expect(r1.limiter.check('agent-x', 5, Date.now()).allowed).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    ba.add('agent-x', 'daily', windowStart, 2_000_000);
    bb.add('agent-x', 'daily', windowStart, 500_000);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(r2.limiter.check('agent-x', 3, Date.now()).allowed).toBe(true);
    await eventually(
      () =>
        ba.fleetSpent('agent-x', 'daily', windowStart) === 2_500_000 &&
        bb.fleetSpent('agent-x', 'daily', windowStart) === 2_500_000 &&
        Math.round(remaining(r1, 'agent-x')) === 92,
    );
    expect(r1.replicator.status().unknown_limit_entries).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the last writes reach Redis
    // Nothing changes from here on: r3 can only learn the state from Redis.
    const bc = new BudgetReplica('r3#1', dayEnd);
    const r3 = await startOn('r3', bc);
    expect(bc.fleetSpent('agent-x', 'daily', windowStart)).toBe(2_500_000);
    expect(Math.round(remaining(r3, 'agent-x'))).toBe(92);
    // The whole fleet stops; a restarted replica (new incarnation) finds the counters in Redis.
    await Promise.all(running.splice(0).map((r) => r.replicator.stop()));
    const again = new BudgetReplica('r1#2', dayEnd);
    await startOn('r1', again);
    expect(again.fleetSpent('agent-x', 'daily', windowStart)).toBe(2_500_000);
  });
});
