/**
 * JSON Schemas of the rating routes. Usage items are checked one by one in code (a bad item is
 * rejected with its reason, the rest recorded), so the /v1/usage schema checks only the envelope.
 */
import { agentId } from './schemas.js';

const tokens = { type: 'integer', minimum: 0, maximum: 1e12 } as const;
const id = { type: 'string', pattern: '^[\\x21-\\x7E]{1,128}$' } as const;
const time = {
  description: 'ISO 8601 instant with offset, or epoch milliseconds. Default: now.',
  anyOf: [
    { type: 'string', maxLength: 64 },
    { type: 'integer', minimum: 0 },
  ],
} as const;
const attributes = {
  type: 'object',
  additionalProperties: { anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] },
  maxProperties: 32,
} as const;

const usageFields = {
  input_tokens: tokens,
  output_tokens: tokens,
  cached_input_tokens: tokens,
  cache_write_tokens: tokens,
  reasoning_tokens: tokens,
  requests: { type: 'integer', minimum: 0, maximum: 1e9 },
} as const;

export const usageRequest = (maxBatch: number) =>
  ({
    type: 'object',
    description:
      'One usage event {event_id, agent_id, time, model, input_tokens, output_tokens, cached_input_tokens?, cache_write_tokens?, reasoning_tokens?, requests?, attributes?}, or {"events": [...]} with up to max_batch of them.',
    properties: {
      events: { type: 'array', minItems: 1, maxItems: maxBatch },
    },
  }) as const;

export const rateRequest = {
  type: 'object',
  required: ['agent_id', 'model'],
  additionalProperties: false,
  properties: {
    event_id: {
      ...id,
      description: 'Required unless dry_run: the ledger records the request under it.',
    },
    agent_id: agentId,
    model: { type: 'string', minLength: 1, maxLength: 256 },
    time,
    ...usageFields,
    attributes,
    dry_run: { type: 'boolean', description: 'Price and check only; charge and record nothing.' },
  },
} as const;

export const reserveRequest = {
  type: 'object',
  required: ['agent_id', 'model'],
  additionalProperties: false,
  properties: {
    reservation_id: {
      ...id,
      description: 'Optional; repeating a create with it returns the same reservation.',
    },
    agent_id: agentId,
    model: { type: 'string', minLength: 1, maxLength: 256 },
    input_tokens: tokens,
    prompt_chars: {
      type: 'integer',
      minimum: 0,
      maximum: 4e12,
      description: 'Estimated at 4 characters a token when input_tokens is absent.',
    },
    max_tokens: tokens,
    cached_input_tokens: tokens,
    cost_micros: {
      type: 'integer',
      minimum: 0,
      maximum: 1e15,
      description: 'Explicit estimate instead of pricing the tokens.',
    },
    ttl_ms: { type: 'integer', minimum: 1000, maximum: 86_400_000 },
  },
} as const;

export const settleRequest = {
  type: 'object',
  required: ['input_tokens', 'output_tokens'],
  additionalProperties: false,
  properties: {
    event_id: { ...id, description: 'Ledger id of the usage; default rsv-<reservation_id>.' },
    time,
    ...usageFields,
    attributes,
  },
} as const;

export const reservationParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id },
} as const;

export const usageQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    from: {
      type: 'string',
      maxLength: 64,
      description: 'Start (inclusive), ISO 8601 or epoch ms. Default: 30 days before `to`.',
    },
    to: { type: 'string', maxLength: 64, description: 'End (exclusive). Default: now.' },
    group_by: {
      enum: ['model', 'hour', 'day'],
      description: 'Default model. day is a day in budgets.time_zone.',
    },
  },
} as const;
