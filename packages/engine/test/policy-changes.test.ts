import { describe, expect, it } from 'vitest';
import { limiter, policy, tenPerTenSeconds } from './helpers.js';

describe('policies changed at runtime', () => {
  it('an override applies at once and keeps the tokens the agent was missing', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 6, 0);
    l.setOverride('a', policy([{ ...tenPerTenSeconds, capacity: 100 }]), 0);
    // 6 tokens were missing; with capacity 100 the agent has 94, not a fresh 100 nor 4.
    expect(l.peek('a', 0).limits[0]).toMatchObject({ remaining: 94 });
    expect(l.peek('b', 0).limits[0]?.remaining).toBe(10);
  });

  it('shrinking capacity keeps the missing tokens missing', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 2, 0);
    l.setOverride('a', policy([{ ...tenPerTenSeconds, capacity: 5 }]), 0);
    expect(l.peek('a', 0).limits[0]?.remaining).toBe(3);
  });

  it('clearing an override falls back to the default, rebased', () => {
    const l = limiter([tenPerTenSeconds]);
    l.setOverride('a', policy([{ ...tenPerTenSeconds, capacity: 100 }]), 0);
    l.check('a', 5, 0);
    expect(l.clearOverride('a', 0)).toBe(true);
    expect(l.clearOverride('a', 0)).toBe(false);
    // 5 were missing under capacity 100; they stay missing under the default's 10.
    expect(l.peek('a', 0).limits[0]?.remaining).toBe(5);
    // Created under the override; one parameter change since, now counting under the default's.
    expect(l.exportAgent('a', 0)[0]?.state).toMatchObject({
      revision: 1,
      params: l.policyFor('a').limits[0]?.fingerprint,
    });
  });

  it('an override set before the agent is seen governs its first check', () => {
    const l = limiter([tenPerTenSeconds]);
    l.setOverride('vip', policy([{ ...tenPerTenSeconds, capacity: 1000 }]), 0);
    expect(l.check('vip', 500, 0).allowed).toBe(true);
  });

  it('a new default reaches agents on it lazily, without a reset', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 4, 0);
    l.setDefaultPolicy(
      policy([
        { ...tenPerTenSeconds, capacity: 20 },
        { name: 'extra', capacity: 3, refill: 1, per: 'minute' },
      ]),
    );
    const status = l.peek('a', 0);
    expect(status.limits.map((s) => [s.limit.name, s.remaining])).toEqual([
      ['rps', 16],
      ['extra', 3],
    ]);
    expect(l.check('a', 4, 0).allowed).toBe(false);
    expect(l.check('a', 3, 0).allowed).toBe(true);
  });

  it('a removed limit stops being checked', () => {
    const l = limiter([tenPerTenSeconds, { name: 'tight', capacity: 1, refill: 1, per: 'day' }]);
    l.check('a', 1, 0);
    expect(l.check('a', 1, 0).allowed).toBe(false);
    l.setOverride('a', policy([tenPerTenSeconds]), 0);
    expect(l.check('a', 1, 0).allowed).toBe(true);
  });

  it('a policy source assigns configured policies and a new source applies lazily', () => {
    const gold = policy([{ ...tenPerTenSeconds, capacity: 100 }]);
    const l = limiter([tenPerTenSeconds], {
      policySource: (id) => (id.startsWith('gold-') ? gold : undefined),
    });
    expect(l.check('gold-1', 50, 0).allowed).toBe(true);
    expect(l.check('free-1', 50, 0).allowed).toBe(false);
    l.check('free-1', 4, 0);
    // Reload: gold grows to 200, free agents are untouched (same parameters keep their state).
    const platinum = policy([{ ...tenPerTenSeconds, capacity: 200 }]);
    l.setPolicySource((id) => (id.startsWith('gold-') ? platinum : undefined));
    expect(l.peek('gold-1', 0).limits[0]?.remaining).toBe(150);
    expect(l.peek('free-1', 0).limits[0]?.remaining).toBe(6);
    // A runtime override beats the source, and survives a later reload.
    l.setOverride('gold-1', policy([tenPerTenSeconds]), 0);
    l.setPolicySource(undefined);
    expect(l.peek('gold-1', 0).limits[0]?.limit.capacityTokens).toBe(10);
  });
});

describe('idle eviction', () => {
  it('evicts only buckets that are full, replicated and idle long enough', () => {
    const l = limiter([tenPerTenSeconds], { idleEvictMs: 60_000 });
    l.check('full-idle', 1, 0);
    l.check('busy', 1, 0);
    l.check('drained-recently', 9, 0);
    l.check('busy', 10, 55_000);
    l.drainDirty(55_000);
    l.check('dirty', 1, 0);
    expect(l.evictIdle(61_000).sort()).toEqual(['drained-recently', 'full-idle']);
    expect([...l.agents()].sort()).toEqual(['busy', 'dirty']);
  });

  it('feeds drain independently: a snapshot drain leaves the replication feed intact', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 1, 0);
    l.check('b', 1, 0);
    expect(l.drainDirty(0, Number.POSITIVE_INFINITY, 'snapshot').map((e) => e.agentId)).toEqual([
      'a',
      'b',
    ]);
    l.check('a', 1, 0);
    expect(l.drainDirty(0, Number.POSITIVE_INFINITY, 'snapshot').map((e) => e.agentId)).toEqual([
      'a',
    ]);
    expect(l.drainDirty(0, 1).map((e) => e.agentId)).toEqual(['a']);
    expect(l.drainDirty(0).map((e) => e.agentId)).toEqual(['b']);
    expect(l.drainDirty(0)).toEqual([]);
  });

  it('an agent whose block moved with a policy change is drained once, with its new limits', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 3, 0);
    l.check('b', 1, 0);
    // 'a' gets a second limit: its block grows and moves while it waits in both feeds.
    l.setOverride(
      'a',
      policy([tenPerTenSeconds, { name: 'daily', capacity: 100, refill: 100, per: 'day' }]),
      0,
    );
    const drained = l.drainDirty(0);
    expect(drained.map((e) => `${e.agentId}/${e.limit}`)).toEqual(['a/rps', 'a/daily', 'b/rps']);
    expect(l.drainDirty(0, Number.POSITIVE_INFINITY, 'snapshot')).toHaveLength(3);
    expect(l.peek('a', 0).limits.map((s) => s.remaining)).toEqual([7, 100]);
    expect(l.peek('b', 0).limits.map((s) => s.remaining)).toEqual([9]);
  });

  it('a row freed by eviction and reused by another agent is drained for the new agent only', () => {
    const l = limiter([tenPerTenSeconds], { idleEvictMs: 1 });
    l.check('old', 1, 0);
    l.drainDirty(0);
    expect(l.evictIdle(100_000)).toEqual(['old']);
    l.check('new', 2, 100_000);
    expect(l.drainDirty(100_000).map((e) => e.agentId)).toEqual(['new']);
    // The snapshot feed still held 'old''s row: it now names 'new', once.
    expect(
      l.drainDirty(100_000, Number.POSITIVE_INFINITY, 'snapshot').map((e) => e.agentId),
    ).toEqual(['new']);
  });

  it('an evicted agent comes back with a full bucket', () => {
    const l = limiter([tenPerTenSeconds], { idleEvictMs: 1_000 });
    l.check('a', 10, 0);
    l.drainDirty(0);
    expect(l.evictIdle(20_000)).toHaveLength(1);
    expect(l.check('a', 10, 20_000).allowed).toBe(true);
  });

  it('sweeps in slices that resume where the last stopped', () => {
    const l = limiter([tenPerTenSeconds], { idleEvictMs: 1 });
    for (let i = 0; i < 10; i++) l.check(`a${i}`, 1, 0);
    l.drainDirty(0);
    expect(l.evictIdle(100_000, 4)).toHaveLength(4);
    expect(l.evictIdle(100_000, 4)).toHaveLength(4);
    expect(l.evictIdle(100_000, 4)).toHaveLength(2);
    expect(l.size).toBe(0);
  });

  it('reuses freed rows without mixing agents up', () => {
    const l = limiter([tenPerTenSeconds], { idleEvictMs: 1 });
    for (let i = 0; i < 100; i++) l.check(`a${i}`, 1, 0);
    l.drainDirty(0);
    expect(l.evictIdle(100_000)).toHaveLength(100);
    for (let i = 0; i < 100; i++) l.check(`b${i}`, (i % 10) + 1, 100_000);
    for (let i = 0; i < 100; i++) {
      expect(l.peek(`b${i}`, 100_000).limits[0]?.remaining).toBe(10 - ((i % 10) + 1));
    }
  });
});
