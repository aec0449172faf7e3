import { hasLoneSurrogate, validateAgentId } from '@openclaw-edge/core';
import type { Usage } from '@openclaw-edge/rating';

/**
 * Validation of one usage event, by hand rather than by the route schema: a batch is checked
 * item by item, so one bad event is rejected with its reason while the rest are recorded.
 */

/** A usage event that passed validation. */
export interface UsageEvent {
  readonly eventId: string;
  readonly agentId: string;
  readonly timeMs: number;
  readonly model: string;
  readonly usage: Usage;
  /** JSON text of the attributes, or null. */
  readonly attributes: string | null;
}

/** Why an item was refused: a stable code, the field and what to do. */
export interface ItemError {
  readonly code: 'INVALID_EVENT';
  readonly field: string;
  readonly detail: string;
}

const ID = /^[\x21-\x7E]{1,128}$/;
const MAX_TOKENS = 1e12;
const MAX_ATTRIBUTES_BYTES = 4096;
const KNOWN = new Set([
  'event_id',
  'agent_id',
  'time',
  'model',
  'input_tokens',
  'output_tokens',
  'cached_input_tokens',
  'cache_write_tokens',
  'reasoning_tokens',
  'requests',
  'attributes',
]);

const fail = (field: string, detail: string): ItemError => ({
  code: 'INVALID_EVENT',
  field,
  detail,
});

/** Parses an ISO 8601 instant (with offset) or epoch milliseconds. */
export function parseTime(value: unknown): number | undefined {
  if (typeof value === 'number')
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (
    typeof value !== 'string' ||
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(value)
  ) {
    return undefined;
  }
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

/** Reads a token count field: absent is `fallback`, otherwise a non-negative integer. */
function count(
  raw: Record<string, unknown>,
  key: string,
  fallback: number | undefined,
): number | ItemError {
  const v = raw[key];
  if (v === undefined && fallback !== undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TOKENS) {
    return fail(
      key,
      `must be an integer from 0 to ${MAX_TOKENS}${v === undefined ? ' (required)' : ''}`,
    );
  }
  return v;
}

/** Validates one event object; `prefix` is how the item is named in the field paths. */
export function parseUsageEvent(raw: unknown, prefix = ''): UsageEvent | ItemError {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return fail(prefix.replace(/\.$/, '') || '(event)', 'must be an object');
  }
  const o = raw as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) return fail(`${prefix}${key}`, `unknown field "${key}"`);
  }
  if (typeof o.event_id !== 'string' || !ID.test(o.event_id)) {
    return fail(
      `${prefix}event_id`,
      'must be 1-128 printable ASCII characters without spaces (required)',
    );
  }
  const agent = o.agent_id;
  try {
    validateAgentId(agent, `${prefix}agent_id`);
  } catch (error) {
    return fail(
      `${prefix}agent_id`,
      `${(error as Error).message.replace(/^[^:]*: /, '')} (required)`,
    );
  }
  const timeMs = parseTime(o.time);
  if (timeMs === undefined) {
    return fail(
      `${prefix}time`,
      'must be an ISO 8601 instant with offset or epoch milliseconds (required)',
    );
  }
  if (typeof o.model !== 'string' || o.model.length === 0 || o.model.length > 256) {
    return fail(`${prefix}model`, 'must be a string of 1-256 characters (required)');
  }
  // Stored as text: PostgreSQL refuses NUL and unpaired surrogates, which would fail the whole
  // batch the event is written with, so they are refused here, for this event alone.
  if (o.model.includes('\u0000') || hasLoneSurrogate(o.model)) {
    return fail(`${prefix}model`, 'must be well-formed Unicode without NUL characters');
  }
  const fields = [
    ['input_tokens', undefined],
    ['output_tokens', undefined],
    ['cached_input_tokens', 0],
    ['cache_write_tokens', 0],
    ['reasoning_tokens', 0],
    ['requests', 1],
  ] as const;
  const counts: number[] = [];
  for (const [key, fallback] of fields) {
    const c = count(o, key, fallback);
    if (typeof c !== 'number') return { ...c, field: `${prefix}${c.field}` };
    counts.push(c);
  }
  let attributes: string | null = null;
  if (o.attributes !== undefined) {
    const a = o.attributes;
    if (a === null || typeof a !== 'object' || Array.isArray(a)) {
      return fail(`${prefix}attributes`, 'must be an object of strings, numbers or booleans');
    }
    for (const [k, v] of Object.entries(a)) {
      if (!['string', 'number', 'boolean'].includes(typeof v)) {
        return fail(`${prefix}attributes.${k}`, 'must be a string, number or boolean');
      }
    }
    attributes = JSON.stringify(a);
    if (Buffer.byteLength(attributes) > MAX_ATTRIBUTES_BYTES) {
      return fail(`${prefix}attributes`, `must be at most ${MAX_ATTRIBUTES_BYTES} bytes as JSON`);
    }
  }
  const [
    inputTokens,
    outputTokens,
    cachedInputTokens,
    cacheWriteTokens,
    reasoningTokens,
    requests,
  ] = counts as [number, number, number, number, number, number];
  return {
    eventId: o.event_id,
    agentId: agent,
    timeMs,
    model: o.model,
    usage: {
      inputTokens,
      outputTokens,
      cachedInputTokens,
      cacheWriteTokens,
      reasoningTokens,
      requests,
    },
    attributes,
  };
}

/** True when parseUsageEvent refused the item. */
export function isItemError(v: UsageEvent | ItemError): v is ItemError {
  return (v as ItemError).code === 'INVALID_EVENT';
}
