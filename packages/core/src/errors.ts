/**
 * Errors a caller can act on. Each has a stable machine-readable `code`; the HTTP layer maps
 * them to RFC 9457 problem details in one place. Every code is listed in docs/errors.md
 * (a test keeps the two in sync).
 */
export const ERROR_CODES = [
  'INVALID_POLICY',
  'INVALID_COST',
  'INVALID_STATE',
  'UNKNOWN_LIMIT',
  'INVALID_AGENT_ID',
] as const;

/** One of {@link ERROR_CODES}. */
export type EdgeErrorCode = (typeof ERROR_CODES)[number];

/** Base class of every error the project raises on purpose. */
export class EdgeError extends Error {
  /** Stable identifier, safe to branch on. */
  readonly code: EdgeErrorCode;
  /** Path of the offending field (`limits[0].capacity`), when the error is about one. */
  readonly field: string | undefined;

  constructor(code: EdgeErrorCode, message: string, field?: string) {
    super(field === undefined ? message : `${field}: ${message}`);
    this.name = 'EdgeError';
    this.code = code;
    this.field = field;
  }
}

/** A limit or agent policy failed validation; the message names the field. */
export class InvalidPolicyError extends EdgeError {
  constructor(field: string, message: string) {
    super('INVALID_POLICY', message, field);
    this.name = 'InvalidPolicyError';
  }
}

/** A cost passed to a check or refund is not a finite, non-negative number. */
export class InvalidCostError extends EdgeError {
  constructor(field: string, message: string) {
    super('INVALID_COST', message, field);
    this.name = 'InvalidCostError';
  }
}

/** Serialised bucket state (from a peer or a snapshot) is malformed or of an unknown version. */
export class InvalidStateError extends EdgeError {
  constructor(message: string) {
    super('INVALID_STATE', message);
    this.name = 'InvalidStateError';
  }
}

/** An agent id is empty, too long, holds control characters or is not well-formed Unicode. */
export class InvalidAgentIdError extends EdgeError {
  constructor(field: string, message: string) {
    super('INVALID_AGENT_ID', message, field);
    this.name = 'InvalidAgentIdError';
  }
}

/** A request named a limit the agent's policy does not have. */
export class UnknownLimitError extends EdgeError {
  constructor(field: string, message: string) {
    super('UNKNOWN_LIMIT', message, field);
    this.name = 'UnknownLimitError';
  }
}

/** Renders a value for an error message without dumping huge inputs. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) {
    return String(value);
  }
  return Array.isArray(value) ? 'an array' : `a ${typeof value}`;
}
