import { Kysely, PostgresDialect, sql, type Transaction } from 'kysely';
import pg from 'pg';
import { KyselyLedgerStore } from './kysely-store.js';
import type { LedgerRow } from './ledger-store.js';
import type { LedgerDatabase } from './tables.js';

/**
 * The PostgreSQL ledger. A batch's rows go to the server as ONE parameter, a JSON array of the
 * rows, expanded by `json_to_recordset`: Kysely's multi-row VALUES took 17 parameters per row
 * and about a quarter of the server's CPU building and compiling them (profile of 64
 * connections × 100 events). The keys are LedgerRow's own, so the rows are serialised as they are.
 */
export class PostgresLedgerStore extends KyselyLedgerStore {
  /** One statement per batch: the whole batch is one parameter. */
  protected override readonly insertChunk = 100_000;

  /** Commits overlap: one batch per pooled connection. */
  constructor(
    db: Kysely<LedgerDatabase>,
    schema: string,
    override readonly appendConcurrency: number,
  ) {
    super('postgres', db, async () => {}, schema);
  }

  protected override async insertNew(
    trx: Transaction<LedgerDatabase>,
    rows: readonly LedgerRow[],
  ): Promise<string[]> {
    // One row back instead of one per event: the count of rows inserted, and their ids only when
    // some were not (replays), which is rare.
    const { rows: done } = await sql<{ n: number; ids: string[] | null }>`
      WITH inserted AS (INSERT INTO usage_events (event_id, agent_id, time_ms, model, rule, currency, input_tokens,
        cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, requests,
        total_tokens, cost_micros, rating, attributes, recorded_ms)
      SELECT "eventId", "agentId", "timeMs", model, rule, currency, "inputTokens",
        "cachedInputTokens", "cacheWriteTokens", "outputTokens", "reasoningTokens", requests,
        "totalTokens", "costMicros", rating, attributes, "recordedMs"
      FROM json_to_recordset(${JSON.stringify(rows)}::json) AS r("eventId" text, "agentId" text,
        "timeMs" bigint, model text, rule text, currency text, "inputTokens" bigint,
        "cachedInputTokens" bigint, "cacheWriteTokens" bigint, "outputTokens" bigint,
        "reasoningTokens" bigint, requests bigint, "totalTokens" bigint, "costMicros" bigint,
        rating text, attributes text, "recordedMs" bigint)
      ON CONFLICT (event_id) DO NOTHING
      RETURNING event_id)
      SELECT count(*)::int AS n,
        CASE WHEN count(*) < ${rows.length} THEN array_agg(event_id) END AS ids
      FROM inserted`.execute(trx);
    const result = done[0];
    if (result?.n === rows.length) return rows.map((r) => r.eventId);
    return result?.ids ?? [];
  }
}

/**
 * The fleet ledger: PostgreSQL through `pg`'s pool. Tables live in `schema` (created if
 * missing; every connection's search_path points at it), so several services or test runs can
 * share one database. A commit is durable under PostgreSQL's own settings (synchronous_commit).
 */
export async function openPostgresLedger(
  url: string,
  schema: string,
  poolSize = 4,
): Promise<PostgresLedgerStore> {
  // Create the schema first with a throwaway connection (search_path must name an existing one).
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    await admin.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
  } finally {
    await admin.end();
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    options: `-c search_path=${quoteIdent(schema)}`,
  });
  const db = new Kysely<LedgerDatabase>({ dialect: new PostgresDialect({ pool }) });
  await sql`select 1`.execute(db);
  return new PostgresLedgerStore(db, schema, poolSize);
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
