import { type Kysely, Migrator, sql, type Transaction } from 'kysely';
import type { AppendOutcome, LedgerRow, LedgerStore, UsageTotals } from './ledger-store.js';
import { type LedgerDatabase, migrationProvider, type UsageEventsTable } from './tables.js';

/** Rows per INSERT statement: 17 columns × 500 stays under both databases' parameter limits. */
const INSERT_CHUNK = 500;
const HOUR_MS = 3_600_000;

/**
 * The ledger on any Kysely dialect. The SQL is portable (ON CONFLICT DO NOTHING RETURNING works
 * on SQLite ≥ 3.35 and PostgreSQL); the dialect files only open the connection.
 */
export class KyselyLedgerStore implements LedgerStore {
  /** Rows per INSERT statement in `append`. */
  protected readonly insertChunk: number = INSERT_CHUNK;
  readonly appendConcurrency: number = 1;

  constructor(
    readonly driver: 'sqlite' | 'postgres',
    protected readonly db: Kysely<LedgerDatabase>,
    private readonly onClose: () => Promise<void> = async () => {},
    private readonly migrationSchema?: string,
  ) {}

  async migrate(starting?: (pending: readonly string[]) => void): Promise<void> {
    const migrator = new Migrator({
      db: this.db,
      provider: migrationProvider(this.driver),
      ...(this.migrationSchema === undefined ? {} : { migrationTableSchema: this.migrationSchema }),
    });
    if (starting !== undefined) {
      const all = await migrator.getMigrations();
      const pending = all.filter((m) => m.executedAt === undefined);
      // A ledger being created is quick; only an upgrade of existing tables is announced.
      if (pending.length > 0 && pending.length < all.length) starting(pending.map((m) => m.name));
    }
    const { error } = await migrator.migrateToLatest();
    if (error !== undefined) throw error;
  }

  async append(rows: readonly LedgerRow[]): Promise<AppendOutcome[]> {
    return appendOnce(rows, async (unique) => {
      // One order for every batch: concurrent batches that share ids then wait on each other
      // instead of deadlocking.
      unique.sort((a, b) => (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
      const stored = new Map<string, LedgerRow>();
      await this.db.transaction().execute(async (trx) => {
        const inserted = new Set<string>();
        for (let i = 0; i < unique.length; i += this.insertChunk) {
          const chunk = unique.slice(i, i + this.insertChunk);
          for (const id of await this.insertNew(trx, chunk)) inserted.add(id);
        }
        const existing = unique.filter((r) => !inserted.has(r.eventId)).map((r) => r.eventId);
        for (let i = 0; i < existing.length; i += INSERT_CHUNK) {
          const found = await trx
            .selectFrom('usage_events')
            .selectAll()
            .where('event_id', 'in', existing.slice(i, i + INSERT_CHUNK))
            .execute();
          for (const r of found) stored.set(r.event_id, fromColumns(r));
        }
      });
      return stored;
    });
  }

  /** Inserts rows whose id is not stored yet; returns the ids it inserted. */
  protected async insertNew(
    trx: Transaction<LedgerDatabase>,
    rows: readonly LedgerRow[],
  ): Promise<string[]> {
    const done = await trx
      .insertInto('usage_events')
      .values(rows.map(toColumns))
      .onConflict((oc) => oc.column('event_id').doNothing())
      .returning('event_id')
      .execute();
    return done.map((r) => r.event_id);
  }

  async spent(agentId: string, fromMs: number, toMs: number): Promise<number> {
    return (await this.spentByAgent([agentId], fromMs, toMs)).get(agentId) ?? 0;
  }

  async spentByAgent(
    agentIds: readonly string[],
    fromMs: number,
    toMs: number,
  ): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (let i = 0; i < agentIds.length; i += INSERT_CHUNK) {
      const rows = await this.db
        .selectFrom('usage_events')
        .select((eb) => ['agent_id', eb.fn.sum<string | number>('cost_micros').as('total')])
        .where('agent_id', 'in', agentIds.slice(i, i + INSERT_CHUNK))
        .where('time_ms', '>=', fromMs)
        .where('time_ms', '<', toMs)
        .groupBy('agent_id')
        .execute();
      for (const r of rows) out.set(r.agent_id, Number(r.total));
    }
    return out;
  }

  async volume(agentId: string, rule: string, fromMs: number, toMs: number): Promise<number> {
    const r = await this.db
      .selectFrom('usage_events')
      .select((eb) => eb.fn.sum<string | number | null>('total_tokens').as('total'))
      .where('agent_id', '=', agentId)
      .where('rule', '=', rule)
      .where('time_ms', '>=', fromMs)
      .where('time_ms', '<', toMs)
      .executeTakeFirst();
    return Number(r?.total ?? 0);
  }

  async usage(
    agentId: string,
    fromMs: number,
    toMs: number,
    groupBy: 'model' | 'hour',
  ): Promise<UsageTotals[]> {
    const key =
      groupBy === 'model'
        ? sql<string | number>`model`
        : sql<string | number>`(time_ms - (time_ms % ${sql.lit(HOUR_MS)}))`;
    const rows = await this.db
      .selectFrom('usage_events')
      .select((eb) => [
        key.as('key'),
        eb.fn.countAll<string | number>().as('events'),
        eb.fn.sum<string | number>('requests').as('requests'),
        eb.fn.sum<string | number>('input_tokens').as('input_tokens'),
        eb.fn.sum<string | number>('cached_input_tokens').as('cached_input_tokens'),
        eb.fn.sum<string | number>('cache_write_tokens').as('cache_write_tokens'),
        eb.fn.sum<string | number>('output_tokens').as('output_tokens'),
        eb.fn.sum<string | number>('reasoning_tokens').as('reasoning_tokens'),
        eb.fn.sum<string | number>('cost_micros').as('cost_micros'),
      ])
      .where('agent_id', '=', agentId)
      .where('time_ms', '>=', fromMs)
      .where('time_ms', '<', toMs)
      .groupBy(key)
      .orderBy(key)
      .execute();
    return rows.map((r) => ({
      key: groupBy === 'model' ? String(r.key) : Number(r.key),
      events: Number(r.events),
      requests: Number(r.requests),
      inputTokens: Number(r.input_tokens),
      cachedInputTokens: Number(r.cached_input_tokens),
      cacheWriteTokens: Number(r.cache_write_tokens),
      outputTokens: Number(r.output_tokens),
      reasoningTokens: Number(r.reasoning_tokens),
      costMicros: Number(r.cost_micros),
    }));
  }

  async get(eventIds: readonly string[]): Promise<LedgerRow[]> {
    if (eventIds.length === 0) return [];
    const rows = await this.db
      .selectFrom('usage_events')
      .selectAll()
      .where('event_id', 'in', [...eventIds])
      .execute();
    return rows.map(fromColumns);
  }

  async close(): Promise<void> {
    await this.db.destroy();
    await this.onClose();
  }
}

/**
 * A batch's outcomes, with ids repeated inside it answered here: each id is written once (its
 * first row), and later rows with that id are replays of it. `write` stores the unique rows in
 * one transaction and returns the stored row of every id that was already there.
 */
export async function appendOnce(
  rows: readonly LedgerRow[],
  write: (unique: LedgerRow[]) => Promise<Map<string, LedgerRow>>,
): Promise<AppendOutcome[]> {
  const first = new Map<string, LedgerRow>();
  for (const row of rows) if (!first.has(row.eventId)) first.set(row.eventId, row);
  const existing = await write([...first.values()]);
  const answered = new Set<string>();
  return rows.map((row) => {
    const stored = existing.get(row.eventId);
    if (stored !== undefined) return { status: 'duplicate', row: stored };
    if (answered.has(row.eventId)) {
      return { status: 'duplicate', row: first.get(row.eventId) as LedgerRow };
    }
    answered.add(row.eventId);
    return { status: 'recorded', row };
  });
}

/** A row as the table's columns. */
export function toColumns(r: LedgerRow): UsageEventsTable {
  return {
    event_id: r.eventId,
    agent_id: r.agentId,
    time_ms: r.timeMs,
    model: r.model,
    rule: r.rule,
    currency: r.currency,
    input_tokens: r.inputTokens,
    cached_input_tokens: r.cachedInputTokens,
    cache_write_tokens: r.cacheWriteTokens,
    output_tokens: r.outputTokens,
    reasoning_tokens: r.reasoningTokens,
    requests: r.requests,
    total_tokens: r.totalTokens,
    cost_micros: r.costMicros,
    rating: r.rating,
    attributes: r.attributes,
    recorded_ms: r.recordedMs,
  };
}

/** A stored row back as a LedgerRow (integers may come back as strings from PostgreSQL). */
export function fromColumns(c: UsageEventsTable): LedgerRow {
  return {
    eventId: c.event_id,
    agentId: c.agent_id,
    timeMs: Number(c.time_ms),
    model: c.model,
    rule: c.rule,
    currency: c.currency,
    inputTokens: Number(c.input_tokens),
    cachedInputTokens: Number(c.cached_input_tokens),
    cacheWriteTokens: Number(c.cache_write_tokens),
    outputTokens: Number(c.output_tokens),
    reasoningTokens: Number(c.reasoning_tokens),
    requests: Number(c.requests),
    totalTokens: Number(c.total_tokens),
    costMicros: Number(c.cost_micros),
    rating: c.rating,
    attributes: c.attributes,
    recordedMs: Number(c.recorded_ms),
  };
}
