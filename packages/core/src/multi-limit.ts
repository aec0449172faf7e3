import { type BucketState, tryConsume } from './bucket.js';
import { describeValue, InvalidCostError } from './errors.js';
import type { Limit } from './policy.js';

/**
 * What a check costs: a plain number charges every limit that amount; a record charges each
 * limit by its resource (`{requests: 1, tokens: 850}`), and a limit whose resource is absent
 * is not charged (but still has to be non-negative to pass).
 */
export type Cost = number | Readonly<Record<string, number>>;

/** Validates a cost; throws {@link InvalidCostError} naming the offending field. */
export function validateCost(cost: Cost, field = 'cost'): void {
  if (typeof cost === 'number') {
    checkAmount(cost, field);
    return;
  }
  if (cost === null || typeof cost !== 'object' || Array.isArray(cost)) {
    throw new InvalidCostError(
      field,
      `must be a number or an object of numbers (got ${describeValue(cost)})`,
    );
  }
  for (const key of Object.keys(cost)) checkAmount(cost[key], `${field}.${key}`);
}

/** The share of `cost` that falls on `limit`. Assumes the cost was validated. */
export function costFor(limit: Limit, cost: Cost): number {
  if (typeof cost === 'number') return cost;
  return Object.hasOwn(cost, limit.resource) ? (cost[limit.resource] as number) : 0;
}

/** Result of checking several limits as one. */
export type MultiConsumeResult =
  | { readonly allowed: true; readonly states: readonly BucketState[] }
  | {
      readonly allowed: false;
      /** Index of the limit that waits longest; the denial's Retry-After comes from it. */
      readonly limitIndex: number;
      readonly retryAfterMs: number;
    };

/**
 * Checks every limit and charges all of them, or none: if any limit lacks the tokens, the
 * states are returned untouched. `retryAfterMs` is the longest wait among the denying limits.
 */
export function tryConsumeAll(
  states: readonly BucketState[],
  limits: readonly Limit[],
  slot: string,
  cost: Cost,
  nowMs: number,
): MultiConsumeResult {
  const next: BucketState[] = [];
  let denied = -1;
  let retryAfterMs = 0;
  for (let i = 0; i < limits.length; i++) {
    const limit = limits[i] as Limit;
    const result = tryConsume(states[i] as BucketState, limit, slot, costFor(limit, cost), nowMs);
    if (result.allowed) {
      next.push(result.state);
    } else if (denied < 0 || result.retryAfterMs > retryAfterMs) {
      denied = i;
      retryAfterMs = result.retryAfterMs;
    }
  }
  if (denied >= 0) return { allowed: false, limitIndex: denied, retryAfterMs };
  return { allowed: true, states: next };
}

/** Largest single cost accepted; beyond it double arithmetic loses whole tokens. */
export const MAX_COST = 1e15;

function checkAmount(value: unknown, field: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidCostError(field, `must be a finite number >= 0 (got ${describeValue(value)})`);
  }
  if (value > MAX_COST) {
    throw new InvalidCostError(field, `must be at most ${MAX_COST} (got ${value})`);
  }
}
