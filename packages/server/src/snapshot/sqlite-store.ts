import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type AgentPolicy, decodeBucket, encodeBucket, type Limit } from '@openclaw-edge/core';
import Database from 'better-sqlite3';
import {
  limitFromJson,
  type Snapshot,
  type SnapshotEntry,
  type SnapshotStore,
} from './snapshot-store.js';

/** The subset of better-sqlite3 this store calls. */
type Db = InstanceType<typeof Database>;

const SCHEMA_VERSION = 1;

/**
 * Snapshots in SQLite (better-sqlite3, WAL) in the data dir: one row per agent and limit with
 * the binary v1 state, one row per runtime override. The embedded default: no server needed.
 */
export class SqliteSnapshotStore implements SnapshotStore {
  private readonly db: Db;
  private readonly upsert;
  private readonly remove;
  private readonly putOverride;
  private readonly dropOverride;

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
      `INSERT INTO overrides (agent_id, limits) VALUES (?, ?)
       ON CONFLICT (agent_id) DO UPDATE SET limits = excluded.limits`,
    );
    this.dropOverride = this.db.prepare('DELETE FROM overrides WHERE agent_id = ?');
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
    const overrideRows = this.db.prepare('SELECT agent_id, limits FROM overrides').all() as {
      agent_id: string;
      limits: string;
    }[];
    const overrides = overrideRows.map((r) => ({
      agentId: r.agent_id,
      policy: { limits: (JSON.parse(r.limits) as Limit[]).map(limitFromJson) } as AgentPolicy,
    }));
    return { entries, overrides };
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

  saveOverride(agentId: string, policy: AgentPolicy | undefined): void {
    if (policy === undefined) this.dropOverride.run(agentId);
    else this.putOverride.run(agentId, JSON.stringify(policy.limits));
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
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS buckets (
        agent_id TEXT NOT NULL,
        limit_name TEXT NOT NULL,
        state BLOB NOT NULL,
        saved_limit TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (agent_id, limit_name)
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS overrides (
        agent_id TEXT PRIMARY KEY,
        limits TEXT NOT NULL
      ) WITHOUT ROWID;
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
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
