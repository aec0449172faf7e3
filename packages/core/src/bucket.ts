import type { Limit } from './policy.js';

/**
 * Tokens one slot has consumed and refunded, both grow-only. A slot is one replica's counter
 * for one incarnation of a bucket (see docs/crdt.md): a replica that forgets a bucket and later
 * recreates it writes to a fresh slot, so its new counts never hide behind its old ones in a
 * max-merge.
 */
export interface SlotCounters {
  readonly consumed: number;
  readonly refunded: number;
}

/**
 * Replicated state of one token bucket (DESIGN §3). Immutable: every operation returns a new
 * state. The limit's capacity and refill rate are not part of it; `params` is the fingerprint of
 * the limit the counters count under, `revision` how many parameter changes the bucket has been
 * through.
 *
 * available(t) = min(C, C + r·(t − epochMs) − Σconsumed + Σrefunded − overflow)
 */
export interface BucketState {
  /** Parameter changes this bucket went through; a higher revision replaces the whole state. */
  readonly revision: number;
  /** Fingerprint of the limit parameters the counters count under (`Limit.fingerprint`). */
  readonly params: number;
  /** When the bucket was full with nothing consumed; merged by min. */
  readonly epochMs: number;
  /** Tokens lost to the capacity cap (plus any carried debt); a max-register. */
  readonly overflow: number;
  /** Per-slot grow-only counters; merged slot by slot with max. */
  readonly slots: ReadonlyMap<string, SlotCounters>;
}

/** Outcome of a consume attempt; a denied attempt carries no new state because it charges nothing. */
export type ConsumeResult =
  | { readonly allowed: true; readonly state: BucketState; readonly remaining: number }
  | { readonly allowed: false; readonly available: number; readonly retryAfterMs: number };

/**
 * Slack for float rounding in admission: a cost within this many tokens of what is available is
 * admitted. Refill is a product of a rate and a time, so an exact boundary can land a few ulps
 * short; without slack a request for exactly the refilled amount could be refused.
 */
export const ADMISSION_EPSILON = 1e-9;

/**
 * A full bucket for `limit`, starting at `epochMs`, optionally owing `debt` tokens. Revision 0:
 * every replica and every restart that creates the same limit's bucket creates the same state.
 */
export function createBucket(limit: Limit, epochMs: number, debt = 0, revision = 0): BucketState {
  return { revision, params: limit.fingerprint, epochMs, overflow: debt, slots: new Map() };
}

/** Net tokens taken out of the bucket: Σconsumed − Σrefunded over every slot. */
export function usedTokens(state: BucketState): number {
  // Summed in slot-id order: float addition depends on order, and replicas that received the
  // same slots in different orders must compute bit-identical tokens.
  let used = 0;
  for (const id of [...state.slots.keys()].sort()) {
    const slot = state.slots.get(id) as SlotCounters;
    used += slot.consumed - slot.refunded;
  }
  return used;
}

/**
 * Tokens available before the capacity cap is applied, from the raw counters: above capacity
 * when refill has piled up since the last normalisation, negative when replicas together
 * admitted more than the bucket held. The engine calls this with its packed counters.
 */
export function uncappedTokens(
  limit: Limit,
  epochMs: number,
  used: number,
  overflow: number,
  nowMs: number,
): number {
  // A clock behind the epoch (skew between replicas) refills nothing rather than a negative amount.
  const elapsedMs = nowMs > epochMs ? nowMs - epochMs : 0;
  return limit.capacityTokens + limit.refillPerMs * elapsedMs - used - overflow;
}

/** Tokens available at `nowMs`, never above capacity; negative means debt. */
export function availableTokens(state: BucketState, limit: Limit, nowMs: number): number {
  const raw = uncappedTokens(limit, state.epochMs, usedTokens(state), state.overflow, nowMs);
  return Math.min(raw, limit.capacityTokens);
}

/**
 * Milliseconds until `cost` tokens are available given `available` now; 0 if they already are,
 * `Infinity` if they never will be (cost above capacity).
 */
export function msUntilAvailable(limit: Limit, available: number, cost: number): number {
  if (cost <= available + ADMISSION_EPSILON) return 0;
  if (cost > limit.capacityTokens + ADMISSION_EPSILON) return Number.POSITIVE_INFINITY;
  return Math.ceil((cost - available) / limit.refillPerMs);
}

/** Milliseconds until a bucket with `available` tokens is full again. */
export function msUntilFull(limit: Limit, available: number): number {
  return msUntilAvailable(limit, available, limit.capacityTokens);
}

/**
 * Takes `cost` tokens for `slot` if they are available. Before charging, the overflow register
 * absorbs refill above capacity, so tokens banked while the bucket sat full never become
 * spendable. A denied attempt returns no state: nothing is charged.
 */
export function tryConsume(
  state: BucketState,
  limit: Limit,
  slot: string,
  cost: number,
  nowMs: number,
): ConsumeResult {
  const raw = uncappedTokens(limit, state.epochMs, usedTokens(state), state.overflow, nowMs);
  const available = Math.min(raw, limit.capacityTokens);
  if (cost > available + ADMISSION_EPSILON) {
    return { allowed: false, available, retryAfterMs: msUntilAvailable(limit, available, cost) };
  }
  const overflow =
    raw > limit.capacityTokens ? state.overflow + (raw - limit.capacityTokens) : state.overflow;
  const before = state.slots.get(slot);
  const slots = new Map(state.slots);
  slots.set(slot, { consumed: (before?.consumed ?? 0) + cost, refunded: before?.refunded ?? 0 });
  return { allowed: true, state: { ...state, overflow, slots }, remaining: available - cost };
}

/**
 * Gives back up to `amount` tokens for `slot`, capped so the bucket never exceeds capacity: a
 * refund that lands on a full bucket is dropped, not banked (a banked refund would reach peers
 * whose view is not full and let them over-admit). Returns the new state and what was credited.
 */
export function refund(
  state: BucketState,
  limit: Limit,
  slot: string,
  amount: number,
  nowMs: number,
): { readonly state: BucketState; readonly refunded: number } {
  const room = limit.capacityTokens - availableTokens(state, limit, nowMs);
  const credited = Math.min(amount, room);
  if (!(credited > 0)) return { state, refunded: 0 };
  const before = state.slots.get(slot);
  const slots = new Map(state.slots);
  slots.set(slot, {
    consumed: before?.consumed ?? 0,
    refunded: (before?.refunded ?? 0) + credited,
  });
  return { state: { ...state, slots }, refunded: credited };
}

/**
 * Absorbs refill piled up above capacity into the overflow register, as of `nowMs`. Reads are
 * unchanged (they cap at capacity anyway); what changes is that later counts merged in from
 * peers can no longer hide in the banked refill. A replica does this before every charge, before
 * joining a peer's state into its own and before sending its state (docs/crdt.md).
 */
export function normalise(state: BucketState, limit: Limit, nowMs: number): BucketState {
  const raw = uncappedTokens(limit, state.epochMs, usedTokens(state), state.overflow, nowMs);
  if (raw <= limit.capacityTokens) return state;
  return { ...state, overflow: state.overflow + (raw - limit.capacityTokens) };
}

/**
 * Moves a bucket from limit `from` to limit `to` at `atMs`, one revision up. The tokens the agent
 * was missing under the old limit stay missing under the new one (an upgrade from 10 to 100 with
 * 6 spent leaves 94), so changing a limit neither hands every agent a fresh burst nor starves
 * them. Deterministic: replicas that rebase the same state get the same result.
 */
export function rebase(state: BucketState, from: Limit, to: Limit, atMs: number): BucketState {
  return createBucket(to, atMs, missingTokens(state, from, atMs), state.revision + 1);
}

/** Tokens a bucket lacks to be full at `nowMs` (0 when full). */
export function missingTokens(state: BucketState, limit: Limit, nowMs: number): number {
  return Math.max(0, limit.capacityTokens - availableTokens(state, limit, nowMs));
}
