import { EdgeError } from '@openclaw-edge/core';
import type { FastifyError, FastifyReply } from 'fastify';

/**
 * RFC 9457 problem details, with a stable `code` every client can branch on. This file is the
 * one place where errors become HTTP responses; docs/api.md lists every code.
 */
export interface Problem {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly instance?: string;
  readonly [extension: string]: unknown;
}

/** HTTP-level error codes (the core's `EdgeError` codes are added to these). */
export const HTTP_ERROR_CODES = {
  MALFORMED_JSON: 400,
  INVALID_REQUEST: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  BODY_TOO_LARGE: 413,
  UNKNOWN_TIER: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  LOOPBACK_ONLY: 403,
  NOT_FOUND: 404,
  COST_EXCEEDS_CAPACITY: 422,
  RATE_LIMITED: 429,
  NOT_READY: 503,
  INTERNAL: 500,
  INVALID_EVENT: 400,
  UNPRICED_MODEL: 422,
  UNKNOWN_AGENT: 422,
  EVENT_IN_FUTURE: 422,
  BUDGET_EXCEEDED: 402,
  BUDGET_UNAVAILABLE: 503,
  LEDGER_UNAVAILABLE: 503,
  RESERVATION_NOT_FOUND: 404,
  RESERVATION_CLOSED: 409,
} as const;

/** Status of each core error code. */
const EDGE_STATUS: Readonly<Record<string, number>> = {
  INVALID_POLICY: 400,
  INVALID_COST: 400,
  INVALID_STATE: 400,
  UNKNOWN_LIMIT: 400,
};

const TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** An error raised by a route on purpose, with its code and HTTP status. */
export class HttpProblem extends Error {
  constructor(
    readonly code: keyof typeof HTTP_ERROR_CODES,
    message: string,
    readonly extensions: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'HttpProblem';
  }

  get status(): number {
    return HTTP_ERROR_CODES[this.code];
  }
}

/** Builds a problem document. */
export function problem(
  status: number,
  code: string,
  detail: string,
  extensions: Readonly<Record<string, unknown>> = {},
): Problem {
  return {
    type: `https://openclaw.dev/problems/${code.toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    code,
    detail,
    ...extensions,
  };
}

/** Sends a problem document with the right status and media type. */
export function sendProblem(reply: FastifyReply, body: Problem): FastifyReply {
  return reply.status(body.status).type('application/problem+json').send(body);
}

/**
 * Maps any error a route or Fastify raised to a problem; never leaks internals on a 500, whose
 * detail quotes `requestId` instead.
 */
export function toProblem(error: unknown, requestId: string, bodyLimit?: number): Problem {
  if (error instanceof HttpProblem)
    return problem(error.status, error.code, error.message, error.extensions);
  if (error instanceof EdgeError) {
    return problem(EDGE_STATUS[error.code] ?? 400, error.code, error.message, fieldOf(error.field));
  }
  const fe = error as FastifyError;
  if (fe.validation !== undefined) {
    const first = fe.validation[0];
    const where = `${fe.validationContext ?? 'body'}${first?.instancePath ?? ''}`.replaceAll(
      '/',
      '.',
    );
    const extra =
      first?.keyword === 'additionalProperties'
        ? ` (unknown field "${String((first.params as { additionalProperty?: string }).additionalProperty)}")`
        : '';
    return problem(400, 'INVALID_REQUEST', `${where}: ${first?.message ?? 'is invalid'}${extra}`, {
      field: where,
    });
  }
  switch (fe.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return problem(400, 'MALFORMED_JSON', 'the request body is not valid JSON');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return problem(
        413,
        'BODY_TOO_LARGE',
        `the request body exceeds the limit of ${bodyLimit ?? 'the server'} bytes`,
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return problem(415, 'UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json');
    default:
      break;
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return problem(fe.statusCode, 'INVALID_REQUEST', fe.message);
  }
  return problem(
    500,
    'INTERNAL',
    `internal error; quote request id ${requestId} when reporting it`,
  );
}

function fieldOf(field: string | undefined): Record<string, unknown> {
  return field === undefined ? {} : { field };
}
