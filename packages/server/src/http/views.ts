import type { AgentStatus, RefundResult } from '@openclaw-edge/engine';

/** One limit as the API shows it: whole tokens, never negative. */
export function limitsView(status: AgentStatus) {
  return status.limits.map((s) => ({
    name: s.limit.name,
    resource: s.limit.resource,
    capacity: s.limit.capacityTokens,
    remaining: Math.max(0, Math.floor(s.remaining + 1e-9)),
    reset_ms: s.resetMs,
    refill_per_second: s.limit.refillPerMs * 1000,
  }));
}

/** Refund results merged with the state after the refund. */
export function refundView(results: readonly RefundResult[], status: AgentStatus) {
  const after = new Map(limitsView(status).map((l) => [l.name, l]));
  return results.map((r) => ({ ...after.get(r.limit.name), refunded: r.refunded }));
}
