/**
 * Ledger benchmark: durable usage events per second over HTTP against the running server
 * (`POST /v1/usage`), 64 concurrent connections, batches of 1 and of 100 events, on SQLite and
 * on PostgreSQL, compared in the same run with a naive writer on the same database that does one
 * INSERT (one transaction) per event.
 *
 *   npm run bench -- ledger            full run (writes bench/results/ledger.json)
 *   npm run bench -- ledger --quick    short measurements (writes nothing)
 *
 * Method:
 * - The server is `openclaw-edge serve` as a child process on 127.0.0.1 (PORT=0) with a temp
 *   data dir, the default ledger settings (group commit every 2 ms, SQLite synchronous=FULL,
 *   PostgreSQL pool of 4), a price book and one monthly budget per agent (1000 agents), request
 *   logging off. autocannon (in this process) sends every request with fresh event ids
 *   (setupRequest), pipelining 1, keep-alive, 64 connections, after a 3 s warm-up.
 * - events/s = 2xx responses × batch size / seconds. Afterwards the rows in the database are
 *   counted: every acknowledged event must be there (the run fails otherwise). Server CPU per
 *   event (user + system of the server process over the measured seconds, from /proc) is
 *   reported beside it, to compare commits pair by pair.
 * - Per-event commit: the same server with group commit off (group_commit_ms 0,
 *   max_batch_events 1): one transaction per event, 64 connections sending one event each.
 * - Naive SQLite: one better-sqlite3 connection (WAL, synchronous=FULL, like the server), one
 *   autocommitted INSERT per event into a table of the same shape, for the same seconds.
 *   Naive PostgreSQL: 16 pg connections in parallel, one autocommitted INSERT each at a time.
 * - PostgreSQL cases run only when DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test)
 *   answers; tables live in a schema dropped at the end.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import {
  gitState,
  loadAverage,
  procCpuS,
  progress,
  round,
  startEdgeProcess,
  table,
} from './support.js';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const CONNECTIONS = 64;
const AGENTS = 1000;
/** Warm-up per case: the first seconds after start load 1000 agents' budgets and JIT the path. */
const WARMUP_S = 3;

interface AcResult {
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  statusCodeStats: Record<string, { count: number }>;
  latency: { p50: number; p99: number };
  requests: { average: number };
}
type Autocannon = (options: Record<string, unknown>) => PromiseLike<AcResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

function config(dataDir: string, ledger: string): string {
  return `
data_dir: ${dataDir}
snapshot: { enabled: false }
limits: [{ name: requests, capacity: 1000000000, refill: 1000000000, per: second }]
server: { max_batch: 1000, body_limit_bytes: 4194304 }
pricing:
  currency: USD
  versions:
    - effective_from: "2020-01-01T00:00:00Z"
      models: [{ match: "gpt-*", input: "2.50", cached_input: "1.25", output: "10" }]
      default: { input: 1, output: 1 }
budgets:
  default: [{ name: monthly, amount: "1000000000", window: month, on_error: deny }]
ledger: ${ledger}
`;
}

let eventSeq = 0;
const runId = Date.now().toString(36);
function eventJson(): string {
  const n = eventSeq++;
  return `{"event_id":"${runId}-${n}","agent_id":"agent-${n % AGENTS}","time":${Date.now()},"model":"gpt-4o","input_tokens":${1000 + (n % 500)},"output_tokens":${200 + (n % 300)},"cached_input_tokens":100}`;
}

interface Case {
  readonly db: 'sqlite' | 'postgres';
  /** group: the server as configured; per-event: group commit off (one transaction per event). */
  readonly commit: 'group' | 'per-event';
  readonly batch: number;
  readonly eventsPerS: number;
  readonly requestsPerS: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
  readonly rowsStored: number;
  /** CPU the server process (all its threads) used per acknowledged event, in µs. */
  readonly serverCpuUsPerEvent: number;
}

async function load(url: string, batch: number, seconds: number): Promise<AcResult> {
  return autocannon({
    url: `${url}/v1/usage`,
    connections: CONNECTIONS,
    pipelining: 1,
    duration: seconds,
    timeout: 30,
    requests: [
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req: Record<string, unknown>) => {
          const events = Array.from({ length: batch }, eventJson);
          req.body = batch === 1 ? events[0] : `{"events":[${events.join(',')}]}`;
          return req;
        },
      },
    ],
  });
}

async function measureServer(
  db: 'sqlite' | 'postgres',
  ledgerYaml: string,
  dataDir: string,
  countRows: () => Promise<number>,
  seconds: number,
  commit: 'group' | 'per-event' = 'group',
  batches: readonly number[] = [1, 100],
): Promise<Case[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ledger-bench-cfg-'));
  const path = join(dir, 'edge.yaml');
  const ledger =
    commit === 'group'
      ? ledgerYaml
      : ledgerYaml.replace(/ }$/, ', group_commit_ms: 0, max_batch_events: 1 }');
  writeFileSync(path, config(dataDir, ledger));
  const server = await startEdgeProcess(path, `${db} ${commit}-commit server`);
  const cases: Case[] = [];
  try {
    for (const batch of batches) {
      progress(`${db} ${commit} commit: warm-up, batch ${batch}`);
      await load(server.url, batch, WARMUP_S);
      const before = await countRows();
      progress(`${db}: measuring ${seconds} s, batch ${batch}, ${CONNECTIONS} connections`);
      const cpuBefore = procCpuS(server.child.pid as number);
      const r = await load(server.url, batch, seconds);
      const cpuS = procCpuS(server.child.pid as number) - cpuBefore;
      const ok = Object.entries(r.statusCodeStats)
        .filter(([code]) => code.startsWith('2'))
        .reduce((s, [, v]) => s + v.count, 0);
      const rowsStored = (await countRows()) - before;
      if (rowsStored < ok * batch) {
        throw new Error(
          `${db} batch ${batch}: ${ok * batch} events acknowledged but ${rowsStored} rows stored`,
        );
      }
      const c: Case = {
        db,
        commit,
        batch,
        eventsPerS: round((ok * batch) / r.duration, 0),
        requestsPerS: round(ok / r.duration, 0),
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
        non2xx: r.non2xx + r.errors + r.timeouts,
        rowsStored,
        serverCpuUsPerEvent: round((cpuS * 1e6) / (ok * batch), 1),
      };
      progress(
        `${db} batch ${batch}: ${c.eventsPerS} events/s (${c.requestsPerS} req/s, p50 ${c.p50Ms} ms, p99 ${c.p99Ms} ms, server CPU ${c.serverCpuUsPerEvent} µs/event, non-2xx/errors ${c.non2xx})`,
      );
      cases.push(c);
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return cases;
}

const NAIVE_COLUMNS =
  'event_id, agent_id, time_ms, model, rule, currency, input_tokens, cached_input_tokens, cache_write_tokens, output_tokens, reasoning_tokens, requests, total_tokens, cost_micros, rating, attributes, recorded_ms';
const naiveValues = (n: number) => [
  `naive-${runId}-${n}`,
  `agent-${n % AGENTS}`,
  Date.now(),
  'gpt-4o',
  'gpt-*',
  'USD',
  1000,
  100,
  0,
  200,
  0,
  1,
  1300,
  4625,
  '{"currency":"USD","cost_micros":4625}',
  null,
  Date.now(),
];

function naiveSqlite(dataDir: string, seconds: number): number {
  const db = new Database(join(dataDir, 'ledger.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS naive_events AS SELECT * FROM usage_events WHERE 0');
  const insert = db.prepare(
    `INSERT INTO naive_events (${NAIVE_COLUMNS}) VALUES (${Array(17).fill('?').join(',')})`,
  );
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  while (performance.now() < end) insert.run(...naiveValues(n++));
  const elapsed = (performance.now() - start) / 1000;
  db.close();
  return round(n / elapsed, 0);
}

async function naivePostgres(schema: string, seconds: number): Promise<number> {
  const pool = new pg.Pool({
    connectionString: DATABASE_URL,
    max: 16,
    options: `-c search_path=${schema}`,
  });
  await pool.query('CREATE TABLE IF NOT EXISTS naive_events (LIKE usage_events INCLUDING ALL)');
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  const sqlText = `INSERT INTO naive_events (${NAIVE_COLUMNS}) VALUES (${Array.from({ length: 17 }, (_, i) => `$${i + 1}`).join(',')})`;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < end) await pool.query(sqlText, naiveValues(n++));
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  await pool.end();
  return round(n / elapsed, 0);
}

async function postgresUp(): Promise<boolean> {
  const c = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function main(args: readonly string[]): Promise<void> {
  const quick = args.includes('--quick');
  const seconds = quick ? 2 : 5;
  const naiveSeconds = quick ? 1 : 3;
  const cases: Case[] = [];
  const git = gitState();
  const loadBefore = loadAverage();

  const sqliteDir = mkdtempSync(join(tmpdir(), 'ledger-bench-sqlite-'));
  let naiveSqlitePerS = 0;
  try {
    const countSqlite = async () => {
      const db = new Database(join(sqliteDir, 'ledger.sqlite'), { readonly: true });
      try {
        return (db.prepare('SELECT count(*) AS n FROM usage_events').get() as { n: number }).n;
      } finally {
        db.close();
      }
    };
    cases.push(
      ...(await measureServer('sqlite', '{ driver: sqlite }', sqliteDir, countSqlite, seconds)),
    );
    cases.push(
      ...(await measureServer(
        'sqlite',
        '{ driver: sqlite }',
        sqliteDir,
        countSqlite,
        seconds,
        'per-event',
        [1],
      )),
    );
    progress(`naive SQLite writer: ${naiveSeconds} s, one INSERT per event`);
    naiveSqlitePerS = naiveSqlite(sqliteDir, naiveSeconds);
    progress(`naive SQLite: ${naiveSqlitePerS} events/s`);
  } finally {
    rmSync(sqliteDir, { recursive: true, force: true });
  }

  let naivePostgresPerS: number | null = null;
  if (await postgresUp()) {
    const schema = `bench_ledger_${process.pid}`;
    const admin = new pg.Client({ connectionString: DATABASE_URL });
    await admin.connect();
    try {
      const countPg = async () =>
        Number((await admin.query(`SELECT count(*) AS n FROM "${schema}".usage_events`)).rows[0].n);
      const pgDir = mkdtempSync(join(tmpdir(), 'ledger-bench-pg-'));
      const pgLedger = `{ driver: postgres, url: "${DATABASE_URL}", schema: ${schema} }`;
      try {
        cases.push(...(await measureServer('postgres', pgLedger, pgDir, countPg, seconds)));
        cases.push(
          ...(await measureServer('postgres', pgLedger, pgDir, countPg, seconds, 'per-event', [1])),
        );
      } finally {
        rmSync(pgDir, { recursive: true, force: true });
      }
      progress(`naive PostgreSQL writer: ${naiveSeconds} s, 16 connections, one INSERT per event`);
      naivePostgresPerS = await naivePostgres(schema, naiveSeconds);
      progress(`naive PostgreSQL: ${naivePostgresPerS} events/s`);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    }
  } else {
    progress(`PostgreSQL at ${DATABASE_URL} is unreachable: its cases are skipped`);
  }

  const get = (db: string, batch: number, commit = 'group') =>
    cases.find((c) => c.db === db && c.batch === batch && c.commit === commit)?.eventsPerS ?? null;
  const ratio = (a: number | null, b: number | null) =>
    a === null || b === null || b === 0 ? null : round(a / b, 1);
  const perEventSqlite = get('sqlite', 1, 'per-event');
  const perEventPg = get('postgres', 1, 'per-event');
  const sqlite100 = get('sqlite', 100);
  const pg100 = get('postgres', 100);
  const result = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, shared (load before ${loadBefore.join(' ')}, after ${loadAverage().join(' ')})`,
    commit: git.commit,
    packages_dirty: git.packagesDirty,
    method: `POST /v1/usage, autocannon ${CONNECTIONS} connections, pipelining 1, ${seconds} s per case after ${WARMUP_S} s warm-up; naive writers ${naiveSeconds} s`,
    sqlite_events_per_s: sqlite100,
    postgres_events_per_s: pg100,
    naive_sqlite_events_per_s: naiveSqlitePerS,
    naive_postgres_events_per_s: naivePostgresPerS,
    per_event_commit_sqlite_events_per_s: perEventSqlite,
    per_event_commit_postgres_events_per_s: perEventPg,
    sqlite_vs_naive: ratio(sqlite100, naiveSqlitePerS),
    postgres_vs_naive: ratio(pg100, naivePostgresPerS),
    sqlite_vs_per_event_commit: ratio(sqlite100, perEventSqlite),
    postgres_vs_per_event_commit: ratio(pg100, perEventPg),
    cases,
  };
  console.log(
    `\n${table([
      ['case', 'events/s', 'req/s', 'p50 ms', 'p99 ms', 'CPU µs/event', 'errors'],
      ...cases.map((c) => [
        `${c.db} ${c.commit} commit, batch ${c.batch}`,
        String(c.eventsPerS),
        String(c.requestsPerS),
        String(c.p50Ms),
        String(c.p99Ms),
        String(c.serverCpuUsPerEvent),
        String(c.non2xx),
      ]),
      ['naive sqlite (1 INSERT/event)', String(naiveSqlitePerS), '-', '-', '-', '-', '-'],
      [
        'naive postgres (1 INSERT/event, 16 conns)',
        String(naivePostgresPerS ?? '-'),
        '-',
        '-',
        '-',
        '-',
        '-',
      ],
    ])}\n`,
  );
  console.log(
    `ratios: sqlite ${result.sqlite_vs_naive}× naive, ${result.sqlite_vs_per_event_commit}× per-event commit; postgres ${result.postgres_vs_naive}× naive, ${result.postgres_vs_per_event_commit}× per-event commit`,
  );
  if (!quick) {
    const out = fileURLToPath(new URL('results/ledger.json', import.meta.url));
    writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    progress(`wrote ${out}`);
  }
}
