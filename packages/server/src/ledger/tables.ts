import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';

/**
 * The ledger's tables as Kysely types, and the migrations that create them on SQLite and
 * PostgreSQL alike (only portable types: text, bigint, integer). Integers come back from
 * PostgreSQL's bigint and sums as strings, so reads go through Number() in one place.
 */

export interface UsageEventsTable {
  event_id: string;
  agent_id: string;
  time_ms: number;
  model: string;
  rule: string;
  currency: string;
  input_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  requests: number;
  total_tokens: number;
  cost_micros: number;
  rating: string;
  attributes: string | null;
  recorded_ms: number;
}

/** The database as Kysely sees it. */
export interface LedgerDatabase {
  usage_events: UsageEventsTable;
}

const migrations: Record<string, Migration> = {
  '001_usage_events': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('usage_events')
        .addColumn('event_id', 'text', (c) => c.primaryKey())
        .addColumn('agent_id', 'text', (c) => c.notNull())
        .addColumn('time_ms', 'bigint', (c) => c.notNull())
        .addColumn('model', 'text', (c) => c.notNull())
        .addColumn('rule', 'text', (c) => c.notNull())
        .addColumn('currency', 'text', (c) => c.notNull())
        .addColumn('input_tokens', 'bigint', (c) => c.notNull())
        .addColumn('cached_input_tokens', 'bigint', (c) => c.notNull())
        .addColumn('cache_write_tokens', 'bigint', (c) => c.notNull())
        .addColumn('output_tokens', 'bigint', (c) => c.notNull())
        .addColumn('reasoning_tokens', 'bigint', (c) => c.notNull())
        .addColumn('requests', 'bigint', (c) => c.notNull())
        .addColumn('total_tokens', 'bigint', (c) => c.notNull())
        .addColumn('cost_micros', 'bigint', (c) => c.notNull())
        .addColumn('rating', 'text', (c) => c.notNull())
        .addColumn('attributes', 'text')
        .addColumn('recorded_ms', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('usage_events_agent_time')
        .on('usage_events')
        .columns(['agent_id', 'time_ms'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await sql`drop table usage_events`.execute(db);
    },
  },
};

/** The migrations, in order, for Kysely's Migrator. */
export const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};
