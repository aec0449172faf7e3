/**
 * HTTP service benchmark: our service (`openclaw-edge serve`) against bare Fastify (the framework
 * ceiling), Fastify + @fastify/rate-limit (in-memory) and Fastify + rate-limiter-flexible's
 * `RateLimiterRedis` (local Redis), all driven by autocannon on the same workload.
 *
 *   npm run bench -- http             full run (writes bench/results/http.json), about 8 minutes
 *   npm run bench -- http --quick     smoke run, short measurements, one round (writes nothing)
 *   npm run bench -- http --no-pin    without pinning servers and load generators to CPUs
 *   npm run bench -- http --profile   CPU profile of our service under the c64 load: prints the
 *                                     top self-time functions and where the time goes (writes
 *                                     nothing); --profile=bare (or another contender) profiles
 *                                     that one instead
 *
 * Method (also in BENCHMARKS.md, "HTTP service"):
 * - Each contender is its own child process (`node --conditions=@openclaw-edge/source --import
 *   tsx ...`) on 127.0.0.1 with PORT=0; the bench reads the address from the JSON "ready" line on
 *   its stdout. autocannon runs in this (the bench) process. One server at a time: start, warm
 *   up, measure, SIGTERM, wait for it to exit, next. The sequence runs twice, the second time in
 *   reverse order; medians of the two rounds are reported (see below for busy measurements).
 * - Load: `POST /v1/check` with `{"agent_id":"agent-N"}` over AGENTS ids: the ids in a seeded
 *   (mulberry32) random order, connection i of C cycling through its own slice of ceil(AGENTS /
 *   C) of them, as static pre-built autocannon requests (cheap for the load generator).
 *   autocannon: pipelining 1, keep-alive, 64 connections (and 16), 10 s per measurement.
 * - Our service runs with a temp config (temp data_dir, snapshots on as in production, request
 *   logging off) and a default limit of capacity 1e9, refill 1e9/s: everything is allowed. The
 *   denied run uses capacity 1 and a refill per agent of half the per-agent request rate
 *   measured in round 1 (each agent is requested at a steady rate, so that allows about half);
 *   the share of 429s is measured, not assumed.
 * - Latencies are recorded from autocannon's per-response events (µs resolution, all statuses);
 *   autocannon's own histogram (whole milliseconds) is kept in the JSON as well.
 * - Peaks also from loadgen's closed loop (bench/loadgen, C, 64 connections, each sending on its
 *   last answer) after autocannon's measurements: autocannon, in this process, can be the limit
 *   before a fast server is. A server's peak is the higher of the two.
 * - Pinning (default where taskset and 2 CPUs exist; --no-pin turns it off): servers on CPU 0,
 *   this process and loadgen on CPU 1.
 * - Latency at 80% load: autocannon with overallRate = 80% of our peak. autocannon
 *   enforces a rate per connection per second (each connection sends back to back until its
 *   quota for the second is used, then pauses), so the load arrives in bursts at full speed. The
 *   same rate is therefore also offered by an open-loop paced generator (requests due at fixed
 *   intervals, sent on any idle one of 64 keep-alive connections, latency from the due time).
 *   As a reference for what this machine and Fastify deliver at that relative load, bare
 *   Fastify gets the same generator at 80% of its own peak. On a 2-vCPU machine that generator
 *   (JavaScript, in this process) cannot always offer the rate, so when a C compiler is here
 *   the same rates are also offered by loadgen (bench/loadgen: C, one thread, 64 connections,
 *   the same open loop with each request sent at its time to the microsecond, after a warm-up
 *   at the rate). Its p99 from the due time is the one held to the target. loadgen also offers
 *   50% and 65% of each server's own peak (full runs), for p99 against load.
 * - Batch: `POST /v1/check/batch` with 100 checks per request against our service, c64;
 *   decisions/s = req/s × 100.
 * - Server CPU (from /proc/<pid>/stat), bench-process CPU, Redis CPU and what the rest of the
 *   machine used are recorded per measurement, so a client-bound run shows itself. The machine
 *   is shared: before each server starts the bench waits for quiet, and a measurement during
 *   which other processes used more than a quarter of a core is repeated once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { buildLoadgen, type LoadgenResult, runLoadgen } from './loadgen/loadgen.js';
import {
  clockTicks,
  cpuPinning,
  fmtInt,
  gitState,
  loadAverage,
  median,
  mulberry32,
  nodeCommand,
  percentile,
  pinToCpu,
  procCpuS,
  progress,
  round,
  sleep,
  table,
} from './support.js';

// ---------------------------------------------------------------------------------------------
// Parameters

interface Params {
  readonly rounds: number;
  readonly warmupS: number;
  readonly measureS: number;
  readonly batchWarmupS: number;
  /** Connection counts measured per contender; the first is the headline (peak) setting. */
  readonly connections: readonly number[];
  /** Loads below LOAD_FRACTION (fractions of each server's own peak) that loadgen also offers. */
  readonly lowerLoads: readonly number[];
}

const FULL: Params = {
  rounds: 2,
  warmupS: 3,
  measureS: 10,
  batchWarmupS: 2,
  connections: [64, 16],
  lowerLoads: [0.5, 0.65],
};

const QUICK: Params = {
  rounds: 1,
  warmupS: 1,
  measureS: 3,
  batchWarmupS: 1,
  connections: [64],
  lowerLoads: [],
};

const AGENTS = 10_000;
const BATCH_SIZE = 100;
const BATCH_POOL = 256;
const SEED = 0x5eed_2024;
const PIPELINING = 1;
const HEADLINE_CONNECTIONS = 64;
const LOAD_FRACTION = 0.8;
/** Warm-up of loadgen's closed loop, which follows autocannon's measurements on a warm server. */
const CLOSED_WARMUP_S = 1;
/** autocannon per-request timeout, seconds. */
const REQUEST_TIMEOUT_S = 10;
const GENEROUS = { capacity: 1e9, refill: 1e9, per: 'second' } as const;

const TARGETS = {
  oursOverBare: 0.8,
  p99MsAt80: 2,
} as const;

const REPO = fileURLToPath(new URL('..', import.meta.url));
const NODE_ARGS = ['--conditions=@openclaw-edge/source', '--import', 'tsx'] as const;
/** Ours runs as `npm start` runs it (the README says why). */
const OURS_NODE_ARGS = ['--max-semi-space-size=64'] as const;
/** CPUs of servers and load generators for this run (main() decides; undefined: not pinned). */
let pinning: { readonly server: number; readonly load: number } | undefined;

// ---------------------------------------------------------------------------------------------
// Small helpers (as in core.bench.ts)

/** Growable array of float samples. */
class Samples {
  private data = new Float64Array(1 << 16);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Float64Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }

  sorted(): Float64Array {
    return this.data.slice(0, this.length).sort();
  }
}

// ---------------------------------------------------------------------------------------------
// Workload

interface Workload {
  /** JSON bodies of single checks: every agent id once, in a seeded random order. */
  readonly checks: readonly Buffer[];
  /** JSON bodies of batches of BATCH_SIZE checks, agent ids drawn uniformly. */
  readonly batches: readonly Buffer[];
}

function buildWorkload(): Workload {
  const random = mulberry32(SEED);
  const ids = Array.from({ length: AGENTS }, (_, i) => i);
  for (let i = AGENTS - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [ids[i], ids[j]] = [ids[j] as number, ids[i] as number];
  }
  const checks = ids.map((n) => Buffer.from(`{"agent_id":"agent-${n}"}`));
  const batches: Buffer[] = [];
  for (let i = 0; i < BATCH_POOL; i++) {
    const items: string[] = [];
    for (let j = 0; j < BATCH_SIZE; j++) {
      items.push(`{"agent_id":"agent-${Math.floor(random() * AGENTS)}"}`);
    }
    batches.push(Buffer.from(`{"checks":[${items.join(',')}]}`));
  }
  return { checks, batches };
}

// ---------------------------------------------------------------------------------------------
// Contenders (child processes)

type Name = 'ours' | 'ours_denied' | 'bare' | 'fastify_rate_limit' | 'rlf_redis';

const LABELS: Record<Name, string> = {
  ours: 'ours: openclaw-edge serve (all allowed)',
  ours_denied: 'ours: openclaw-edge serve (tight limit, ~50% denied)',
  bare: 'bare Fastify (constant JSON, no limiter)',
  fastify_rate_limit: 'Fastify + @fastify/rate-limit (memory)',
  rlf_redis: 'Fastify + rate-limiter-flexible RateLimiterRedis',
};

const SHORT: Record<Name, string> = {
  ours: 'ours',
  ours_denied: 'ours (denied)',
  bare: 'bare Fastify',
  fastify_rate_limit: '@fastify/rate-limit',
  rlf_redis: 'rlf Redis',
};

interface LimitSpec {
  readonly capacity: number;
  readonly refill: number;
  readonly per: 'second';
}

function oursConfig(dir: string, limit: LimitSpec): string {
  const file = join(dir, 'config.yaml');
  writeFileSync(
    file,
    [
      'server: { host: 127.0.0.1, port: 0 }',
      'node_id: bench',
      `data_dir: ${JSON.stringify(join(dir, 'data'))}`,
      // info, not warn: the "ready" line with the address is logged at info. Request logging
      // stays off, so nothing is logged per request (the bench counts lines during the load).
      'logging: { level: info, format: json, requests: false }',
      'limits:',
      `  - { name: bench, capacity: ${limit.capacity}, refill: ${limit.refill}, per: ${limit.per} }`,
      '',
    ].join('\n'),
  );
  return file;
}

interface ServerHandle {
  readonly address: string;
  readonly pid: number;
  /** stdout lines printed since `markLines()`. */
  linesSinceMark(): number;
  markLines(): void;
  stop(): Promise<number | null>;
}

/** Starts a server child process and resolves once it has printed its ready line. */
function startServer(
  label: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  extraNodeArgs: readonly string[] = [],
): Promise<ServerHandle> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, PORT: '0', HOST: '127.0.0.1' };
  for (const k of [
    'LOG_LEVEL',
    'OPENCLAW_EDGE_CONFIG',
    'OPENCLAW_EDGE_DATA_DIR',
    'OPENCLAW_EDGE_NODE_ID',
    'OPENCLAW_EDGE_LOG_FORMAT',
  ]) {
    delete childEnv[k];
  }
  const child: ChildProcess = spawn(process.execPath, [...NODE_ARGS, ...extraNodeArgs, ...args], {
    cwd: REPO,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (pinning !== undefined && child.pid !== undefined) pinToCpu(child.pid, pinning.server);
  let lines = 0;
  let mark = 0;
  let stderrTail = '';
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((resolve) => {
    child.on('exit', (code, signal) => {
      exited = code ?? (signal === null ? null : -1);
      resolve(exited);
    });
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
  });
  return new Promise<ServerHandle>((resolve, reject) => {
    let partial = '';
    let ready = false;
    const timer = setTimeout(() => {
      if (!ready) {
        child.kill('SIGKILL');
        reject(new Error(`${label}: no ready line within 30 s\n${stderrTail}`));
      }
    }, 30_000);
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      partial += chunk;
      let nl = partial.indexOf('\n');
      while (nl >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        nl = partial.indexOf('\n');
        lines++;
        if (ready) continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(line);
        } catch {
          continue;
        }
        const rec = parsed as { msg?: unknown; address?: unknown };
        if (rec.msg === 'ready' && typeof rec.address === 'string') {
          ready = true;
          clearTimeout(timer);
          const address = rec.address;
          resolve({
            address,
            pid: child.pid as number,
            linesSinceMark: () => lines - mark,
            markLines: () => {
              mark = lines;
            },
            stop: async () => {
              if (exited !== undefined) return exited;
              child.kill('SIGTERM');
              const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
              const code = await exit;
              clearTimeout(killer);
              return code;
            },
          });
        }
      }
    });
    void exit.then((code) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`${label}: exited with ${String(code)} before ready\n${stderrTail}`));
      }
    });
  });
}

interface Contender {
  readonly name: Name;
  start(extraNodeArgs?: readonly string[]): Promise<ServerHandle>;
}

function contenders(tmp: string, deniedLimit: () => LimitSpec): Record<Name, Contender> {
  let sessions = 0;
  const ours = (name: Name, limit: () => LimitSpec): Contender => ({
    name,
    start: (extra = []) => {
      const dir = join(tmp, `${name}-${++sessions}`);
      mkdirSync(dir, { recursive: true });
      const config = oursConfig(dir, limit());
      return startServer(name, ['packages/server/src/main.ts', 'serve', '--config', config], {}, [
        ...OURS_NODE_ARGS,
        ...extra,
      ]);
    },
  });
  const peer = (name: Name, script: string): Contender => ({
    name,
    start: (extra = []) =>
      startServer(
        name,
        [`bench/servers/${script}`],
        { RLF_KEY_PREFIX: `bench-http-${process.pid}-${++sessions}` },
        extra,
      ),
  });
  return {
    ours: ours('ours', () => GENEROUS),
    ours_denied: ours('ours_denied', deniedLimit),
    bare: peer('bare', 'bare.ts'),
    fastify_rate_limit: peer('fastify_rate_limit', 'fastify-rate-limit.ts'),
    rlf_redis: peer('rlf_redis', 'rlf-redis.ts'),
  };
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

/** CPU seconds all CPUs spent busy (not idle, not waiting for I/O), from /proc/stat. */
function systemBusyS(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] as string;
    const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number) as number[];
    return (
      ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) /
      clockTicks
    );
  } catch {
    return Number.NaN;
  }
}

/** The local Redis server's pid, once known: its CPU is reported apart from "other". */
let redisPid: number | undefined;

interface CpuShares {
  /** The server process, % of one core. */
  readonly serverPct: number;
  /** This (the bench, load-generating) process, % of one core. */
  readonly clientPct: number;
  /** The local Redis server, % of one core (NaN when it is not on this machine). */
  readonly redisPct: number;
  /** Everything else on the machine (other processes, kernel work not charged to a process),
   * % of one core. */
  readonly otherPct: number;
}

interface CpuWindow {
  stop(): CpuShares;
}

function cpuWindow(pid: number): CpuWindow {
  const t0 = performance.now();
  const s0 = procCpuS(pid);
  const c0 = process.cpuUsage();
  const b0 = systemBusyS();
  const r0 = redisPid === undefined ? Number.NaN : procCpuS(redisPid);
  return {
    stop: () => {
      const wall = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      const server = procCpuS(pid) - s0;
      const client = (c.user + c.system) / 1e6;
      const redis = redisPid === undefined ? Number.NaN : procCpuS(redisPid) - r0;
      const busy = systemBusyS() - b0;
      return {
        serverPct: (100 * server) / wall,
        clientPct: (100 * client) / wall,
        redisPct: (100 * redis) / wall,
        otherPct: Math.max(
          0,
          (100 * (busy - server - client - (Number.isNaN(redis) ? 0 : redis))) / wall,
        ),
      };
    },
  };
}

const QUIET_PCT = 25;
/** A measurement during which the rest of the machine used more than this (% of one core) is
 * repeated once, after waiting for quiet. */
const BUSY_PCT = 25;
const QUIET_WAIT_MAX_S = 30;

/**
 * Waits (at most QUIET_WAIT_MAX_S) until the machine is quiet: less than QUIET_PCT % of one core
 * busy over half a second while nothing of ours runs. Returns the last reading.
 */
async function waitForQuiet(): Promise<{ busyPct: number; waitedS: number }> {
  const t0 = performance.now();
  for (;;) {
    const b0 = systemBusyS();
    const w0 = performance.now();
    await sleep(500);
    const busyPct = (100 * (systemBusyS() - b0)) / ((performance.now() - w0) / 1000);
    const waitedS = (performance.now() - t0) / 1000;
    if (!(busyPct >= QUIET_PCT) || waitedS >= QUIET_WAIT_MAX_S) return { busyPct, waitedS };
    progress(`  machine busy (${busyPct.toFixed(0)}% of a core used by others); waiting`);
  }
}

/**
 * Runs a measurement; when the rest of the machine used more than BUSY_PCT % of a core during
 * it, waits for quiet and runs it once more, keeping the second result (marked as repeated).
 */
async function measured<T extends { readonly otherCpuPct: number }>(
  label: string,
  run: () => Promise<T>,
): Promise<T & { readonly repeatedAfterOtherCpuPct?: number }> {
  const first = await run();
  if (!(first.otherCpuPct > BUSY_PCT)) return first;
  progress(
    `  ${label}: other processes used ${first.otherCpuPct.toFixed(0)}% of a core meanwhile; measuring again`,
  );
  await waitForQuiet();
  const second = await run();
  return { ...second, repeatedAfterOtherCpuPct: first.otherCpuPct };
}

// ---------------------------------------------------------------------------------------------
// autocannon (no type declarations ship with it: the part used here, typed)

interface AcRequest {
  body: Buffer;
}

interface AcOptions {
  url: string;
  method: 'POST';
  headers: Record<string, string>;
  setupClient: (client: AcClient) => void;
  connections: number;
  pipelining: number;
  duration: number;
  timeout: number;
  overallRate?: number;
}

interface AcHistogram {
  average: number;
  p50: number;
  p99: number;
  max: number;
  total: number;
}

interface AcResult {
  duration: number;
  errors: number;
  timeouts: number;
  mismatches: number;
  non2xx: number;
  resets: number;
  statusCodeStats: Record<string, { count: number }>;
  latency: AcHistogram;
  requests: AcHistogram;
}

interface AcClient {
  setRequests(requests: AcRequest[]): void;
}

interface AcInstance extends PromiseLike<AcResult> {
  on(
    event: 'response',
    listener: (client: unknown, status: number, bytes: number, ms: number) => void,
  ): void;
}

type Autocannon = (options: AcOptions) => AcInstance;

const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

interface LoadSpec {
  readonly path: string;
  readonly bodies: readonly Buffer[];
  readonly connections: number;
  readonly durationS: number;
  readonly overallRate?: number;
}

interface LoadResult {
  readonly connections: number;
  readonly overallRate: number | null;
  readonly rps: number;
  readonly requests: number;
  readonly durationS: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly autocannonP50Ms: number;
  readonly autocannonP99Ms: number;
  readonly non2xx: number;
  readonly statusCounts: Record<string, number>;
  readonly errors: number;
  readonly timeouts: number;
  readonly resets: number;
  readonly serverCpuPct: number;
  readonly clientCpuPct: number;
  readonly redisCpuPct: number;
  readonly otherCpuPct: number;
  readonly serverLogLines: number;
  /** Set when a first try was discarded: what the rest of the machine used during it. */
  readonly repeatedAfterOtherCpuPct?: number;
}

async function load(server: ServerHandle, spec: LoadSpec): Promise<LoadResult> {
  const { bodies, connections } = spec;
  // Connection i cycles through its own slice of the seeded sequence of bodies; the slices
  // together cover every body. Static requests, so autocannon builds each one once, not once
  // per request (a per-request setupRequest cost the load generator much more CPU).
  const perClient = Math.ceil(bodies.length / connections);
  let clients = 0;
  const setupClient = (client: AcClient): void => {
    const first = (clients++ % connections) * perClient;
    client.setRequests(
      Array.from({ length: perClient }, (_, k) => ({
        body: bodies[(first + k) % bodies.length] as Buffer,
      })),
    );
  };
  const latencies = new Samples();
  server.markLines();
  const cpu = cpuWindow(server.pid);
  const instance = autocannon({
    url: `${server.address}${spec.path}`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    setupClient,
    connections,
    pipelining: PIPELINING,
    duration: spec.durationS,
    timeout: REQUEST_TIMEOUT_S,
    ...(spec.overallRate === undefined ? {} : { overallRate: spec.overallRate }),
  });
  instance.on('response', (_client, _status, _bytes, ms) => latencies.push(ms));
  const r = await instance;
  const usage = cpu.stop();
  const sorted = latencies.sorted();
  const statusCounts: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats)) statusCounts[code] = s.count;
  return {
    connections,
    overallRate: spec.overallRate ?? null,
    rps: r.requests.total / r.duration,
    requests: r.requests.total,
    durationS: r.duration,
    p50Ms: percentile(sorted, 0.5),
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : Number.NaN,
    autocannonP50Ms: r.latency.p50,
    autocannonP99Ms: r.latency.p99,
    non2xx: r.non2xx,
    statusCounts,
    errors: r.errors,
    timeouts: r.timeouts,
    resets: r.resets,
    serverCpuPct: usage.serverPct,
    clientCpuPct: usage.clientPct,
    redisCpuPct: usage.redisPct,
    otherCpuPct: usage.otherPct,
    serverLogLines: server.linesSinceMark(),
  };
}

function pacedJson(r: PacedResult) {
  return {
    target_rate: r.targetRate,
    connections: r.connections,
    duration_s: r.durationS,
    sent: r.sent,
    completed: r.completed,
    achieved_rps: round(r.achievedRps, 0),
    p50_ms_from_due: round(r.p50Ms, 3),
    p99_ms_from_due: round(r.p99Ms, 3),
    p999_ms_from_due: round(r.p999Ms, 3),
    max_ms_from_due: round(r.maxMs, 3),
    p50_ms_from_write: round(r.p50MsFromWrite, 3),
    p99_ms_from_write: round(r.p99MsFromWrite, 3),
    status_counts: r.statusCounts,
    non_2xx: r.non2xx,
    errors: r.errors,
    queued_on_client: r.queuedOnClient,
    max_client_queue: r.maxClientQueue,
    server_cpu_pct: round(r.serverCpuPct, 1),
    bench_process_cpu_pct: round(r.clientCpuPct, 1),
    other_cpu_pct: round(r.otherCpuPct, 1),
    repeated_after_other_cpu_pct:
      r.repeatedAfterOtherCpuPct === undefined ? null : round(r.repeatedAfterOtherCpuPct, 1),
  };
}

function describePaced(r: PacedResult): string {
  return (
    `${fmtInt(r.achievedRps)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ` +
    `p99.9 ${r.p999Ms.toFixed(2)} ms (from due time; from write p99 ${r.p99MsFromWrite.toFixed(2)} ms), ` +
    `queued on client ${fmtInt(r.queuedOnClient)}, non-2xx ${r.non2xx}, errors ${r.errors}, ` +
    `cpu server ${r.serverCpuPct.toFixed(0)}% bench ${r.clientCpuPct.toFixed(0)}% other ${r.otherCpuPct.toFixed(0)}%`
  );
}

function describe(r: LoadResult): string {
  const statuses = Object.entries(r.statusCounts)
    .map(([code, n]) => `${code}×${fmtInt(n)}`)
    .join(' ');
  return (
    `${fmtInt(r.rps)} req/s, p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, ` +
    `non-2xx ${fmtInt(r.non2xx)}, errors ${r.errors}, timeouts ${r.timeouts} [${statuses}] ` +
    `cpu server ${r.serverCpuPct.toFixed(0)}% bench ${r.clientCpuPct.toFixed(0)}%` +
    `${r.redisCpuPct > 1 ? ` redis ${r.redisCpuPct.toFixed(0)}%` : ''} other ${r.otherCpuPct.toFixed(0)}%`
  );
}

// ---------------------------------------------------------------------------------------------
// Open-loop paced load (the 80% latency without autocannon's per-second bursts)

interface PacedResult {
  readonly targetRate: number;
  readonly connections: number;
  readonly durationS: number;
  readonly sent: number;
  readonly completed: number;
  readonly achievedRps: number;
  /** Latency from the time each request was due (includes any wait for an idle connection). */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
  /** Latency from the time each request was written to its socket. */
  readonly p50MsFromWrite: number;
  readonly p99MsFromWrite: number;
  readonly statusCounts: Record<string, number>;
  readonly non2xx: number;
  readonly errors: number;
  /** Requests that were due while every connection was busy. */
  readonly queuedOnClient: number;
  readonly maxClientQueue: number;
  readonly serverCpuPct: number;
  readonly clientCpuPct: number;
  readonly otherCpuPct: number;
  readonly repeatedAfterOtherCpuPct?: number;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i;

interface Conn {
  readonly socket: Socket;
  dueAt: number;
  writtenAt: number;
  busy: boolean;
  pending: Buffer | undefined;
}

async function pacedLoad(
  server: ServerHandle,
  bodies: readonly Buffer[],
  ratePerS: number,
  connections: number,
  durationS: number,
): Promise<PacedResult> {
  const url = new URL(server.address);
  const port = Number(url.port);
  const requests = bodies.map((body) =>
    Buffer.concat([
      Buffer.from(
        `POST /v1/check HTTP/1.1\r\nHost: ${url.host}\r\nConnection: keep-alive\r\n` +
          `content-type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      ),
      body,
    ]),
  );
  const fromDue = new Samples();
  const fromWrite = new Samples();
  const statusCounts: Record<string, number> = {};
  let non2xx = 0;
  let errors = 0;
  let sent = 0;
  let completed = 0;
  let queuedOnClient = 0;
  let maxClientQueue = 0;
  let next = 0;
  // Due times of requests waiting for an idle connection (FIFO).
  const queue: number[] = [];
  let queueHead = 0;
  const idle: Conn[] = [];

  const send = (conn: Conn, dueAt: number): void => {
    conn.busy = true;
    conn.dueAt = dueAt;
    conn.writtenAt = performance.now();
    conn.socket.write(requests[next++ % requests.length] as Buffer);
    sent++;
  };

  const onResponse = (conn: Conn, status: number): void => {
    const now = performance.now();
    fromDue.push(now - conn.dueAt);
    fromWrite.push(now - conn.writtenAt);
    completed++;
    statusCounts[status] = (statusCounts[status] ?? 0) + 1;
    if (status < 200 || status >= 300) non2xx++;
    conn.busy = false;
    if (queueHead < queue.length) send(conn, queue[queueHead++] as number);
    else idle.push(conn);
  };

  const conns = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<Conn>((resolve, reject) => {
          const socket = connect({ host: url.hostname, port }, () => {
            socket.setNoDelay(true);
            resolve(conn);
          });
          const conn: Conn = { socket, dueAt: 0, writtenAt: 0, busy: false, pending: undefined };
          socket.once('error', reject);
          socket.on('data', (chunk: Buffer) => {
            let buf = conn.pending === undefined ? chunk : Buffer.concat([conn.pending, chunk]);
            for (;;) {
              const headerEnd = buf.indexOf(HEADER_END);
              if (headerEnd < 0) break;
              const head = buf.toString('latin1', 0, headerEnd);
              const length = CONTENT_LENGTH.exec(head);
              if (length === null) throw new Error('paced load: response without content-length');
              const total = headerEnd + 4 + Number(length[1]);
              if (buf.length < total) break;
              const status = Number(head.slice(9, 12));
              buf = buf.subarray(total);
              onResponse(conn, status);
            }
            conn.pending = buf.length > 0 ? buf : undefined;
          });
        }),
    ),
  );
  for (const conn of conns) {
    conn.socket.removeAllListeners('error');
    conn.socket.on('error', () => {
      errors++;
    });
    idle.push(conn);
  }

  server.markLines();
  const cpu = cpuWindow(server.pid);
  const perMs = ratePerS / 1000;
  const durationMs = durationS * 1000;
  const t0 = performance.now();
  let issued = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      const elapsed = now - t0;
      const due = Math.floor(Math.min(elapsed, durationMs) * perMs);
      while (issued < due) {
        const dueAt = t0 + issued / perMs;
        issued++;
        const conn = idle.pop();
        if (conn !== undefined) send(conn, dueAt);
        else {
          queue.push(dueAt);
          queuedOnClient++;
        }
      }
      maxClientQueue = Math.max(maxClientQueue, queue.length - queueHead);
      if (queueHead > 4096 && queueHead * 2 > queue.length) {
        queue.splice(0, queueHead);
        queueHead = 0;
      }
      const drained = completed >= issued && queueHead >= queue.length;
      if (elapsed >= durationMs && (drained || elapsed >= durationMs + 5000)) resolve();
      else setImmediate(tick);
    };
    setImmediate(tick);
  });
  const wallS = (performance.now() - t0) / 1000;
  const usage = cpu.stop();
  for (const conn of conns) conn.socket.destroy();
  const due = fromDue.sorted();
  const write = fromWrite.sorted();
  return {
    targetRate: ratePerS,
    connections,
    durationS,
    sent,
    completed,
    achievedRps: completed / wallS,
    p50Ms: percentile(due, 0.5),
    p99Ms: percentile(due, 0.99),
    p999Ms: percentile(due, 0.999),
    maxMs: due.length > 0 ? (due[due.length - 1] as number) : Number.NaN,
    p50MsFromWrite: percentile(write, 0.5),
    p99MsFromWrite: percentile(write, 0.99),
    statusCounts,
    non2xx,
    errors,
    queuedOnClient,
    maxClientQueue,
    serverCpuPct: usage.serverPct,
    clientCpuPct: usage.clientPct,
    otherCpuPct: usage.otherPct,
  };
}

// ---------------------------------------------------------------------------------------------
// loadgen: the 80% latency from an open-loop C load generator (bench/loadgen)

interface OpenLoopResult extends LoadgenResult {
  readonly serverCpuPct: number;
  /** loadgen's CPU, sampled every 250 ms while it ran. */
  readonly loadgenCpuPct: number;
  readonly otherCpuPct: number;
}

/**
 * loadgen at `ratePerS` on 64 keep-alive connections: requests evenly spaced (wrk2's -R), each
 * sent on any idle connection, latency from when it was due; a warm-up first at the same rate.
 */
async function openLoop(
  server: ServerHandle,
  binary: string,
  bodies: readonly Buffer[],
  ratePerS: number,
  warmupS: number,
  durationS: number,
  dir: string,
): Promise<OpenLoopResult> {
  server.markLines();
  const cpu = cpuWindow(server.pid);
  const started = performance.now();
  const { result, cpuS } = await runLoadgen(
    binary,
    {
      url: `${server.address}/v1/check`,
      rate: ratePerS,
      warmupS,
      durationS,
      connections: HEADLINE_CONNECTIONS,
      bodies,
      timeoutS: REQUEST_TIMEOUT_S,
      ...(pinning === undefined ? {} : { cpu: pinning.load }),
    },
    dir,
  );
  const usage = cpu.stop();
  const wallS = (performance.now() - started) / 1000;
  return {
    ...result,
    serverCpuPct: usage.serverPct,
    loadgenCpuPct: (100 * cpuS) / wallS,
    // loadgen is a child process, so the window counted it among the others.
    otherCpuPct: Math.max(0, usage.otherPct - (100 * cpuS) / wallS),
  };
}

function openLoopJson(r: OpenLoopResult & { readonly repeatedAfterOtherCpuPct?: number }) {
  const { serverCpuPct, loadgenCpuPct, otherCpuPct, repeatedAfterOtherCpuPct, ...result } = r;
  return {
    ...result,
    server_cpu_pct: round(serverCpuPct, 1),
    loadgen_cpu_pct: round(loadgenCpuPct, 1),
    other_cpu_pct: round(otherCpuPct, 1),
    repeated_after_other_cpu_pct:
      repeatedAfterOtherCpuPct === undefined ? null : round(repeatedAfterOtherCpuPct, 1),
  };
}

function describeOpenLoop(r: OpenLoopResult): string {
  const l = r.latency_ms;
  return (
    `${fmtInt(r.achieved_rps)} req/s, from due time p50 ${l.p50.toFixed(2)} ms, p90 ${l.p90.toFixed(2)} ms, ` +
    `p99 ${l.p99.toFixed(2)} ms, p99.9 ${l.p999.toFixed(2)} ms, max ${l.max.toFixed(2)} ms; ` +
    `from write p99 ${r.service_ms.p99.toFixed(2)} ms; non-2xx ${r.non2xx}, errors ${r.errors + r.unfinished}, ` +
    `cpu server ${r.serverCpuPct.toFixed(0)}% loadgen ${r.loadgenCpuPct.toFixed(0)}% other ${r.otherCpuPct.toFixed(0)}%`
  );
}

/** `round`, with undefined (a measurement that did not run) as null. */
function nullable(value: number | undefined, digits: number): number | null {
  return value === undefined ? null : round(value, digits);
}

function describeClosed(r: OpenLoopResult): string {
  const l = r.service_ms;
  return (
    `${fmtInt(r.achieved_rps)} req/s, p50 ${l.p50.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms, ` +
    `non-2xx ${r.non2xx}, errors ${r.errors + r.unfinished}, ` +
    `cpu server ${r.serverCpuPct.toFixed(0)}% loadgen ${r.loadgenCpuPct.toFixed(0)}% other ${r.otherCpuPct.toFixed(0)}%`
  );
}

interface LoadPoint {
  readonly fraction: number;
  readonly result: OpenLoopResult;
}

/** loadgen at each of `fractions` of `peakRps`, in that order: p99 against load, not one point. */
async function loadgenPoints(
  label: string,
  server: ServerHandle,
  binary: string,
  bodies: readonly Buffer[],
  peakRps: number,
  fractions: readonly number[],
  p: Params,
  dir: string,
): Promise<LoadPoint[]> {
  const points: LoadPoint[] = [];
  for (const fraction of fractions) {
    const rate = Math.round(fraction * peakRps);
    const result = await measured(`loadgen ${100 * fraction}% (${label})`, () =>
      openLoop(server, binary, bodies, rate, p.warmupS, p.measureS, dir),
    );
    progress(`  loadgen ${100 * fraction}%, ${fmtInt(rate)}/s: ${describeOpenLoop(result)}`);
    points.push({ fraction, result });
  }
  return points;
}

// ---------------------------------------------------------------------------------------------
// CPU profile summary (--profile)

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function frameKey(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const name = functionName === '' ? '(anonymous)' : functionName;
  if (url === '') return name;
  const short = url
    .replace(/^file:\/\//, '')
    .replace(`${REPO}`, '')
    .replace(/^.*node_modules\//, '');
  return `${name} ${short}:${lineNumber + 1}`;
}

function category(node: ProfileNode): string {
  const { functionName, url } = node.callFrame;
  if (url === '') {
    if (functionName.startsWith('(')) return functionName;
    return 'native / generated (incl. compiled schemas)';
  }
  if (url.startsWith('node:')) return 'node internals (http, net, streams)';
  if (url.includes('packages/server/src')) return 'ours: packages/server';
  if (url.includes('packages/engine/src')) return 'ours: packages/engine';
  if (url.includes('packages/core/src')) return 'ours: packages/core';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg !== null) return `node_modules/${pkg[1]}`;
  return 'other';
}

function summariseProfile(file: string, skipMs: number): string[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  let t = 0;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t < skipMs * 1000) continue;
    const id = profile.samples[i] as number;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
    total += dt;
  }
  const self = new Map<string, number>();
  const cats = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id) as ProfileNode;
    const key = frameKey(node);
    self.set(key, (self.get(key) ?? 0) + us);
    const c = category(node);
    cats.set(c, (cats.get(c) ?? 0) + us);
  }
  // Inclusive time per function: a node's self time counts once for every distinct function
  // on its stack.
  const inclusive = new Map<string, number>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  for (const [id, us] of selfUs) {
    const keys = new Set<string>();
    let cur: number | undefined = id;
    while (cur !== undefined) {
      keys.add(frameKey(byId.get(cur) as ProfileNode));
      cur = parent.get(cur);
    }
    for (const k of keys) inclusive.set(k, (inclusive.get(k) ?? 0) + us);
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const top = (m: Map<string, number>, n: number, filter: (k: string) => boolean = () => true) =>
    [...m.entries()]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${pct(us)}  ${k}`);
  const boring = (k: string) =>
    !k.startsWith('(root)') &&
    !k.startsWith('(program)') &&
    !k.startsWith('(idle)') &&
    !/^(processTicksAndRejections|listOnTimeout|processTimers|emit|onStreamRead|callbackTrampoline) /.test(
      k,
    );
  return [
    `profile ${file}: ${(total / 1e6).toFixed(1)} s of samples after the first ${(skipMs / 1000).toFixed(1)} s`,
    'by category (self time):',
    ...top(cats, 20),
    'top functions by self time:',
    ...top(self, 30),
    'top functions by inclusive time (event-loop plumbing left out):',
    ...top(inclusive, 40, boring),
  ];
}

// ---------------------------------------------------------------------------------------------
// Report

interface Options {
  readonly quick: boolean;
  /** Pin servers and load generators to CPUs of their own (default; `--no-pin` turns it off). */
  readonly pin: boolean;
  /** Contender to CPU-profile instead of the full run. */
  readonly profile: Name | undefined;
}

function parseArgs(args: readonly string[]): Options {
  let quick = false;
  let pin = true;
  let profile: Name | undefined;
  for (const arg of args) {
    if (arg === '--quick') quick = true;
    else if (arg === '--no-pin') pin = false;
    else if (arg === '--profile') profile = 'ours';
    else if (arg.startsWith('--profile=') && arg.slice(10) in LABELS) {
      profile = arg.slice(10) as Name;
    } else {
      throw new Error(
        `http bench: unexpected argument "${arg}" (accepted: --quick, --no-pin, --profile[=${Object.keys(LABELS).join('|')}])`,
      );
    }
  }
  return { quick, pin, profile };
}

/** Redis's version, and its pid when it runs on this machine (its CPU is then counted apart). */
async function redisInfo(): Promise<string> {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    const info = await redis.info('server');
    const host = new URL(url).hostname;
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    if ((host === '127.0.0.1' || host === 'localhost') && Number.isFinite(procCpuS(pid))) {
      redisPid = pid;
    }
    return /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  } catch (error) {
    throw new Error(`http bench: Redis at ${url} is not reachable (${String(error)})`);
  } finally {
    redis.disconnect();
  }
}

/** Measurement key: `c64`, `c16`, `batch`. */
type Key = string;
type Runs = Record<Name, Record<Key, LoadResult[]>>;

async function profileOne(name: Name, p: Params, workload: Workload, tmp: string): Promise<void> {
  const dir = join(tmp, 'profile');
  mkdirSync(dir, { recursive: true });
  // The denied run, profiled alone, gets a tight limit of 1 token per agent per second.
  const c = contenders(tmp, () => ({ capacity: 1, refill: 1, per: 'second' }))[name];
  await waitForQuiet();
  const spawnedAt = performance.now();
  const server = await c.start(['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const body = { path: '/v1/check', bodies: workload.checks };
  progress(`profile: ${name} at ${server.address}, warm-up ${p.warmupS} s`);
  await load(server, { ...body, connections: HEADLINE_CONNECTIONS, durationS: p.warmupS });
  const skipMs = performance.now() - spawnedAt;
  const r = await load(server, {
    ...body,
    connections: HEADLINE_CONNECTIONS,
    durationS: p.measureS,
  });
  progress(`profile: c${HEADLINE_CONNECTIONS}: ${describe(r)}`);
  await server.stop();
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('profile: no .cpuprofile written');
  // Kept outside the bench's temp dir, for a closer look (e.g. Chrome DevTools).
  const kept = join(tmpdir(), `openclaw-http-bench-${name}.cpuprofile`);
  copyFileSync(join(dir, file), kept);
  for (const line of summariseProfile(kept, skipMs)) console.log(line);
  progress(
    `profile: kept ${kept} (load started ${(skipMs / 1000).toFixed(1)} s in); nothing else written`,
  );
}

export async function main(args: readonly string[]): Promise<void> {
  const options = parseArgs(args);
  const p = options.quick ? QUICK : FULL;
  pinning = options.pin ? cpuPinning() : undefined;
  if (pinning !== undefined) pinToCpu(process.pid, pinning.load);
  const git = gitState();
  const loadStart = loadAverage();
  progress(
    `http bench${options.quick ? ' (quick)' : ''}${options.profile === undefined ? '' : ` (profile ${options.profile})`}: Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'}), load average ${loadStart.join(' ')}`,
  );
  progress(
    `commit ${git.commit}${git.packagesDirty ? ' (packages/*/src modified)' : ''}; autocannon: pipelining ${PIPELINING}, keep-alive, connections ${p.connections.join(' and ')}, ${p.measureS} s per measurement after ${p.warmupS} s warm-up`,
  );
  progress(
    pinning === undefined
      ? `pinning: none${options.pin ? ' (needs taskset and 2 CPUs)' : ' (--no-pin)'}`
      : `pinning: each server on CPU ${pinning.server}; this process (autocannon) and loadgen on CPU ${pinning.load}; Redis where the OS puts it`,
  );
  const workload = buildWorkload();
  const tmp = mkdtempSync(join(tmpdir(), 'openclaw-http-bench-'));
  try {
    if (options.profile !== undefined) {
      await profileOne(options.profile, p, workload, tmp);
      return;
    }
    const redisVersion = await redisInfo();
    progress(
      `workload: ${fmtInt(workload.checks.length)} check bodies (every agent id once, seeded order), ${BATCH_POOL} batches of ${BATCH_SIZE}; Redis ${redisVersion}`,
    );
    await runAll(p, options, workload, tmp, git, loadStart, redisVersion);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function runAll(
  p: Params,
  options: Options,
  workload: Workload,
  tmp: string,
  git: { commit: string; packagesDirty: boolean | null },
  loadStart: number[],
  redisVersion: string,
): Promise<void> {
  const runs: Runs = {
    ours: {},
    ours_denied: {},
    bare: {},
    fastify_rate_limit: {},
    rlf_redis: {},
  };
  const record = (name: Name, key: Key, r: LoadResult) => {
    runs[name][key] ??= [];
    (runs[name][key] as LoadResult[]).push(r);
  };
  let deniedLimit: LimitSpec | undefined;
  const all = contenders(tmp, () => {
    if (deniedLimit === undefined) throw new Error('denied limit not calibrated yet');
    return deniedLimit;
  });
  const order: Name[] = ['ours', 'ours_denied', 'bare', 'fastify_rate_limit', 'rlf_redis'];
  const checks = { path: '/v1/check', bodies: workload.checks };
  const exitCodes: Record<string, number | null> = {};
  const quiet: Record<string, { busyPct: number; waitedS: number }> = {};
  const loadgen = buildLoadgen(tmp);
  if (loadgen === undefined) {
    progress('no C compiler (apt-get install gcc) to build loadgen: its measurements are skipped');
  }
  // Each contender's peak from loadgen's closed loop as well: autocannon runs in this Node
  // process and can be the limit before a fast server is (BENCHMARKS.md says when it was).
  const closedRuns: Partial<Record<Name, OpenLoopResult[]>> = {};

  for (let roundNo = 1; roundNo <= p.rounds; roundNo++) {
    const reverse = roundNo % 2 === 0;
    const names = reverse ? [...order].reverse() : order;
    progress(`round ${roundNo}/${p.rounds}: ${names.map((n) => SHORT[n]).join(', ')}`);
    for (const name of names) {
      if (name === 'ours_denied' && deniedLimit === undefined) {
        const peak = (runs.ours[`c${HEADLINE_CONNECTIONS}`] ?? [])[0];
        if (peak === undefined) throw new Error('ours must run before ours_denied');
        // Each agent is requested at a steady rate (once per cycle of its connection's slice):
        // capacity 1 and a refill of half that rate let half the requests pass.
        deniedLimit = { capacity: 1, refill: round(peak.rps / AGENTS / 2, 4), per: 'second' };
        progress(
          `denied run: limit capacity 1, refill ${deniedLimit.refill}/s per agent (ours' round-1 rate ${fmtInt(peak.rps)} req/s over ${fmtInt(AGENTS)} agents)`,
        );
      }
      quiet[`${name}#${roundNo}`] = await waitForQuiet();
      const server = await all[name].start();
      try {
        progress(`  ${SHORT[name]}: ready at ${server.address}; warm-up ${p.warmupS} s`);
        await load(server, {
          ...checks,
          connections: HEADLINE_CONNECTIONS,
          durationS: p.warmupS,
        });
        const conns = name === 'ours_denied' ? [HEADLINE_CONNECTIONS] : p.connections;
        for (const c of reverse ? [...conns].reverse() : conns) {
          const r = await measured(`${SHORT[name]} c${c}`, () =>
            load(server, { ...checks, connections: c, durationS: p.measureS }),
          );
          record(name, `c${c}`, r);
          progress(`  ${SHORT[name]} c${c}: ${describe(r)}`);
        }
        if (loadgen !== undefined && name !== 'ours_denied') {
          const r = await measured(`${SHORT[name]} loadgen closed loop`, () =>
            openLoop(server, loadgen, workload.checks, 0, CLOSED_WARMUP_S, p.measureS, tmp),
          );
          closedRuns[name] = [...(closedRuns[name] ?? []), r];
          progress(
            `  ${SHORT[name]} loadgen closed loop c${HEADLINE_CONNECTIONS}: ${describeClosed(r)}`,
          );
        }
        if (name === 'ours') {
          const batch = { path: '/v1/check/batch', bodies: workload.batches };
          await load(server, {
            ...batch,
            connections: HEADLINE_CONNECTIONS,
            durationS: p.batchWarmupS,
          });
          const r = await measured('ours batch', () =>
            load(server, { ...batch, connections: HEADLINE_CONNECTIONS, durationS: p.measureS }),
          );
          record(name, 'batch', r);
          progress(
            `  ours batch ×${BATCH_SIZE} c${HEADLINE_CONNECTIONS}: ${describe(r)} = ${fmtInt(r.rps * BATCH_SIZE)} decisions/s`,
          );
        }
      } finally {
        exitCodes[`${name}#${roundNo}`] = await server.stop();
      }
    }
  }

  // Medians leave out measurements during which other processes were busy, as long as a clean
  // one of the same kind remains.
  const clean = <T extends { readonly otherCpuPct: number }>(list: readonly T[]): readonly T[] => {
    const quietOnes = list.filter((r) => !(r.otherCpuPct > BUSY_PCT));
    return quietOnes.length > 0 ? quietOnes : list;
  };
  const med = (name: Name, key: Key, f: (r: LoadResult) => number): number =>
    median(clean(runs[name][key] ?? []).map(f));
  const h = `c${HEADLINE_CONNECTIONS}`;
  const oursRps = med('ours', h, (r) => r.rps);
  const closedRps = (name: Name): number | undefined => {
    const list = closedRuns[name] ?? [];
    return list.length === 0 ? undefined : median(clean(list).map((r) => r.achieved_rps));
  };
  // A server's peak: the higher of the two generators' (the lower one is the generator's limit).
  const peak = (name: Name) =>
    Math.max(
      med(name, h, (r) => r.rps),
      closedRps(name) ?? 0,
    );

  // Latency at 80% of our peak: autocannon's overallRate, then the paced open-loop generator.
  const rate = Math.round(LOAD_FRACTION * peak('ours'));
  quiet['ours#80pct'] = await waitForQuiet();
  const server = await all.ours.start();
  let at80: LoadResult;
  let paced: PacedResult;
  let openOurs: OpenLoopResult | undefined;
  let openBare: OpenLoopResult | undefined;
  let curveOurs: LoadPoint[] = [];
  let curveBare: LoadPoint[] = [];
  try {
    progress(
      `80% load: ours at ${server.address}; warm-up ${p.warmupS} s, then ${fmtInt(rate)} req/s (${100 * LOAD_FRACTION}% of ${fmtInt(peak('ours'))})`,
    );
    await load(server, { ...checks, connections: HEADLINE_CONNECTIONS, durationS: p.warmupS });
    at80 = await measured('autocannon overallRate', () =>
      load(server, {
        ...checks,
        connections: HEADLINE_CONNECTIONS,
        durationS: p.measureS,
        overallRate: rate,
      }),
    );
    progress(`  autocannon overallRate ${fmtInt(rate)}: ${describe(at80)}`);
    paced = await measured('paced open loop', () =>
      pacedLoad(server, workload.checks, rate, HEADLINE_CONNECTIONS, p.measureS),
    );
    progress(`  paced open loop ${fmtInt(rate)}/s: ${describePaced(paced)}`);
    if (loadgen !== undefined) {
      curveOurs = await loadgenPoints(
        'ours',
        server,
        loadgen,
        workload.checks,
        peak('ours'),
        [LOAD_FRACTION, ...p.lowerLoads],
        p,
        tmp,
      );
      openOurs = curveOurs[0]?.result;
    }
  } finally {
    exitCodes['ours#80pct'] = await server.stop();
  }

  // Reference: the same generator against bare Fastify at 80% of bare's own peak, i.e. what
  // this machine and the framework deliver at that relative load.
  const bareRate = Math.round(LOAD_FRACTION * peak('bare'));
  quiet['bare#80pct'] = await waitForQuiet();
  const bare = await all.bare.start();
  let barePaced: PacedResult;
  try {
    progress(
      `80% load reference: bare Fastify at ${bare.address}; warm-up ${p.warmupS} s, then paced ${fmtInt(bareRate)} req/s`,
    );
    await load(bare, { ...checks, connections: HEADLINE_CONNECTIONS, durationS: p.warmupS });
    barePaced = await measured('paced open loop (bare)', () =>
      pacedLoad(bare, workload.checks, bareRate, HEADLINE_CONNECTIONS, p.measureS),
    );
    progress(`  paced open loop ${fmtInt(bareRate)}/s: ${describePaced(barePaced)}`);
    if (loadgen !== undefined) {
      curveBare = await loadgenPoints(
        'bare',
        bare,
        loadgen,
        workload.checks,
        peak('bare'),
        [LOAD_FRACTION, ...p.lowerLoads],
        p,
        tmp,
      );
      openBare = curveBare[0]?.result;
    }
  } finally {
    exitCodes['bare#80pct'] = await bare.stop();
  }

  // ------------------------------------------------------------------------- summary
  const peers: Name[] = ['bare', 'fastify_rate_limit', 'rlf_redis'];
  const rps = (name: Name, key: Key = h) => med(name, key, (r) => r.rps);
  const ratio = (name: Name, key: Key = h) => rps('ours', key) / rps(name, key);
  // Same-round ratios: each round measures the contenders minutes apart at most.
  const paired = (name: Name, key: Key = h) =>
    median(
      (runs.ours[key] ?? [])
        .map((r, i) => [r, (runs[name][key] ?? [])[i]] as const)
        .filter(
          ([a, b]) => b !== undefined && !(a.otherCpuPct > BUSY_PCT || b.otherCpuPct > BUSY_PCT),
        )
        .map(([a, b]) => a.rps / (b as LoadResult).rps),
    );
  const batchRps = rps('ours', 'batch');
  const denied = clean(runs.ours_denied[h] ?? []);
  const deniedShare = (r: LoadResult) => (r.statusCounts['429'] ?? 0) / r.requests;

  const keys = p.connections.map((c) => `c${c}`);
  const rows: string[][] = [
    [
      'contender',
      ...keys.flatMap((k) => [`${k} req/s`, `${k} p50 ms`, `${k} p99 ms`]),
      'ours ÷ this',
      'non-2xx',
      'errors',
      'server cpu',
      'other cpu',
    ],
  ];
  for (const name of ['ours', 'ours_denied', ...peers] as Name[]) {
    const mk = (k: Key) =>
      runs[name][k] === undefined
        ? ['–', '–', '–']
        : [
            fmtInt(rps(name, k)),
            med(name, k, (r) => r.p50Ms).toFixed(2),
            med(name, k, (r) => r.p99Ms).toFixed(2),
          ];
    const sum = (f: (r: LoadResult) => number) =>
      Object.values(runs[name])
        .flat()
        .reduce((a, r) => a + f(r), 0);
    rows.push([
      SHORT[name],
      ...keys.flatMap(mk),
      name === 'ours' ? '1.00×' : `${ratio(name).toFixed(2)}×`,
      fmtInt(sum((r) => r.non2xx)),
      fmtInt(sum((r) => r.errors + r.timeouts)),
      `${med(name, h, (r) => r.serverCpuPct).toFixed(0)}%`,
      `${med(name, h, (r) => r.otherCpuPct).toFixed(0)}%`,
    ]);
  }
  const closedRatio = (name: Name): number | undefined => {
    const a = closedRps('ours');
    const b = closedRps(name);
    return a === undefined || b === undefined ? undefined : a / b;
  };
  const met = {
    oursOverBare: ratio('bare') >= TARGETS.oursOverBare,
    oursOverBareLoadgen: (closedRatio('bare') ?? 0) >= TARGETS.oursOverBare,
    aheadOfFastifyRateLimitLoadgen: (closedRatio('fastify_rate_limit') ?? 0) > 1,
    aheadOfRlfRedisLoadgen: (closedRatio('rlf_redis') ?? 0) > 1,
    aheadOfFastifyRateLimit: ratio('fastify_rate_limit') > 1,
    aheadOfRlfRedis: ratio('rlf_redis') > 1,
    p99At80Autocannon: at80.p99Ms < TARGETS.p99MsAt80,
    p99At80Paced: paced.p99Ms < TARGETS.p99MsAt80,
    p99At80Loadgen: openOurs === undefined ? null : openOurs.latency_ms.p99 < TARGETS.p99MsAt80,
  };
  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  console.log('');
  console.log(table(rows));
  console.log('');
  console.log(
    `ours / bare Fastify        = ${(100 * ratio('bare')).toFixed(1)}%  (target ≥ ${100 * TARGETS.oursOverBare}%: ${verdict(met.oursOverBare)}; same-round ${(100 * paired('bare')).toFixed(1)}%)`,
  );
  console.log(
    `ours / @fastify/rate-limit = ${ratio('fastify_rate_limit').toFixed(2)}×  (target > 1: ${verdict(met.aheadOfFastifyRateLimit)})`,
  );
  console.log(
    `ours / rlf Redis           = ${ratio('rlf_redis').toFixed(2)}×  (target > 1: ${verdict(met.aheadOfRlfRedis)})`,
  );
  if (closedRps('ours') !== undefined) {
    const closedRows: string[][] = [
      ['contender', 'req/s', 'p50 ms', 'p99 ms', 'ours ÷ this', 'server cpu', 'loadgen cpu'],
    ];
    for (const name of ['ours', ...peers] as Name[]) {
      const list = closedRuns[name] ?? [];
      const m = (f: (r: OpenLoopResult) => number) => median(list.map(f));
      closedRows.push([
        SHORT[name],
        fmtInt(closedRps(name) ?? 0),
        m((r) => r.service_ms.p50).toFixed(2),
        m((r) => r.service_ms.p99).toFixed(2),
        `${(closedRatio(name) ?? 0).toFixed(2)}×`,
        `${m((r) => r.serverCpuPct).toFixed(0)}%`,
        `${m((r) => r.loadgenCpuPct).toFixed(0)}%`,
      ]);
    }
    console.log('');
    console.log(`peak with loadgen's closed loop (c${HEADLINE_CONNECTIONS}, medians of rounds):`);
    console.log(table(closedRows));
    console.log('');
    console.log(
      `loadgen closed loop: ours / bare Fastify = ${(100 * (closedRatio('bare') ?? 0)).toFixed(1)}% (${verdict(met.oursOverBareLoadgen)}), ` +
        `/ @fastify/rate-limit = ${(closedRatio('fastify_rate_limit') ?? 0).toFixed(2)}× (${verdict(met.aheadOfFastifyRateLimitLoadgen)}), ` +
        `/ rlf Redis = ${(closedRatio('rlf_redis') ?? 0).toFixed(2)}× (${verdict(met.aheadOfRlfRedisLoadgen)})`,
    );
  }
  console.log(
    `denied run: ${fmtInt(median(denied.map((r) => r.rps)))} req/s, ${(100 * median(denied.map(deniedShare))).toFixed(1)}% answered 429`,
  );
  console.log(
    `80% load (${fmtInt(rate)} req/s): autocannon overallRate p50 ${at80.p50Ms.toFixed(2)} ms p99 ${at80.p99Ms.toFixed(2)} ms (target p99 < ${TARGETS.p99MsAt80}: ${verdict(met.p99At80Autocannon)}); paced open loop p50 ${paced.p50Ms.toFixed(2)} ms p99 ${paced.p99Ms.toFixed(2)} ms (${verdict(met.p99At80Paced)})`,
  );
  if (openOurs !== undefined && openBare !== undefined) {
    console.log(
      `80% load, loadgen (open loop, from due time): ours ${fmtInt(openOurs.achieved_rps)} req/s p50 ${openOurs.latency_ms.p50.toFixed(2)} ms p99 ${openOurs.latency_ms.p99.toFixed(2)} ms (${verdict(openOurs.latency_ms.p99 < TARGETS.p99MsAt80)}); bare Fastify at 80% of its peak ${fmtInt(openBare.achieved_rps)} req/s p50 ${openBare.latency_ms.p50.toFixed(2)} ms p99 ${openBare.latency_ms.p99.toFixed(2)} ms`,
    );
  }
  // p99 against load: each server at fractions of its own peak, lowest first.
  const curve = curveOurs
    .map((point, i) => [point, curveBare[i]] as const)
    .filter((pair): pair is readonly [LoadPoint, LoadPoint] => pair[1] !== undefined)
    .sort(([a], [b]) => a.fraction - b.fraction);
  if (curve.length > 1) {
    const ms = (n: number) => n.toFixed(2);
    console.log('');
    console.log(
      table([
        [
          'load',
          'ours req/s',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
          'bare req/s',
          'p50 ms',
          'p99 ms',
          'p99.9 ms',
        ],
        ...curve.map(([o, b]) => [
          `${100 * o.fraction}%`,
          fmtInt(o.result.achieved_rps),
          ms(o.result.latency_ms.p50),
          ms(o.result.latency_ms.p99),
          ms(o.result.latency_ms.p999),
          fmtInt(b.result.achieved_rps),
          ms(b.result.latency_ms.p50),
          ms(b.result.latency_ms.p99),
          ms(b.result.latency_ms.p999),
        ]),
      ]),
    );
  }

  console.log(
    `reference, bare Fastify paced at 80% of its peak (${fmtInt(bareRate)} req/s): p50 ${barePaced.p50Ms.toFixed(2)} ms p99 ${barePaced.p99Ms.toFixed(2)} ms`,
  );
  console.log(
    `batch: ${fmtInt(batchRps)} req/s × ${BATCH_SIZE} = ${fmtInt(batchRps * BATCH_SIZE)} decisions/s`,
  );
  console.log('');

  const perRun = (r: LoadResult) => ({
    connections: r.connections,
    overall_rate: r.overallRate,
    rps: round(r.rps, 0),
    requests: r.requests,
    duration_s: r.durationS,
    p50_ms: round(r.p50Ms, 3),
    p90_ms: round(r.p90Ms, 3),
    p99_ms: round(r.p99Ms, 3),
    max_ms: round(r.maxMs, 3),
    autocannon_p50_ms: r.autocannonP50Ms,
    autocannon_p99_ms: r.autocannonP99Ms,
    non_2xx: r.non2xx,
    status_counts: r.statusCounts,
    errors: r.errors,
    timeouts: r.timeouts,
    resets: r.resets,
    server_cpu_pct: round(r.serverCpuPct, 1),
    bench_process_cpu_pct: round(r.clientCpuPct, 1),
    redis_cpu_pct: Number.isNaN(r.redisCpuPct) ? null : round(r.redisCpuPct, 1),
    other_cpu_pct: round(r.otherCpuPct, 1),
    server_log_lines_during_load: r.serverLogLines,
    repeated_after_other_cpu_pct:
      r.repeatedAfterOtherCpuPct === undefined ? null : round(r.repeatedAfterOtherCpuPct, 1),
  });
  const perContender = (name: Name) =>
    Object.fromEntries(
      Object.entries(runs[name]).map(([k, list]) => [
        k,
        {
          rps_median: round(median(clean(list).map((r) => r.rps)), 0),
          p50_ms_median: round(median(clean(list).map((r) => r.p50Ms)), 3),
          p99_ms_median: round(median(clean(list).map((r) => r.p99Ms)), 3),
          rounds_in_median: list.map((r) => clean(list).includes(r)),
          rounds: list.map(perRun),
        },
      ]),
    );
  const result = {
    benchmark: 'http',
    date: new Date().toISOString(),
    command: 'npm run bench -- http',
    node_command: nodeCommand(),
    server_command: `node ${[...OURS_NODE_ARGS, ...NODE_ARGS].join(' ')} packages/server/src/main.ts serve --config <tmp>/config.yaml`,
    node_version: process.version,
    v8_version: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    total_memory_gb: round(totalmem() / 2 ** 30, 1),
    redis_version: redisVersion,
    git_commit: git.commit,
    packages_modified_vs_commit: git.packagesDirty,
    load_average_start: loadStart,
    load_average_end: loadAverage(),
    settings: {
      tool: 'autocannon 9 (in the bench process); servers in child processes; loadgen (C) for the closed-loop peaks and the open-loop latency',
      pinning:
        pinning === undefined
          ? 'none'
          : `servers on CPU ${pinning.server}; bench process and loadgen on CPU ${pinning.load} (taskset)`,
      connections: p.connections,
      headline_connections: HEADLINE_CONNECTIONS,
      pipelining: PIPELINING,
      keep_alive: true,
      duration_s: p.measureS,
      warmup_s: p.warmupS,
      batch_warmup_s: p.batchWarmupS,
      request_timeout_s: REQUEST_TIMEOUT_S,
      rounds: p.rounds,
      order:
        'round 1: ours, ours_denied, bare, fastify_rate_limit, rlf_redis; round 2 reversed (and connection counts reversed within a server)',
      request: 'POST /v1/check {"agent_id":"agent-N"}, content-type application/json',
      agents: AGENTS,
      seed: SEED,
      prng: 'mulberry32',
      agent_spread:
        'the 10,000 ids in a seeded random order; connection i of C cycles through its own slice of ceil(10,000 / C) ids (static autocannon requests)',
      batch: `POST /v1/check/batch, ${BATCH_SIZE} checks per request, ${BATCH_POOL} pre-built bodies`,
      generous_limit: GENEROUS,
      denied_limit: deniedLimit ?? null,
      peers_limit:
        '@fastify/rate-limit max 1e9 per 1000 ms window (LRU cache 20,000 keys); rate-limiter-flexible points 1e9 per 1 s',
      ours_config:
        'temp data_dir, snapshots on (every 5 s), logging level info with request logging off, no api_keys (loopback)',
      latency_source:
        "autocannon 'response' events (µs resolution, every status); autocannon's own histogram (whole ms) kept as autocannon_p50/p99_ms",
      load_fraction_for_latency: LOAD_FRACTION,
    },
    // Headline numbers: medians over rounds at c64.
    ours_rps: round(oursRps, 0),
    bare_rps: round(rps('bare'), 0),
    fastify_rate_limit_rps: round(rps('fastify_rate_limit'), 0),
    rlf_redis_rps: round(rps('rlf_redis'), 0),
    ours_p50_ms: round(
      med('ours', h, (r) => r.p50Ms),
      3,
    ),
    ours_p99_ms: round(
      med('ours', h, (r) => r.p99Ms),
      3,
    ),
    ours_over_bare: round(ratio('bare'), 3),
    ours_over_fastify_rate_limit: round(ratio('fastify_rate_limit'), 3),
    ours_over_rlf_redis: round(ratio('rlf_redis'), 3),
    ours_over_bare_same_round_median: round(paired('bare'), 3),
    // The same peaks from loadgen's closed loop (c64), which autocannon's limit does not cap.
    ours_rps_loadgen: nullable(closedRps('ours'), 0),
    bare_rps_loadgen: nullable(closedRps('bare'), 0),
    fastify_rate_limit_rps_loadgen: nullable(closedRps('fastify_rate_limit'), 0),
    rlf_redis_rps_loadgen: nullable(closedRps('rlf_redis'), 0),
    ours_over_bare_loadgen: nullable(closedRatio('bare'), 3),
    ours_over_fastify_rate_limit_loadgen: nullable(closedRatio('fastify_rate_limit'), 3),
    ours_over_rlf_redis_loadgen: nullable(closedRatio('rlf_redis'), 3),
    peak_loadgen_closed_loop: Object.fromEntries(
      Object.entries(closedRuns).map(([name, list]) => [name, list.map(openLoopJson)]),
    ),
    ours_over_fastify_rate_limit_same_round_median: round(paired('fastify_rate_limit'), 3),
    ours_over_rlf_redis_same_round_median: round(paired('rlf_redis'), 3),
    ours_rate_at_80pct: rate,
    ours_rps_at_80pct: round(at80.rps, 0),
    ours_p50_ms_at_80pct: round(at80.p50Ms, 3),
    ours_p99_ms_at_80pct: round(at80.p99Ms, 3),
    ours_at_80pct_autocannon: perRun(at80),
    ours_p50_ms_at_80pct_paced: round(paced.p50Ms, 3),
    ours_p99_ms_at_80pct_paced: round(paced.p99Ms, 3),
    ours_at_80pct_paced: pacedJson(paced),
    bare_rate_at_80pct: bareRate,
    bare_p50_ms_at_80pct_paced: round(barePaced.p50Ms, 3),
    bare_p99_ms_at_80pct_paced: round(barePaced.p99Ms, 3),
    bare_at_80pct_paced: pacedJson(barePaced),
    ours_p99_ms_at_80pct_loadgen: openOurs === undefined ? null : openOurs.latency_ms.p99,
    ours_at_80pct_loadgen: openOurs === undefined ? null : openLoopJson(openOurs),
    bare_p99_ms_at_80pct_loadgen: openBare === undefined ? null : openBare.latency_ms.p99,
    bare_at_80pct_loadgen: openBare === undefined ? null : openLoopJson(openBare),
    // loadgen at fractions of each server's own peak, 80% last (the same runs as above).
    latency_by_load_loadgen: curve.map(([o, b]) => ({
      load_pct: 100 * o.fraction,
      ours_rate: o.result.rate,
      ours_p50_ms: o.result.latency_ms.p50,
      ours_p99_ms: o.result.latency_ms.p99,
      ours_p999_ms: o.result.latency_ms.p999,
      ours_server_cpu_pct: round(o.result.serverCpuPct, 1),
      bare_rate: b.result.rate,
      bare_p50_ms: b.result.latency_ms.p50,
      bare_p99_ms: b.result.latency_ms.p99,
      bare_p999_ms: b.result.latency_ms.p999,
      bare_server_cpu_pct: round(b.result.serverCpuPct, 1),
    })),
    ours_batch_rps: round(batchRps, 0),
    ours_batch_decisions_per_s: round(batchRps * BATCH_SIZE, 0),
    ours_batch_p50_ms: round(
      med('ours', 'batch', (r) => r.p50Ms),
      3,
    ),
    ours_batch_p99_ms: round(
      med('ours', 'batch', (r) => r.p99Ms),
      3,
    ),
    ours_denied_rps: round(median(denied.map((r) => r.rps)), 0),
    ours_denied_share_429: round(median(denied.map(deniedShare)), 4),
    ours_denied_p50_ms: round(median(denied.map((r) => r.p50Ms)), 3),
    ours_denied_p99_ms: round(median(denied.map((r) => r.p99Ms)), 3),
    targets: {
      ours_over_bare_min: TARGETS.oursOverBare,
      ahead_of_fastify_rate_limit_and_rlf_redis: true,
      p99_ms_at_80pct_max: TARGETS.p99MsAt80,
      met: {
        ours_over_bare: met.oursOverBare,
        ahead_of_fastify_rate_limit: met.aheadOfFastifyRateLimit,
        ahead_of_rlf_redis: met.aheadOfRlfRedis,
        p99_at_80pct_autocannon: met.p99At80Autocannon,
        p99_at_80pct_paced: met.p99At80Paced,
        p99_at_80pct_loadgen: met.p99At80Loadgen,
        ours_over_bare_loadgen: met.oursOverBareLoadgen,
        ahead_of_fastify_rate_limit_loadgen: met.aheadOfFastifyRateLimitLoadgen,
        ahead_of_rlf_redis_loadgen: met.aheadOfRlfRedisLoadgen,
      },
    },
    contenders: Object.fromEntries(
      (Object.keys(runs) as Name[]).map((name) => [
        name,
        { label: LABELS[name], ...perContender(name) },
      ]),
    ),
    server_exit_codes: exitCodes,
    machine_busy_before_each_server: Object.fromEntries(
      Object.entries(quiet).map(([k, q]) => [
        k,
        { busy_pct_of_one_core: round(q.busyPct, 1), waited_s: round(q.waitedS, 1) },
      ]),
    ),
    notes: [
      'One server process at a time on 127.0.0.1; autocannon in the bench process; the machine has 2 cores shared by server, load generator (and Redis for rlf_redis).',
      'Medians over rounds; round 2 runs the contenders in reverse order.',
      "autocannon overallRate is enforced per connection per second (bursts at full speed, then a pause), so its 80% latency is close to peak-load latency; the paced open-loop generator spreads the same rate evenly and measures from each request's due time.",
      `Before each server starts, the bench waits (at most ${QUIET_WAIT_MAX_S} s) for the machine to be quiet (< ${QUIET_PCT}% of one core busy); other_cpu_pct per measurement is what the rest of the machine used meanwhile (the local Redis is counted apart, redis_cpu_pct). A measurement with other_cpu_pct > ${BUSY_PCT} is repeated once after waiting for quiet (repeated_after_other_cpu_pct says so); one still that busy is left out of the medians when a quiet one of the same kind exists (rounds_in_median).`,
      'The denied run uses capacity 1 and refill equal to the per-agent request rate of round 1; the 429 share is measured.',
    ],
  };
  progress(`load average at the end ${result.load_average_end.join(' ')}`);
  if (options.quick) {
    progress('quick run: results not written');
    return;
  }
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  writeFileSync(new URL('http.json', dir), `${JSON.stringify(result, null, 2)}\n`);
  progress('wrote bench/results/http.json');
}
