import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { startThread } from '../threads.js';
import { appendOnce, fromColumns, KyselyLedgerStore } from './kysely-store.js';
import type { AppendOutcome, LedgerRow, UsageTotals } from './ledger-store.js';
import { pushValues } from './sqlite-columns.js';
import { type RangePart, rangeParams, rangeSql, SUMMED } from './sqlite-minutes.js';
import type { WriterOptions, WriterReply, WriterRequest, WriterSettings } from './sqlite-writer.js';
import type { LedgerDatabase, UsageEventsTable, UsageMinutesTable } from './tables.js';

/** File name of the embedded ledger inside the data dir. */
export const SQLITE_LEDGER_FILE = 'ledger.sqlite';

type Db = InstanceType<typeof Database>;

/**
 * WAL pages after which a commit also checkpoints (SQLite's default is 1000). The agent/time
 * index puts each agent's new rows on that agent's own leaf page, so a commit of 1,300 events
 * over 1,000 agents dirties about 1,350 pages (5.5 MB of WAL): with the default, nearly every
 * commit ran a checkpoint (copy to the database file and fsync it) on the writer. 10,000 pages
 * (about 40 MB of WAL on disk) checkpoints every few commits instead, and a page dirtied by
 * several commits is copied once. Durability is unchanged: a commit is durable once in the WAL.
 */
export const SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000;

/**
 * Batches handed to the writer thread before the first of them committed. The thread commits
 * them one after another, but with only one in flight it sat idle while the event loop answered
 * a batch's requests and gathered the next, and the event loop idled while it committed. Ledger
 * bench, batches of 100, events/s: 1 → 48–51k (quick runs), 2 → 61k, 4 → 65k, 8 → 65k, 16 → 63k.
 */
export const SQLITE_BATCHES_IN_FLIGHT = 4;

/**
 * The embedded ledger: SQLite (better-sqlite3) in WAL mode in the data dir. `synchronous`
 * FULL (the default) fsyncs the WAL at every commit, so an acknowledged batch survives a power
 * loss; NORMAL survives a process crash (SIGKILL) but may lose the last commits on power loss.
 *
 * Two connections to one file. Reads and migrations go through Kysely on this thread's
 * connection; `append`, the hot path, goes to a writer thread with its own connection (see
 * sqlite-writer.ts), so a batch's inserts and fsync no longer stop the event loop. Reads over
 * time ranges add up per-minute totals the writer keeps (sqlite-minutes.ts). WAL lets
 * the reads run while the writer commits, and a read sees every batch whose promise resolved.
 * A ledger without a writer (the exporter's, in memory) refuses appends.
 */
export class SqliteLedgerStore extends KyselyLedgerStore {
  override readonly appendConcurrency: number;

  constructor(
    private readonly database: Db,
    private readonly writer?: SqliteWriter,
  ) {
    super('sqlite', new Kysely<LedgerDatabase>({ dialect: new SqliteDialect({ database }) }));
    this.appendConcurrency = writer === undefined ? 1 : SQLITE_BATCHES_IN_FLIGHT;
  }

  // Reads over time ranges: per-minute totals and the partial minutes' events (sqlite-minutes.ts).

  override async spentByAgent(
    agentIds: readonly string[],
    fromMs: number,
    toMs: number,
  ): Promise<Map<string, number>> {
    const rows = this.reads().spent.all({
      agents: JSON.stringify(agentIds),
      ...rangeParams(fromMs, toMs),
    }) as { agent_id: string; total: number }[];
    return new Map(rows.map((r) => [r.agent_id, r.total]));
  }

  override async volume(
    agentId: string,
    rule: string,
    fromMs: number,
    toMs: number,
  ): Promise<number> {
    const total = this.reads().volume.get({
      agent: agentId,
      rule,
      ...rangeParams(fromMs, toMs),
    }) as number | null;
    return total ?? 0;
  }

  override async usage(
    agentId: string,
    fromMs: number,
    toMs: number,
    groupBy: 'model' | 'hour',
  ): Promise<UsageTotals[]> {
    const params = { agent: agentId, ...rangeParams(fromMs, toMs) };
    const rows = this.reads()[groupBy === 'model' ? 'usageByModel' : 'usageByHour'].all(
      params,
    ) as UsageSums[];
    return rows.map((r) => ({
      key: r.key,
      events: r.events,
      requests: r.requests,
      inputTokens: r.input_tokens,
      cachedInputTokens: r.cached_input_tokens,
      cacheWriteTokens: r.cache_write_tokens,
      outputTokens: r.output_tokens,
      reasoningTokens: r.reasoning_tokens,
      costMicros: r.cost_micros,
    }));
  }

  private statements: ReturnType<typeof prepareReads> | undefined;

  /** Prepared at the first read: the tables exist only once migrated. */
  private reads(): ReturnType<typeof prepareReads> {
    this.statements ??= prepareReads(this.database);
    return this.statements;
  }

  override async append(rows: readonly LedgerRow[]): Promise<AppendOutcome[]> {
    const writer = this.writer;
    if (writer === undefined) throw new Error('this ledger is read-only');
    return appendOnce(rows, async (unique) => {
      const values: unknown[] = [];
      for (const row of unique) pushValues(values, row);
      const stored = new Map<string, LedgerRow>();
      for (const columns of await writer.write(values)) {
        stored.set(columns.event_id, fromColumns(columns));
      }
      return stored;
    });
  }

  /** Ends the writer thread the way a crash would (tests): its batches in flight fail. */
  async killWriter(): Promise<void> {
    await this.writer?.kill();
  }

  /** The writer thread's connection settings (tests and tools); undefined without a writer. */
  async writerSettings(): Promise<WriterSettings | undefined> {
    return this.writer?.settings();
  }

  override async close(): Promise<void> {
    await this.writer?.close();
    await super.close();
  }

  /** The event loop's connection (tools and tests). */
  get connection(): Db {
    return this.database;
  }
}

/** What the usage API reports per group: every sum but total tokens. */
const USAGE_SUMS = SUMMED.filter(
  (c): c is Exclude<(typeof SUMMED)[number], 'total_tokens'> => c !== 'total_tokens',
);

/** A row of the usage reads: the group's key and its sums. */
type UsageSums = { key: string | number } & Pick<
  UsageMinutesTable,
  'events' | (typeof USAGE_SUMS)[number]
>;

function prepareReads(db: Db) {
  const signed = (p: RangePart, columns: readonly string[]) =>
    columns.map((c) => (p.sign === '1' ? c : `${p.sign} * ${c} AS ${c}`)).join(', ');
  const sums = (columns: readonly string[]) => columns.map((c) => `sum(${c}) AS ${c}`).join(', ');
  const usage = (key: (p: RangePart) => string) =>
    db.prepare(
      `SELECT key, ${sums(['events', ...USAGE_SUMS])}
      FROM (${rangeSql((p) => `${key(p)} AS key, ${p.events} AS events, ${signed(p, USAGE_SUMS)}`, 'agent_id = @agent')})
      GROUP BY key HAVING sum(events) > 0 ORDER BY key`,
    );
  return {
    spent: db.prepare(
      `SELECT agent_id, sum(cost_micros) AS total
      FROM (${rangeSql((p) => `agent_id, ${p.events} AS events, ${signed(p, ['cost_micros'])}`, 'agent_id IN (SELECT value FROM json_each(@agents))')})
      GROUP BY agent_id HAVING sum(events) > 0`,
    ),
    volume: db
      .prepare(
        `SELECT sum(total_tokens) FROM (${rangeSql((p) => signed(p, ['total_tokens']), 'agent_id = @agent AND rule = @rule')})`,
      )
      .pluck(),
    usageByModel: usage(() => 'model'),
    usageByHour: usage((p) => `${p.time} - (${p.time} % 3600000)`),
  };
}

/**
 * The event loop's end of the writer thread: one request per batch, answered in order. The
 * thread starts with the store and again after it died (its batches in flight then fail; the
 * group-commit writer reads them back to tell whether they committed). It keeps the process
 * alive only while a batch is in flight, and while it closes.
 */
class SqliteWriter {
  private worker: Worker | undefined;
  private nextId = 0;
  private closing = false;
  private readonly pending = new Map<
    number,
    { resolve: (reply: WriterReply) => void; reject: (error: Error) => void }
  >();

  constructor(private readonly options: WriterOptions) {
    this.worker = this.start();
  }

  async write(values: unknown[]): Promise<UsageEventsTable[]> {
    const reply = await this.request((id) => ({ id, values }));
    if ('error' in reply) throw new Error(reply.error);
    if ('existing' in reply) return reply.existing;
    throw new Error('the SQLite writer answered a write with something else');
  }

  async settings(): Promise<WriterSettings> {
    const reply = await this.request((id) => ({ id, settings: true }));
    if ('settings' in reply) return reply.settings;
    throw new Error('the SQLite writer answered a settings request with something else');
  }

  async close(): Promise<void> {
    if (this.worker === undefined) return;
    const worker = this.worker;
    this.closing = true; // keeps the thread referenced until it exited
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await this.request((id) => ({ id, close: true }));
    await exited;
  }

  async kill(): Promise<void> {
    await this.worker?.terminate();
  }

  private request(make: (id: number) => WriterRequest): Promise<WriterReply> {
    this.worker ??= this.start();
    const worker = this.worker;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage(make(id));
    });
  }

  private start(): Worker {
    const worker = startThread(import.meta.url, 'sqlite-writer', this.options);
    worker.unref();
    worker.on('message', (reply: WriterReply) => {
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0 && !this.closing) worker.unref();
      waiter?.resolve(reply);
    });
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on('error', (error) =>
      fail(new Error(`the SQLite writer thread failed: ${error.message}`)),
    );
    worker.on('exit', (code) => fail(new Error(`the SQLite writer thread exited (code ${code})`)));
    return worker;
  }
}

/**
 * A ledger in memory, for a process that serves no rating routes (the metrics exporter): it
 * must not open, migrate or connect to the real one.
 */
export function openMemoryLedger(): SqliteLedgerStore {
  return new SqliteLedgerStore(new Database(':memory:'));
}

/** Opens (creating if needed) the ledger in `dataDir`, with its writer thread. */
export function openSqliteLedger(
  dataDir: string,
  synchronous: 'full' | 'normal' = 'full',
  maxRowsPerCommit = 2000,
): SqliteLedgerStore {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, SQLITE_LEDGER_FILE);
  const database = new Database(file);
  database.pragma('journal_mode = WAL');
  database.pragma('busy_timeout = 5000');
  const writer = new SqliteWriter({
    file,
    synchronous,
    walAutocheckpointPages: SQLITE_WAL_AUTOCHECKPOINT_PAGES,
    maxRowsPerCommit,
  });
  return new SqliteLedgerStore(database, writer);
}
