import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  maxHeaderSize,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyServerFactory, FastifyServerFactoryHandler } from 'fastify';
import { parse as parseJson } from 'secure-json-parse';
import type { Principal } from '../auth/api-keys.js';
import type { EdgeMetrics } from '../metrics/edge-metrics.js';
import { principalFor } from './auth-hook.js';
import { type CheckBody, checkSerializers, decideCheck, validateCheck } from './check.js';
import { rateLimitHeaders } from './headers.js';
import { HttpProblem, type Problem, toProblem } from './problem.js';
import { RawCheckConnections, type RawCheckStats, type RawResponse } from './raw-check.js';
import type { EdgeRuntime } from './runtime.js';

/**
 * The hot path of `POST /v1/check`, answered in front of Fastify, in two layers:
 *
 * 1. On the TCP connection (`raw-check.ts`): a request that arrived whole, in the strict HTTP/1.1
 *    subset that layer reads, is answered from the bytes, with no node:http objects at all.
 * 2. On node:http: a check that arrived otherwise (split across reads, on a connection already
 *    handed to node:http) is answered here from node:http's request, without Fastify.
 *
 * Why: per request, Fastify's hooks, reply object, promise wrap and header bookkeeping cost about
 * as much server time as everything else we do, and node:http's own objects cost more again
 * (BENCHMARKS.md, "The check fast path" and "The check on the connection"; docs/architecture.md,
 * "A request"). Both layers do the same work with none of that plumbing: same authentication,
 * same JSON parser (secure-json-parse, prototype poisoning refused), the same compiled validator
 * and serialisers as the Fastify route (`check.ts`), the same problem documents and headers, the
 * same latency histogram.
 *
 * They only take requests they can answer exactly as Fastify would, and decide that before
 * reading the body: `POST /v1/check` with no query string, a JSON content type, a Content-Length
 * within the body limit, valid credentials, and the server not closing. Anything else (a 401, a
 * 413, a 415, chunked bodies, shutdown's 503) goes to Fastify untouched.
 */
export interface FastCheckOptions {
  readonly runtime: EdgeRuntime;
  readonly metrics?: EdgeMetrics;
  /** Logs a 500 the way the app's error handler does. */
  logInternalError(error: unknown, requestId: string): void;
  /** Request id: the caller's valid `x-request-id`, or a fresh one. */
  requestId(given: string | string[] | undefined): string;
  /** True once the app started closing: Fastify then answers 503 and closes connections. */
  isClosing(): boolean;
  /** Filled with the connection layer's counts (tests). */
  readonly stats?: RawCheckStats;
}

const PATH = '/v1/check';
const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8']);
const PARSE_OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const;
const SCOPE = 'check';
/** node:http's `maxHeadersCount` when the server leaves it unset (null). */
const DEFAULT_MAX_HEADERS = 2000;

/** A Fastify `serverFactory`: node:http with Fastify's timeouts, both layers in front. */
export function fastCheckServer(options: FastCheckOptions): FastifyServerFactory {
  return (handler: FastifyServerFactoryHandler, fastifyOptions): Server => {
    const server = createServer((req, res) => {
      const principal = eligible(options, req);
      if (principal === undefined) handler(req, res);
      else readAndAnswer(options, principal, req, res);
    });
    // What Fastify applies to a server it creates itself (lib/server.js).
    const { keepAliveTimeout, requestTimeout, connectionTimeout, maxRequestsPerSocket } =
      fastifyOptions as {
        keepAliveTimeout: number;
        requestTimeout: number;
        connectionTimeout: number;
        maxRequestsPerSocket: number;
      };
    server.keepAliveTimeout = keepAliveTimeout;
    server.requestTimeout = requestTimeout;
    server.setTimeout(connectionTimeout);
    // node:http's own per-connection timers and request counts only hold for connections it
    // reads, so with either set every connection stays with node:http.
    if (maxRequestsPerSocket > 0) server.maxRequestsPerSocket = maxRequestsPerSocket;
    else if (connectionTimeout === 0) takeConnections(server, options);
    return server;
  };
}

/**
 * Puts the connection layer between the listening socket and node:http: every accepted
 * connection goes to it first, and to node:http's own 'connection' listener when handed over.
 */
function takeConnections(server: Server, options: FastCheckOptions): void {
  const [httpListener, ...others] = server.listeners('connection') as ((socket: Socket) => void)[];
  if (httpListener === undefined || others.length > 0) return;
  server.removeListener('connection', httpListener);
  const connections = new RawCheckConnections({
    handler: {
      answer: (request, remoteAddress) =>
        answerRaw(options, request.headers, request.body, remoteAddress),
    },
    handOff: (socket: Socket) => httpListener.call(server, socket),
    bodyLimitBytes: options.runtime.bodyLimitBytes,
    maxHeadBytes: maxHeaderSize,
    maxHeaders: server.maxHeadersCount ?? DEFAULT_MAX_HEADERS,
    keepAliveTimeoutMs: server.keepAliveTimeout,
    headersTimeoutMs: server.headersTimeout,
    ...(options.stats === undefined ? {} : { stats: options.stats }),
  });
  server.on('connection', (socket: Socket) => connections.take(socket));
  // Fastify and node:http close connections at shutdown; node:http only knows its own.
  const closeIdle = server.closeIdleConnections.bind(server);
  server.closeIdleConnections = () => {
    connections.closeIdle();
    closeIdle();
  };
  const closeAll = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => {
    connections.closeAll();
    closeAll();
  };
}

function answerRaw(
  options: FastCheckOptions,
  headers: IncomingHttpHeaders,
  body: Buffer,
  remoteAddress: string | undefined,
): RawResponse | undefined {
  const principal = admit(options, headers, remoteAddress);
  if (principal === undefined) return undefined;
  const started = performance.now();
  const response = respond(
    options,
    principal,
    options.requestId(headers['x-request-id']),
    body.toString('utf8'),
  );
  options.metrics?.observeRequest(
    'POST',
    PATH,
    response.status,
    (performance.now() - started) / 1000,
  );
  return response;
}

/** The principal when this path answers the request; undefined hands it to Fastify. */
function eligible(options: FastCheckOptions, req: IncomingMessage): Principal | undefined {
  if (req.method !== 'POST' || req.url !== PATH) return undefined;
  const length = req.headers['content-length'];
  if (length === undefined || !(Number(length) <= options.runtime.bodyLimitBytes)) {
    return undefined;
  }
  return admit(options, req.headers, req.socket.remoteAddress);
}

/** The principal of a check both layers may answer (content type, credentials, not closing). */
function admit(
  options: FastCheckOptions,
  headers: IncomingHttpHeaders,
  remoteAddress: string | undefined,
): Principal | undefined {
  if (options.isClosing()) return undefined;
  const type = headers['content-type'];
  if (type === undefined || !JSON_TYPES.has(type.toLowerCase())) return undefined;
  try {
    return principalFor(options.runtime, SCOPE, remoteAddress, headers);
  } catch {
    return undefined; // Fastify's hook answers the 401/403 with the same problem.
  }
}

function readAndAnswer(
  options: FastCheckOptions,
  principal: Principal,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  const started = performance.now();
  const requestId = options.requestId(req.headers['x-request-id']);
  // Bytes, decoded once at the end: a body is nearly always one chunk, and a stream decoder
  // per request costs more than the decoding.
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
  });
  req.on('end', () => {
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    const response = respond(options, principal, requestId, body.toString('utf8'));
    send(options, res, response);
    options.metrics?.observeRequest(
      'POST',
      PATH,
      response.status,
      (performance.now() - started) / 1000,
    );
  });
  // An aborted upload: the client is gone and there is no one to answer.
  req.on('error', () => {});
}

/** Parses, validates and decides: the response either layer writes. */
function respond(
  options: FastCheckOptions,
  principal: Principal,
  requestId: string,
  text: string,
): RawResponse {
  try {
    const body = parseBody(text);
    const outcome = decideCheck(options.runtime, principal, body);
    const payload = checkSerializers[outcome.status]!(outcome.body);
    const headers = rateLimitHeaders(outcome.agent, outcome.decision);
    return withHeaders(outcome.status, requestId, payload, headers);
  } catch (error) {
    const body: Problem = toProblem(error, requestId, options.runtime.bodyLimitBytes);
    if (body.status >= 500) options.logInternalError(error, requestId);
    return withHeaders(body.status, requestId, JSON.stringify(body));
  }
}

/** The body as a check, or the same error Fastify's parser and validator would raise. */
function parseBody(text: string): CheckBody {
  let body: unknown = agentOnly(text);
  if (body === undefined) {
    try {
      if (text.length === 0) throw new Error('empty');
      body = parseJson(text, PARSE_OPTIONS);
    } catch {
      throw new HttpProblem('MALFORMED_JSON', 'the request body is not valid JSON');
    }
  }
  if (!validateCheck(body)) {
    throw Object.assign(new Error('body is invalid'), {
      validation: validateCheck.errors,
      validationContext: 'body',
    });
  }
  return body as CheckBody;
}

const AGENT_ONLY_PREFIX = '{"agent_id":"';
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const CLOSE_BRACE = 0x7d;

/**
 * The commonest body, `{"agent_id":"..."}` written exactly so, read without a JSON parser:
 * between the quotes, a string with no quote, backslash or control character is its own value,
 * so this gives what `JSON.parse` gives. Anything else (spacing, escapes, more fields) is
 * undefined and goes to the parser. Why: parsing was the largest single item of a check's own
 * work in the server (BENCHMARKS.md, "The check fast path, again (sixth session)").
 */
function agentOnly(text: string): CheckBody | undefined {
  const end = text.length - 2;
  if (
    end <= AGENT_ONLY_PREFIX.length ||
    text.charCodeAt(end) !== QUOTE ||
    text.charCodeAt(end + 1) !== CLOSE_BRACE ||
    !text.startsWith(AGENT_ONLY_PREFIX)
  ) {
    return undefined;
  }
  for (let i = AGENT_ONLY_PREFIX.length; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE || code === BACKSLASH || code < 0x20) return undefined;
  }
  return { agent_id: text.slice(AGENT_ONLY_PREFIX.length, end) };
}

function withHeaders(
  status: number,
  requestId: string,
  payload: string,
  headers: Record<string, string> = {},
): RawResponse {
  headers['x-request-id'] = requestId;
  // A decision is JSON; every other answer (denials included) is a problem document.
  headers['content-type'] =
    status === 200 ? 'application/json; charset=utf-8' : 'application/problem+json; charset=utf-8';
  headers['content-length'] = String(Buffer.byteLength(payload));
  return { status, headers, payload };
}

function send(options: FastCheckOptions, res: ServerResponse, response: RawResponse): void {
  // A request that was in flight when shutdown began: as Fastify does, close the connection
  // after this answer instead of keeping it alive.
  if (options.isClosing()) response.headers.connection = 'close';
  res.writeHead(response.status, response.headers);
  res.end(response.payload);
}
