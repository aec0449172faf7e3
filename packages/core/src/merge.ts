import type { BucketState, SlotCounters } from './bucket.js';

/**
 * Join of two bucket states: the higher (revision, params) wins whole; within one revision and
 * parameter set the epoch is the min, the overflow the max, and every slot counter the max.
 * Commutative, associative and idempotent (property-tested), so replicas that saw the same
 * updates agree in any order. Two replicas that rebased onto different parameters at the same
 * revision (conflicting config) converge on the one with the larger fingerprint.
 */
export function mergeBuckets(a: BucketState, b: BucketState): BucketState {
  const order = compareVersions(a, b);
  if (order !== 0) return order > 0 ? a : b;
  const slots = new Map<string, SlotCounters>(a.slots);
  for (const [id, theirs] of b.slots) {
    const ours = slots.get(id);
    slots.set(
      id,
      ours === undefined
        ? theirs
        : {
            consumed: Math.max(ours.consumed, theirs.consumed),
            refunded: Math.max(ours.refunded, theirs.refunded),
          },
    );
  }
  return {
    revision: a.revision,
    params: a.params,
    epochMs: Math.min(a.epochMs, b.epochMs),
    overflow: Math.max(a.overflow, b.overflow),
    slots,
  };
}

/** The semilattice order: `a` ≤ `b` when merging `a` into `b` leaves `b` unchanged. */
export function isCoveredBy(a: BucketState, b: BucketState): boolean {
  const order = compareVersions(a, b);
  if (order !== 0) return order < 0;
  if (a.epochMs < b.epochMs || a.overflow > b.overflow) return false;
  for (const [id, mine] of a.slots) {
    const theirs = b.slots.get(id);
    if (theirs === undefined) {
      if (mine.consumed > 0 || mine.refunded > 0) return false;
    } else if (mine.consumed > theirs.consumed || mine.refunded > theirs.refunded) {
      return false;
    }
  }
  return true;
}

/** Orders states by (revision, params): positive when `a` is the later version. */
export function compareVersions(a: BucketState, b: BucketState): number {
  return a.revision !== b.revision ? a.revision - b.revision : a.params - b.params;
}

/** Structural equality of two states (slot order ignored; all-zero slots count as absent). */
export function sameBucket(a: BucketState, b: BucketState): boolean {
  return isCoveredBy(a, b) && isCoveredBy(b, a);
}
