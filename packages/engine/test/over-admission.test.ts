import { definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { worstExcess } from './helpers.js';

/**
 * The bound of docs/crdt.md: with R replicas in `optimistic` mode, each seeing every other's
 * charges at most L ms late, the tokens admitted in any window [s, t] satisfy
 *
 *   admitted(s, t) ≤ C + r·(t − s) + (R − 1)·(C + r·L)
 *
 * An exact bucket obeys the same inequality without the last term, so (R − 1)·(C + r·L) is the
 * most the fleet can over-admit. Checked here on random fleets, rates and traffic, with virtual
 * time and every replica syncing to all others every L ms.
 */

const scenario = fc.record({
  replicas: fc.integer({ min: 2, max: 5 }),
  syncMs: fc.integer({ min: 5, max: 200 }),
  capacity: fc.integer({ min: 1, max: 200 }),
  refillPerSecond: fc.integer({ min: 1, max: 500 }),
  maxCost: fc.integer({ min: 1, max: 10 }),
  // Chance per replica per ms of a request: from a trickle to saturation.
  load: fc.double({ min: 0.01, max: 0.9, noNaN: true }),
  idleGapMs: fc.integer({ min: 0, max: 20_000 }),
  seed: fc.integer(),
});

describe('over-admission of optimistic replicas', () => {
  it('stays within (R − 1)·(C + r·L) over every window', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const policy = definePolicy([
          {
            name: 'l',
            capacity: s.capacity,
            refill: s.refillPerSecond,
            per: 'second',
            mode: 'optimistic',
          },
        ]);
        const fleet = Array.from(
          { length: s.replicas },
          (_, i) => new Limiter({ nodeId: `r${i}`, incarnation: 1, defaultPolicy: policy }),
        );
        let rand = s.seed >>> 0;
        const next = () => {
          rand = (rand + 0x6d2b79f5) >>> 0;
          let x = Math.imul(rand ^ (rand >>> 15), 1 | rand);
          x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
          return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
        };
        const admissions: { t: number; cost: number }[] = [];
        const durationMs = 3_000 + s.idleGapMs;
        for (let t = 0; t < durationMs; t++) {
          // Traffic before and after an idle gap, so long idles and refill caps are covered.
          const active = t < 1_500 || t >= 1_500 + s.idleGapMs;
          if (active) {
            for (const replica of fleet) {
              if (next() >= s.load) continue;
              const cost = 1 + Math.floor(next() * s.maxCost);
              if (replica.check('agent', cost, t).allowed) admissions.push({ t, cost });
            }
          }
          if (t % s.syncMs === s.syncMs - 1) {
            const deltas = fleet.map((r) => r.drainDirty(t));
            fleet.forEach((r, i) => {
              deltas.forEach((d, j) => {
                if (i !== j) r.merge(d, t);
              });
            });
          }
        }
        const rPerMs = s.refillPerSecond / 1_000;
        const bound = (s.replicas - 1) * (s.capacity + rPerMs * s.syncMs);
        expect(worstExcess(admissions, s.capacity, rPerMs)).toBeLessThanOrEqual(bound + 1e-6);
      }),
      { numRuns: 200 },
    );
  });

  it('a single replica admits exactly what an exact bucket would', () => {
    const policy = definePolicy([{ name: 'l', capacity: 50, refill: 20, per: 'second' }]);
    const one = new Limiter({ nodeId: 'solo', incarnation: 1, defaultPolicy: policy });
    const admissions: { t: number; cost: number }[] = [];
    for (let t = 0; t < 10_000; t++) {
      if (one.check('agent', 1, t).allowed) admissions.push({ t, cost: 1 });
    }
    // Saturating traffic: the burst plus exactly the refill, and never more in any window.
    expect(admissions.length).toBe(50 + Math.floor((20 * 9_999) / 1_000));
    expect(worstExcess(admissions, 50, 0.02)).toBeLessThanOrEqual(1e-9);
  });
});
