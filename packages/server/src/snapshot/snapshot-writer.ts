/**
 * The snapshot store's writer thread (a worker_threads entry point; `SqliteSnapshotStore` in
 * sqlite-store.ts is the other end). A periodic snapshot writes every changed agent's buckets:
 * on the event loop, a slice of 1,000 agents held requests back for 6-27 ms. Here the writes run
 * beside it, on their own connection to the same file; the event loop only encodes the states.
 *
 * One message per write, answered in order once its transaction committed (or failed).
 */
import { type MessagePort, parentPort, workerData } from 'node:worker_threads';
import type { PackedStates } from '@openclaw-edge/core';
import Database from 'better-sqlite3';

export interface SnapshotWriterOptions {
  readonly file: string;
}

/** Columns per bucket row in `SnapshotWrite.buckets`: agent id, limit, saved limit JSON. */
export const BUCKET_WIDTH = 3;
/** Columns per counter row in `SnapshotWrite.counters`: agent id, limit, slot, micros, end ms. */
export const COUNTER_WIDTH = 5;

export type SnapshotWrite =
  | {
      readonly id: number;
      /** Bucket rows, BUCKET_WIDTH values each, and the agents to delete. */
      readonly buckets: unknown[];
      /** The rows' encoded states, row i's the i-th. */
      readonly states: PackedStates;
      readonly evicted: readonly string[];
      readonly nowMs: number;
    }
  | {
      readonly id: number;
      /** Counter rows, COUNTER_WIDTH values each; then counters of ended windows are deleted. */
      readonly counters: unknown[];
      readonly nowMs: number;
    }
  | { readonly id: number; readonly close: true };

export interface SnapshotWriteReply {
  readonly id: number;
  readonly error?: string;
}

if (parentPort === null) throw new Error('snapshot-writer runs as a worker thread');
const port: MessagePort = parentPort;
const options = workerData as SnapshotWriterOptions;

const db = new Database(options.file);
db.pragma('synchronous = NORMAL');
db.pragma('busy_timeout = 5000');

// Prepared at the first write, inside its try: a statement that cannot be prepared (a table
// gone) fails that write, not the thread.
let statements: ReturnType<typeof prepare> | undefined;
function prepare() {
  return {
    upsert: db.prepare(
      `INSERT INTO buckets (agent_id, limit_name, state, saved_limit, updated_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (agent_id, limit_name) DO UPDATE
       SET state = excluded.state, saved_limit = excluded.saved_limit, updated_ms = excluded.updated_ms`,
    ),
    remove: db.prepare('DELETE FROM buckets WHERE agent_id = ?'),
    putCounter: db.prepare(
      `INSERT INTO budget_counters (agent_id, limit_name, slot, micros, end_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (agent_id, limit_name, slot) DO UPDATE SET micros = max(micros, excluded.micros)`,
    ),
    dropEndedCounters: db.prepare('DELETE FROM budget_counters WHERE end_ms <= ?'),
  };
}

const write = db.transaction((message: Exclude<SnapshotWrite, { close: true }>) => {
  statements ??= prepare();
  const { upsert, remove, putCounter, dropEndedCounters } = statements;
  const nowMs = Math.floor(message.nowMs);
  if ('buckets' in message) {
    const rows = message.buckets;
    const { bytes, ends } = message.states;
    let start = 0;
    for (let at = 0, i = 0; at < rows.length; at += BUCKET_WIDTH, i++) {
      // SQLite binds Buffers as blobs; this one is a view of the state's bytes, not a copy.
      const end = ends[i] as number;
      const blob = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start);
      upsert.run(rows[at], rows[at + 1], blob, rows[at + 2], nowMs);
      start = end;
    }
    for (const id of message.evicted) remove.run(id);
  } else {
    const rows = message.counters;
    for (let at = 0; at < rows.length; at += COUNTER_WIDTH) {
      putCounter.run(rows.slice(at, at + COUNTER_WIDTH));
    }
    dropEndedCounters.run(nowMs);
  }
});

port.on('message', (message: SnapshotWrite) => {
  if ('close' in message) {
    db.close();
    port.postMessage({ id: message.id } satisfies SnapshotWriteReply);
    port.close();
    return;
  }
  let reply: SnapshotWriteReply;
  try {
    write(message);
    reply = { id: message.id };
  } catch (error) {
    reply = { id: message.id, error: (error as Error).message ?? String(error) };
  }
  port.postMessage(reply);
});
