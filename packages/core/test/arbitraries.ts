/**
 * Shared fast-check arbitraries for the core property tests.
 *
 * Bucket states are never built field by field: they come from replaying random histories
 * (consumes, refunds, merges, normalisations, rebases, time advancing) through the public API,
 * so every state a property sees is one the library can actually reach.
 */
import {
  type BucketState,
  createBucket,
  defineLimit,
  type Limit,
  mergeBuckets,
  normalise,
  rebase,
  refund,
  tryConsume,
} from '@openclaw-edge/core';
import fc from 'fast-check';

/** The small pool of slot ids states write to, so that slots collide and merges overlap. */
export const SLOT_IDS = ['a', 'b', 'c', 'd', 'e'] as const;
export type SlotId = (typeof SLOT_IDS)[number];
export const slotIdArb: fc.Arbitrary<SlotId> = fc.constantFrom(...SLOT_IDS);

/** Capacity and refill (tokens per second) of a limit, both small positive integers. */
export interface LimitParams {
  readonly capacity: number;
  readonly refillPerSecond: number;
}

export const limitParamsArb: fc.Arbitrary<LimitParams> = fc.record({
  capacity: fc.integer({ min: 1, max: 1000 }),
  refillPerSecond: fc.integer({ min: 1, max: 1000 }),
});

/** The validated limit for `params`. */
export function limitOf(params: LimitParams, name = 'limit', resource = 'requests'): Limit {
  return defineLimit({
    name,
    resource,
    capacity: params.capacity,
    refill: params.refillPerSecond,
    per: 'second',
    mode: 'optimistic',
  });
}

export const limitArb: fc.Arbitrary<Limit> = limitParamsArb.map((params) => limitOf(params));

/** A start time: often 0, often a realistic wall-clock millisecond count. */
export const startMsArb: fc.Arbitrary<number> = fc.oneof(
  fc.constant(0),
  fc.integer({ min: 1_600_000_000_000, max: 2_000_000_000_000 }),
);

/** How far the clock moves in one step: any 0..5000 ms, with the edges 0, 1 and 1000 favoured. */
export const stepMsArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: 0, max: 5000 }),
  fc.constantFrom(0, 1, 1000),
);

/** A cost or refund as a share of capacity in permille, so one history fits every limit. */
export const shareArb = (maxPermille: number): fc.Arbitrary<number> =>
  fc.oneof(fc.integer({ min: 0, max: maxPermille }), fc.constantFrom(0, 1000));

/** Whole tokens for a share (permille of capacity). */
export function tokensFor(limit: Limit, permille: number): number {
  return Math.floor((permille * limit.capacityTokens) / 1000);
}

/** One step of a history over several replicas of one bucket. Replica indices wrap around. */
export type FamilyOp =
  | {
      readonly kind: 'consume';
      readonly replica: number;
      readonly slot: SlotId;
      readonly share: number;
    }
  | {
      readonly kind: 'refund';
      readonly replica: number;
      readonly slot: SlotId;
      readonly share: number;
    }
  | { readonly kind: 'advance'; readonly ms: number }
  | { readonly kind: 'merge'; readonly from: number; readonly to: number }
  | { readonly kind: 'normalise'; readonly replica: number }
  | { readonly kind: 'rebase'; readonly replica: number; readonly conflicting: boolean };

const replicaArb = fc.integer({ min: 0, max: 7 });

/** A clock step inside a history: mostly short (so buckets do not simply refill), sometimes long. */
const historyStepArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 100 }), weight: 3 },
  { arbitrary: stepMsArb, weight: 1 },
);

export function familyOpArb(withRebase: boolean): fc.Arbitrary<FamilyOp> {
  const ops: fc.WeightedArbitrary<FamilyOp>[] = [
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('consume' as const),
        replica: replicaArb,
        slot: slotIdArb,
        share: shareArb(1500),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('refund' as const),
        replica: replicaArb,
        slot: slotIdArb,
        share: shareArb(1000),
      }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: historyStepArb }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        kind: fc.constant('merge' as const),
        from: replicaArb,
        to: replicaArb,
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant('normalise' as const), replica: replicaArb }),
    },
  ];
  if (withRebase) {
    ops.push({
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('rebase' as const),
        replica: replicaArb,
        conflicting: fc.boolean(),
      }),
    });
  }
  return fc.oneof(...ops);
}

/** Replicas of one bucket after a history, and the time the history ended at. */
export interface Family {
  readonly limit: Limit;
  readonly nowMs: number;
  readonly states: readonly BucketState[];
}

export interface FamilyOptions {
  /** How many replicas (and so how many states) the family has. */
  readonly size: number;
  readonly maxOps?: number;
  /** Whether replicas may move to a higher policy revision (`rebase`) mid-history. */
  readonly withRebase?: boolean;
  /** What the family's limit counts (`requests` unless told). */
  readonly resource?: string;
}

/**
 * `size` replicas of one bucket, each created at its own moment (up to 5 s apart, as replicas
 * that first see an agent at different times do), after a random shared history.
 */
export function familyArb(options: FamilyOptions): fc.Arbitrary<Family> {
  const { size, maxOps = 30, withRebase = true, resource = 'requests' } = options;
  return fc
    .record({
      params: limitParamsArb,
      startMs: startMsArb,
      createdAfterMs: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5000 })), {
        minLength: size,
        maxLength: size,
      }),
      ops: fc.array(familyOpArb(withRebase), { maxLength: maxOps, size: 'max' }),
    })
    .map(({ params, startMs, createdAfterMs, ops }) =>
      runFamily(limitOf(params, 'limit', resource), startMs, createdAfterMs, ops),
    );
}

/** Replays `ops` over replicas created at `startMs + createdAfterMs[i]`. */
export function runFamily(
  limit: Limit,
  startMs: number,
  createdAfterMs: readonly number[],
  ops: readonly FamilyOp[],
): Family {
  const n = createdAfterMs.length;
  const states = createdAfterMs.map((after) => createBucket(limit, startMs + after));
  // A limit with other parameters, for replicas whose config disagrees.
  const conflicting = defineLimit({
    name: limit.name,
    resource: limit.resource,
    capacity: limit.capacityTokens + 1,
    refill: limit.refillPerMs * 1000,
    per: 'second',
  });
  let nowMs = startMs;
  for (const op of ops) {
    switch (op.kind) {
      case 'consume': {
        const i = op.replica % n;
        const result = tryConsume(
          states[i] as BucketState,
          limit,
          op.slot,
          tokensFor(limit, op.share),
          nowMs,
        );
        if (result.allowed) states[i] = result.state;
        break;
      }
      case 'refund': {
        const i = op.replica % n;
        states[i] = refund(
          states[i] as BucketState,
          limit,
          op.slot,
          tokensFor(limit, op.share),
          nowMs,
        ).state;
        break;
      }
      case 'advance':
        nowMs += op.ms;
        break;
      case 'merge': {
        const to = op.to % n;
        states[to] = mergeBuckets(states[to] as BucketState, states[op.from % n] as BucketState);
        break;
      }
      case 'normalise': {
        const i = op.replica % n;
        states[i] = normalise(states[i] as BucketState, limit, nowMs);
        break;
      }
      case 'rebase': {
        // Replicas rebase on their own, at different times (they learn of a change at different
        // moments), sometimes onto conflicting parameters: same revision, other fingerprint.
        // The replica keeps applying `limit` afterwards; merge laws do not depend on it.
        const i = op.replica % n;
        states[i] = rebase(
          states[i] as BucketState,
          limit,
          op.conflicting ? conflicting : limit,
          nowMs,
        );
        break;
      }
    }
  }
  return { limit, nowMs, states };
}

/** A limit, one reachable state of it, and the time its history ended at. */
export const limitAndStateArb: fc.Arbitrary<{
  readonly limit: Limit;
  readonly nowMs: number;
  readonly state: BucketState;
}> = familyArb({ size: 2 }).map(({ limit, nowMs, states }) => ({
  limit,
  nowMs,
  state: states[0] as BucketState,
}));
