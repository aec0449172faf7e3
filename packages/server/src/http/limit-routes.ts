import { type Cost, EdgeError } from '@openclaw-edge/core';
import type { FastifyInstance } from 'fastify';
import { authorizeAgent } from './auth-hook.js';
import { type CheckBody, checkSerializers, decideCheck, validateCheck } from './check.js';
import { rateLimitHeaders } from './headers.js';
import { HttpProblem, type Problem, sendProblem, toProblem } from './problem.js';
import type { EdgeRuntime } from './runtime.js';
import * as schemas from './schemas.js';
import { limitsView, refundView } from './views.js';

/** Decision routes: check, batch check, refund, and reading an agent's quota. */
export function registerLimitRoutes(app: FastifyInstance, runtime: EdgeRuntime): void {
  const { limiter } = runtime;

  // The fast path in fast-check.ts answers most of these requests before Fastify sees them, with
  // the same validator, serialisers and decision; this route answers the rest.
  app.post(
    '/v1/check',
    {
      config: { scope: 'check' },
      schema: {
        summary: 'Check and charge an agent against its limits (all or none).',
        body: schemas.checkRequest,
        response: {
          200: schemas.decisionResponse,
          422: schemas.denialResponse,
          429: schemas.denialResponse,
        },
      },
      validatorCompiler: () => validateCheck,
      serializerCompiler: ({ httpStatus }) => checkSerializers[httpStatus ?? '200']!,
    },
    async (request, reply) => {
      const outcome = decideCheck(runtime, request.principal, request.body as CheckBody);
      reply.headers(rateLimitHeaders(outcome.agent, outcome.decision));
      if (outcome.status === 200) return outcome.body;
      return sendProblem(reply, outcome.body as Problem);
    },
  );

  app.post(
    '/v1/check/batch',
    {
      config: { scope: 'check' },
      schema: {
        summary: `Many independent checks in one request (at most ${runtime.maxBatch}); results in order.`,
        body: schemas.batchRequest(runtime.maxBatch),
      },
    },
    async (request) => {
      const { checks } = request.body as { checks: CheckBody[] };
      const results = checks.map((check) => {
        try {
          return decideCheck(runtime, request.principal, check).body;
        } catch (error) {
          if (error instanceof EdgeError || error instanceof HttpProblem) {
            return {
              agent_id: check.agent_id,
              allowed: false,
              error: toProblem(error, request.id),
            };
          }
          throw error;
        }
      });
      return { results };
    },
  );

  app.post(
    '/v1/refund',
    {
      config: { scope: 'check' },
      schema: {
        summary: 'Give tokens back (settle a reservation for less than was charged).',
        body: schemas.refundRequest,
      },
    },
    async (request) => {
      const body = request.body as CheckBody & { cost: Cost };
      authorizeAgent(request, body.agent_id);
      const now = runtime.now();
      const results = limiter.refund(body.agent_id, body.cost, now, body.limits);
      return {
        agent_id: body.agent_id,
        limits: refundView(results, limiter.peek(body.agent_id, now)),
      };
    },
  );

  app.get(
    '/v1/agents/:agent_id',
    {
      config: { scope: 'check' },
      schema: {
        summary: "Every limit's state for an agent, without charging.",
        params: schemas.agentParams,
        response: { 200: schemas.agentResponse },
      },
    },
    async (request) => {
      const { agent_id } = request.params as { agent_id: string };
      authorizeAgent(request, agent_id);
      const status = limiter.peek(agent_id, runtime.now());
      return {
        agent_id,
        tracked: status.tracked,
        override: limiter.getOverride(agent_id) !== undefined,
        limits: limitsView(status),
      };
    },
  );
}
