import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyRequest } from 'fastify';
import { LOOPBACK_PRINCIPAL, mayActFor, type Principal } from '../auth/api-keys.js';
import type { Scope } from '../config/schema.js';
import { HttpProblem } from './problem.js';
import type { EdgeRuntime } from './runtime.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Scope a route requires; routes without one (health, OpenAPI) are open. */
    scope?: Scope;
  }
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/**
 * Authenticates a request against the configured API keys (`Authorization: Bearer <key>` or
 * `X-API-Key`) and checks the route's scope. With no key configured, only loopback clients are
 * served, all scopes granted: the safe default for a service started without a config.
 */
export function authenticate(runtime: EdgeRuntime, request: FastifyRequest): void {
  const scope = request.routeOptions.config.scope;
  if (scope === undefined) return;
  request.principal = principalFor(runtime, scope, request.socket.remoteAddress, request.headers);
}

/**
 * The principal a request with these headers, from this address, acts as for `scope`; throws
 * the 401/403 problem otherwise. Shared by the Fastify hook and the `POST /v1/check` fast path.
 */
export function principalFor(
  runtime: EdgeRuntime,
  scope: Scope,
  remoteAddress: string | undefined,
  headers: IncomingHttpHeaders,
): Principal {
  const keys = runtime.apiKeys();
  let principal: Principal | undefined;
  if (!keys.enabled) {
    if (!isLoopback(remoteAddress)) {
      throw new HttpProblem(
        'LOOPBACK_ONLY',
        'no API keys are configured, so only clients on this machine are served; configure api_keys to serve others',
      );
    }
    principal = LOOPBACK_PRINCIPAL;
  } else {
    const secret = presentedKey(headers);
    if (secret === undefined) {
      throw new HttpProblem('UNAUTHENTICATED', 'send an API key as "Authorization: Bearer <key>"');
    }
    principal = keys.authenticate(secret);
    if (principal === undefined)
      throw new HttpProblem('UNAUTHENTICATED', 'the API key is not valid');
  }
  if (!principal.scopes.has(scope)) {
    throw new HttpProblem(
      'FORBIDDEN',
      `the API key "${principal.name}" lacks the "${scope}" scope`,
    );
  }
  return principal;
}

/** Throws 403 unless the authenticated principal may act for `agentId`. */
export function authorizeAgent(request: FastifyRequest, agentId: string): void {
  authorizePrincipal(request.principal, agentId);
}

/** Throws 403 unless `principal` (undefined on an open route) may act for `agentId`. */
export function authorizePrincipal(principal: Principal | undefined, agentId: string): void {
  if (principal !== undefined && !mayActFor(principal, agentId)) {
    throw new HttpProblem(
      'FORBIDDEN',
      `the API key "${principal.name}" may not act for this agent`,
      {
        agent_id: agentId,
      },
    );
  }
}

function presentedKey(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return match?.[1];
  }
  const header = headers['x-api-key'];
  return typeof header === 'string' && header.length > 0 ? header : undefined;
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
