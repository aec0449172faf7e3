import { join } from 'node:path';
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
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../sim/random.js';
import { migrationProvider } from '../src/ledger/tables.js';
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

/** Runs `body` with a migrated SQLite ledger in a scratch dir, then closes and removes it. */
async function withSqliteLedger(
  body: (store: ReturnType<typeof openSqliteLedger>) => Promise<void>,
): Promise<void> {
  const scratch = scratchDir();
  const store = openSqliteLedger(scratch.dir);
  try {
    await store.migrate();
    await body(store);
  } finally {
    await store.close();
    scratch.cleanup();
  }
}

function conformance(
  name: string,
  open: () => Promise<{ store: LedgerStore; cleanup: () => Promise<void> }>,
) {
  describe(`ledger on ${name}`, () => {
    let store: LedgerStore;
    let cleanup: () => Promise<void>;
    beforeAll(async () => {
      ({ store, cleanup } = await open());
      const announced: string[] = [];
      await store.migrate((pending) => announced.push(...pending));
      expect(announced).toEqual([]); // a new ledger is created, not upgraded
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

    it('range reads equal sums over the events themselves, for ranges on and off minute boundaries', async () => {
      // Events spread over three hours at random milliseconds, written in batches with replays
      // (in and across batches) that must count once; then random ranges, some on whole
      // minutes, some cutting minutes (SQLite answers those from totals and events together).
      const random = mulberry32(7);
      const base = Date.parse('2026-06-01T09:00:00Z');
      const agents = ['r-a', 'r-b', 'r-c'];
      const written: LedgerRow[] = [];
      // A third of the events sit on a minute's first or last millisecond.
      const edgy = (t: number) => {
        const p = random();
        return p < 0.2 ? t - (t % 60_000) : p < 0.33 ? t - (t % 60_000) - 1 : t;
      };
      for (let batch = 0; batch < 6; batch++) {
        const rows: LedgerRow[] = [];
        for (let i = 0; i < 60; i++) {
          const replay = written.length > 0 && random() < 0.1;
          if (replay) {
            rows.push({ ...(written[Math.floor(random() * written.length)] as LedgerRow) });
            continue;
          }
          const r = row(`r-${batch}-${i}`, {
            agentId: agents[Math.floor(random() * agents.length)] as string,
            timeMs: edgy(base + Math.floor(random() * 3 * 3_600_000)),
            model: random() < 0.5 ? 'gpt-4o' : 'm-2',
            rule: random() < 0.5 ? 'gpt-*' : 'other',
            inputTokens: Math.floor(random() * 1000),
            requests: 1 + Math.floor(random() * 3),
            totalTokens: Math.floor(random() * 5000),
            costMicros: Math.floor(random() * 100_000),
          });
          rows.push(r);
          if (i % 17 === 0) rows.push({ ...r, costMicros: 1 }); // a replay in the same batch
          written.push(r);
        }
        await store.append(rows);
      }
      const ranges: [number, number][] = [
        [base, base + 3 * 3_600_000],
        [base + 60_000, base + 7_200_000],
        [base + 12_345, base + 12_999], // inside one minute, a short part of it
        [base + 1_000, base + 59_000], // inside one minute, most of it
        [base + 29_000, base + 90_001], // cuts of less and of more than half a minute
        [base + 59_999, base + 120_001],
      ];
      // Ranges that start or end right at events on a minute's first or last millisecond.
      for (const e of written.filter((r) => r.timeMs % 60_000 === 0).slice(0, 5)) {
        ranges.push([e.timeMs - 61_234, e.timeMs + 1], [e.timeMs, e.timeMs + 90_000]);
      }
      for (const e of written.filter((r) => r.timeMs % 60_000 === 59_999).slice(0, 5)) {
        ranges.push([e.timeMs - 30_000, e.timeMs + 1], [e.timeMs, e.timeMs + 60_001]);
        ranges.push([e.timeMs + 1 - 120_000, e.timeMs], [e.timeMs + 1, e.timeMs + 2]);
      }
      for (let i = 0; i < 20; i++) {
        const a = base - 60_000 + Math.floor(random() * 3.1 * 3_600_000);
        const b = a + 1 + Math.floor(random() * 2 * 3_600_000);
        ranges.push(random() < 0.3 ? [a - (a % 60_000), b - (b % 60_000) + 60_000] : [a, b]);
      }
      for (const [from, to] of ranges) {
        const inRange = written.filter((r) => r.timeMs >= from && r.timeMs < to);
        const sum = (rows: LedgerRow[], f: (r: LedgerRow) => number) =>
          rows.reduce((s, r) => s + f(r), 0);
        const spent = await store.spentByAgent([...agents, 'r-none'], from, to);
        for (const agent of agents) {
          const mine = inRange.filter((r) => r.agentId === agent);
          expect(spent.get(agent) ?? 0).toBe(sum(mine, (r) => r.costMicros));
          expect(spent.has(agent)).toBe(mine.length > 0); // absent: no events in the range
          expect(await store.volume(agent, 'other', from, to)).toBe(
            sum(
              mine.filter((r) => r.rule === 'other'),
              (r) => r.totalTokens,
            ),
          );
        }
        expect(spent.has('r-none')).toBe(false);
        const mine = inRange.filter((r) => r.agentId === 'r-b');
        const expected = (key: (r: LedgerRow) => string | number) => {
          const groups = new Map<string | number, LedgerRow[]>();
          for (const r of mine) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
          return [...groups.entries()]
            .sort(([x], [y]) => (x < y ? -1 : 1))
            .map(([k, rows]) => [
              k,
              rows.length,
              sum(rows, (r) => r.requests),
              sum(rows, (r) => r.inputTokens),
              sum(rows, (r) => r.costMicros),
            ]);
        };
        const got = (totals: Awaited<ReturnType<LedgerStore['usage']>>) =>
          totals.map((g) => [g.key, g.events, g.requests, g.inputTokens, g.costMicros]);
        expect(got(await store.usage('r-b', from, to, 'model'))).toEqual(expected((r) => r.model));
        expect(got(await store.usage('r-b', from, to, 'hour'))).toEqual(
          expected((r) => r.timeMs - (r.timeMs % 3_600_000)),
        );
      }
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
    await withSqliteLedger(async (store) => {
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
    });
  });

  it('a batch in flight when the thread dies settles, and the next batch starts a new thread', async () => {
    await withSqliteLedger(async (store) => {
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
    });
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

describe('SQLite ledger upgrade', () => {
  it('totals the events of a ledger written before the per-minute totals, and drops the per-agent index', async () => {
    const scratch = scratchDir();
    const file = join(scratch.dir, 'ledger.sqlite');
    // A ledger as the first release left it: migration 001 only, with events in it.
    const db = new Database(file);
    const first = new Kysely({ dialect: new SqliteDialect({ database: db }) });
    const { error } = await new Migrator({
      db: first,
      provider: {
        getMigrations: async () => {
          const all = await migrationProvider('sqlite').getMigrations();
          return { '001_usage_events': all['001_usage_events'] as (typeof all)[string] };
        },
      },
    }).migrateToLatest();
    expect(error).toBeUndefined();
    const t = Date.parse('2026-02-03T04:05:00Z');
    const old = [
      row('old-1', { agentId: 'up', timeMs: t, costMicros: 10 }),
      row('old-2', { agentId: 'up', timeMs: t + 59_999, costMicros: 20, model: 'm2' }),
      row('old-3', { agentId: 'up', timeMs: t + 60_000, costMicros: 40 }),
      row('old-4', { agentId: 'up', timeMs: t - 1, costMicros: 80 }),
      row('old-5', { agentId: 'other', timeMs: t, costMicros: 160 }),
    ];
    const insert = db.prepare(
      'INSERT INTO usage_events VALUES (@eventId, @agentId, @timeMs, @model, @rule, @currency, @inputTokens, @cachedInputTokens, @cacheWriteTokens, @outputTokens, @reasoningTokens, @requests, @totalTokens, @costMicros, @rating, @attributes, @recordedMs)',
    );
    for (const r of old) insert.run(r);
    await first.destroy();

    const store = openSqliteLedger(scratch.dir);
    try {
      const announced: string[] = [];
      await store.migrate((pending) => announced.push(...pending));
      expect(announced).toEqual(['002_sqlite_usage_minutes']);
      const indexes = store.connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .pluck()
        .all();
      expect(indexes.sort()).toEqual(['usage_events_time', 'usage_minutes_agent']);
      // Whole minutes come from the totals the migration computed.
      expect(await store.spent('up', t - 60_000, t + 120_000)).toBe(150);
      expect(await store.spent('up', t, t + 60_000)).toBe(30);
      expect(
        (await store.usage('up', t - 60_000, t + 120_000, 'model')).map((g) => [
          g.key,
          g.events,
          g.costMicros,
        ]),
      ).toEqual([
        ['gpt-4o', 3, 130],
        ['m2', 1, 20],
      ]);
      // New events add to them.
      await store.append([row('new-1', { agentId: 'up', timeMs: t + 1, costMicros: 1000 })]);
      expect(await store.spent('up', t, t + 60_000)).toBe(1030);
      expect(await store.spentByAgent(['up', 'other'], t, t + 60_000)).toEqual(
        new Map([
          ['up', 1030],
          ['other', 160],
        ]),
      );
    } finally {
      await store.close();
      scratch.cleanup();
    }
  });

  it('keeps the per-minute totals equal to the events, through replays and a writer restart', async () => {
    await withSqliteLedger(async (store) => {
      const t = Date.parse('2026-07-07T07:07:07Z');
      await store.append([row('k-1', { timeMs: t }), row('k-2', { timeMs: t + 60_000 })]);
      await store.append([row('k-1', { costMicros: 5 }), row('k-3', { timeMs: t, model: 'm3' })]);
      await store.killWriter();
      await store.append([row('k-3'), row('k-4', { timeMs: t + 1 }), row('k-4')]);
      const totals = store.connection
        .prepare(
          'SELECT minute_ms, agent_id, model, rule, events, requests, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens, cost_micros FROM usage_minutes ORDER BY 1, 2, 3, 4',
        )
        .all();
      const fromEvents = store.connection
        .prepare(
          `SELECT time_ms - time_ms % 60000 AS minute_ms, agent_id, model, rule, count(*) AS events,
            sum(requests) AS requests, sum(input_tokens) AS input_tokens,
            sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
            sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens,
            sum(total_tokens) AS total_tokens, sum(cost_micros) AS cost_micros
          FROM usage_events GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4`,
        )
        .all();
      expect(totals).toHaveLength(3);
      expect(totals).toEqual(fromEvents);
    });
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
