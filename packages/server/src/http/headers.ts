import type { AgentPolicy } from '@openclaw-edge/core';
import type { AgentStatus, Decision } from '@openclaw-edge/engine';

/**
 * Rate limit headers of the IETF httpapi draft (RateLimit-Policy and RateLimit, structured
 * fields): every limit of the agent as a policy with its quota `q` and window `w` (seconds the
 * bucket takes to refill from empty), and the current state of the limit that decided, as
 * remaining `r` and seconds to reset `t`. Plus Retry-After (seconds) on a denial that can pass
 * later. Names in lower case, as Fastify would store them.
 */
export function rateLimitHeaders(status: AgentStatus, decision: Decision): Record<string, string> {
  const remaining = Math.max(0, Math.floor(decision.remaining + 1e-9));
  const headers: Record<string, string> = {
    'ratelimit-policy': policyHeader(status.policy),
    ratelimit: `"${decision.limit.name}";r=${remaining};t=${Math.ceil(decision.resetMs / 1000)}`,
  };
  if (!decision.allowed && Number.isFinite(decision.retryAfterMs)) {
    headers['retry-after'] = String(Math.max(1, Math.ceil(decision.retryAfterMs / 1000)));
  }
  return headers;
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
