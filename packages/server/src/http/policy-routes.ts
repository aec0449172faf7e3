import { type AgentPolicy, definePolicy, type LimitSpec } from '@openclaw-edge/core';
import type { FastifyInstance } from 'fastify';
import { authorizeAgent } from './auth-hook.js';
import { HttpProblem } from './problem.js';
import type { EdgeRuntime } from './runtime.js';
import * as schemas from './schemas.js';
import { limitsView } from './views.js';

/** Runtime per-agent policy overrides (admin scope). */
export function registerPolicyRoutes(app: FastifyInstance, runtime: EdgeRuntime): void {
  const { limiter } = runtime;

  app.put(
    '/v1/agents/:agent_id/policy',
    {
      config: { scope: 'admin' },
      schema: {
        summary: "Set an agent's own limits (a tier from config, or limits of its own).",
        params: schemas.agentParams,
        body: schemas.policyRequest,
        response: { 200: schemas.agentResponse },
      },
    },
    async (request) => {
      const { agent_id } = request.params as { agent_id: string };
      const body = request.body as { tier?: string; limits?: LimitSpec[] };
      authorizeAgent(request, agent_id);
      const now = runtime.now();
      let limits: AgentPolicy['limits'];
      if (body.tier !== undefined) {
        const tier = runtime.tiers().get(body.tier);
        if (tier === undefined) {
          const known = [...runtime.tiers().keys()];
          throw new HttpProblem(
            'UNKNOWN_TIER',
            `no tier "${body.tier}" in config (tiers: ${known.length ? known.join(', ') : 'none defined'})`,
          );
        }
        limits = tier.limits;
      } else {
        limits = definePolicy(body.limits ?? [], 'limits').limits;
      }
      const policy: AgentPolicy = { limits };
      limiter.setOverride(agent_id, policy, now);
      runtime.overrideChanged(agent_id, policy);
      const status = limiter.peek(agent_id, now);
      return {
        agent_id,
        tracked: status.tracked,
        override: true,
        limits: limitsView(status),
      };
    },
  );

  app.delete(
    '/v1/agents/:agent_id/policy',
    {
      config: { scope: 'admin' },
      schema: {
        summary: "Remove an agent's override; it falls back to its configured policy.",
        params: schemas.agentParams,
      },
    },
    async (request, reply) => {
      const { agent_id } = request.params as { agent_id: string };
      authorizeAgent(request, agent_id);
      const now = runtime.now();
      if (!limiter.clearOverride(agent_id, now)) {
        throw new HttpProblem('NOT_FOUND', 'the agent has no policy override');
      }
      runtime.overrideChanged(agent_id, undefined);
      return reply.status(204).send();
    },
  );
}
