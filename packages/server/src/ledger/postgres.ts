import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { KyselyLedgerStore } from './kysely-store.js';
import type { LedgerDatabase } from './tables.js';

/**
 * The fleet ledger: PostgreSQL through `pg`'s pool. Tables live in `schema` (created if
 * missing; every connection's search_path points at it), so several services or test runs can
 * share one database. A commit is durable under PostgreSQL's own settings (synchronous_commit).
 */
export async function openPostgresLedger(
  url: string,
  schema: string,
  poolSize = 4,
): Promise<KyselyLedgerStore> {
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
  return new KyselyLedgerStore('postgres', db, async () => {}, schema);
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
