import { isValidTimeZone, parseMicros } from '@openclaw-edge/rating';
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

/** A money amount in currency units, written as decimal text ("2.50") or a plain number. */
const money = z.union([z.string(), z.number()]).superRefine((v, ctx) => {
  const parsed = parseMicros(v);
  if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
});

const priceFields = {
  input: money.optional(),
  cached_input: money.optional(),
  cache_write: money.optional(),
  output: money.optional(),
  reasoning: money.optional(),
  request: money.optional(),
};
const tokenCount = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const ruleFields = {
  ...priceFields,
  long_context: z.strictObject({ above_input_tokens: tokenCount, ...priceFields }).optional(),
  tiers: z
    .array(z.strictObject({ from_monthly_tokens: tokenCount, ...priceFields }))
    .max(32)
    .optional(),
};
const modelRule = z.strictObject({ match: z.string().min(1).max(256), ...ruleFields });

/** Price book: one currency, versions with effective dates (see docs/rating.md). */
const pricingSchema = z.strictObject({
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code such as USD'),
  versions: z
    .array(
      z.strictObject({
        effective_from: z.iso.datetime({ offset: true }),
        models: z.array(modelRule).max(1000).default([]),
        default: z.strictObject(ruleFields).optional(),
      }),
    )
    .min(1),
});

const budget = z
  .strictObject({
    name,
    amount: money,
    /** Calendar window in budgets.time_zone. */
    window: z.enum(['day', 'week', 'month']).optional(),
    /** Rolling token bucket of money: `amount` per this period. */
    per: z.enum(['hour', 'day', 'month']).optional(),
    on_error: z.enum(['deny', 'allow']),
  })
  .refine((b) => (b.window === undefined) !== (b.per === undefined), {
    message: 'give exactly one of window (calendar) or per (rolling)',
  });
const budgetList = z.array(budget).max(8);

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
  pricing: pricingSchema.optional(),
  budgets: z
    .strictObject({
      /** IANA zone the calendar windows (day, week, month) align to. */
      time_zone: z
        .string()
        .refine(isValidTimeZone, 'must be an IANA time zone such as Europe/Berlin')
        .default('UTC'),
      /** Fractions of a budget whose crossing is counted (for alerts). */
      thresholds: z.array(z.number().gt(0).max(10)).max(8).default([0.8, 1]),
      default: budgetList.default([]),
      agents: z.array(z.strictObject({ match: agentPattern, budgets: budgetList })).default([]),
    })
    .prefault({}),
  ledger: z
    .strictObject({
      driver: z.enum(['sqlite', 'postgres']).default('sqlite'),
      /** PostgreSQL URL; DATABASE_URL sets it. */
      url: z.string().min(1).optional(),
      /** PostgreSQL schema holding the tables (created if missing). */
      schema: name.default('openclaw_edge'),
      /** Longest wait from the first event of a batch to its commit. */
      group_commit_ms: z.number().int().min(0).max(1000).default(2),
      max_batch_events: z.number().int().min(1).max(10_000).default(2000),
      sqlite_synchronous: z.enum(['full', 'normal']).default('full'),
      pool_size: z.number().int().min(1).max(64).default(4),
    })
    .prefault({}),
  usage: z
    .strictObject({
      /** Events stamped further in the future than this are rejected. */
      max_future_ms: z.number().int().min(0).max(86_400_000).default(300_000),
      /** Reject events of agents no `agents` rule (nor override) names. */
      unknown_agents: z.enum(['accept', 'reject']).default('accept'),
      reservation_ttl_ms: z.number().int().min(1000).max(86_400_000).default(300_000),
    })
    .prefault({}),
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
  replication: z
    .strictObject({
      /** How replicas reach each other; `none`: a lone replica (docs/replication.md). */
      transport: z.enum(['none', 'mesh', 'redis']).default('none'),
      /** Shared secret signing every frame (OPENCLAW_EDGE_REPLICATION_SECRET). */
      secret: z.string().min(16, 'must be at least 16 characters').optional(),
      /** Deltas go out every this many ms, on a grid shared by every replica. */
      sync_interval_ms: z.number().int().min(10).max(10_000).default(100),
      /** One anti-entropy round with one peer (round robin) every this many ms. */
      anti_entropy_interval_ms: z.number().int().min(100).max(3_600_000).default(2000),
      /** At start, wait at most this long for peers' state before taking traffic. */
      startup_sync_ms: z.number().int().min(0).max(600_000).default(5000),
      /** Largest frame accepted from a peer. */
      max_message_bytes: z
        .number()
        .int()
        .min(64 * 1024)
        .max(256 * 1024 * 1024)
        .default(16 * 1024 * 1024),
      mesh: z
        .strictObject({
          host: z.string().min(1).default('127.0.0.1'),
          port: z.number().int().min(0).max(65535).default(7946),
          /** `host:port` of every replica (this one may be listed too). */
          peers: z
            .array(
              z
                .string()
                .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}$/, 'must be host:port'),
            )
            .default([]),
          /** A name whose addresses are the replicas (a Kubernetes headless Service). */
          dns: z
            .strictObject({
              name: z.string().min(1),
              port: z.number().int().min(1).max(65535).default(7946),
              interval_ms: z.number().int().min(1000).max(3_600_000).default(10_000),
              /** DNS servers (`ip` or `ip:port`); default the system's. */
              servers: z.array(z.string().min(1)).min(1).optional(),
            })
            .optional(),
          timeout_ms: z.number().int().min(100).max(60_000).default(2000),
        })
        .prefault({}),
      redis: z
        .strictObject({
          /** REDIS_URL sets it; with `cluster`, any node of the cluster. */
          url: z.string().min(1).default('redis://127.0.0.1:6379'),
          /** A Redis Cluster: agent keys spread over its masters by hash slot. */
          cluster: z.boolean().default(false),
          /** Prefix of every key and channel. */
          prefix: name.default('openclaw-edge'),
          /** A replica whose presence is older than this has left the fleet. */
          member_ttl_ms: z.number().int().min(1000).max(3_600_000).default(30_000),
          /** Per Redis command, and for the first connection at start. */
          timeout_ms: z.number().int().min(100).max(60_000).default(2000),
          /** Anti-entropy reads the whole state in Redis at most this often (a full SCAN). */
          full_scan_interval_ms: z.number().int().min(1000).max(86_400_000).default(300_000),
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
/** One budget as written in the config. */
export type ConfigBudget = z.infer<typeof budget>;
