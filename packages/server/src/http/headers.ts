import type { AgentPolicy } from '@openclaw-edge/core';
import type { AgentStatus, Decision } from '@openclaw-edge/engine';
import type { FastifyReply } from 'fastify';

/**
 * Rate limit headers of the IETF httpapi draft (RateLimit-Policy and RateLimit, structured
 * fields): every limit of the agent as a policy with its quota `q` and window `w` (seconds the
 * bucket takes to refill from empty), and the current state of the limit that decided, as
 * remaining `r` and seconds to reset `t`. Plus Retry-After (seconds) on a denial that can pass
 * later.
 */
export function setRateLimitHeaders(
  reply: FastifyReply,
  status: AgentStatus,
  decision: Decision,
): void {
  const remaining = Math.max(0, Math.floor(decision.remaining + 1e-9));
  const headers: Record<string, string> = {
    'RateLimit-Policy': policyHeader(status.policy),
    RateLimit: `"${decision.limit.name}";r=${remaining};t=${Math.ceil(decision.resetMs / 1000)}`,
  };
  if (!decision.allowed && Number.isFinite(decision.retryAfterMs)) {
    headers['Retry-After'] = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
  }
  reply.headers(headers);
}

/** The policy header depends only on the policy, so it is built once per policy and reused. */
const policyHeaders = new WeakMap<AgentPolicy, string>();

function policyHeader(policy: AgentPolicy): string {
  let header = policyHeaders.get(policy);
  if (header === undefined) {
    header = policy.limits
      .map((limit) => {
        const windowS = Math.max(1, Math.ceil(limit.capacityTokens / (limit.refillPerMs * 1000)));
        return `"${limit.name}";q=${Math.floor(limit.capacityTokens)};w=${windowS}`;
      })
      .join(', ');
    policyHeaders.set(policy, header);
  }
  return header;
}
