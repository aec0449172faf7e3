import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import type { EdgeMetrics } from '../metrics/edge-metrics.js';
import { authenticate } from './auth-hook.js';
import { fastCheckServer } from './fast-check.js';
import { registerHealthRoutes } from './health-routes.js';
import { registerLimitRoutes } from './limit-routes.js';
import { registerMetricsRoutes } from './metrics-routes.js';
import { registerOpenApi } from './openapi.js';
import { registerPolicyRoutes } from './policy-routes.js';
import { HttpProblem, sendProblem, toProblem } from './problem.js';
import { registerRatingRoutes } from './rating-routes.js';
import type { RawCheckStats } from './raw-check.js';
import type { EdgeRuntime } from './runtime.js';
import { AJV_OPTIONS } from './schemas.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * The caller's `x-request-id` when it is a sane one, else a random per-process prefix and a
 * counter: unique without a random draw per request.
 */
const requestIdPrefix = randomBytes(6).toString('base64url');
let requestCounter = 0;
function requestId(given: string | string[] | undefined): string {
  if (typeof given === 'string' && REQUEST_ID.test(given)) return given;
  requestCounter++;
  return `${requestIdPrefix}-${requestCounter.toString(36)}`;
}

/** Options of {@link buildApp}. */
export interface AppOptions {
  /** A pino logger instance; false for none. */
  readonly logger: FastifyServerOptions['loggerInstance'] | false;
  readonly version: string;
  /** Log a line per request (incoming and completed); off by default, failures are always logged. */
  readonly logRequests?: boolean;
  /** Prometheus metrics to serve at /metrics; none when metrics are disabled. */
  readonly metrics?: EdgeMetrics;
  /**
   * `edge` serves the whole API; `exporter` only health and metrics (the sidecar that reads
   * replicated state and takes no traffic).
   */
  readonly role?: 'edge' | 'exporter';
  /**
   * Answer `POST /v1/check` on the node:http fast path (fast-check.ts); default true. Turn it off
   * to listen on a host name: Fastify binds every address of a name only for servers it creates.
   */
  readonly fastCheck?: boolean;
  /** Counts of checks answered on the connection and connections handed to node:http (tests). */
  readonly fastCheckStats?: RawCheckStats;
}

/**
 * The HTTP API as a Fastify instance, not yet listening. Requests are validated against the
 * route schemas with unknown fields rejected and no type coercion; every error leaves as RFC 9457
 * problem details from one handler.
 */
export function buildApp(runtime: EdgeRuntime, options: AppOptions): FastifyInstance {
  let closing = false;
  const logInternalError = (error: unknown, id: string) => {
    if (options.logger) options.logger.error({ err: error, request_id: id }, 'request failed');
  };
  // The check fast path answers without Fastify, so it stays off where Fastify must see every
  // request: per-request logging, and the exporter (which has no check route).
  const fastCheck =
    options.fastCheck !== false && options.role !== 'exporter' && options.logRequests !== true
      ? {
          serverFactory: fastCheckServer({
            runtime,
            ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
            logInternalError,
            requestId,
            isClosing: () => closing,
            ...(options.fastCheckStats === undefined ? {} : { stats: options.fastCheckStats }),
          }),
        }
      : {};
  const app = Fastify({
    ...fastCheck,
    // Fastify builds a child logger per request when it has one; without request logging that is
    // pure cost, so failures are logged by our error handler with the request id instead.
    ...(options.logger === false || options.logRequests !== true
      ? { logger: false }
      : { loggerInstance: options.logger }),
    bodyLimit: runtime.bodyLimitBytes,
    genReqId: (req) => requestId(req.headers['x-request-id']),
    logController: new LogController({
      requestIdLogLabel: 'request_id',
      disableRequestLogging: options.logRequests !== true,
    }),
    return503OnClosing: true,
    ajv: { customOptions: AJV_OPTIONS },
  });
  // Fastify marks itself closing (and answers 503) before it runs the preClose hooks.
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.decorateRequest('principal', undefined);
  // JSON only: a text body is refused with 415 rather than parsed and rejected as a bad shape.
  app.removeContentTypeParser('text/plain');
  // One synchronous hook (no promise per request): echo the request id, and authenticate before
  // the body is even parsed, so strangers learn nothing about the schemas.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    try {
      authenticate(runtime, request);
    } catch (error) {
      done(error as Error);
      return;
    }
    done();
  });
  app.setErrorHandler((error, request, reply) => {
    const body = toProblem(error, request.id, request.routeOptions.bodyLimit);
    if (body.status >= 500) logInternalError(error, request.id);
    return sendProblem(reply, body);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      reply,
      toProblem(
        new HttpProblem('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`),
        request.id,
      ),
    ),
  );
  registerOpenApi(app, options.version);
  registerHealthRoutes(app, runtime);
  if (options.metrics !== undefined) registerMetricsRoutes(app, options.metrics);
  if (options.role !== 'exporter') {
    registerLimitRoutes(app, runtime);
    registerPolicyRoutes(app, runtime);
    if (runtime.rating !== undefined) registerRatingRoutes(app, runtime, runtime.rating);
  }
  return app;
}
