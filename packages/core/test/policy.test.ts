import {
  availableTokens,
  type BucketState,
  createBucket,
  defineLimit,
  definePolicy,
  EdgeError,
  InvalidPolicyError,
  type LimitSpec,
  limitFingerprint,
  MAX_LIMITS_PER_AGENT,
  MAX_TOKENS,
  PERIOD_MS,
  type RefillPeriod,
  rebase,
  tryConsume,
} from '@openclaw-edge/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { familyArb, limitOf, limitParamsArb, stepMsArb } from './arbitraries.js';

const valid: LimitSpec = { name: 'requests_per_minute', capacity: 60, refill: 60, per: 'minute' };

/** Runs `fn`, expecting an InvalidPolicyError about `field`; returns it. */
function expectInvalidPolicy(fn: () => unknown, field: string): InvalidPolicyError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(InvalidPolicyError);
  expect(caught).toBeInstanceOf(EdgeError);
  const error = caught as InvalidPolicyError;
  expect(error.code).toBe('INVALID_POLICY');
  expect(error.field).toBe(field);
  expect(error.message.startsWith(`${field}: `)).toBe(true);
  return error;
}

/** A spec with one field replaced by an arbitrary (possibly ill-typed) value. */
function withField(field: keyof LimitSpec, value: unknown): LimitSpec {
  return { ...valid, [field]: value } as LimitSpec;
}

describe('defineLimit', () => {
  it('normalises a refill amount per period to tokens per millisecond', () => {
    expect(defineLimit(valid)).toEqual({
      name: 'requests_per_minute',
      resource: 'requests',
      capacityTokens: 60,
      refillPerMs: 0.001,
      mode: 'shared',
      fingerprint: limitFingerprint(60, 0.001, 'requests'),
    });
    const perPeriod: [RefillPeriod, number][] = [
      ['second', 1],
      ['minute', 60],
      ['hour', 3600],
      ['day', 86_400],
    ];
    for (const [per, refill] of perPeriod) {
      expect(defineLimit({ ...valid, refill, per }).refillPerMs).toBe(0.001);
    }
  });

  it('keeps an explicit resource and mode', () => {
    const limit = defineLimit({ ...valid, resource: 'tokens', mode: 'optimistic' });
    expect(limit.resource).toBe('tokens');
    expect(limit.mode).toBe('optimistic');
  });

  it('accepts any finite positive capacity and refill up to MAX_TOKENS, unchanged', () => {
    const amount = fc.double({ min: Number.MIN_VALUE, max: MAX_TOKENS, noNaN: true });
    fc.assert(
      fc.property(
        amount,
        amount,
        fc.constantFrom<RefillPeriod>('second', 'minute', 'hour', 'day'),
        (capacity, refill, per) => {
          const limit = defineLimit({ name: 'l', capacity, refill, per });
          expect(limit.capacityTokens).toBe(capacity);
          expect(limit.refillPerMs).toBe(refill / PERIOD_MS[per]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('accepts names and resources of 1-64 letters, digits and _ . : -', () => {
    for (const name of ['a', 'x'.repeat(64), 'tokens_per_day', 'a.b:c-D9']) {
      expect(defineLimit({ ...valid, name, resource: name }).name).toBe(name);
    }
  });

  it.each([
    ['zero', 0],
    ['negative', -1],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['above MAX_TOKENS', MAX_TOKENS * 1.000001],
    ['a string', '10'],
    ['missing', undefined],
  ])('rejects a %s capacity or refill', (_label, value) => {
    expectInvalidPolicy(() => defineLimit(withField('capacity', value)), 'limit.capacity');
    expectInvalidPolicy(() => defineLimit(withField('refill', value)), 'limit.refill');
  });

  it('rejects exactly the amounts that are not finite, positive and at most MAX_TOKENS', () => {
    fc.assert(
      fc.property(fc.double(), (value) => {
        const ok = Number.isFinite(value) && value > 0 && value <= MAX_TOKENS;
        if (ok) expect(defineLimit(withField('capacity', value)).capacityTokens).toBe(value);
        else expectInvalidPolicy(() => defineLimit(withField('capacity', value)), 'limit.capacity');
      }),
      { numRuns: 300 },
    );
  });

  it.each([['week'], ['Minute'], ['toString'], [''], [undefined], [60_000]])(
    'rejects the refill period %s',
    (per) => {
      expectInvalidPolicy(() => defineLimit(withField('per', per)), 'limit.per');
    },
  );

  it.each([[''], ['has space'], ['x'.repeat(65)], ['émoji'], ['a/b'], [42], [undefined]])(
    'rejects the name %s',
    (name) => {
      expectInvalidPolicy(() => defineLimit(withField('name', name)), 'limit.name');
    },
  );

  it('rejects a bad resource and a bad mode', () => {
    expectInvalidPolicy(() => defineLimit(withField('resource', 'cost micros')), 'limit.resource');
    expectInvalidPolicy(() => defineLimit(withField('resource', '')), 'limit.resource');
    expectInvalidPolicy(() => defineLimit(withField('mode', 'strict')), 'limit.mode');
    expectInvalidPolicy(() => defineLimit(withField('mode', 42)), 'limit.mode');
  });

  it('rejects a spec that is not an object', () => {
    expectInvalidPolicy(() => defineLimit(null as unknown as LimitSpec), 'limit');
    expectInvalidPolicy(() => defineLimit('rpm' as unknown as LimitSpec), 'limit');
  });
});

describe('limit fingerprints', () => {
  it('are equal for equal capacity, rate and resource, whatever the name, mode or period', () => {
    const base = defineLimit(valid);
    expect(defineLimit({ ...valid, name: 'other', mode: 'optimistic' }).fingerprint).toBe(
      base.fingerprint,
    );
    // 60 per minute is the same rate as 1 per second and 3600 per hour.
    expect(defineLimit({ ...valid, refill: 1, per: 'second' }).fingerprint).toBe(base.fingerprint);
    expect(defineLimit({ ...valid, refill: 3600, per: 'hour' }).fingerprint).toBe(base.fingerprint);
    expect(base.fingerprint).toBe(limitFingerprint(60, 0.001, 'requests'));
  });

  it('differ when capacity, rate or resource changes', () => {
    const base = defineLimit(valid).fingerprint;
    expect(defineLimit({ ...valid, capacity: 61 }).fingerprint).not.toBe(base);
    expect(defineLimit({ ...valid, refill: 61 }).fingerprint).not.toBe(base);
    expect(defineLimit({ ...valid, resource: 'tokens' }).fingerprint).not.toBe(base);
  });

  it('are 32-bit unsigned integers, so the codec can carry them', () => {
    fc.assert(
      fc.property(limitParamsArb, fc.constantFrom('requests', 'tokens'), (params, resource) => {
        const { fingerprint } = limitOf(params, 'l', resource);
        expect(Number.isInteger(fingerprint)).toBe(true);
        expect(fingerprint).toBeGreaterThanOrEqual(0);
        expect(fingerprint).toBeLessThanOrEqual(0xffffffff);
      }),
      { numRuns: 200 },
    );
  });
});

describe('definePolicy', () => {
  const second: LimitSpec = {
    name: 'tokens_per_day',
    resource: 'tokens',
    capacity: 1e6,
    refill: 1e6,
    per: 'day',
  };

  it('validates and normalises every limit, in order', () => {
    expect(definePolicy([valid, second]).limits).toEqual([defineLimit(valid), defineLimit(second)]);
  });

  it('names the offending limit by its index', () => {
    expectInvalidPolicy(
      () => definePolicy([valid, { ...second, capacity: 0 }]),
      'limits[1].capacity',
    );
    expectInvalidPolicy(
      () => definePolicy([valid, { ...second, per: 'week' as RefillPeriod }]),
      'limits[1].per',
    );
    expectInvalidPolicy(() => definePolicy([{ ...valid, name: '' }]), 'limits[0].name');
    expectInvalidPolicy(
      () => definePolicy([{ ...valid, capacity: -1 }], 'agents.a1.limits'),
      'agents.a1.limits[0].capacity',
    );
  });

  it('rejects duplicate names, naming the later one', () => {
    expectInvalidPolicy(
      () => definePolicy([valid, second, { ...second, resource: 'requests' }]),
      'limits[2].name',
    );
  });

  it('rejects an empty list, a list over MAX_LIMITS_PER_AGENT, and a non-list', () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => ({ ...valid, name: `l${i}` }));
    expect(definePolicy(many(MAX_LIMITS_PER_AGENT)).limits).toHaveLength(MAX_LIMITS_PER_AGENT);
    expectInvalidPolicy(() => definePolicy([]), 'limits');
    expectInvalidPolicy(() => definePolicy(many(MAX_LIMITS_PER_AGENT + 1)), 'limits');
    expectInvalidPolicy(() => definePolicy(valid as unknown as LimitSpec[]), 'limits');
  });
});

describe('rebase carries the tokens an agent was missing into the new limit', () => {
  const ten = limitOf({ capacity: 10, refillPerSecond: 1 });
  const hundred = limitOf({ capacity: 100, refillPerSecond: 1 });
  const five = limitOf({ capacity: 5, refillPerSecond: 1 });

  function spent(tokens: number, atMs = 0): BucketState {
    const result = tryConsume(createBucket(ten, 0), ten, 'a', tokens, atMs);
    if (!result.allowed) throw new Error(`setup: a full bucket of 10 must admit ${tokens}`);
    return result.state;
  }

  it('a half-empty bucket moved to a bigger capacity still misses the same tokens', () => {
    const next = rebase(spent(5), ten, hundred, 0);
    expect(next.revision).toBe(1);
    expect(next.params).toBe(hundred.fingerprint);
    expect(next.epochMs).toBe(0);
    expect(next.slots.size).toBe(0);
    expect(availableTokens(next, hundred, 0)).toBe(95);
    // 10 → 100 with 6 spent leaves 94 (docs/crdt.md).
    expect(availableTokens(rebase(spent(6), ten, hundred, 0), hundred, 0)).toBe(94);
  });

  it('a bucket moved to a smaller capacity also keeps missing what it missed', () => {
    // docs/crdt.md: 10 → 5 with 2 spent leaves 3 (not a full 5, although 8 > 5 were available).
    expect(availableTokens(rebase(spent(2), ten, five, 0), five, 0)).toBe(3);
  });

  it('a full bucket is full under the new limit, whatever its capacity', () => {
    for (const capacity of [1, 5, 10, 1000]) {
      const limit = limitOf({ capacity, refillPerSecond: 1 });
      const next = rebase(createBucket(ten, 0), ten, limit, 50_000);
      expect(availableTokens(next, limit, 50_000)).toBe(capacity);
    }
  });

  it('refill before the change counts: only tokens still missing at the change are carried', () => {
    // 5 spent at t=0, 1 token/s: at t=2s 3 are missing.
    const twenty = limitOf({ capacity: 20, refillPerSecond: 1 });
    const next = rebase(spent(5), ten, twenty, 2000);
    expect(next.epochMs).toBe(2000);
    expect(availableTokens(next, twenty, 2000)).toBeCloseTo(17, 9);
  });

  it('replicas that rebase the same state onto the same limit at the same moment agree', () => {
    const a = rebase(spent(4), ten, hundred, 1500);
    const b = rebase(spent(4), ten, hundred, 1500);
    expect(a).toEqual(b);
  });

  it('for any reachable state and new limit: one revision up, new capacity − missing, new rate', () => {
    fc.assert(
      fc.property(
        familyArb({ size: 2 }),
        limitParamsArb,
        stepMsArb,
        stepMsArb,
        ({ limit, nowMs, states }, newParams, later, after) => {
          const state = states[0] as BucketState;
          const at = nowMs + later;
          const missing = Math.max(0, limit.capacityTokens - availableTokens(state, limit, at));
          const newLimit = limitOf(newParams);
          const next = rebase(state, limit, newLimit, at);
          expect(next.revision).toBe(state.revision + 1);
          expect(next.params).toBe(newLimit.fingerprint);
          expect(next.epochMs).toBe(at);
          const newCapacity = newLimit.capacityTokens;
          expect(availableTokens(next, newLimit, at)).toBeCloseTo(newCapacity - missing, 6);
          expect(availableTokens(next, newLimit, at + after)).toBeCloseTo(
            Math.min(newCapacity, newCapacity - missing + newLimit.refillPerMs * after),
            6,
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
