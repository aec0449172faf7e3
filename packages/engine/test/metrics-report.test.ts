import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { limiter, policy, tenPerTenSeconds } from './helpers.js';

const tokens = {
  name: 'tokens',
  resource: 'tokens',
  capacity: 1000,
  refill: 100,
  per: 'second',
} as const;

describe('the bucket report behind /metrics', () => {
  it('sums capacity, available tokens and refill over every tracked agent', () => {
    const l = limiter([tenPerTenSeconds, tokens]);
    l.check('a', { requests: 3, tokens: 200 }, 0);
    l.check('b', { requests: 1, tokens: 50 }, 0);
    l.check('c', { requests: 10, tokens: 1 }, 0);
    const report = l.bucketReport(500);
    expect(report.agents).toBe(3);
    const byName = new Map(report.limits.map((t) => [t.limit, t]));
    const expected = (limit: string) =>
      ['a', 'b', 'c']
        .map((id) => l.peek(id, 500).limits.find((s) => s.limit.name === limit)?.remaining ?? 0)
        .reduce((x, y) => x + y, 0);
    expect(byName.get('rps')).toMatchObject({ agents: 3, capacity: 30, fillPerSecond: 3 });
    expect(byName.get('rps')?.available).toBeCloseTo(expected('rps'), 9);
    expect(byName.get('rps')?.available).toBeCloseTo(30 - 14 + 3 * 0.5, 9);
    expect(byName.get('tokens')).toMatchObject({
      capacity: 3000,
      fillPerSecond: 300,
      resource: 'tokens',
    });
    expect(byName.get('tokens')?.available).toBeCloseTo(expected('tokens'), 9);
    // Nobody ranked yet: everyone is "other".
    expect(byName.get('rps')?.otherCapacity).toBe(30);
    expect(report.top).toEqual([]);
  });

  it('ranks the busiest agents by decayed activity and reports their buckets and usage', () => {
    const l = limiter([{ ...tenPerTenSeconds, capacity: 1000 }]);
    for (let i = 0; i < 50; i++) l.check('hot', 1, 0);
    for (let i = 0; i < 20; i++) l.check('warm', 2, 0);
    l.check('cold', 1, 0);
    expect(l.rankAgents(2, 0)).toEqual(['hot', 'warm']);
    expect(l.decisions).toEqual({ allowed: 71, denied: 0 });
    const report = l.bucketReport(0);
    expect(report.top.map((t) => t.agentId)).toEqual(['hot', 'warm']);
    expect(report.top[1]?.used.get('requests')).toBe(40);
    expect(report.top[1]?.limits[0]?.remaining).toBe(960);
    expect(report.limits[0]).toMatchObject({ otherCapacity: 1000, otherAvailable: 999 });
    // Scores halve each ranking: 30 fresh decisions beat hot's 50 → 25, then hot's 25 → 12.5.
    for (let i = 0; i < 30; i++) l.check('cold', 1, 0);
    expect(l.rankAgents(1, 0)).toEqual(['cold']);
    expect(l.rankAgents(3, 0)).toEqual(['cold', 'hot', 'warm']);
  });

  it('never ranks an excluded agent, whatever its activity', () => {
    const l = limiter([tenPerTenSeconds]);
    for (let i = 0; i < 5; i++) l.check('__other__', 1, 0);
    l.check('quiet', 1, 0);
    expect(l.rankAgents(2, 0, 'activity', new Set(['__other__']))).toEqual(['quiet']);
    // Both agents' charges before the ranking, and every later one of the excluded agent.
    expect(l.bucketReport(0).otherUsed.get('requests')).toBe(6);
    l.check('__other__', 1, 0);
    l.check('quiet', 1, 0);
    expect(l.bucketReport(0).otherUsed.get('requests')).toBe(7);
  });

  it('ranks a replica without traffic by utilisation', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('half', 5, 0);
    l.check('most', 9, 0);
    l.check('full', 0, 0);
    expect(l.check('most', 2, 0).allowed).toBe(false);
    expect(l.decisions).toEqual({ allowed: 3, denied: 1 });
    expect(l.rankAgents(5, 0, 'utilisation')).toEqual(['most', 'half']);
  });

  it('keeps usage counters across a policy change of the same limit', () => {
    const l = limiter([{ ...tenPerTenSeconds, capacity: 100 }]);
    l.check('a', 7, 0);
    l.rankAgents(1, 0);
    l.setOverride('a', policy([{ ...tenPerTenSeconds, capacity: 200 }]), 0);
    l.check('a', 3, 0);
    expect(l.bucketReport(0).top[0]?.used.get('requests')).toBe(10);
  });

  it('counts every charge outside the top set in "other", monotonically, through evictions', () => {
    type Op =
      | { kind: 'check'; agent: number; cost: number }
      | { kind: 'rank'; n: number }
      | { kind: 'evict' }
      | { kind: 'retier'; agent: number };
    const op = fc.oneof(
      {
        weight: 8,
        arbitrary: fc.record({
          kind: fc.constant('check' as const),
          agent: fc.integer({ min: 0, max: 7 }),
          cost: fc.integer({ min: 0, max: 4 }),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('rank' as const),
          n: fc.integer({ min: 0, max: 4 }),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('evict' as const) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('retier' as const),
          agent: fc.integer({ min: 0, max: 7 }),
        }),
      },
    );
    fc.assert(
      fc.property(fc.array(op as fc.Arbitrary<Op>, { maxLength: 200 }), (ops) => {
        const l = limiter([tenPerTenSeconds], { idleEvictMs: 1 });
        let now = 0;
        let charged = 0;
        let chargedToTop = 0;
        let lastOther = 0;
        let top = new Set<string>();
        for (const o of ops) {
          now += 100;
          if (o.kind === 'check') {
            const id = `agent-${o.agent}`;
            if (l.check(id, o.cost, now).allowed) {
              charged += o.cost;
              if (top.has(id)) chargedToTop += o.cost;
            }
          } else if (o.kind === 'rank') {
            top = new Set(l.rankAgents(o.n, now));
          } else if (o.kind === 'evict') {
            l.drainDirty(now, Number.POSITIVE_INFINITY);
            for (const id of l.evictIdle(now + 1_000_000)) top.delete(id);
          } else {
            const capacity = 10 + (o.agent % 3);
            l.setOverride(`agent-${o.agent}`, policy([{ ...tenPerTenSeconds, capacity }]), now);
          }
          const other = l.bucketReport(now).otherUsed.get('requests') ?? 0;
          expect(other).toBeGreaterThanOrEqual(lastOther);
          lastOther = other;
          // Exact: every unit charged while its agent was outside the top set is in "other".
          expect(other).toBe(charged - chargedToTop);
        }
      }),
      { numRuns: 200 },
    );
  });
});
