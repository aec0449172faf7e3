import {
  availableTokens,
  type BucketState,
  createBucket,
  isCoveredBy,
  mergeBuckets,
  normalise,
  rebase,
  refund,
  sameBucket,
  tryConsume,
} from '@openclaw-edge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  familyArb,
  limitAndStateArb,
  limitOf,
  limitParamsArb,
  shareArb,
  slotIdArb,
  stepMsArb,
  tokensFor,
} from './arbitraries.js';

const RUNS = { numRuns: 300 };

/** The same state with its slots in reverse insertion order and an all-zero slot added. */
function reshuffled(state: BucketState): BucketState {
  const slots = new Map([...state.slots].reverse());
  if (!slots.has('zero')) slots.set('zero', { consumed: 0, refunded: 0 });
  return { ...state, slots };
}

describe('sameBucket and isCoveredBy (the order the laws are stated in)', () => {
  const limit = limitOf({ capacity: 10, refillPerSecond: 1 });
  const base = createBucket(limit, 1000, 0, 3);
  const charged = tryConsume(base, limit, 'a', 2, 1000);
  if (!charged.allowed) throw new Error('setup: a full bucket must admit 2 of 10');

  it('tells apart states that differ in a counter, epoch, overflow, revision or parameters', () => {
    const variants: BucketState[] = [
      charged.state,
      { ...base, epochMs: 999 },
      { ...base, overflow: 1 },
      { ...base, revision: 4 },
      { ...base, params: base.params + 1 },
      refund(charged.state, limit, 'b', 1, 1000).state,
    ];
    for (const variant of variants) {
      expect(sameBucket(base, variant)).toBe(false);
      expect(isCoveredBy(base, variant)).toBe(true);
      expect(isCoveredBy(variant, base)).toBe(false);
    }
  });

  it('ignores slot order and slots whose counters are all zero', () => {
    expect(sameBucket(charged.state, reshuffled(charged.state))).toBe(true);
  });

  it('lets a higher revision cover any state of a lower one, whatever its counters', () => {
    const other = limitOf({ capacity: 20, refillPerSecond: 1 });
    for (const newer of [createBucket(limit, 5000, 7, 4), createBucket(other, 5000, 7, 4)]) {
      expect(isCoveredBy(charged.state, newer)).toBe(true);
      expect(isCoveredBy(newer, charged.state)).toBe(false);
      expect(mergeBuckets(charged.state, newer)).toBe(newer);
      expect(mergeBuckets(newer, charged.state)).toBe(newer);
    }
  });

  it('at one revision, the state with the larger parameter fingerprint wins whole', () => {
    const other = limitOf({ capacity: 20, refillPerSecond: 1 });
    const theirs = createBucket(other, 0, 0, 3);
    expect(theirs.params).not.toBe(charged.state.params);
    const [low, high] =
      theirs.params > charged.state.params ? [charged.state, theirs] : [theirs, charged.state];
    expect(mergeBuckets(low, high)).toBe(high);
    expect(mergeBuckets(high, low)).toBe(high);
    expect(isCoveredBy(low, high)).toBe(true);
    expect(isCoveredBy(high, low)).toBe(false);
  });
});

describe('merge is a join', () => {
  it('is commutative', () => {
    fc.assert(
      fc.property(familyArb({ size: 2 }), ({ states: [a, b] }) => {
        const ab = mergeBuckets(a as BucketState, b as BucketState);
        const ba = mergeBuckets(b as BucketState, a as BucketState);
        expect(sameBucket(ab, ba)).toBe(true);
      }),
      RUNS,
    );
  });

  it('is associative', () => {
    fc.assert(
      fc.property(familyArb({ size: 3 }), ({ states }) => {
        const [a, b, c] = states as [BucketState, BucketState, BucketState];
        const left = mergeBuckets(mergeBuckets(a, b), c);
        const right = mergeBuckets(a, mergeBuckets(b, c));
        expect(sameBucket(left, right)).toBe(true);
      }),
      RUNS,
    );
  });

  it('is idempotent, also when a state is merged again into a merge that already holds it', () => {
    fc.assert(
      fc.property(familyArb({ size: 2 }), ({ states }) => {
        const [a, b] = states as [BucketState, BucketState];
        expect(sameBucket(mergeBuckets(a, a), a)).toBe(true);
        const ab = mergeBuckets(a, b);
        expect(sameBucket(mergeBuckets(ab, b), ab)).toBe(true);
        expect(sameBucket(mergeBuckets(a, ab), ab)).toBe(true);
      }),
      RUNS,
    );
  });

  it('covers both inputs, and is the smallest state that does', () => {
    fc.assert(
      fc.property(familyArb({ size: 3 }), ({ states }) => {
        const [a, b, c] = states as [BucketState, BucketState, BucketState];
        const ab = mergeBuckets(a, b);
        expect(isCoveredBy(a, ab)).toBe(true);
        expect(isCoveredBy(b, ab)).toBe(true);
        // Any upper bound of a and b (here one with c's updates too) covers their merge.
        const upper = mergeBuckets(mergeBuckets(c, b), a);
        expect(isCoveredBy(ab, upper)).toBe(true);
        // And the merge adds nothing neither input had.
        if (a.revision === b.revision && isCoveredBy(a, b)) expect(sameBucket(ab, b)).toBe(true);
      }),
      RUNS,
    );
  });
});

describe('state only grows', () => {
  it('an admitted consume grows the state, strictly when it charges something', () => {
    fc.assert(
      fc.property(
        limitAndStateArb,
        slotIdArb,
        shareArb(1000),
        stepMsArb,
        ({ limit, nowMs, state }, slot, share, later) => {
          const cost = tokensFor(limit, share);
          const result = tryConsume(state, limit, slot, cost, nowMs + later);
          if (!result.allowed) return;
          expect(isCoveredBy(state, result.state)).toBe(true);
          if (cost > 0) expect(isCoveredBy(result.state, state)).toBe(false);
        },
      ),
      RUNS,
    );
  });

  it('a refund grows the state, strictly when it credits something', () => {
    fc.assert(
      fc.property(
        limitAndStateArb,
        slotIdArb,
        shareArb(1000),
        stepMsArb,
        ({ limit, nowMs, state }, slot, share, later) => {
          const result = refund(state, limit, slot, tokensFor(limit, share), nowMs + later);
          expect(isCoveredBy(state, result.state)).toBe(true);
          if (result.refunded > 0) expect(isCoveredBy(result.state, state)).toBe(false);
          else expect(sameBucket(result.state, state)).toBe(true);
        },
      ),
      RUNS,
    );
  });

  it('a rebase, onto the same or other parameters, grows the state', () => {
    fc.assert(
      fc.property(
        limitAndStateArb,
        limitParamsArb,
        stepMsArb,
        ({ limit, nowMs, state }, params, later) => {
          for (const to of [limit, limitOf(params)]) {
            const next = rebase(state, limit, to, nowMs + later);
            expect(next.revision).toBe(state.revision + 1);
            expect(next.params).toBe(to.fingerprint);
            expect(isCoveredBy(state, next)).toBe(true);
            expect(isCoveredBy(next, state)).toBe(false);
          }
        },
      ),
      RUNS,
    );
  });

  it('normalising grows the state and never changes what is available now', () => {
    fc.assert(
      fc.property(
        limitAndStateArb,
        stepMsArb,
        stepMsArb,
        ({ limit, nowMs, state }, later, after) => {
          const at = nowMs + later;
          const next = normalise(state, limit, at);
          expect(isCoveredBy(state, next)).toBe(true);
          const before = availableTokens(state, limit, at);
          expect(Math.abs(availableTokens(next, limit, at) - before)).toBeLessThanOrEqual(1e-9);
          // Later it can only show fewer tokens: the absorbed refill is gone for good.
          expect(availableTokens(next, limit, at + after)).toBeLessThanOrEqual(
            availableTokens(state, limit, at + after) + 1e-9,
          );
        },
      ),
      RUNS,
    );
  });
});

describe('availableTokens is a function of the state', () => {
  it('is equal for equal states (merge order, slot order, redundant merges)', () => {
    fc.assert(
      fc.property(familyArb({ size: 2 }), stepMsArb, ({ limit, nowMs, states }, later) => {
        const [a, b] = states as [BucketState, BucketState];
        const at = nowMs + later;
        const ab = mergeBuckets(a, b);
        const expected = availableTokens(ab, limit, at);
        // Merging in what a state already holds keeps its slot order: bit-identical.
        expect(availableTokens(mergeBuckets(ab, a), limit, at)).toBe(expected);
        expect(availableTokens(mergeBuckets(ab, ab), limit, at)).toBe(expected);
        // Another slot order sums the slots in another order, which can move the last bits:
        // a known defect, pinned down exactly in convergence.test.ts ("bit-identical").
        const slack = 1e-9;
        expect(Math.abs(availableTokens(mergeBuckets(b, a), limit, at) - expected)).toBeLessThan(
          slack,
        );
        expect(Math.abs(availableTokens(reshuffled(ab), limit, at) - expected)).toBeLessThan(slack);
      }),
      RUNS,
    );
  });

  it('never exceeds capacity, at any time', () => {
    fc.assert(
      fc.property(
        familyArb({ size: 3 }),
        fc.integer({ min: -10_000, max: 10_000_000 }),
        ({ limit, nowMs, states }, offset) => {
          for (const state of states) {
            expect(availableTokens(state, limit, nowMs + offset)).toBeLessThanOrEqual(
              limit.capacityTokens,
            );
          }
        },
      ),
      RUNS,
    );
  });
});
