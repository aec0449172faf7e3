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
