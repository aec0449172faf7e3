import {
  availableTokens,
  type BucketState,
  bucketToJson,
  type Cost,
  createBucket,
  EdgeError,
  InvalidCostError,
  type Limit,
  MAX_COST,
  tryConsume,
  tryConsumeAll,
  validateCost,
} from '@openclaw-edge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { familyArb, limitOf, slotIdArb, stepMsArb } from './arbitraries.js';

const RESOURCES = ['requests', 'tokens', 'cost_micros'] as const;

/** Up to four limits, each with its own resource and a reachable state, checked at one time. */
const limitsAndStatesArb = fc
  .array(
    fc
      .constantFrom(...RESOURCES)
      .chain((resource) => familyArb({ size: 2, withRebase: false, resource })),
    { minLength: 1, maxLength: 4 },
  )
  .map((families) => {
    const limits: Limit[] = families.map(({ limit }, i) => ({ ...limit, name: `limit${i}` }));
    const states = families.map(({ states }) => states[0] as BucketState);
    const nowMs = Math.max(...families.map(({ nowMs }) => nowMs));
    return { limits, states, nowMs };
  });

/** A plain number, or a record that names some of the resources (maybe none). */
const costArb: fc.Arbitrary<Cost> = fc.oneof(
  fc.integer({ min: 0, max: 1200 }),
  fc.dictionary(fc.constantFrom(...RESOURCES), fc.integer({ min: 0, max: 1200 }), {
    maxKeys: 3,
  }),
);

/** What `limit` should be charged for `cost`, worked out independently of `costFor`. */
function expectedCharge(limit: Limit, cost: Cost): number {
  if (typeof cost === 'number') return cost;
  return cost[limit.resource] ?? 0;
}

describe('several limits are checked as one', () => {
  it('charges every limit exactly as a single check would, or none of them', () => {
    fc.assert(
      fc.property(
        limitsAndStatesArb,
        costArb,
        slotIdArb,
        stepMsArb,
        ({ limits, states, nowMs }, cost, slot, later) => {
          const at = nowMs + later;
          const before = states.map((s) => JSON.stringify(bucketToJson(s)));
          const singles = limits.map((limit, i) =>
            tryConsume(states[i] as BucketState, limit, slot, expectedCharge(limit, cost), at),
          );
          const result = tryConsumeAll(states, limits, slot, cost, at);
          expect(result.allowed).toBe(singles.every((single) => single.allowed));
          if (result.allowed) {
            expect(result.states).toHaveLength(limits.length);
            result.states.forEach((state, i) => {
              const single = singles[i];
              if (!single?.allowed) throw new Error('unreachable: every single check passed');
              expect(bucketToJson(state)).toEqual(bucketToJson(single.state));
            });
          } else {
            expect(result).not.toHaveProperty('states');
            const waits = singles.map((single) => (single.allowed ? -1 : single.retryAfterMs));
            const longest = Math.max(...waits);
            expect(result.retryAfterMs).toBe(longest);
            expect(result.limitIndex).toBe(waits.indexOf(longest));
          }
          // Whatever the outcome, the states passed in are untouched.
          expect(states.map((s) => JSON.stringify(bucketToJson(s)))).toEqual(before);
        },
      ),
      { numRuns: 300 },
    );
  });

  describe('with requests per second, tokens per minute and a daily cost budget', () => {
    const rps = limitOf({ capacity: 5, refillPerSecond: 5 }, 'rps', 'requests');
    const tpm = limitOf({ capacity: 1000, refillPerSecond: 10 }, 'tpm', 'tokens');
    const budget = limitOf({ capacity: 300, refillPerSecond: 1 }, 'budget', 'cost_micros');
    const limits = [rps, tpm, budget];
    const fresh = limits.map((limit) => createBucket(limit, 0));

    it('a cost object charges each limit by its resource', () => {
      const result = tryConsumeAll(
        fresh,
        limits,
        'a',
        { requests: 1, tokens: 850, cost_micros: 7 },
        0,
      );
      if (!result.allowed) throw new Error('expected the check to pass');
      expect(result.states.map((s, i) => availableTokens(s, limits[i] as Limit, 0))).toEqual([
        4, 150, 293,
      ]);
    });

    it('a limit whose resource the cost object does not name is charged nothing', () => {
      const result = tryConsumeAll(fresh, limits, 'a', { tokens: 850 }, 0);
      if (!result.allowed) throw new Error('expected the check to pass');
      expect(result.states.map((s, i) => availableTokens(s, limits[i] as Limit, 0))).toEqual([
        5, 150, 300,
      ]);
    });

    it('a plain number charges every limit that amount', () => {
      const result = tryConsumeAll(fresh, limits, 'a', 3, 0);
      if (!result.allowed) throw new Error('expected the check to pass');
      expect(result.states.map((s, i) => availableTokens(s, limits[i] as Limit, 0))).toEqual([
        2, 997, 297,
      ]);
    });

    it('a cost above one limit’s capacity denies the whole check with an infinite wait', () => {
      const result = tryConsumeAll(fresh, limits, 'a', { tokens: 1001, cost_micros: 1 }, 0);
      expect(result).toEqual({
        allowed: false,
        limitIndex: 1,
        retryAfterMs: Number.POSITIVE_INFINITY,
      });
      // A later limit that is merely short does not hide the one that can never pass.
      const spent = tryConsumeAll(fresh, limits, 'a', { cost_micros: 300 }, 0);
      if (!spent.allowed) throw new Error('expected the first check to pass');
      const both = tryConsumeAll(spent.states, limits, 'a', { requests: 6, cost_micros: 1 }, 0);
      expect(both).toEqual({
        allowed: false,
        limitIndex: 0,
        retryAfterMs: Number.POSITIVE_INFINITY,
      });
    });

    it('among finite waits the longest one is reported, with the index of its limit', () => {
      const spent = tryConsumeAll(
        fresh,
        limits,
        'a',
        { requests: 5, tokens: 1000, cost_micros: 300 },
        0,
      );
      if (!spent.allowed) throw new Error('expected the first check to pass');
      const result = tryConsumeAll(
        spent.states,
        limits,
        'a',
        { requests: 1, tokens: 150, cost_micros: 100 },
        0,
      );
      // requests: 1 at 5/s = 200 ms; tokens: 150 at 10/s = 15 s; cost: 100 at 1/s = 100 s.
      expect(result).toEqual({ allowed: false, limitIndex: 2, retryAfterMs: 100_000 });
      const sooner = tryConsumeAll(spent.states, limits, 'a', { requests: 1, tokens: 150 }, 0);
      expect(sooner).toEqual({ allowed: false, limitIndex: 1, retryAfterMs: 15_000 });
    });
  });
});

function expectInvalidCost(cost: unknown, field: string): void {
  let caught: unknown;
  try {
    validateCost(cost as Cost);
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InvalidCostError);
  expect(caught).toBeInstanceOf(EdgeError);
  const error = caught as InvalidCostError;
  expect(error.code).toBe('INVALID_COST');
  expect(error.field).toBe(field);
  expect(error.message).toContain(field);
}

describe('validateCost', () => {
  it('accepts zero, whole and fractional amounts up to MAX_COST, and records of them', () => {
    const costs: Cost[] = [
      0,
      1,
      0.5,
      MAX_COST,
      {},
      { tokens: 850, requests: 1 },
      { tokens: MAX_COST },
    ];
    for (const cost of costs) {
      expect(() => validateCost(cost)).not.toThrow();
    }
  });

  it.each([
    ['negative', -1],
    ['a tiny negative', -1e-12],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
    ['a number above 1e15', MAX_COST + 1],
    ['a huge number', 1e300],
  ])('rejects %s naming the field', (_label, cost) => {
    expectInvalidCost(cost, 'cost');
    expectInvalidCost({ tokens: cost }, 'cost.tokens');
  });

  it.each([
    ['a string', '5'],
    ['an array', [1]],
    ['null', null],
    ['a boolean', true],
    ['undefined', undefined],
  ])('rejects %s as a cost', (_label, cost) => {
    expectInvalidCost(cost, 'cost');
  });

  it('rejects a non-number inside a record, naming the key', () => {
    expectInvalidCost({ requests: 1, tokens: '850' }, 'cost.tokens');
    expectInvalidCost({ requests: 1, tokens: [850] }, 'cost.tokens');
    expectInvalidCost({ cost_micros: null }, 'cost.cost_micros');
  });

  it('accepts exactly the finite numbers in [0, MAX_COST]', () => {
    fc.assert(
      fc.property(fc.double(), (value) => {
        const valid = Number.isFinite(value) && value >= 0 && value <= MAX_COST;
        if (valid) expect(() => validateCost(value)).not.toThrow();
        else expectInvalidCost(value, 'cost');
      }),
      { numRuns: 500 },
    );
  });

  it('names the caller’s field path when given one', () => {
    let caught: unknown;
    try {
      validateCost({ tokens: -3 }, 'body.cost');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidCostError);
    expect((caught as InvalidCostError).field).toBe('body.cost.tokens');
  });
});
