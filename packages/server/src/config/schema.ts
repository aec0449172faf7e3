import { z } from 'zod';

/**
 * The one schema of the service's YAML config; the TypeScript type is inferred from it.
 * Unknown keys are errors everywhere (a typo must not silently fall back to a default).
 * Field names are snake_case as users write them; docs/configuration.md documents each.
 */

const name = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,64}$/, "must be 1-64 letters, digits, '_', '.', ':' or '-'");

const amount = z.number().finite().positive().max(1e15);

/** One limit, as in `@openclaw-edge/core`'s LimitSpec. */
const limitSchema = z.strictObject({
  name,
  resource: name.optional(),
  capacity: amount,
  refill: amount,
  per: z.enum(['second', 'minute', 'hour', 'day']),
  mode: z.enum(['optimistic', 'shared']).optional(),
});

const limits = z.array(limitSchema).min(1).max(16);

/** An agent id or a glob (`*` any run of characters, `?` one character). */
const agentPattern = z.string().min(1).max(256);

/** Per-agent policy: an exact id or pattern, and a tier or its own limits (not both). */
const agentRule = z
  .strictObject({ match: agentPattern, tier: name.optional(), limits: limits.optional() })
  .refine((r) => (r.tier === undefined) !== (r.limits === undefined), {
    message: 'give exactly one of tier or limits',
  });

const scope = z.enum(['check', 'admin', 'metrics']);

/** An API key, stored as the SHA-256 of the secret (hex); the secret itself never is. */
const apiKey = z.strictObject({
  name,
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters (sha256 of the key)'),
  scopes: z.array(scope).min(1),
  /** Agent ids or patterns this key may act for; absent means any agent. */
  agents: z.array(agentPattern).min(1).optional(),
});

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      body_limit_bytes: z
        .number()
        .int()
        .min(1024)
        .max(16 * 1024 * 1024)
        .default(1024 * 1024),
      max_batch: z.number().int().min(1).max(10_000).default(1000),
    })
    .prefault({}),
  node_id: name.optional(),
  data_dir: z.string().min(1).default('.data'),
  snapshot: z
    .strictObject({
      enabled: z.boolean().default(true),
      interval_ms: z.number().int().min(100).max(3_600_000).default(5000),
    })
    .prefault({}),
  limits: limits.default([{ name: 'requests', capacity: 100, refill: 100, per: 'minute' }]),
  tiers: z.record(name, z.strictObject({ limits })).default({}),
  agents: z.array(agentRule).default([]),
  api_keys: z.array(apiKey).default([]),
  metrics: z
    .strictObject({
      /** Serve GET /metrics (scope `metrics`). */
      enabled: z.boolean().default(true),
      /** Agents with their own series; the rest are summed into agent_id="__other__". */
      top_agents: z.number().int().min(0).max(10_000).default(500),
      /** How often the top agents are chosen again. */
      rank_interval_ms: z.number().int().min(100).max(3_600_000).default(15_000),
    })
    .prefault({}),
  diagnostics: z
    .strictObject({
      otel: z
        .strictObject({
          /** Push metrics over OTLP/HTTP (JSON) as well as serving /metrics. */
          enabled: z.boolean().default(false),
          endpoint: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:4318/v1/metrics'),
          interval_ms: z.number().int().min(1000).max(3_600_000).default(15_000),
          /** Extra request headers, e.g. an authorization header for the collector. */
          headers: z.record(z.string().min(1), z.string()).default({}),
        })
        .prefault({}),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      format: z.enum(['json', 'pretty']).default('json'),
      /** One log line per request; failures (5xx) are logged regardless. */
      requests: z.boolean().default(false),
    })
    .prefault({}),
});

/** Validated configuration with every default filled in. */
export type Config = z.infer<typeof configSchema>;
/** One limit as written in the config. */
export type ConfigLimit = z.infer<typeof limitSchema>;
/** Scope an API key can hold. */
export type Scope = z.infer<typeof scope>;
