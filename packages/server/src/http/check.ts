import AjvCompiler from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';
import type { Cost } from '@openclaw-edge/core';
import type { AgentStatus, Decision } from '@openclaw-edge/engine';
import type { FastifySchemaValidationError } from 'fastify';
import type { Principal } from '../auth/api-keys.js';
import { authorizePrincipal } from './auth-hook.js';
import { type Problem, problem } from './problem.js';
import type { EdgeRuntime } from './runtime.js';
import * as schemas from './schemas.js';
import { limitsView } from './views.js';

/**
 * `POST /v1/check`: the decision and the compiled body validator and response serialisers. The
 * Fastify route and the node:http fast path (`fast-check.ts`) both use exactly these, so the two
 * cannot answer the same request differently.
 */

export interface CheckBody {
  agent_id: string;
  cost?: Cost;
  limits?: string[];
}

/** One check's answer: HTTP status (200, 422 or 429), body, and what the headers are made of. */
export interface CheckOutcome {
  readonly status: 200 | 422 | 429;
  readonly body: Record<string, unknown>;
  readonly decision: Decision;
  readonly agent: AgentStatus;
}

/** Runs one check for `principal` (403 if it may not act for the agent; engine errors thrown). */
export function decideCheck(
  runtime: EdgeRuntime,
  principal: Principal | undefined,
  body: CheckBody,
): CheckOutcome {
  authorizePrincipal(principal, body.agent_id);
  const { decision, status } = runtime.limiter.checkAndPeek(
    body.agent_id,
    body.cost ?? 1,
    runtime.now(),
    body.limits,
  );
  if (decision.allowed) {
    const allowed = {
      agent_id: body.agent_id,
      allowed: true,
      limit: decision.limit.name,
      limits: limitsView(status),
      retry_after_ms: 0,
    };
    return { status: 200, body: allowed, decision, agent: status };
  }
  const denied = denial(decision, {
    agent_id: body.agent_id,
    allowed: false,
    limit: decision.limit.name,
    limits: limitsView(status),
  });
  return { status: denied.status as 422 | 429, body: denied, decision, agent: status };
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
    { ...view, retry_after_ms: decision.retryAfterMs },
  );
}

type Validate = ((data: unknown) => boolean) & { errors?: FastifySchemaValidationError[] | null };
type Serialize = (data: unknown) => string;

/** The body validator, compiled by Fastify's default compiler with the app's options. */
export const validateCheck = AjvCompiler()({}, { customOptions: schemas.AJV_OPTIONS })({
  schema: schemas.checkRequest,
  method: 'POST',
  url: '/v1/check',
  httpPart: 'body',
}) as Validate;

const serializerOf = SerializerSelector()({}, {});
const serialize = (schema: object, httpStatus: string): Serialize =>
  serializerOf({ schema, method: 'POST', url: '/v1/check', httpStatus }) as Serialize;

/** Response serialisers by status, compiled by Fastify's default serialiser compiler. */
export const checkSerializers: Readonly<Record<string, Serialize>> = {
  200: serialize(schemas.decisionResponse, '200'),
  422: serialize(schemas.denialResponse, '422'),
  429: serialize(schemas.denialResponse, '429'),
};
