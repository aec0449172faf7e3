/**
 * The SQLite ledger's writer thread (a worker_threads entry point; see `SqliteWriter` in
 * sqlite.ts for the other end). better-sqlite3 is synchronous: run on the event loop, a batch's
 * inserts, its WAL fsync and an occasional checkpoint held up every request for as long as
 * they took. Here they run beside it, on their own connection to the same file, while the event
 * loop parses, prices and gathers the next batch.
 *
 * One message per batch: the unique rows' values (see sqlite-columns.ts). The new rows are also
 * added to the per-minute totals in the same transaction (sqlite-minutes.ts). The reply carries
 * the stored rows of the ids that were already there, or the error that rolled the batch back.
 * Batches that queued up while a commit ran are written in one transaction, up to
 * `maxRowsPerCommit` rows: each commit has its own cost (its pages of the indexes and totals,
 * its WAL frames, its fsync), so a few large commits write less than many small ones. If that
 * transaction fails, each batch is retried alone, so a batch fails only for its own rows.
 */
import {
  type MessagePort,
  parentPort,
  receiveMessageOnPort,
  workerData,
} from 'node:worker_threads';
import Database from 'better-sqlite3';
import { COLUMNS, INSERT_SQL, SELECT_BY_ID_SQL } from './sqlite-columns.js';
import { ADD_MINUTES_SQL, LAST_ROWID_SQL } from './sqlite-minutes.js';
import type { UsageEventsTable } from './tables.js';

export interface WriterOptions {
  readonly file: string;
  readonly synchronous: 'full' | 'normal';
  readonly walAutocheckpointPages: number;
  /** Rows above which queued batches are not joined into one commit (`max_batch_events`). */
  readonly maxRowsPerCommit: number;
}

export type WriterRequest =
  | { readonly id: number; readonly values: unknown[] }
  | { readonly id: number; readonly settings: true }
  | { readonly id: number; readonly close: true };

/** The writer connection's settings as SQLite reports them, and its transactions so far. */
export interface WriterSettings {
  readonly journalMode: string;
  readonly synchronous: number;
  readonly walAutocheckpoint: number;
  /** Transactions committed. */
  readonly commits: number;
}

export type WriterReply =
  | { readonly id: number; readonly existing: UsageEventsTable[] }
  | { readonly id: number; readonly error: string }
  | { readonly id: number; readonly settings: WriterSettings }
  | { readonly id: number; readonly closed: true };

if (parentPort === null) throw new Error('sqlite-writer runs as a worker thread');
const port: MessagePort = parentPort;
const options = workerData as WriterOptions;

const db = new Database(options.file);
db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
db.pragma('busy_timeout = 5000');
db.pragma(`wal_autocheckpoint = ${options.walAutocheckpointPages}`);

// Prepared at the first batch: the table exists only once the event loop's connection migrated.
let statements:
  | {
      insert: Database.Statement;
      select: Database.Statement;
      lastRowid: Database.Statement;
      addMinutes: Database.Statement;
    }
  | undefined;
const width = COLUMNS.length;

type WriteRequest = Extract<WriterRequest, { values: unknown[] }>;
type ControlRequest = Exclude<WriterRequest, WriteRequest>;
type Existing = UsageEventsTable[];

function prepared() {
  statements ??= {
    insert: db.prepare(INSERT_SQL),
    select: db.prepare(SELECT_BY_ID_SQL),
    lastRowid: db.prepare(LAST_ROWID_SQL).pluck(),
    addMinutes: db.prepare(ADD_MINUTES_SQL),
  };
  return statements;
}

/** Inserts one batch's rows; returns those that were already stored. */
function insertBatch(values: unknown[]): Existing {
  const { insert, select } = prepared();
  const existing: Existing = [];
  for (let at = 0; at < values.length; at += width) {
    const row = values.slice(at, at + width);
    if (insert.run(row).changes === 0) {
      existing.push(select.get(row[0]) as UsageEventsTable);
    }
  }
  return existing;
}

/**
 * Runs `insert` and adds the events it stored to the per-minute totals, in its transaction:
 * this connection is the only writer, so the new rows are those past the last rowid before it.
 */
function withMinutes<T>(insert: () => T): T {
  const { lastRowid, addMinutes } = prepared();
  const before = (lastRowid.get() as number | null) ?? 0;
  const result = insert();
  addMinutes.run(before);
  return result;
}

let commits = 0;
const writeOne = db.transaction((values: unknown[]) => withMinutes(() => insertBatch(values)));
const writeMany = db.transaction((batches: WriteRequest[]) =>
  withMinutes(() => batches.map((b) => insertBatch(b.values))),
);

function writeReply(request: WriteRequest, write: () => Existing): WriterReply {
  try {
    const existing = write();
    commits++;
    return { id: request.id, existing };
  } catch (error) {
    return { id: request.id, error: (error as Error).message ?? String(error) };
  }
}

/** Commits `first` and the batches queued behind it; returns a request taken that is not a batch. */
function writeQueued(first: WriteRequest): ControlRequest | undefined {
  const batches = [first];
  let rows = first.values.length / width;
  let other: ControlRequest | undefined;
  while (rows < options.maxRowsPerCommit) {
    const next = receiveMessageOnPort(port)?.message as WriterRequest | undefined;
    if (next === undefined) break;
    if (!('values' in next)) {
      other = next;
      break;
    }
    batches.push(next);
    rows += next.values.length / width;
  }
  let replies: WriterReply[];
  if (batches.length === 1) replies = [writeReply(first, () => writeOne(first.values))];
  else {
    try {
      const results = writeMany(batches);
      commits++;
      replies = batches.map((b, i) => ({ id: b.id, existing: results[i] as Existing }));
    } catch {
      replies = batches.map((b) => writeReply(b, () => writeOne(b.values)));
    }
  }
  for (const reply of replies) port.postMessage(reply);
  return other;
}

port.on('message', (message: WriterRequest) => {
  const control = 'values' in message ? writeQueued(message) : message;
  if (control !== undefined) answer(control);
});

function answer(request: ControlRequest): void {
  let reply: WriterReply;
  if ('close' in request) {
    db.close();
    reply = { id: request.id, closed: true };
  } else {
    const pragma = (name: string) => db.pragma(name, { simple: true });
    reply = {
      id: request.id,
      settings: {
        journalMode: pragma('journal_mode') as string,
        synchronous: pragma('synchronous') as number,
        walAutocheckpoint: pragma('wal_autocheckpoint') as number,
        commits,
      },
    };
  }
  port.postMessage(reply);
  if ('close' in request) port.close();
}
