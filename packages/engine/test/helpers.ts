import { type AgentPolicy, definePolicy, type LimitSpec } from '@openclaw-edge/core';
import { Limiter, type LimiterOptions } from '@openclaw-edge/engine';

/** 10 requests of burst, refilled at 1 per second. */
export const tenPerTenSeconds: LimitSpec = { name: 'rps', capacity: 10, refill: 1, per: 'second' };

/** A policy from specs. */
export function policy(specs: readonly LimitSpec[]): AgentPolicy {
  return definePolicy(specs);
}

/** A limiter with sensible test defaults. */
export function limiter(
  specs: readonly LimitSpec[],
  options: Partial<LimiterOptions> = {},
): Limiter {
  return new Limiter({ nodeId: 'n1', incarnation: 1, defaultPolicy: policy(specs), ...options });
}

/** Sends every dirty bucket of `from` to each of `to`. */
export function sync(from: Limiter, to: readonly Limiter[], nowMs: number): void {
  const delta = from.drainDirty(nowMs);
  for (const peer of to) peer.merge(delta, nowMs);
}

/**
 * Worst excess of time-ordered admissions over an exact bucket of capacity C and rate r: the
 * largest admitted[s..t] − C − r·(t − s) over every window [s, t] (negative when no window exceeds
 * the bucket, −∞ without admissions).
 */
export function worstExcess(
  admissions: readonly { t: number; cost: number }[],
  capacity: number,
  ratePerMs: number,
): number {
  // max over s ≤ t of admitted[s..t] − C − r(t − s), in one pass over time-ordered admissions.
  let cumulative = 0;
  let minBefore = Number.POSITIVE_INFINITY;
  let worst = Number.NEGATIVE_INFINITY;
  for (const a of admissions) {
    minBefore = Math.min(minBefore, cumulative - ratePerMs * a.t);
    cumulative += a.cost;
    worst = Math.max(worst, cumulative - ratePerMs * a.t - minBefore - capacity);
  }
  return worst;
}
