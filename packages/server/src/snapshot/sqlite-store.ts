import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type AgentPolicy, decodeBucket, encodeBucket, type Limit } from '@openclaw-edge/core';
import Database from 'better-sqlite3';
import {
  type BudgetCounterRow,
  limitFromJson,
  type OverrideRecord,
  type Snapshot,
  type SnapshotEntry,
  type SnapshotStore,
} from './snapshot-store.js';

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
 */
export class SqliteSnapshotStore implements SnapshotStore {
  private readonly db: Db;
  private readonly upsert;
  private readonly remove;
  private readonly putOverride;
  private readonly selectOverrides;
  private readonly putCounter;
  private readonly dropEndedCounters;
  private readonly selectCounters;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, 'snapshot.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.migrate();
    this.upsert = this.db.prepare(
      `INSERT INTO buckets (agent_id, limit_name, state, saved_limit, updated_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (agent_id, limit_name) DO UPDATE
       SET state = excluded.state, saved_limit = excluded.saved_limit, updated_ms = excluded.updated_ms`,
    );
    this.remove = this.db.prepare('DELETE FROM buckets WHERE agent_id = ?');
    this.putOverride = this.db.prepare(
      `INSERT INTO overrides (agent_id, limits, at_ms, node) VALUES (?, ?, ?, ?)
       ON CONFLICT (agent_id) DO UPDATE
       SET limits = excluded.limits, at_ms = excluded.at_ms, node = excluded.node`,
    );
    this.selectOverrides = this.db.prepare('SELECT agent_id, limits, at_ms, node FROM overrides');
    this.putCounter = this.db.prepare(
      `INSERT INTO budget_counters (agent_id, limit_name, slot, micros, end_ms) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (agent_id, limit_name, slot) DO UPDATE SET micros = max(micros, excluded.micros)`,
    );
    this.dropEndedCounters = this.db.prepare('DELETE FROM budget_counters WHERE end_ms <= ?');
    this.selectCounters = this.db.prepare(
      'SELECT agent_id, limit_name, slot, micros, end_ms FROM budget_counters WHERE end_ms > ?',
    );
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
    this.db.transaction(() => {
      for (const e of entries) {
        const state = Buffer.from(encodeBucket(e.state));
        this.upsert.run(e.agentId, e.limit, state, limitJson(e.savedLimit), Math.floor(nowMs));
      }
      for (const id of evicted) this.remove.run(id);
    })();
  }

  saveOverride(record: OverrideRecord): void {
    const limits = record.policy === undefined ? null : JSON.stringify(record.policy.limits);
    this.putOverride.run(record.agentId, limits, Math.floor(record.at), record.node);
  }

  saveBudgetCounters(rows: readonly BudgetCounterRow[], nowMs: number): void {
    this.db.transaction(() => {
      for (const r of rows) {
        this.putCounter.run(r.agentId, r.limit, r.slot, r.micros, Math.floor(r.endMs));
      }
      this.dropEndedCounters.run(Math.floor(nowMs));
    })();
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

  close(): void {
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
