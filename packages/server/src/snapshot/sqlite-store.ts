import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import {
  type AgentPolicy,
  decodeBucket,
  encodeBucketStates,
  type Limit,
} from '@openclaw-edge/core';
import Database from 'better-sqlite3';
import { startThread } from '../threads.js';
import {
  type BudgetCounterRow,
  limitFromJson,
  type OverrideRecord,
  type Snapshot,
  type SnapshotEntry,
  type SnapshotStore,
} from './snapshot-store.js';
import type {
  SnapshotWrite,
  SnapshotWriteReply,
  SnapshotWriterOptions,
} from './snapshot-writer.js';

/** The subset of better-sqlite3 this store calls. */
type Db = InstanceType<typeof Database>;

/**
 * 2: override records keep their time and node, and removals are kept as rows (limits null).
 * 3: budget counters (fleet-wide calendar budgets).
 */
const SCHEMA_VERSION = 3;

/**
 * Snapshots in SQLite (better-sqlite3, WAL) in the data dir: one row per agent and limit with
 * the binary v1 state, one row per agent ever given a runtime override (its latest record, a
 * removal included). The embedded default: no server needed.
 *
 * Two connections to one file. Bucket states and budget counters, the periodic bulk, are
 * encoded here and written by a writer thread (snapshot-writer.ts), in order, so the event loop
 * does not wait for SQLite; `flush` tells when they are written. Reads, migrations and override
 * records stay on this thread's connection: an override is written before its change is
 * acknowledged.
 */
export class SqliteSnapshotStore implements SnapshotStore {
  private readonly db: Db;
  private readonly putOverride;
  private readonly selectOverrides;
  private readonly selectCounters;
  private readonly writer: SnapshotWriter;

  /** `onError`: a write the thread could not make (it is not retried; logged by the caller). */
  constructor(dataDir: string, onError: (error: Error) => void = () => {}) {
    mkdirSync(dataDir, { recursive: true });
    const file = join(dataDir, 'snapshot.sqlite');
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.putOverride = this.db.prepare(
      `INSERT INTO overrides (agent_id, limits, at_ms, node) VALUES (?, ?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE
       SET limits = excluded.limits, at_ms = excluded.at_ms, node = excluded.node`,
    );
    this.selectOverrides = this.db.prepare('SELECT agent_id, limits, at_ms, node FROM overrides');
    this.selectCounters = this.db.prepare(
      'SELECT agent_id, limit_name, slot, micros, end_ms FROM budget_counters WHERE end_ms > ?',
    );
    this.writer = new SnapshotWriter({ file }, onError);
  }

  load(): Snapshot {
    const rows = this.db
      .prepare('SELECT agent_id, limit_name, state, saved_limit FROM buckets')
      .all() as {
      agent_id: string;
      limit_name: string;
      state: Buffer;
      saved_limit: string;
    }[];
    const entries: SnapshotEntry[] = rows.map((r) => ({
      agentId: r.agent_id,
      limit: r.limit_name,
      state: decodeBucket(new Uint8Array(r.state.buffer, r.state.byteOffset, r.state.byteLength)),
      savedLimit: limitFromJson(JSON.parse(r.saved_limit) as Limit),
    }));
    return { entries, overrides: this.overrides() };
  }

  overrides(): OverrideRecord[] {
    const rows = this.selectOverrides.all() as {
      agent_id: string;
      limits: string | null;
      at_ms: number;
      node: string;
    }[];
    return rows.map((r) => ({
      agentId: r.agent_id,
      policy:
        r.limits === null
          ? undefined
          : ({ limits: (JSON.parse(r.limits) as Limit[]).map(limitFromJson) } as AgentPolicy),
      at: r.at_ms,
      node: r.node,
    }));
  }

  save(entries: readonly SnapshotEntry[], evicted: readonly string[], nowMs: number): void {
    const buckets: unknown[] = [];
    for (const e of entries) buckets.push(e.agentId, e.limit, limitJson(e.savedLimit));
    const states = encodeBucketStates(entries.map((e) => e.state));
    // The encoded states move to the writer thread instead of being copied there.
    this.writer.post(
      (id) => ({ id, buckets, states, evicted, nowMs }),
      [states.bytes.buffer, states.ends.buffer],
    );
  }

  saveOverride(record: OverrideRecord): void {
    const limits = record.policy === undefined ? null : JSON.stringify(record.policy.limits);
    this.putOverride.run(record.agentId, limits, Math.floor(record.at), record.node);
  }

  saveBudgetCounters(rows: readonly BudgetCounterRow[], nowMs: number): void {
    const counters: unknown[] = [];
    for (const r of rows) counters.push(r.agentId, r.limit, r.slot, r.micros, Math.floor(r.endMs));
    this.writer.post((id) => ({ id, counters, nowMs }));
  }

  budgetCounters(nowMs: number): BudgetCounterRow[] {
    const rows = this.selectCounters.all(Math.floor(nowMs)) as {
      agent_id: string;
      limit_name: string;
      slot: string;
      micros: number;
      end_ms: number;
    }[];
    return rows.map((r) => ({
      agentId: r.agent_id,
      limit: r.limit_name,
      slot: r.slot,
      micros: r.micros,
      endMs: r.end_ms,
    }));
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  async close(): Promise<void> {
    await this.writer.close();
    this.db.close();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `snapshot.sqlite has schema version ${version}, newer than this build understands (${SCHEMA_VERSION}); use a newer openclaw-edge or another data_dir`,
      );
    }
    if (version === SCHEMA_VERSION) return;
    this.db.transaction(() => {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS buckets (
          agent_id TEXT NOT NULL,
          limit_name TEXT NOT NULL,
          state BLOB NOT NULL,
          saved_limit TEXT NOT NULL,
          updated_ms INTEGER NOT NULL,
          PRIMARY KEY (agent_id, limit_name)
        ) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS budget_counters (
          agent_id TEXT NOT NULL,
          limit_name TEXT NOT NULL,
          slot TEXT NOT NULL,
          micros INTEGER NOT NULL,
          end_ms INTEGER NOT NULL,
          PRIMARY KEY (agent_id, limit_name, slot)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS budget_counters_end ON budget_counters (end_ms);
      `);
      if (version < 2) {
        this.db.exec(`
          CREATE TABLE overrides_v2 (
            agent_id TEXT PRIMARY KEY,
            limits TEXT,
            at_ms INTEGER NOT NULL,
            node TEXT NOT NULL
          ) WITHOUT ROWID;
        `);
        if (version === 1) {
          // v1 kept settings without their time: they order before any record that has one.
          this.db.exec(`
            INSERT INTO overrides_v2 (agent_id, limits, at_ms, node)
              SELECT agent_id, limits, 0, '' FROM overrides;
            DROP TABLE overrides;
          `);
        }
        this.db.exec('ALTER TABLE overrides_v2 RENAME TO overrides');
      }
      this.db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    })();
  }
}

/**
 * The event loop's end of the writer thread. The thread starts at the first write (a store that
 * only reads, the exporter's, never starts it) and again after it died; it keeps the process
 * alive only while writes are in flight, and while it closes.
 */
class SnapshotWriter {
  private worker: Worker | undefined;
  private nextId = 0;
  private inFlight = 0;
  private closing = false;
  private idle: (() => void)[] = [];

  constructor(
    private readonly options: SnapshotWriterOptions,
    private readonly onError: (error: Error) => void,
  ) {}

  post(make: (id: number) => SnapshotWrite, transfer: readonly ArrayBuffer[] = []): void {
    this.worker ??= this.start();
    if (this.inFlight++ === 0) this.worker.ref();
    this.worker.postMessage(make(this.nextId++), transfer);
  }

  /** Resolves once every write posted so far is committed or failed. */
  flush(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  async close(): Promise<void> {
    const worker = this.worker;
    if (worker === undefined) return;
    // Referenced until it exited: with nothing else left (the last step of a shutdown), an
    // unreferenced thread would let the process end before the shutdown does.
    this.closing = true;
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    this.post((id) => ({ id, close: true }));
    await exited;
  }

  private settled(count: number): void {
    this.inFlight -= count;
    if (this.inFlight > 0) return;
    this.inFlight = 0;
    if (!this.closing) this.worker?.unref();
    for (const resolve of this.idle.splice(0)) resolve();
  }

  private start(): Worker {
    const worker = startThread(import.meta.url, 'snapshot-writer', this.options);
    worker.on('message', (reply: SnapshotWriteReply) => {
      if (reply.error !== undefined) this.onError(new Error(reply.error));
      this.settled(1);
    });
    const fail = (error: Error) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // Writes in flight are lost: the next snapshot writes what changed after them.
      if (this.inFlight > 0) this.onError(error);
      this.settled(this.inFlight);
    };
    worker.on('error', (error) => fail(new Error(`the snapshot writer failed: ${String(error)}`)));
    worker.on('exit', (code) => fail(new Error(`the snapshot writer exited (code ${code})`)));
    return worker;
  }
}

/** Limits are shared by every agent of a policy: serialise each once. */
const limitJsonCache = new WeakMap<Limit, string>();
function limitJson(limit: Limit): string {
  let json = limitJsonCache.get(limit);
  if (json === undefined) {
    json = JSON.stringify(limit);
    limitJsonCache.set(limit, json);
  }
  return json;
}

/** Re-validates a stored limit (the file may have been edited by hand), keeping its exact rate. */
