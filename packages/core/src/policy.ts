import { describeValue, InvalidPolicyError } from './errors.js';

/** Unit of time a refill amount is given per. */
export type RefillPeriod = 'second' | 'minute' | 'hour' | 'day';

/** Milliseconds in each refill period. */
export const PERIOD_MS: Readonly<Record<RefillPeriod, number>> = {
  second: 1_000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/**
 * How a replica spends what it sees as available (DESIGN §3). `optimistic` spends all of it;
 * `shared` (implemented by the replication layer) spends at most its share of it.
 */
export type AdmissionMode = 'optimistic' | 'shared';

/** A limit as a user writes it (config file, API). Validated by {@link defineLimit}. */
export interface LimitSpec {
  /** Name, unique within an agent's policy: `requests_per_minute`, `tokens_per_day`. */
  readonly name: string;
  /** What a check's cost is counted in for this limit: `requests`, `tokens`, `cost_micros`. */
  readonly resource?: string;
  /** Burst size: the most tokens the bucket holds. */
  readonly capacity: number;
  /** Tokens added back per `per`. */
  readonly refill: number;
  /** Period the refill amount is given per. */
  readonly per: RefillPeriod;
  /** Admission mode; defaults to `shared`. */
  readonly mode?: AdmissionMode;
}

/** A validated limit: capacity and refill rate normalised to tokens per millisecond. */
export interface Limit {
  readonly name: string;
  readonly resource: string;
  readonly capacityTokens: number;
  /** Refill rate in tokens per millisecond (time on the hot path is in ms). */
  readonly refillPerMs: number;
  readonly mode: AdmissionMode;
  /**
   * Fingerprint of what the bucket's counters mean (capacity, refill rate, resource): a bucket
   * records the fingerprint of the parameters it counts under, so every replica and every restart
   * agrees whether a policy change still has to be applied to it (docs/crdt.md).
   */
  readonly fingerprint: number;
}

/** Every limit an agent is held to, checked together. */
export interface AgentPolicy {
  readonly limits: readonly Limit[];
}

/** Largest capacity or refill amount accepted: beyond it double arithmetic loses whole tokens. */
export const MAX_TOKENS = 1e15;
/** Most limits one agent may carry; checks touch every one, so keep it small. */
export const MAX_LIMITS_PER_AGENT = 16;

const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
const MODES: readonly AdmissionMode[] = ['optimistic', 'shared'];

/** Validates a limit spec and normalises it. Throws {@link InvalidPolicyError} naming the field. */
export function defineLimit(spec: LimitSpec, field = 'limit'): Limit {
  if (spec === null || typeof spec !== 'object') {
    throw new InvalidPolicyError(field, `must be an object (got ${describeValue(spec)})`);
  }
  if (typeof spec.name !== 'string' || !NAME_PATTERN.test(spec.name)) {
    throw new InvalidPolicyError(
      `${field}.name`,
      `must be 1-64 characters of letters, digits, '_', '.', ':' or '-' (got ${describeValue(spec.name)})`,
    );
  }
  const resource = spec.resource ?? 'requests';
  if (typeof resource !== 'string' || !NAME_PATTERN.test(resource)) {
    throw new InvalidPolicyError(
      `${field}.resource`,
      `must be 1-64 characters of letters, digits, '_', '.', ':' or '-' (got ${describeValue(resource)})`,
    );
  }
  checkAmount(spec.capacity, `${field}.capacity`);
  checkAmount(spec.refill, `${field}.refill`);
  if (!Object.hasOwn(PERIOD_MS, spec.per)) {
    throw new InvalidPolicyError(
      `${field}.per`,
      `must be one of second, minute, hour, day (got ${describeValue(spec.per)})`,
    );
  }
  const mode = spec.mode ?? 'shared';
  if (!MODES.includes(mode)) {
    throw new InvalidPolicyError(
      `${field}.mode`,
      `must be optimistic or shared (got ${describeValue(mode)})`,
    );
  }
  const refillPerMs = spec.refill / PERIOD_MS[spec.per];
  return {
    name: spec.name,
    resource,
    capacityTokens: spec.capacity,
    refillPerMs,
    mode,
    fingerprint: limitFingerprint(spec.capacity, refillPerMs, resource),
  };
}

/** 32-bit FNV-1a over the parameters that give bucket counters their meaning. */
export function limitFingerprint(
  capacityTokens: number,
  refillPerMs: number,
  resource: string,
): number {
  const text = `${capacityTokens}|${refillPerMs}|${resource}`;
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Validates a whole policy: at least one limit, at most {@link MAX_LIMITS_PER_AGENT}, unique names. */
export function definePolicy(specs: readonly LimitSpec[], field = 'limits'): AgentPolicy {
  if (!Array.isArray(specs)) {
    throw new InvalidPolicyError(field, `must be a list of limits (got ${describeValue(specs)})`);
  }
  if (specs.length === 0 || specs.length > MAX_LIMITS_PER_AGENT) {
    throw new InvalidPolicyError(
      field,
      `must hold between 1 and ${MAX_LIMITS_PER_AGENT} limits (got ${specs.length})`,
    );
  }
  const seen = new Set<string>();
  const limits = specs.map((spec, i) => {
    const limit = defineLimit(spec, `${field}[${i}]`);
    if (seen.has(limit.name)) {
      throw new InvalidPolicyError(
        `${field}[${i}].name`,
        `duplicates another limit's name "${limit.name}"`,
      );
    }
    seen.add(limit.name);
    return limit;
  });
  return { limits };
}

function checkAmount(value: unknown, field: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new InvalidPolicyError(field, `must be a finite number (got ${describeValue(value)})`);
  }
  if (value <= 0) {
    throw new InvalidPolicyError(field, `must be greater than 0 (got ${value})`);
  }
  if (value > MAX_TOKENS) {
    throw new InvalidPolicyError(field, `must be at most ${MAX_TOKENS} (got ${value})`);
  }
}
