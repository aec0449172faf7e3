/**
 * JSON Schemas of the API. Fastify validates requests with them (unknown fields rejected, no
 * coercion) and /v1/openapi.json is assembled from the same objects, so the two cannot drift.
 */

/** Ajv options of every route (with Fastify's own compiler): strict, no coercion. */
export const AJV_OPTIONS = {
  removeAdditional: false,
  coerceTypes: false,
  useDefaults: false,
  allErrors: false,
} as const;

const resourceName = { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' } as const;
const amount = { type: 'number', minimum: 0, maximum: 1e15 } as const;

/** Agent ids: 1-256 characters, any script, no control characters. */
export const agentId = {
  type: 'string',
  minLength: 1,
  maxLength: 256,
  pattern: '^[^\\u0000-\\u001F\\u007F]+$',
  description: 'Agent id: 1-256 characters, no control characters.',
} as const;

export const cost = {
  description:
    'A number charges every checked limit that amount; an object charges each limit by its resource ({"requests": 1, "tokens": 850}). Default 1.',
  anyOf: [
    amount,
    {
      type: 'object',
      propertyNames: resourceName,
      additionalProperties: amount,
      maxProperties: 16,
    },
  ],
} as const;

export const limitNames = {
  type: 'array',
  items: resourceName,
  minItems: 1,
  maxItems: 16,
  uniqueItems: true,
  description: 'Only check these limits of the agent (default: all).',
} as const;

export const checkRequest = {
  type: 'object',
  required: ['agent_id'],
  additionalProperties: false,
  properties: { agent_id: agentId, cost, limits: limitNames },
} as const;

export const batchRequest = (maxBatch: number) =>
  ({
    type: 'object',
    required: ['checks'],
    additionalProperties: false,
    properties: {
      checks: { type: 'array', minItems: 1, maxItems: maxBatch, items: checkRequest },
    },
  }) as const;

export const refundRequest = {
  type: 'object',
  required: ['agent_id', 'cost'],
  additionalProperties: false,
  properties: { agent_id: agentId, cost, limits: limitNames },
} as const;

const limitSpec = {
  type: 'object',
  required: ['name', 'capacity', 'refill', 'per'],
  additionalProperties: false,
  properties: {
    name: resourceName,
    resource: resourceName,
    capacity: { type: 'number', exclusiveMinimum: 0, maximum: 1e15 },
    refill: { type: 'number', exclusiveMinimum: 0, maximum: 1e15 },
    per: { enum: ['second', 'minute', 'hour', 'day'] },
    mode: { enum: ['optimistic', 'shared'] },
  },
} as const;

export const policyRequest = {
  type: 'object',
  additionalProperties: false,
  description: 'Either a tier defined in config, or limits of its own.',
  properties: {
    tier: resourceName,
    limits: { type: 'array', minItems: 1, maxItems: 16, items: limitSpec },
  },
  oneOf: [{ required: ['tier'] }, { required: ['limits'] }],
} as const;

export const agentParams = {
  type: 'object',
  required: ['agent_id'],
  additionalProperties: false,
  properties: { agent_id: agentId },
} as const;

const limitState = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    resource: { type: 'string' },
    capacity: { type: 'number' },
    remaining: { type: 'number', description: 'Whole tokens left (never negative).' },
    reset_ms: { type: 'number', description: 'Milliseconds until the bucket is full again.' },
    refill_per_second: { type: 'number' },
  },
} as const;

export const decisionResponse = {
  type: 'object',
  properties: {
    agent_id: { type: 'string' },
    allowed: { type: 'boolean' },
    retry_after_ms: {
      type: 'number',
      description: 'Milliseconds until the same check could pass; 0 when allowed.',
    },
    limit: {
      type: 'string',
      description: 'The limit that denied, or the one closest to exhaustion.',
    },
    limits: { type: 'array', items: limitState },
  },
} as const;

export const agentResponse = {
  type: 'object',
  properties: {
    agent_id: { type: 'string' },
    tracked: { type: 'boolean' },
    override: { type: 'boolean' },
    limits: { type: 'array', items: limitState },
  },
} as const;

/** Members of every RFC 9457 problem document. */
const problemProperties = {
  type: { type: 'string' },
  title: { type: 'string' },
  status: { type: 'number' },
  code: { type: 'string' },
  detail: { type: 'string' },
} as const;

/** A denied check: problem details carrying the decision (status 429, or 422 when it never fits). */
export const denialResponse = {
  type: 'object',
  description:
    'RFC 9457 problem details (code RATE_LIMITED or COST_EXCEEDS_CAPACITY) with the decision.',
  properties: {
    ...problemProperties,
    ...decisionResponse.properties,
    retry_after_ms: { type: ['number', 'null'], description: 'null when the cost can never fit.' },
  },
} as const;
