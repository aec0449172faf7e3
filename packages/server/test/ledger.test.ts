import {
  type AppendOutcome,
  GroupCommitWriter,
  type LedgerRow,
  type LedgerStore,
  LedgerUnavailableError,
  openPostgresLedger,
  openSqliteLedger,
  SQLITE_WAL_AUTOCHECKPOINT_PAGES,
} from '@openclaw-edge/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from './harness.js';
import { DATABASE_URL, dropSchema, postgresAvailable, uniqueSchema } from './postgres.js';

/**
 * One conformance suite for the LedgerStore interface, run against every implementation:
 * SQLite in a temp dir and PostgreSQL in a schema of its own.
 */

const row = (eventId: string, over: Partial<LedgerRow> = {}): LedgerRow => ({
  eventId,
  agentId: 'agent-a',
  timeMs: Date.parse('2026-03-10T10:00:00Z'),
  model: 'gpt-4o',
  rule: 'gpt-*',
  currency: 'USD',
  inputTokens: 100,
  cachedInputTokens: 10,
  cacheWriteTokens: 0,
  outputTokens: 50,
  reasoningTokens: 5,
  requests: 1,
  totalTokens: 165,
  costMicros: 1234,
  rating: JSON.stringify({ cost_micros: over.costMicros ?? 1234 }),
  attributes: null,
  recordedMs: 1,
  ...over,
});

function conformance(
  name: string,
  open: () => Promise<{ store: LedgerStore; cleanup: () => Promise<void> }>,
) {
  describe(`ledger on ${name}`, () => {
    let store: LedgerStore;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ store, cleanup } = await open());
      await store.migrate();
      await store.migrate(); // idempotent
    });
    afterAll(async () => {
      await store.close();
      await cleanup();
    });

    it('stores each event id once; a replay returns the stored row, in or across batches', async () => {
      const first = await store.append([
        row('e1'),
        row('e2', { costMicros: 7 }),
        row('e1', { costMicros: 999 }),
      ]);
      expect(first.map((o) => o.status)).toEqual(['recorded', 'recorded', 'duplicate']);
      expect(first[2]?.row.costMicros).toBe(1234);
      const again = await store.append([row('e2', { costMicros: 555 }), row('e3')]);
      expect(again.map((o) => o.status)).toEqual(['duplicate', 'recorded']);
      expect(again[0]?.row.costMicros).toBe(7);
      expect(again[0]?.row.rating).toBe(JSON.stringify({ cost_micros: 7 }));
      const stored = await store.get(['e1', 'e2', 'e3', 'nope']);
      expect(stored.map((r) => r.eventId).sort()).toEqual(['e1', 'e2', 'e3']);
      expect(stored.find((r) => r.eventId === 'e1')).toEqual(row('e1'));
    });

    it('stores every column where it belongs', async () => {
      const distinct = row('cols', {
        agentId: 'agent-cols',
        timeMs: 1_700_000_000_001,
        model: 'model-x',
        rule: 'rule-x',
        currency: 'EUR',
        inputTokens: 101,
        cachedInputTokens: 102,
        cacheWriteTokens: 103,
        outputTokens: 104,
        reasoningTokens: 105,
        requests: 106,
        totalTokens: 107,
        costMicros: 108,
        rating: '[1,2,3]',
        attributes: '{"a":1}',
        recordedMs: 1_700_000_000_109,
      });
      expect((await store.append([distinct]))[0]?.status).toBe('recorded');
      expect(await store.get(['cols'])).toEqual([distinct]);
      // A replay answers the stored row, read back column by column.
      expect((await store.append([row('cols')]))[0]).toEqual({
        status: 'duplicate',
        row: distinct,
      });
    });

    it('sums spend and volume by agent, rule and time range (half-open)', async () => {
      const t = Date.parse('2026-04-01T00:00:00Z');
      await store.append([
        row('s1', { agentId: 'sum', timeMs: t, costMicros: 100 }),
        row('s2', { agentId: 'sum', timeMs: t + 1000, costMicros: 200, rule: 'other' }),
        row('s3', { agentId: 'sum', timeMs: t + 2000, costMicros: 400 }),
        row('s4', { agentId: 'not-sum', timeMs: t, costMicros: 800 }),
      ]);
      expect(await store.spent('sum', t, t + 2000)).toBe(300);
      expect(await store.spent('sum', t, t + 2001)).toBe(700);
      expect(await store.spent('nobody', 0, t * 2)).toBe(0);
      expect(await store.volume('sum', 'gpt-*', t, t + 3000)).toBe(330);
      const many = await store.spentByAgent(['sum', 'not-sum', 'nobody'], t, t + 2001);
      expect([...many.entries()].sort()).toEqual([
        ['not-sum', 800],
        ['sum', 700],
      ]);
    });

    it('totals usage by model and by hour', async () => {
      const t = Date.parse('2026-05-01T10:15:00Z');
      await store.append([
        row('u1', { agentId: 'use', timeMs: t, costMicros: 1 }),
        row('u2', { agentId: 'use', timeMs: t + 3_600_000, costMicros: 2 }),
        row('u3', { agentId: 'use', timeMs: t + 60_000, model: 'm2', costMicros: 4 }),
      ]);
      const byModel = await store.usage('use', t, t + 86_400_000, 'model');
      expect(byModel.map((g) => [g.key, g.events, g.costMicros])).toEqual([
        ['gpt-4o', 2, 3],
        ['m2', 1, 4],
      ]);
      expect(byModel[0]).toMatchObject({
        inputTokens: 200,
        cachedInputTokens: 20,
        outputTokens: 100,
        reasoningTokens: 10,
        requests: 2,
      });
      const byHour = await store.usage('use', t, t + 86_400_000, 'hour');
      expect(byHour.map((g) => [g.key, g.costMicros])).toEqual([
        [Date.parse('2026-05-01T10:00:00Z'), 5],
        [Date.parse('2026-05-01T11:00:00Z'), 2],
      ]);
    });

    it('group commit writes concurrent events in few transactions and answers each after commit', async () => {
      const writer = new GroupCommitWriter(store, 5, 1000);
      const outcomes = await Promise.all(
        Array.from({ length: 300 }, (_, i) => writer.write(row(`g${i % 250}`, { agentId: 'gc' }))),
      );
      expect(outcomes.filter((o) => o.status === 'recorded')).toHaveLength(250);
      expect(outcomes.filter((o) => o.status === 'duplicate')).toHaveLength(50);
      const stats = writer.stats();
      expect(stats.batches).toBeLessThanOrEqual(2);
      expect(stats.eventsRecorded).toBe(250);
      expect(await store.spent('gc', 0, Date.parse('2030-01-01T00:00:00Z'))).toBe(250 * 1234);
      await writer.close();
    });

    it('a batch the database refuses is rolled back whole, and the next one is written', async () => {
      const bad = row('bad-2', { agentId: null as unknown as string }); // NOT NULL
      await expect(store.append([row('bad-1'), bad, row('bad-3')])).rejects.toThrow();
      expect(await store.get(['bad-1', 'bad-2', 'bad-3'])).toEqual([]);
      const after = await store.append([row('bad-1'), row('bad-3')]);
      expect(after.map((o) => o.status)).toEqual(['recorded', 'recorded']);
      expect((await store.get(['bad-1', 'bad-3'])).length).toBe(2);
    });

    it('a batch that committed although its append failed is answered from what was stored', async () => {
      // The commit went through and its answer was lost (a connection or the writer thread
      // died during it): the writer reads the batch back instead of answering 503 for it.
      const lostAnswer: LedgerStore = {
        ...store,
        driver: store.driver,
        appendConcurrency: 1,
        get: (ids: readonly string[]) => store.get(ids),
        append: async (rows: readonly LedgerRow[]) => {
          await store.append(rows);
          throw new Error('connection lost during COMMIT');
        },
      } as LedgerStore;
      await store.append([row('lost-0', { costMicros: 99 })]); // an earlier request's event
      const writer = new GroupCommitWriter(lostAnswer, 1, 1000);
      const results = await writer.writeAll([
        row('lost-1'),
        row('lost-0'), // a replay of the earlier event
        row('lost-1'), // a replay inside the batch
      ]);
      expect(results.map((r) => (r instanceof Error ? r.message : r.status))).toEqual([
        'recorded',
        'duplicate',
        'duplicate',
      ]);
      expect((results[1] as AppendOutcome).row.costMicros).toBe(99);
      expect(writer.stats()).toMatchObject({ batches: 0, batchesRecovered: 1, batchesFailed: 0 });
      await writer.close();
    });

    it('a failed batch stores nothing and rejects every waiter', async () => {
      const failing: LedgerStore = {
        ...store,
        driver: store.driver,
        get: (ids: readonly string[]) => store.get(ids), // reads back: nothing was stored
        append: () => Promise.reject(new Error('disk on fire')),
      } as LedgerStore;
      const writer = new GroupCommitWriter(failing, 1, 1000);
      const results = await Promise.allSettled([writer.write(row('f1')), writer.write(row('f2'))]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(
        /ledger is unavailable: disk on fire/,
      );
      expect(writer.stats().batchesFailed).toBe(1);
      expect(await store.get(['f1', 'f2'])).toEqual([]);
    });
  });
}

const sqliteDir = scratchDir();
conformance('SQLite', async () => ({
  store: openSqliteLedger(sqliteDir.dir),
  cleanup: async () => sqliteDir.cleanup(),
}));

describe('SQLite writer thread', () => {
  it('joins batches that queued up into one commit, and a refused batch fails alone', async () => {
    const scratch = scratchDir();
    const store = openSqliteLedger(scratch.dir);
    try {
      await store.migrate();
      const before = (await store.writerSettings())?.commits ?? 0;
      const ids = ['j-1', 'j-2', 'j-3', 'j-4', 'j-5', 'j-6'];
      const outcomes = await Promise.all(ids.map((id) => store.append([row(id)])));
      expect(outcomes.map((o) => o[0]?.status)).toEqual(ids.map(() => 'recorded'));
      // Six batches posted in one turn: the thread takes the first, and the rest queue behind
      // its commit and go in one more.
      expect(((await store.writerSettings())?.commits ?? 0) - before).toBeLessThan(ids.length);

      const bad = row('j-bad', { agentId: null as unknown as string }); // NOT NULL
      const settled = await Promise.allSettled([
        store.append([row('j-7')]),
        store.append([row('j-8'), bad]),
        store.append([row('j-9'), row('j-1')]),
      ]);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      const third = (settled[2] as PromiseFulfilledResult<AppendOutcome[]>).value;
      expect(third.map((o) => o.status)).toEqual(['recorded', 'duplicate']);
      const stored = (await store.get([...ids, 'j-7', 'j-8', 'j-9', 'j-bad'])).map(
        (r) => r.eventId,
      );
      expect(stored.sort()).toEqual([...ids, 'j-7', 'j-9'].sort());
    } finally {
      await store.close();
      scratch.cleanup();
    }
  });

  it('a batch in flight when the thread dies settles, and the next batch starts a new thread', async () => {
    const scratch = scratchDir();
    const store = openSqliteLedger(scratch.dir);
    try {
      await store.migrate();
      expect((await store.append([row('w-1')]))[0]?.status).toBe('recorded');
      const inFlight = store.append([row('w-2'), row('w-3')]);
      await store.killWriter();
      // The thread may have committed before it ended, with its answer lost: like a database
      // connection dropped during COMMIT, the outcome is unknown, so the batch fails and the
      // caller retries with the same ids. The retry tells which it was.
      const settled = await inFlight.then(
        () => 'committed',
        (error: Error) => error.message,
      );
      if (settled !== 'committed') expect(settled).toMatch(/SQLite writer thread/);
      const stored = (await store.get(['w-2', 'w-3'])).length;
      expect([0, 2]).toContain(stored); // all or nothing
      if (settled === 'committed') expect(stored).toBe(2);
      const retry = await store.append([row('w-2'), row('w-3'), row('w-4')]);
      const again = stored === 2 ? 'duplicate' : 'recorded';
      expect(retry.map((o) => o.status)).toEqual([again, again, 'recorded']);
      expect((await store.get(['w-1', 'w-2', 'w-3', 'w-4'])).length).toBe(4);
    } finally {
      await store.close();
      scratch.cleanup();
    }
  });
});

describe('SQLite ledger settings', () => {
  it('writes in WAL mode with the configured sync level and a large checkpoint interval', async () => {
    const scratch = scratchDir();
    const store = openSqliteLedger(scratch.dir, 'normal');
    try {
      expect(store.connection.pragma('journal_mode', { simple: true })).toBe('wal');
      // The writer thread's own connection: it is the one that commits and checkpoints.
      expect(await store.writerSettings()).toMatchObject({
        journalMode: 'wal',
        synchronous: 1, // NORMAL
        walAutocheckpoint: SQLITE_WAL_AUTOCHECKPOINT_PAGES,
      });
    } finally {
      await store.close();
      scratch.cleanup();
    }
  });
});

const pgUp = await postgresAvailable();
describe.skipIf(!pgUp)('PostgreSQL', () => {
  const schema = uniqueSchema('ledger');
  conformance('PostgreSQL', async () => ({
    store: await openPostgresLedger(DATABASE_URL, schema),
    cleanup: () => dropSchema(schema),
  }));
});

describe('group commit scheduling', () => {
  /** A store whose appends finish only when the test says so. */
  function gatedStore() {
    const gates: (() => void)[] = [];
    const log: string[] = [];
    const store = {
      driver: 'postgres',
      append: (rows: readonly LedgerRow[]) => {
        log.push(`append ${rows.length}`);
        return new Promise((resolve) => {
          gates.push(() => {
            log.push(`commit ${rows.length}`);
            resolve(rows.map((row) => ({ status: 'recorded', row })));
          });
        });
      },
    } as unknown as LedgerStore;
    return { store, gates, log };
  }
  const tick = () => new Promise((r) => setTimeout(r, 5));

  it('overlaps up to maxInFlight batches, and a read waits for them and holds back new ones', async () => {
    const { store, gates, log } = gatedStore();
    const writer = new GroupCommitWriter(store, 1, 2, 2);
    const w1 = [writer.write(row('a')), writer.write(row('b'))]; // full batch: starts at once
    const w2 = [writer.write(row('c')), writer.write(row('d'))];
    const w3 = writer.write(row('e')); // a third batch must wait: two in flight
    await tick();
    expect(log).toEqual(['append 2', 'append 2']);
    const read = writer.read(
      async () => {
        log.push('read');
        return 1;
      },
      () => log.push('install'),
    );
    gates.shift()?.();
    await Promise.all(w1);
    await tick();
    // The read waits for the batch still in flight; the queued row waits for the read.
    expect(log).toEqual(['append 2', 'append 2', 'commit 2']);
    gates.shift()?.();
    await Promise.all(w2);
    await read;
    await tick();
    expect(log).toEqual([
      'append 2',
      'append 2',
      'commit 2',
      'commit 2',
      'read',
      'install',
      'append 1',
    ]);
    gates.shift()?.();
    await w3;
    await writer.close();
  });

  it('writeAll answers each row of a request in order, also when the rows span two batches', async () => {
    const batches: string[][] = [];
    const store = {
      driver: 'sqlite',
      append: async (rows: readonly LedgerRow[]) => {
        batches.push(rows.map((r) => r.eventId));
        if (rows.some((r) => r.eventId === 'bad')) throw new Error('disk on fire');
        return rows.map((row) => ({ status: 'recorded', row }));
      },
    } as unknown as LedgerStore;
    const writer = new GroupCommitWriter(store, 1, 2);
    const [first, second] = await Promise.all([
      writer.writeAll([row('a'), row('b'), row('c')]),
      writer.writeAll([row('bad')]),
    ]);
    expect(batches).toEqual([
      ['a', 'b'],
      ['c', 'bad'],
    ]);
    expect(first?.map((r) => (r instanceof LedgerUnavailableError ? 'failed' : r.status))).toEqual([
      'recorded',
      'recorded',
      'failed',
    ]);
    expect(second?.[0]).toBeInstanceOf(LedgerUnavailableError);
    expect(await writer.writeAll([])).toEqual([]);
    await writer.close();
    const closed = await writer.writeAll([row('late')]);
    expect(closed[0]).toBeInstanceOf(LedgerUnavailableError);
  });
});
