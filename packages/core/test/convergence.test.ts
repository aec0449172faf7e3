import {
  availableTokens,
  type BucketState,
  bucketToJson,
  createBucket,
  isCoveredBy,
  type Limit,
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
  type LimitParams,
  limitAndStateArb,
  limitOf,
  limitParamsArb,
  shareArb,
  slotIdArb,
  startMsArb,
  stepMsArb,
  tokensFor,
} from './arbitraries.js';

/** One step of a fleet history. Replica indices wrap around the fleet size. */
type FleetOp =
  | { readonly kind: 'consume'; readonly replica: number; readonly share: number }
  | { readonly kind: 'refund'; readonly replica: number; readonly share: number }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'deliver'; readonly from: number; readonly to: number }
  | { readonly kind: 'evict'; readonly replica: number };

const replicaArb = fc.integer({ min: 0, max: 4 });

function fleetOpArb(options: { refunds: boolean; evictions: boolean }): fc.Arbitrary<FleetOp> {
  const ops: fc.WeightedArbitrary<FleetOp>[] = [
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('consume' as const),
        replica: replicaArb,
        share: shareArb(1200),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('advance' as const),
        ms: fc.oneof(fc.integer({ min: 0, max: 200 }), stepMsArb),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('deliver' as const),
        from: replicaArb,
        to: replicaArb,
      }),
    },
  ];
  if (options.refunds) {
    ops.push({
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('refund' as const),
        replica: replicaArb,
        share: shareArb(1000),
      }),
    });
  }
  if (options.evictions) {
    ops.push({
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('evict' as const), replica: replicaArb }),
    });
  }
  return fc.oneof(...ops);
}

const fleetArb = (options: { refunds: boolean; evictions: boolean }) =>
  fc.record({
    size: fc.integer({ min: 2, max: 5 }),
    params: limitParamsArb,
    startMs: startMsArb,
    // Each replica creates the bucket when it first sees the agent, up to 5 s apart.
    createdAfterMs: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5000 })), {
      minLength: 5,
      maxLength: 5,
    }),
    ops: fc.array(fleetOpArb(options), { maxLength: 60, size: 'max' }),
  });

/** How a replica's full state travels to another one. */
type Deliver = (
  states: BucketState[],
  from: number,
  to: number,
  limit: Limit,
  nowMs: number,
) => void;

/** Plain join: the receiver merges the sender's state as it is. */
const plainDeliver: Deliver = (states, from, to) => {
  states[to] = mergeBuckets(states[to] as BucketState, states[from] as BucketState);
};

/**
 * The engine's protocol (docs/crdt.md): the sender normalises its state before exporting it and
 * the receiver normalises its own before joining.
 */
const normalisedDeliver: Deliver = (states, from, to, limit, nowMs) => {
  const sent = normalise(states[from] as BucketState, limit, nowMs);
  states[from] = sent;
  states[to] = mergeBuckets(normalise(states[to] as BucketState, limit, nowMs), sent);
};

interface Fleet {
  readonly limit: Limit;
  readonly nowMs: number;
  readonly states: BucketState[];
}

/** Replays a fleet history; each replica writes only its own slot. */
function runFleet(
  size: number,
  params: LimitParams,
  startMs: number,
  createdAfterMs: readonly number[],
  ops: readonly FleetOp[],
  deliver: Deliver,
): Fleet {
  const limit = limitOf(params);
  const states = Array.from({ length: size }, (_, i) =>
    createBucket(limit, startMs + (createdAfterMs[i] ?? 0)),
  );
  let nowMs = startMs;
  for (const op of ops) {
    if (op.kind === 'advance') {
      nowMs += op.ms;
    } else if (op.kind === 'deliver') {
      deliver(states, op.from % size, op.to % size, limit, nowMs);
    } else if (op.kind === 'consume') {
      const i = op.replica % size;
      const result = tryConsume(
        states[i] as BucketState,
        limit,
        `r${i}`,
        tokensFor(limit, op.share),
        nowMs,
      );
      if (result.allowed) states[i] = result.state;
    } else if (op.kind === 'refund') {
      const i = op.replica % size;
      states[i] = refund(
        states[i] as BucketState,
        limit,
        `r${i}`,
        tokensFor(limit, op.share),
        nowMs,
      ).state;
    }
  }
  return { limit, nowMs, states };
}

/** A random order of every (from, to) pair of distinct replicas, from a list of sort keys. */
function deliveryOrder(size: number, keys: readonly number[]): [number, number][] {
  const pairs: [number, number, number][] = [];
  for (let from = 0; from < size; from++) {
    for (let to = 0; to < size; to++) {
      if (from !== to) pairs.push([from, to, keys[pairs.length] ?? 0]);
    }
  }
  return pairs.sort((a, b) => a[2] - b[2]).map(([from, to]) => [from, to]);
}

const orderKeysArb = fc.array(fc.nat(), { minLength: 20, maxLength: 20 });

/**
 * Equal states can disagree in the last bits of `availableTokens`: `usedTokens` sums the slots
 * in Map insertion order, which depends on the order merges arrived in, and float addition is not
 * associative. The focused test below pins that down exactly; the properties compare within a
 * bound far below the 1e-9 admission slack so they keep checking convergence meanwhile.
 */
const SUM_ORDER_SLACK = 1e-9;

function expectSameTokens(actual: number, expected: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(SUM_ORDER_SLACK);
}

describe('replicas converge', () => {
  it('replicas that received every state agree, whatever the order of delivery', () => {
    fc.assert(
      fc.property(
        fleetArb({ refunds: true, evictions: false }),
        orderKeysArb,
        orderKeysArb,
        fc.integer({ min: 0, max: 10_000 }),
        ({ size, params, startMs, createdAfterMs, ops }, keysA, keysB, laterMs) => {
          const fleet = runFleet(size, params, startMs, createdAfterMs, ops, plainDeliver);
          const join = fleet.states.reduce(mergeBuckets);
          const copies = [keysA, keysB].map((keys) => {
            const states = [...fleet.states];
            for (const [from, to] of deliveryOrder(size, keys)) {
              plainDeliver(states, from, to, fleet.limit, fleet.nowMs);
            }
            return states;
          });
          const all = copies.flat();
          const at = fleet.nowMs + laterMs;
          const expected = availableTokens(join, fleet.limit, at);
          for (const state of all) {
            expect(sameBucket(state, join)).toBe(true);
            expectSameTokens(availableTokens(state, fleet.limit, at), expected);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('replicas that normalise before every export and join still agree once quiet', () => {
    fc.assert(
      fc.property(
        fleetArb({ refunds: true, evictions: false }),
        orderKeysArb,
        ({ size, params, startMs, createdAfterMs, ops }, keys) => {
          const fleet = runFleet(size, params, startMs, createdAfterMs, ops, normalisedDeliver);
          const states = [...fleet.states];
          // Normalising is itself an update, so exchange until a full round changes nothing.
          let rounds = 0;
          let changed = true;
          while (changed) {
            expect(++rounds).toBeLessThanOrEqual(5);
            const before = [...states];
            for (const [from, to] of deliveryOrder(size, keys)) {
              normalisedDeliver(states, from, to, fleet.limit, fleet.nowMs);
            }
            changed = states.some((state, i) => !sameBucket(state, before[i] as BucketState));
          }
          const first = states[0] as BucketState;
          for (const state of states) {
            expect(sameBucket(state, first)).toBe(true);
            expectSameTokens(
              availableTokens(state, fleet.limit, fleet.nowMs),
              availableTokens(first, fleet.limit, fleet.nowMs),
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('replicas holding the same state compute bit-identical available tokens', () => {
    // Reachable history (C = 14, 1 token/s): three replicas, each charging and refunding on its
    // own slot. Joining their states in two orders gives the same state but, before the fix,
    // availableTokens -3.0329999999999995 for one order and -3.033000000000003 for the other
    // (usedTokens 17.05 vs 17.050000000000004: slots summed in arrival order).
    const limit = limitOf({ capacity: 14, refillPerSecond: 1 });
    const t0 = 1_600_000_000_000;
    const fresh = createBucket(limit, t0);
    const charge = (state: BucketState, slot: string, cost: number, atMs: number) => {
      const result = tryConsume(state, limit, slot, cost, atMs);
      if (!result.allowed) throw new Error(`setup: ${slot} must be admitted ${cost}`);
      return result.state;
    };
    const r1 = refund(charge(fresh, 'r1', 14, t0), limit, 'r1', 14, t0 + 1033).state;
    let r0 = charge(fresh, 'r0', 1, t0 + 1033);
    r0 = charge(refund(r0, limit, 'r0', 1, t0 + 1050).state, 'r0', 14, t0 + 1050);
    const r2 = charge(fresh, 'r2', 2, t0 + 1033);

    const one = mergeBuckets(mergeBuckets(r0, r1), r2);
    const other = mergeBuckets(mergeBuckets(r0, r2), r1);
    expect(sameBucket(one, other)).toBe(true);
    expect(availableTokens(other, limit, t0 + 1050)).toBe(availableTokens(one, limit, t0 + 1050));
  });
});

/** Exact, uncapped-below token bucket in integer milli-tokens, fed charges in time order. */
function exactTokens(
  params: LimitParams,
  startMs: number,
  charges: readonly { readonly atMs: number; readonly cost: number }[],
  nowMs: number,
): number {
  const cap = params.capacity * 1000;
  let milli = cap;
  let last = startMs;
  for (const { atMs, cost } of charges) {
    milli = Math.min(cap, milli + params.refillPerSecond * (atMs - last)) - cost * 1000;
    last = atMs;
  }
  return Math.min(cap, milli + params.refillPerSecond * (nowMs - last)) / 1000;
}

describe('merging never invents tokens (no refunds)', () => {
  it('no replica ever sees more tokens than an exact bucket fed with the charges it knows', () => {
    fc.assert(
      fc.property(
        fleetArb({ refunds: false, evictions: true }),
        ({ size, params, startMs, createdAfterMs, ops }) => {
          const limit = limitOf(params);
          // Every admitted charge, per slot, in order; `seq` orders charges made at the same ms.
          const charges = new Map<string, { atMs: number; cost: number; seq: number }[]>();
          const incarnation = Array.from({ length: size }, () => 0);
          const slotOf = (i: number) => `r${i}~${incarnation[i]}`;
          const states = Array.from({ length: size }, (_, i) =>
            createBucket(limit, startMs + (createdAfterMs[i] ?? 0)),
          );
          let nowMs = startMs;
          let seq = 0;

          /** The charges `state` knows of: per slot, the prefix its consumed count adds up to. */
          const known = (state: BucketState) => {
            const out: { atMs: number; cost: number; seq: number }[] = [];
            for (const [id, counters] of state.slots) {
              let sum = 0;
              for (const charge of charges.get(id) ?? []) {
                if (sum === counters.consumed) break;
                sum += charge.cost;
                out.push(charge);
              }
              // A G-counter only ever holds a prefix of its slot's own charges.
              expect(sum).toBe(counters.consumed);
            }
            return out.sort((a, b) => a.seq - b.seq);
          };

          for (const op of ops) {
            if (op.kind === 'advance') nowMs += op.ms;
            else if (op.kind === 'deliver') {
              normalisedDeliver(states, op.from % size, op.to % size, limit, nowMs);
            } else if (op.kind === 'consume') {
              const i = op.replica % size;
              const cost = tokensFor(limit, op.share);
              const result = tryConsume(states[i] as BucketState, limit, slotOf(i), cost, nowMs);
              if (result.allowed) {
                states[i] = result.state;
                const list = charges.get(slotOf(i)) ?? [];
                list.push({ atMs: nowMs, cost, seq: seq++ });
                charges.set(slotOf(i), list);
              }
            } else if (op.kind === 'evict') {
              // The engine evicts a bucket only when it is full and its state has been sent.
              const i = op.replica % size;
              const state = states[i] as BucketState;
              const full = availableTokens(state, limit, nowMs) >= limit.capacityTokens;
              const sent = states.some((other, j) => j !== i && isCoveredBy(state, other));
              if (full && sent) {
                incarnation[i] = (incarnation[i] ?? 0) + 1;
                states[i] = createBucket(limit, nowMs);
              }
            }
            for (const state of states) {
              const exact = exactTokens(params, startMs, known(state), nowMs);
              expect(availableTokens(state, limit, nowMs)).toBeLessThanOrEqual(exact + 1e-6);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('operations never mutate the state they are given', () => {
  it('a denied check returns allowed:false and no state, and the caller keeps the old state intact', () => {
    fc.assert(
      fc.property(
        limitAndStateArb,
        slotIdArb,
        fc.integer({ min: 1, max: 3000 }),
        ({ limit, nowMs, state }, slot, cost) => {
          const before = JSON.stringify(bucketToJson(state));
          const result = tryConsume(state, limit, slot, cost, nowMs);
          if (result.allowed) return;
          expect(result).not.toHaveProperty('state');
          expect(result.available).toBe(availableTokens(state, limit, nowMs));
          expect(result.retryAfterMs).toBeGreaterThan(0);
          expect(JSON.stringify(bucketToJson(state))).toBe(before);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('admitted checks, refunds, merges, normalisations and rebases leave their inputs intact', () => {
    fc.assert(
      fc.property(
        limitAndStateArb,
        limitAndStateArb,
        slotIdArb,
        shareArb(1000),
        stepMsArb,
        ({ limit, nowMs, state }, other, slot, share, later) => {
          const at = nowMs + later;
          const amount = tokensFor(limit, share);
          const snapshot = () => [state, other.state].map((s) => JSON.stringify(bucketToJson(s)));
          const before = snapshot();
          tryConsume(state, limit, slot, amount, at);
          refund(state, limit, slot, amount, at);
          mergeBuckets(state, other.state);
          mergeBuckets(other.state, state);
          normalise(state, limit, at + 3_600_000);
          rebase(state, limit, limit, at);
          expect(snapshot()).toEqual(before);
        },
      ),
      { numRuns: 300 },
    );
  });
});
