import type { AppendOutcome, LedgerRow, LedgerStore } from './ledger-store.js';

/** The ledger could not be written or read; nothing of the failed batch was stored. */
export class LedgerUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`the ledger is unavailable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'LedgerUnavailableError';
  }
}

/** Counters for metrics. */
export interface GroupCommitStats {
  /** Transactions committed. */
  readonly batches: number;
  /** Events written (new rows). */
  readonly eventsRecorded: number;
  /** Events answered from a stored row (replays, duplicates within a batch). */
  readonly eventsDuplicate: number;
  /** Batches that failed (every waiter got LedgerUnavailableError). */
  readonly batchesFailed: number;
  /** Events waiting for the next batch. */
  readonly queued: number;
  /** Size of the last batch. */
  readonly lastBatchEvents: number;
  /** Batches committing now. */
  readonly inFlight: number;
  /** Longest batch write so far, milliseconds (a stall shows here). */
  readonly maxCommitMs: number;
  /** Reads run between batches (budget and tier-volume loads). */
  readonly reads: number;
  /** Batches whose append failed but that were found committed when read back (not in `batches`). */
  readonly batchesRecovered: number;
}

/** Outcome of one row of `writeAll`: committed (recorded or duplicate), or its batch failed. */
export type WriteResult = AppendOutcome | LedgerUnavailableError;

/** The rows of one `writeAll` call: settled once every row's batch finished. */
interface Group {
  readonly results: WriteResult[];
  remaining: number;
  readonly settle: (results: WriteResult[]) => void;
}

interface Pending {
  readonly row: LedgerRow;
  readonly group: Group;
  readonly index: number;
}

interface ReadJob {
  readonly run: () => Promise<void>;
}

/**
 * Group commit: rows from concurrent requests are queued and written together, one
 * transaction per batch, at most `intervalMs` after the first row of a batch arrived (sooner
 * when `maxBatch` rows are waiting). Each caller's promise resolves only after its batch
 * committed, so an answer is never given for an event that is not durable.
 *
 * Up to `maxInFlight` batches commit at once (1 for SQLite, which has one writer; more for
 * PostgreSQL, whose commits overlap); while they run, new rows gather into the next batch.
 * Reads (loading an agent's spend) are exclusive: a read waits until no batch is in flight and
 * no batch starts until it is done. So a read sees every batch whose outcome was delivered
 * before it and none delivered after, which is what lets callers apply in-memory charges
 * exactly once (see BudgetCache).
 */
export class GroupCommitWriter {
  private queue: Pending[] = [];
  private readonly reads: ReadJob[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private reading = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private counters = {
    batches: 0,
    eventsRecorded: 0,
    eventsDuplicate: 0,
    batchesFailed: 0,
    lastBatchEvents: 0,
    maxCommitMs: 0,
    reads: 0,
    batchesRecovered: 0,
  };

  constructor(
    private readonly store: LedgerStore,
    private readonly intervalMs: number,
    private readonly maxBatch: number,
    private readonly maxInFlight = 1,
  ) {}

  /** Queues a row; resolves with its outcome once the batch holding it committed. */
  async write(row: LedgerRow): Promise<AppendOutcome> {
    const [result] = await this.writeAll([row]);
    if (result instanceof LedgerUnavailableError) throw result;
    return result as AppendOutcome;
  }

  /**
   * Queues rows (one request's events) in order; resolves once every row's batch finished,
   * with each row's outcome, or the error of its batch when that batch failed (rows of one call
   * may land in two batches when `maxBatch` splits them). One promise for all the rows.
   */
  writeAll(rows: readonly LedgerRow[]): Promise<WriteResult[]> {
    if (this.closed) {
      const error = new LedgerUnavailableError(new Error('shutting down'));
      return Promise.resolve(rows.map(() => error));
    }
    if (rows.length === 0) return Promise.resolve([]);
    return new Promise((settle) => {
      const group: Group = { results: new Array(rows.length), remaining: rows.length, settle };
      for (let index = 0; index < rows.length; index++) {
        this.queue.push({ row: rows[index] as LedgerRow, group, index });
      }
      if (this.queue.length >= this.maxBatch) this.pump();
      else if (this.timer === undefined) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, this.intervalMs);
      }
    });
  }

  /**
   * Runs `read` with no batch in flight; `install` gets its result synchronously before any
   * later batch starts.
   */
  read<T>(read: () => Promise<T>, install: (value: T) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      this.reads.push({
        run: async () => {
          try {
            const value = await read();
            install(value);
            resolve(value);
          } catch (error) {
            reject(new LedgerUnavailableError(error));
          }
        },
      });
      this.pump();
    });
  }

  stats(): GroupCommitStats {
    return { ...this.counters, queued: this.queue.length, inFlight: this.inFlight };
  }

  /** Writes everything queued, refuses new rows, and resolves when idle. */
  async close(): Promise<void> {
    this.closed = true;
    this.pump();
    if (this.idle()) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private idle(): boolean {
    return (
      this.inFlight === 0 && !this.reading && this.queue.length === 0 && this.reads.length === 0
    );
  }

  private pump(): void {
    if (this.reading) return;
    if (this.reads.length > 0) {
      // Reads go first, alone: new batches wait until the read installed its result.
      if (this.inFlight > 0) return;
      const read = this.reads.shift() as ReadJob;
      this.reading = true;
      this.counters.reads++;
      void read.run().then(() => {
        this.reading = false;
        this.pump();
      });
      return;
    }
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      if (this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      const batch = this.queue.splice(0, this.maxBatch);
      this.inFlight++;
      void this.commit(batch).then(() => {
        this.inFlight--;
        // Let the event loop answer and read sockets before the next batch: a synchronous
        // driver (SQLite) would otherwise run batch after batch with no I/O in between.
        setImmediate(() => this.pump());
      });
    }
    if (this.idle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * After a failed append: whether the batch committed all the same, its answer lost (the
   * PostgreSQL connection or the SQLite writer thread died during the commit). A batch is one
   * transaction, so it committed exactly when every row of it is stored: then each row's
   * outcome is read back (recorded when the stored row is the one written, else a duplicate),
   * so the caller charges what was committed instead of answering 503 for it. Undefined when
   * the batch did not commit, or the ledger cannot tell.
   */
  private async settledAnyway(batch: Pending[]): Promise<AppendOutcome[] | undefined> {
    let stored: Map<string, LedgerRow>;
    try {
      stored = new Map(
        (await this.store.get(batch.map((p) => p.row.eventId))).map((r) => [r.eventId, r]),
      );
    } catch {
      return undefined;
    }
    const outcomes: AppendOutcome[] = [];
    const first = new Set<string>();
    for (const { row } of batch) {
      const found = stored.get(row.eventId);
      if (found === undefined) return undefined;
      const recorded = !first.has(row.eventId) && sameRow(row, found);
      first.add(row.eventId);
      outcomes.push(recorded ? { status: 'recorded', row } : { status: 'duplicate', row: found });
    }
    return outcomes;
  }

  private async commit(batch: Pending[]): Promise<void> {
    let outcomes: AppendOutcome[];
    const started = performance.now();
    try {
      outcomes = await this.store.append(batch.map((p) => p.row));
      this.counters.maxCommitMs = Math.max(this.counters.maxCommitMs, performance.now() - started);
      this.counters.batches++;
    } catch (error) {
      const settled = await this.settledAnyway(batch);
      if (settled === undefined) {
        this.counters.batchesFailed++;
        const failure = new LedgerUnavailableError(error);
        for (const p of batch) deliver(p, failure);
        return;
      }
      this.counters.batchesRecovered++;
      outcomes = settled;
    }
    this.counters.lastBatchEvents = batch.length;
    for (let i = 0; i < batch.length; i++) {
      const outcome = outcomes[i] as AppendOutcome;
      if (outcome.status === 'recorded') this.counters.eventsRecorded++;
      else this.counters.eventsDuplicate++;
      deliver(batch[i] as Pending, outcome);
    }
  }
}

/** Whether two rows hold the same event as the same rating (a row read back against the one written). */
function sameRow(a: LedgerRow, b: LedgerRow): boolean {
  for (const key of Object.keys(a) as (keyof LedgerRow)[]) if (a[key] !== b[key]) return false;
  return true;
}

function deliver(p: Pending, result: WriteResult): void {
  const group = p.group;
  group.results[p.index] = result;
  if (--group.remaining === 0) group.settle(group.results);
}
