import { type Cost, EdgeError } from '@openclaw-edge/core';
import type { Decision } from '@openclaw-edge/engine';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { authorizeAgent } from './auth-hook.js';
import { setRateLimitHeaders } from './headers.js';
import { HttpProblem, type Problem, problem, sendProblem, toProblem } from './problem.js';
import type { EdgeRuntime } from './runtime.js';
import * as schemas from './schemas.js';
import { limitsView, refundView } from './views.js';

interface CheckBody {
  agent_id: string;
  cost?: Cost;
  limits?: string[];
}

/** Decision routes: check, batch check, refund, and reading an agent's quota. */
export function registerLimitRoutes(app: FastifyInstance, runtime: EdgeRuntime): void {
  const { limiter } = runtime;

  /** Runs one check and renders it as the body (and headers) of a single-check response. */
  const decide = (request: FastifyRequest, body: CheckBody, reply?: FastifyReply) => {
    authorizeAgent(request, body.agent_id);
    const now = runtime.now();
    const { decision, status } = limiter.checkAndPeek(
      body.agent_id,
      body.cost ?? 1,
      now,
      body.limits,
    );
    if (reply !== undefined) setRateLimitHeaders(reply, status, decision);
    const view = {
      agent_id: body.agent_id,
      allowed: decision.allowed,
      limit: decision.limit.name,
      limits: limitsView(status),
    };
    if (decision.allowed) return { ok: true as const, body: { ...view, retry_after_ms: 0 } };
    return { ok: false as const, body: denial(decision, view) };
  };

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
    },
    async (request, reply) => {
      const result = decide(request, request.body as CheckBody, reply);
      if (result.ok) return result.body;
      return sendProblem(reply, result.body);
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
          return decide(request, check).body;
        } catch (error) {
          if (error instanceof EdgeError || error instanceof HttpProblem) {
            return { agent_id: check.agent_id, allowed: false, error: toProblem(error, request) };
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

function denial(decision: Decision, view: Record<string, unknown>): Problem {
  const name = decision.limit.name;
  if (!Number.isFinite(decision.retryAfterMs)) {
    return problem(
      422,
      'COST_EXCEEDS_CAPACITY',
      `the cost exceeds the capacity (${decision.limit.capacityTokens}) of limit "${name}"; it can never be admitted`,
      { ...view, retry_after_ms: null },
    );
  }
  return problem(
    429,
    'RATE_LIMITED',
    `limit "${name}" has too few tokens; retry in ${decision.retryAfterMs} ms`,
    {
      ...view,
      retry_after_ms: decision.retryAfterMs,
    },
  );
}
