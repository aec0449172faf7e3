import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';
import { MINUTE_OF_TIME_SQL } from './sqlite-minutes.js';

/**
 * The ledger's tables as Kysely types, and the migrations that create them. The events table is
 * the same on SQLite and PostgreSQL (only portable types: text, bigint, integer); integers come
 * back from PostgreSQL's bigint and sums as strings, so reads go through Number() in one place.
 * SQLite alone keeps per-minute totals in place of the events' per-agent index (002).
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

/**
 * SQLite only: an agent's usage per UTC minute, model and rule, kept by the writer in the
 * transaction that stores the events (see sqlite-minutes.ts). It replaces the events' per-agent
 * index, whose inserts dirtied one page per agent in every commit.
 */
export interface UsageMinutesTable {
  minute_ms: number;
  agent_id: string;
  model: string;
  rule: string;
  events: number;
  requests: number;
  input_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  total_tokens: number;
  cost_micros: number;
}

/** The database as Kysely sees it. */
export interface LedgerDatabase {
  usage_events: UsageEventsTable;
  usage_minutes: UsageMinutesTable;
}

const shared: Record<string, Migration> = {
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

/**
 * SQLite: per-minute totals instead of the per-agent index on the events. Every commit wrote one
 * index page per agent in it (a 1,300-event commit over 1,000 agents: about 1,350 WAL pages, 5.5
 * MB); the minute rows of the current minute sit together in a few pages, and their agent index
 * gains an entry only for an agent's first event in a minute. The events keep an index by time,
 * which answers the part of a range that does not cover whole minutes. Existing events are
 * totalled here, so an upgraded ledger answers as before.
 */
const sqliteOnly: Record<string, Migration> = {
  '002_sqlite_usage_minutes': {
    async up(db: Kysely<unknown>) {
      await sql`CREATE TABLE usage_minutes (
        minute_ms INTEGER NOT NULL,
        agent_id TEXT NOT NULL,
        model TEXT NOT NULL,
        rule TEXT NOT NULL,
        events INTEGER NOT NULL,
        requests INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        cached_input_tokens INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        reasoning_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        cost_micros INTEGER NOT NULL,
        PRIMARY KEY (minute_ms, agent_id, model, rule)
      ) WITHOUT ROWID`.execute(db);
      await sql`INSERT INTO usage_minutes
        SELECT ${sql.raw(MINUTE_OF_TIME_SQL)}, agent_id, model, rule, count(*),
          sum(requests), sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens),
          sum(output_tokens), sum(reasoning_tokens), sum(total_tokens), sum(cost_micros)
        FROM usage_events GROUP BY 1, 2, 3, 4`.execute(db);
      await sql`CREATE INDEX usage_minutes_agent ON usage_minutes (agent_id, minute_ms)`.execute(
        db,
      );
      await sql`CREATE INDEX usage_events_time ON usage_events (time_ms)`.execute(db);
      await sql`DROP INDEX usage_events_agent_time`.execute(db);
    },
    async down(db: Kysely<unknown>) {
      await sql`CREATE INDEX usage_events_agent_time ON usage_events (agent_id, time_ms)`.execute(
        db,
      );
      await sql`DROP INDEX usage_events_time`.execute(db);
      await sql`DROP TABLE usage_minutes`.execute(db);
    },
  },
};

/** The migrations of a driver, in order, for Kysely's Migrator. */
export function migrationProvider(driver: 'sqlite' | 'postgres'): MigrationProvider {
  const migrations = driver === 'sqlite' ? { ...shared, ...sqliteOnly } : shared;
  return { getMigrations: async () => migrations };
}
