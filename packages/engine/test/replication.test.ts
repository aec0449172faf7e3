import { mergeBuckets, sameBucket } from '@openclaw-edge/core';
import { describe, expect, it } from 'vitest';
import { limiter, policy, sync, tenPerTenSeconds } from './helpers.js';

describe('limiters exchanging deltas', () => {
  it('drain hands over each changed agent once and then nothing', () => {
    const a = limiter([tenPerTenSeconds]);
    a.check('x', 1, 0);
    a.check('x', 1, 0);
    a.check('y', 1, 0);
    a.check('z', 20, 0); // denied: charges nothing, so nothing to replicate
    expect(a.drainDirty(0).map((e) => e.agentId)).toEqual(['x', 'y']);
    expect(a.drainDirty(0)).toEqual([]);
  });

  it('a peer sees the consumption of another and they agree on what is left', () => {
    const a = limiter([tenPerTenSeconds], { nodeId: 'a' });
    const b = limiter([tenPerTenSeconds], { nodeId: 'b' });
    for (let i = 0; i < 6; i++) a.check('x', 1, 0);
    for (let i = 0; i < 3; i++) b.check('x', 1, 0);
    sync(a, [b], 0);
    sync(b, [a], 0);
    expect(a.peek('x', 0).limits[0]?.remaining).toBe(1);
    expect(b.peek('x', 0).limits[0]?.remaining).toBe(1);
    expect(a.check('x', 2, 0).allowed).toBe(false);
    const [ea] = a.exportAgent('x', 0);
    const [eb] = b.exportAgent('x', 0);
    expect(ea && eb && sameBucket(ea.state, eb.state)).toBe(true);
  });

  it('merging state equals the core join of the exported states', () => {
    const a = limiter([tenPerTenSeconds], { nodeId: 'a' });
    const b = limiter([tenPerTenSeconds], { nodeId: 'b' });
    a.check('x', 4, 100);
    b.check('x', 3, 50);
    b.refund('x', 1, 60);
    const sa = a.exportAgent('x', 0)[0]?.state;
    const sb = b.exportAgent('x', 0)[0]?.state;
    if (sa === undefined || sb === undefined) throw new Error('no state');
    a.merge(b.exportAgent('x', 0), 200);
    const merged = a.exportAgent('x', 200)[0]?.state;
    expect(merged && sameBucket(merged, mergeBuckets(sa, sb))).toBe(true);
  });

  it('merging is idempotent: a delta applied twice changes nothing more', () => {
    const a = limiter([tenPerTenSeconds], { nodeId: 'a' });
    const b = limiter([tenPerTenSeconds], { nodeId: 'b' });
    a.check('x', 4, 0);
    const delta = a.drainDirty(0);
    b.merge(delta, 0);
    b.merge(delta, 0);
    expect(b.peek('x', 0).limits[0]?.remaining).toBe(6);
  });

  it('a replica that evicted and recreated a bucket does not hide new use behind old counts', () => {
    const a = limiter([tenPerTenSeconds], { nodeId: 'a', idleEvictMs: 60_000 });
    const b = limiter([tenPerTenSeconds], { nodeId: 'b' });
    a.check('x', 8, 0);
    sync(a, [b], 0);
    // Long idle: the bucket is full again and a forgets it.
    expect(a.evictIdle(120_000)).toHaveLength(1);
    expect(a.size).toBe(0);
    // a spends 5; with a reused counter slot, b's max-merge would keep the old 8 and miss these 5.
    a.check('x', 5, 120_000);
    sync(a, [b], 120_000);
    expect(b.peek('x', 120_000).limits[0]?.remaining).toBe(5);
  });

  it('a late message from long ago does not lend its old refill to charges made since', () => {
    const a = limiter([tenPerTenSeconds], { nodeId: 'a' });
    const b = limiter([tenPerTenSeconds], { nodeId: 'b' });
    b.check('x', 8, 0);
    const old = b.drainDirty(0);
    // a first sees the agent 100 s later, spends 5, and only then gets b's message from t=0.
    a.check('x', 5, 100_000);
    a.merge(old, 100_000);
    // b's 8 refilled long ago; a's 5 did not: 5 left, as an exact bucket would say.
    expect(a.peek('x', 100_000).limits[0]?.remaining).toBe(5);
  });

  it('a rebased bucket from a peer replaces the local one, and is not rebased twice', () => {
    const a = limiter([tenPerTenSeconds], { nodeId: 'a' });
    const b = limiter([tenPerTenSeconds], { nodeId: 'b' });
    a.check('x', 2, 0);
    b.check('x', 1, 0);
    sync(a, [b], 0);
    sync(b, [a], 0);
    const bigger = policy([{ ...tenPerTenSeconds, capacity: 20 }]);
    // Same parameters under a new policy object: the bucket keeps its state and revision.
    b.setOverride('x', policy([tenPerTenSeconds]), 0);
    expect(b.exportAgent('x', 0)[0]?.state.revision).toBe(0);
    b.setOverride('x', bigger, 0);
    expect(b.peek('x', 0).limits[0]?.remaining).toBe(17);
    expect(a.merge(b.exportAgent('x', 0), 0)).toEqual({ applied: 1, stale: 0, unknownLimit: 0 });
    expect(a.exportAgent('x', 0)[0]?.state.revision).toBe(1);
    // When a's own config catches up, the bucket already counts under those parameters.
    a.setOverride('x', bigger, 0);
    expect(a.exportAgent('x', 0)[0]?.state.revision).toBe(1);
    expect(a.peek('x', 0).limits[0]?.remaining).toBe(17);
    // The old version from a lagging replica teaches nothing.
    const old = limiter([tenPerTenSeconds], { nodeId: 'c' });
    old.check('x', 1, 0);
    expect(a.merge(old.exportAgent('x', 0), 0)).toEqual({ applied: 0, stale: 1, unknownLimit: 0 });
  });

  it('entries for limits the local policy lacks are counted, not applied', () => {
    const a = limiter([{ name: 'other', capacity: 5, refill: 1, per: 'second' }], { nodeId: 'a' });
    const b = limiter([tenPerTenSeconds], { nodeId: 'b' });
    a.check('x', 1, 0);
    expect(b.merge(a.drainDirty(0), 0)).toEqual({ applied: 0, stale: 0, unknownLimit: 1 });
  });
});
