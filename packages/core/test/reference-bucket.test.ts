import {
  availableTokens,
  type BucketState,
  createBucket,
  type Limit,
  refund,
  tryConsume,
} from '@openclaw-edge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type LimitParams, limitOf, limitParamsArb, startMsArb, tokensFor } from './arbitraries.js';

/**
 * The textbook sequential token bucket, kept in exact integer milli-tokens. With capacity and
 * refill (tokens per second) whole numbers and time in whole ms, every quantity is a whole number
 * of milli-tokens (1 token/s is exactly 1 milli-token/ms), so this model has no rounding at all
 * and needs no admission slack: it is the mathematically exact answer the float implementation
 * (with its 1e-9 slack) must reproduce.
 */
class ReferenceBucket {
  private milli: number;
  private lastMs: number;
  private readonly capMilli: number;

  constructor(
    private readonly params: LimitParams,
    startMs: number,
  ) {
    this.capMilli = params.capacity * 1000;
    this.milli = this.capMilli;
    this.lastMs = startMs;
  }

  private refillTo(nowMs: number): void {
    this.milli = Math.min(
      this.capMilli,
      this.milli + this.params.refillPerSecond * (nowMs - this.lastMs),
    );
    this.lastMs = nowMs;
  }

  available(nowMs: number): number {
    this.refillTo(nowMs);
    return this.milli / 1000;
  }

  consume(cost: number, nowMs: number): boolean {
    this.refillTo(nowMs);
    if (cost * 1000 > this.milli) return false;
    this.milli -= cost * 1000;
    return true;
  }

  refund(amount: number, nowMs: number): number {
    this.refillTo(nowMs);
    const credited = Math.min(amount * 1000, this.capMilli - this.milli);
    this.milli += credited;
    return credited / 1000;
  }

  /** Exact ms until `cost` fits, for a cost that does not fit now and not above capacity. */
  exactWaitMs(cost: number, nowMs: number): number {
    this.refillTo(nowMs);
    const deficit = cost * 1000 - this.milli;
    return Math.ceil(deficit / this.params.refillPerSecond);
  }
}

type Step =
  | { readonly kind: 'consume'; readonly share: number }
  | { readonly kind: 'refund'; readonly share: number }
  | { readonly kind: 'advance'; readonly ms: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('consume' as const),
      share: fc.oneof(fc.integer({ min: 0, max: 1500 }), fc.constantFrom(1000, 1500)),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('refund' as const),
      share: fc.integer({ min: 0, max: 1000 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 50 })),
    }),
  },
);

const TOLERANCE = 1e-6;

function expectClose(actual: number, expected: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(TOLERANCE);
}

/**
 * Checks the Retry-After of a denial against the exact model: it is never early, and at most one
 * ms late. It cannot be asserted exact: `ceil((cost − available) / r)` divides two floats, and
 * when the exact quotient is a whole number k the float one can land a hair above it and round up
 * to k + 1 (e.g. 0.007 / 0.001 = 7.000000000000001). Waiting one ms longer than needed is
 * harmless; admitting the retry too early would not be, so the lower bound is the one that matters.
 * The exact earliest moment itself is checked through the decisions: admitted at `now + exact`,
 * denied one ms before.
 */
function checkRetryAfter(
  state: BucketState,
  limit: Limit,
  cost: number,
  nowMs: number,
  retryAfterMs: number,
  exactWaitMs: number,
): void {
  expect(exactWaitMs).toBeGreaterThanOrEqual(1);
  expect(retryAfterMs).toBeGreaterThanOrEqual(exactWaitMs);
  expect(retryAfterMs).toBeLessThanOrEqual(exactWaitMs + 1);
  expect(tryConsume(state, limit, 'a', cost, nowMs + retryAfterMs).allowed).toBe(true);
  expect(tryConsume(state, limit, 'a', cost, nowMs + exactWaitMs).allowed).toBe(true);
  expect(tryConsume(state, limit, 'a', cost, nowMs + exactWaitMs - 1).allowed).toBe(false);
}

describe('a single replica is the textbook token bucket', () => {
  it('makes the same decisions and shows the same tokens as the exact sequential model', () => {
    fc.assert(
      fc.property(
        limitParamsArb,
        startMsArb,
        fc.array(stepArb, { maxLength: 80, size: 'max' }),
        (params, startMs, steps) => {
          const limit = limitOf(params);
          const reference = new ReferenceBucket(params, startMs);
          let state = createBucket(limit, startMs);
          let nowMs = startMs;
          for (const step of steps) {
            if (step.kind === 'advance') {
              nowMs += step.ms;
            } else if (step.kind === 'refund') {
              const amount = tokensFor(limit, step.share);
              const result = refund(state, limit, 'a', amount, nowMs);
              expectClose(result.refunded, reference.refund(amount, nowMs));
              state = result.state;
            } else {
              const cost = tokensFor(limit, step.share);
              const result = tryConsume(state, limit, 'a', cost, nowMs);
              const admitted = reference.consume(cost, nowMs);
              expect(result.allowed).toBe(admitted);
              if (result.allowed) {
                expectClose(result.remaining, reference.available(nowMs));
                state = result.state;
              } else {
                expectClose(result.available, reference.available(nowMs));
                if (cost > limit.capacityTokens) {
                  expect(result.retryAfterMs).toBe(Number.POSITIVE_INFINITY);
                } else {
                  const exact = reference.exactWaitMs(cost, nowMs);
                  checkRetryAfter(state, limit, cost, nowMs, result.retryAfterMs, exact);
                }
              }
            }
            expectClose(availableTokens(state, limit, nowMs), reference.available(nowMs));
          }
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('token bucket examples (10 tokens, 1 per second)', () => {
  const limit = limitOf({ capacity: 10, refillPerSecond: 1 });

  function drained(): BucketState {
    const result = tryConsume(createBucket(limit, 0), limit, 'a', 10, 0);
    if (!result.allowed) throw new Error('a full bucket of 10 must admit 10');
    return result.state;
  }

  it('a denied check says exactly when the same cost will fit', () => {
    const denied = tryConsume(drained(), limit, 'a', 3, 0);
    expect(denied).toEqual({ allowed: false, available: 0, retryAfterMs: 3000 });
    expect(tryConsume(drained(), limit, 'a', 3, 2999).allowed).toBe(false);
    expect(tryConsume(drained(), limit, 'a', 3, 3000).allowed).toBe(true);
  });

  it('a cost above capacity never fits, so its retry is Infinity even on a full bucket', () => {
    const denied = tryConsume(createBucket(limit, 0), limit, 'a', 11, 0);
    expect(denied).toEqual({
      allowed: false,
      available: 10,
      retryAfterMs: Number.POSITIVE_INFINITY,
    });
  });

  it('refill that piles up while the bucket is full is lost, not banked', () => {
    // Full since t=0; an hour later a burst still gets only the capacity.
    const hour = 3_600_000;
    const first = tryConsume(createBucket(limit, 0), limit, 'a', 10, hour);
    if (!first.allowed) throw new Error('a full bucket of 10 must admit 10');
    expect(first.remaining).toBe(0);
    expect(tryConsume(first.state, limit, 'a', 1, hour).allowed).toBe(false);
    expect(availableTokens(first.state, limit, hour + 500)).toBeCloseTo(0.5, 9);
  });

  it('a refund on a full bucket is dropped and one on a partly empty bucket fills it to the top', () => {
    expect(refund(createBucket(limit, 0), limit, 'a', 5, 0).refunded).toBe(0);
    const spent = tryConsume(createBucket(limit, 0), limit, 'a', 4, 0);
    if (!spent.allowed) throw new Error('a full bucket of 10 must admit 4');
    const back = refund(spent.state, limit, 'a', 7, 0);
    expect(back.refunded).toBe(4);
    expect(availableTokens(back.state, limit, 0)).toBe(10);
  });

  it('a clock behind the bucket’s epoch sees neither refill nor drain', () => {
    // A replica whose clock lags the peer that created the bucket reads it as of the epoch.
    const created = createBucket(limit, 10_000);
    expect(availableTokens(created, limit, 4000)).toBe(10);
    const spent = tryConsume(created, limit, 'a', 4, 10_000);
    if (!spent.allowed) throw new Error('a full bucket of 10 must admit 4');
    expect(availableTokens(spent.state, limit, 4000)).toBe(6);
    expect(tryConsume(spent.state, limit, 'a', 6, 9000).allowed).toBe(true);
    expect(tryConsume(spent.state, limit, 'a', 7, 9000).allowed).toBe(false);
  });
});
