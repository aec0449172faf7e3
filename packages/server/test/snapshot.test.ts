import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { decodeBucket, definePolicy, type Limit } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { EdgeService, restoreSnapshot, SqliteSnapshotStore } from '@openclaw-edge/server';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { scratchDir, writeConfig } from './harness.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('snapshots', () => {
  it('are written in slices, and a restart restores every sliced agent', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const config = writeConfig(
      s.dir,
      `data_dir: ${join(s.dir, 'data')}\nlogging: { level: silent }\nlimits: [{ name: r, capacity: 10, refill: 1, per: hour }]\n`,
    );
    const service = await EdgeService.start({
      configPath: config,
      env: { PORT: '0' },
      watchConfig: false,
    });
    cleanups.push(() => service.stop());
    const now = Date.now();
    for (let i = 0; i < 2_500; i++) service.limiter.check(`a${i}`, 3, now);
    // 2,500 changed agents in slices of 1,000: two slices leave work, the third finishes it.
    expect(service.snapshot(1_000)).toBe(true);
    expect(service.snapshot(1_000)).toBe(true);
    expect(service.snapshot(1_000)).toBe(false);
    await service.snapshotWritten();

    const store = new SqliteSnapshotStore(join(s.dir, 'data'));
    const fresh = new Limiter({
      nodeId: 'restored',
      incarnation: 2,
      defaultPolicy: definePolicy([{ name: 'r', capacity: 10, refill: 1, per: 'hour' }]),
    });
    expect(restoreSnapshot(fresh, store.load(), now)).toMatchObject({
      agents: 2_500,
      buckets: 2_500,
    });
    await store.close();
    expect(fresh.peek('a0', now).limits[0]?.remaining).toBeCloseTo(7, 6);
    expect(fresh.peek('a2499', now).limits[0]?.remaining).toBeCloseTo(7, 6);
  });
});

describe('restarts of a lone replica', () => {
  const limits = '[{ name: r, capacity: 10, refill: 1, per: hour }]';
  const savedState = (dataDir: string, agentId: string) => {
    const db = new Database(join(dataDir, 'snapshot.sqlite'), { readonly: true });
    const row = db.prepare('SELECT state FROM buckets WHERE agent_id = ?').get(agentId) as {
      state: Buffer;
    };
    db.close();
    return decodeBucket(new Uint8Array(row.state.buffer, row.state.byteOffset, row.state.length));
  };

  it('keep one slot per bucket, and what the agent has left, however often they restart', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const dataDir = join(s.dir, 'data');
    const config = writeConfig(
      s.dir,
      `data_dir: ${dataDir}\nlogging: { level: silent }\nlimits: ${limits}\n`,
    );
    const slots: number[] = [];
    const remaining: number[] = [];
    for (let run = 0; run < 4; run++) {
      const service = await EdgeService.start({
        configPath: config,
        env: { PORT: '0' },
        watchConfig: false,
      });
      const decision = service.limiter.check('agent', 2, Date.now());
      remaining.push(Math.round(decision.remaining));
      await service.stop();
      slots.push(savedState(dataDir, 'agent').slots.size);
    }
    // Each run charged 2 of 10 (an hour's refill is 1 token: less than one in this test).
    expect(remaining).toEqual([8, 6, 4, 2]);
    expect(slots).toEqual([1, 1, 1, 1]);
    expect(savedState(dataDir, 'agent').revision).toBe(3);
  });

  it('compact only when asked: a replica with peers keeps every slot', () => {
    const policy = definePolicy([{ name: 'r', capacity: 10, refill: 1, per: 'hour' }]);
    const now = Date.now();
    const runs = [1, 2, 3].map(
      (incarnation) => new Limiter({ nodeId: 'n', incarnation, defaultPolicy: policy }),
    );
    let entries: ReturnType<Limiter['exportAgent']> = [];
    for (const limiter of runs) {
      limiter.merge(entries, now);
      limiter.check('agent', 1, now);
      entries = limiter.exportAgent('agent', now);
    }
    expect(entries[0]?.state.slots.size).toBe(3);
    const snapshot = {
      entries: entries.map((e) => ({ ...e, savedLimit: policy.limits[0] as Limit })),
      overrides: [],
    };
    for (const compactSlots of [false, true]) {
      const fresh = new Limiter({ nodeId: 'n', incarnation: 4, defaultPolicy: policy });
      const report = restoreSnapshot(fresh, snapshot, now, { compactSlots });
      expect(report.compacted).toBe(compactSlots ? 1 : 0);
      const [state] = fresh.exportAgent('agent', now);
      expect(state?.state.slots.size).toBe(compactSlots ? 0 : 3);
      expect(fresh.peek('agent', now).limits[0]?.remaining).toBeCloseTo(7, 9);
    }
  });
});

describe('the snapshot writer thread', () => {
  const policy = definePolicy([{ name: 'r', capacity: 10, refill: 1, per: 'hour' }]);
  const entries = (limiter: Limiter, ids: string[], now: number) => {
    for (const id of ids) limiter.check(id, 2, now);
    return [...limiter.drainDirty(now, Number.POSITIVE_INFINITY, 'snapshot')].map((e) => ({
      ...e,
      savedLimit: policy.limits[0] as (typeof policy.limits)[number],
    }));
  };
  const newLimiter = () => new Limiter({ nodeId: 'w', incarnation: 1, defaultPolicy: policy });

  it('writes bucket states beside the event loop: a save returns while the file is locked, and lands after', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const store = new SqliteSnapshotStore(s.dir);
    cleanups.push(() => store.close());
    const now = Date.now();
    // Another connection holds the write lock. A save on the event loop would wait for it
    // (busy_timeout, 5 s) and then throw; the writer thread waits instead, and the save returns.
    const other = new Database(join(s.dir, 'snapshot.sqlite'));
    other.pragma('busy_timeout = 5000');
    other.exec('BEGIN IMMEDIATE');
    store.save(entries(newLimiter(), ['t1', 't2'], now), [], now);
    expect(store.load().entries).toEqual([]);
    other.exec('COMMIT');
    other.close();
    await store.flush();
    expect(
      store
        .load()
        .entries.map((e) => e.agentId)
        .sort(),
    ).toEqual(['t1', 't2']);
  });

  it('reports a write it cannot make, and goes on with the next one', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const errors: string[] = [];
    const store = new SqliteSnapshotStore(s.dir, (error) => errors.push(error.message));
    cleanups.push(() => store.close());
    const now = Date.now();
    const limiter = newLimiter();
    const other = new Database(join(s.dir, 'snapshot.sqlite'));
    other.exec('ALTER TABLE buckets RENAME TO buckets_away');
    store.save(entries(limiter, ['x1'], now), [], now);
    await store.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/buckets/);
    other.exec('ALTER TABLE buckets_away RENAME TO buckets');
    other.close();
    store.save(entries(limiter, ['x2'], now), [], now);
    await store.flush();
    expect(errors).toHaveLength(1);
    expect(store.load().entries.map((e) => e.agentId)).toEqual(['x2']);
  });
});

describe('override records in the snapshot', () => {
  const gold = definePolicy([{ name: 'r', capacity: 500, refill: 5, per: 'hour' }]);
  const limiterOf = () =>
    new Limiter({
      nodeId: 'n',
      incarnation: 1,
      defaultPolicy: definePolicy([{ name: 'r', capacity: 10, refill: 1, per: 'hour' }]),
    });

  it('keep their time and node across a reopen, and a removal stays a record', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const store = new SqliteSnapshotStore(s.dir);
    store.saveOverride({ agentId: 'vip', policy: gold, at: 1_000, node: 'a' });
    store.saveOverride({ agentId: 'gone', policy: gold, at: 1_000, node: 'a' });
    store.saveOverride({ agentId: 'gone', policy: undefined, at: 2_000, node: 'b' });
    await store.close();

    const reopened = new SqliteSnapshotStore(s.dir);
    cleanups.push(() => reopened.close());
    const records = reopened.overrides().sort((x, y) => x.agentId.localeCompare(y.agentId));
    expect(records.map((r) => [r.agentId, r.at, r.node, r.policy === undefined])).toEqual([
      ['gone', 2_000, 'b', true],
      ['vip', 1_000, 'a', false],
    ]);
    expect(records[1]?.policy?.limits[0]?.fingerprint).toBe(gold.limits[0]?.fingerprint);
    // Restoring applies the setting; the removal clears an override the limiter holds.
    const limiter = limiterOf();
    limiter.setOverride('gone', gold, Date.now());
    expect(restoreSnapshot(limiter, reopened.load(), Date.now()).overrides).toBe(1);
    expect(limiter.getOverride('vip')?.limits[0]?.capacityTokens).toBe(500);
    expect(limiter.getOverride('gone')).toBeUndefined();
  });

  it('keep budget counters, the larger value per slot, until their window ends', async () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    const store = new SqliteSnapshotStore(s.dir);
    const row = (slot: string, micros: number, endMs: number) => ({
      agentId: 'a',
      limit: `$budget:daily@${endMs - 86_400_000}`,
      slot,
      micros,
      endMs,
    });
    store.saveBudgetCounters([row('n1#1', 500, 10_000_000), row('n2#1', 70, 5_000)], 0);
    store.saveBudgetCounters([row('n1#1', 400, 10_000_000)], 0);
    await store.close();
    const reopened = new SqliteSnapshotStore(s.dir);
    cleanups.push(() => reopened.close());
    const bySlot = <T extends { slot: string }>(rows: T[]) =>
      rows.sort((x, y) => x.slot.localeCompare(y.slot));
    expect(bySlot(reopened.budgetCounters(0)).map((r) => [r.slot, r.micros])).toEqual([
      ['n1#1', 500],
      ['n2#1', 70],
    ]);
    // A window that ended is not read, and the next save deletes it.
    expect(reopened.budgetCounters(5_000).map((r) => r.slot)).toEqual(['n1#1']);
    reopened.saveBudgetCounters([], 5_000);
    await reopened.flush();
    expect(reopened.budgetCounters(0).map((r) => r.slot)).toEqual(['n1#1']);
  });

  it('migrates a version 1 file: its overrides stay, ordered before any timed record', () => {
    const s = scratchDir();
    cleanups.push(s.cleanup);
    mkdirSync(s.dir, { recursive: true });
    const v1 = new Database(join(s.dir, 'snapshot.sqlite'));
    v1.exec(`
      CREATE TABLE buckets (agent_id TEXT NOT NULL, limit_name TEXT NOT NULL, state BLOB NOT NULL,
        saved_limit TEXT NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (agent_id, limit_name)) WITHOUT ROWID;
      CREATE TABLE overrides (agent_id TEXT PRIMARY KEY, limits TEXT NOT NULL) WITHOUT ROWID;
      PRAGMA user_version = 1;
    `);
    v1.prepare('INSERT INTO overrides (agent_id, limits) VALUES (?, ?)').run(
      'vip',
      JSON.stringify(gold.limits),
    );
    v1.close();

    const store = new SqliteSnapshotStore(s.dir);
    cleanups.push(() => store.close());
    const [record] = store.overrides();
    expect(record).toMatchObject({ agentId: 'vip', at: 0, node: '' });
    expect(record?.policy?.limits[0]?.capacityTokens).toBe(500);
    store.saveOverride({ agentId: 'vip', policy: undefined, at: 5, node: 'a' });
    expect(store.overrides()).toEqual([{ agentId: 'vip', policy: undefined, at: 5, node: 'a' }]);
  });
});
