import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import {
  fmtInt,
  gitState,
  loadAverage,
  median,
  mulberry32,
  nodeCommand,
  percentile,
  progress,
  round,
  sleep,
  table,
} from './support.js';

// ---------------------------------------------------------------------------------------------
// Parameters

interface Params {
  readonly agents: number;
  readonly zipfS: number;
  readonly decisions: number;
  readonly decisionsPerMs: number;
  readonly warmup: number;
  readonly repeats: number;
  readonly latencyDecisions: number;
  readonly latencyRounds: number;
  readonly memoryAgents: number;
  readonly seed: number;
}

const FULL: Params = {
  agents: 100_000,
  zipfS: 1.1,
  decisions: 2_000_000,
  decisionsPerMs: 100,
  warmup: 200_000,
  repeats: 5,
  latencyDecisions: 200_000,
  latencyRounds: 3,
  memoryAgents: 1_000_000,
  seed: 0x5eed_2024,
};

const QUICK: Params = {
  ...FULL,
  decisions: 200_000,
  warmup: 50_000,
  repeats: 3,
  latencyDecisions: 50_000,
  latencyRounds: 1,
  memoryAgents: 100_000,
};

const CAPACITY = 100;
const REFILL_PER_SECOND = 50;
/** rate-limiter-flexible window: CAPACITY points per this many seconds = the same long-run rate. */
const RLF_DURATION_S = CAPACITY / REFILL_PER_SECOND;
/** Virtual clock origin (a realistic epoch-ms magnitude). */
const T0 = 1_700_000_000_000;

const TARGETS = {
  oursOverRlf: 5,
  oursOverPlain: 0.5,
  bytesPerIdleAgent: 300,
} as const;

// ---------------------------------------------------------------------------------------------
// Utilities

function requireGc(): () => void {
  const gc = globalThis.gc;
  if (gc === undefined) {
    throw new Error('global.gc is not exposed: run through `npm run bench` (node --expose-gc).');
  }
  return () => {
    gc();
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---------------------------------------------------------------------------------------------
// Workload

interface Workload {
  /** One id string object per decision. */
  readonly ids: string[];
  readonly distinctAgents: number;
  /** Share of decisions that go to the hottest agent. */
  readonly topAgentShare: number;
}

function buildWorkload(p: Params): Workload {
  const cdf = new Float64Array(p.agents);
  let sum = 0;
  for (let k = 0; k < p.agents; k++) {
    sum += (k + 1) ** -p.zipfS;
    cdf[k] = sum;
  }
  for (let k = 0; k < p.agents; k++) cdf[k] = (cdf[k] as number) / sum;
  cdf[p.agents - 1] = 1;

  const random = mulberry32(p.seed);
  const ids = new Array<string>(p.decisions);
  const seen = new Uint8Array(p.agents);
  let distinct = 0;
  let top = 0;
  for (let i = 0; i < p.decisions; i++) {
    const u = random();
    // Smallest rank whose cumulative probability exceeds u.
    let lo = 0;
    let hi = p.agents - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] as number) > u) hi = mid;
      else lo = mid + 1;
    }
    if (seen[lo] === 0) {
      seen[lo] = 1;
      distinct++;
    }
    if (lo === 0) top++;
    ids[i] = `agent-${lo}`;
  }
  return { ids, distinctAgents: distinct, topAgentShare: top / p.decisions };
}

// ---------------------------------------------------------------------------------------------
// Contenders

function newOurs(initialAgents?: number): Limiter {
  return new Limiter({
    nodeId: 'bench',
    incarnation: 1,
    defaultPolicy: definePolicy([
      { name: 'rps', capacity: CAPACITY, refill: REFILL_PER_SECOND, per: 'second' },
    ]),
    ...(initialAgents === undefined ? {} : { initialAgents }),
  });
}

function newRlf(): RateLimiterMemory {
  return new RateLimiterMemory({ points: CAPACITY, duration: RLF_DURATION_S });
}

interface PlainState {
  tokens: number;
  lastMs: number;
}

/** A plain, non-replicated token bucket per key: the practical ceiling. */
class PlainBuckets {
  private readonly map = new Map<string, PlainState>();
  private readonly capacity: number;
  private readonly refillPerMs: number;

  constructor(capacity: number, refillPerSecond: number) {
    this.capacity = capacity;
    this.refillPerMs = refillPerSecond / 1000;
  }

  get size(): number {
    return this.map.size;
  }

  check(id: string, cost: number, nowMs: number): boolean {
    let s = this.map.get(id);
    if (s === undefined) {
      s = { tokens: this.capacity, lastMs: nowMs };
      this.map.set(id, s);
    } else if (nowMs > s.lastMs) {
      s.tokens = Math.min(this.capacity, s.tokens + this.refillPerMs * (nowMs - s.lastMs));
      s.lastMs = nowMs;
    }
    if (cost <= s.tokens) {
      s.tokens -= cost;
      return true;
    }
    return false;
  }
}

/** Result of one pass: decisions denied and elapsed nanoseconds. */
interface PassResult {
  readonly denied: number;
  readonly ns: number;
}

// One monomorphic loop per contender, so none pays for call-site polymorphism of the others.

function passOurs(
  lim: Limiter,
  ids: readonly string[],
  n: number,
  t0: number,
  perMs: number,
): PassResult {
  let denied = 0;
  let now = t0;
  let k = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (!lim.check(ids[i] as string, 1, now).allowed) denied++;
    if (++k === perMs) {
      k = 0;
      now++;
    }
  }
  const ns = Number(process.hrtime.bigint() - start);
  return { denied, ns };
}

function passPlain(
  b: PlainBuckets,
  ids: readonly string[],
  n: number,
  t0: number,
  perMs: number,
): PassResult {
  let denied = 0;
  let now = t0;
  let k = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (!b.check(ids[i] as string, 1, now)) denied++;
    if (++k === perMs) {
      k = 0;
      now++;
    }
  }
  const ns = Number(process.hrtime.bigint() - start);
  return { denied, ns };
}

/**
 * rate-limiter-flexible reads `Date.now`; during its passes `Date.now` returns the same virtual
 * time the other contenders are given, so all three see the same request rate and deny alike
 * (on the wall clock it saw a far higher rate, denied more, and a deny is its slow path).
 */
let rlfNow = 0;
const wallClock = Date.now;
function withVirtualClock<T>(run: () => Promise<T>): Promise<T> {
  Date.now = () => rlfNow;
  return run().finally(() => {
    Date.now = wallClock;
  });
}

/** rate-limiter-flexible as users call it: await consume, catch the rejection on deny. */
function passRlf(
  rl: RateLimiterMemory,
  ids: readonly string[],
  n: number,
  t0: number,
  perMs: number,
): Promise<PassResult> {
  return withVirtualClock(async () => {
    let denied = 0;
    let k = 0;
    rlfNow = t0;
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      try {
        await rl.consume(ids[i] as string, 1);
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) throw e;
        denied++;
      }
      if (++k === perMs) {
        k = 0;
        rlfNow++;
      }
    }
    const ns = Number(process.hrtime.bigint() - start);
    return { denied, ns };
  });
}

function latencyOurs(
  lim: Limiter,
  ids: readonly string[],
  n: number,
  t0: number,
  perMs: number,
  out: Float64Array,
): number {
  let denied = 0;
  let now = t0;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const id = ids[i] as string;
    const a = process.hrtime.bigint();
    const d = lim.check(id, 1, now);
    const b = process.hrtime.bigint();
    out[i] = Number(b - a);
    if (!d.allowed) denied++;
    if (++k === perMs) {
      k = 0;
      now++;
    }
  }
  return denied;
}

function latencyPlain(
  bk: PlainBuckets,
  ids: readonly string[],
  n: number,
  t0: number,
  perMs: number,
  out: Float64Array,
): number {
  let denied = 0;
  let now = t0;
  let k = 0;
  for (let i = 0; i < n; i++) {
    const id = ids[i] as string;
    const a = process.hrtime.bigint();
    const ok = bk.check(id, 1, now);
    const b = process.hrtime.bigint();
    out[i] = Number(b - a);
    if (!ok) denied++;
    if (++k === perMs) {
      k = 0;
      now++;
    }
  }
  return denied;
}

function latencyRlf(
  rl: RateLimiterMemory,
  ids: readonly string[],
  n: number,
  t0: number,
  perMs: number,
  out: Float64Array,
): Promise<number> {
  return withVirtualClock(async () => {
    let denied = 0;
    let k = 0;
    rlfNow = t0;
    for (let i = 0; i < n; i++) {
      const id = ids[i] as string;
      const a = process.hrtime.bigint();
      let ok = true;
      try {
        await rl.consume(id, 1);
      } catch (e) {
        if (!(e instanceof RateLimiterRes)) throw e;
        ok = false;
      }
      const b = process.hrtime.bigint();
      out[i] = Number(b - a);
      if (!ok) denied++;
      if (++k === perMs) {
        k = 0;
        rlfNow++;
      }
    }
    return denied;
  });
}

/** Median cost in ns of the timer pair itself (two back-to-back hrtime.bigint() calls). */
function timerOverheadNs(n: number): number {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const a = process.hrtime.bigint();
    const b = process.hrtime.bigint();
    out[i] = Number(b - a);
  }
  out.sort();
  return percentile(out, 0.5);
}

// ---------------------------------------------------------------------------------------------
// Throughput and latency

type Name = 'ours' | 'rlf' | 'plain';
const NAMES: readonly Name[] = ['ours', 'rlf', 'plain'];
const LABELS: Readonly<Record<Name, string>> = {
  ours: 'ours: Limiter.check (CRDT)',
  rlf: 'rate-limiter-flexible Memory',
  plain: 'plain Map token bucket',
};

interface SpeedResults {
  readonly opsPerS: Record<Name, number[]>;
  readonly denyRatio: Record<Name, number[]>;
  readonly p50Us: Record<Name, number[]>;
  readonly p99Us: Record<Name, number[]>;
  readonly timerOverheadNs: number;
  readonly agentsTracked: Record<Name, number>;
}

async function measureSpeed(
  p: Params,
  w: Workload,
  gc: () => void,
  names: readonly Name[],
): Promise<SpeedResults> {
  const ids = w.ids;
  const ours = newOurs();
  const plain = new PlainBuckets(CAPACITY, REFILL_PER_SECOND);
  const rlf = newRlf();
  // Ours and plain see the same sequence of virtual times, so their states evolve alike.
  let clockOurs = T0;
  let clockPlain = T0;
  let clockRlf = T0;
  const advance = (n: number): number => Math.ceil(n / p.decisionsPerMs) + 1;

  const onePass = async (name: Name, n: number): Promise<PassResult> => {
    switch (name) {
      case 'ours': {
        const r = passOurs(ours, ids, n, clockOurs, p.decisionsPerMs);
        clockOurs += advance(n);
        return r;
      }
      case 'plain': {
        const r = passPlain(plain, ids, n, clockPlain, p.decisionsPerMs);
        clockPlain += advance(n);
        return r;
      }
      case 'rlf': {
        const r = await passRlf(rlf, ids, n, clockRlf, p.decisionsPerMs);
        clockRlf += advance(n);
        return r;
      }
    }
  };

  progress(`warm-up: ${fmtInt(p.warmup)} decisions per contender (untimed)`);
  for (const name of names) await onePass(name, p.warmup);

  const opsPerS: Record<Name, number[]> = { ours: [], rlf: [], plain: [] };
  const denyRatio: Record<Name, number[]> = { ours: [], rlf: [], plain: [] };
  for (let rep = 0; rep < p.repeats; rep++) {
    const order = names.map((_, i) => names[(i + rep) % names.length] as Name);
    for (const name of order) {
      await tick();
      gc();
      const r = await onePass(name, p.decisions);
      const ops = p.decisions / (r.ns / 1e9);
      opsPerS[name].push(ops);
      denyRatio[name].push(r.denied / p.decisions);
      progress(
        `throughput pass ${rep + 1}/${p.repeats} ${name.padEnd(5)} ${fmtInt(ops).padStart(12)} ops/s  deny ${((100 * r.denied) / p.decisions).toFixed(2)}%`,
      );
    }
  }

  const overhead = timerOverheadNs(200_000);
  const p50Us: Record<Name, number[]> = { ours: [], rlf: [], plain: [] };
  const p99Us: Record<Name, number[]> = { ours: [], rlf: [], plain: [] };
  const agentsTracked = { ours: ours.size, plain: plain.size, rlf: Number.NaN };
  if (p.latencyRounds === 0) {
    return { opsPerS, denyRatio, p50Us, p99Us, timerOverheadNs: overhead, agentsTracked };
  }
  progress(`latency: empty timer pair costs ${overhead} ns (median), subtracted from each sample`);
  const n = Math.min(p.latencyDecisions, ids.length);
  const samples = new Float64Array(n);
  const latencyPass = async (name: Name, count: number): Promise<void> => {
    switch (name) {
      case 'ours':
        latencyOurs(ours, ids, count, clockOurs, p.decisionsPerMs, samples);
        clockOurs += advance(count);
        return;
      case 'plain':
        latencyPlain(plain, ids, count, clockPlain, p.decisionsPerMs, samples);
        clockPlain += advance(count);
        return;
      case 'rlf':
        await latencyRlf(rlf, ids, count, clockRlf, p.decisionsPerMs, samples);
        clockRlf += advance(count);
        return;
    }
  };
  // Warm the timing loops themselves (the contenders are already warm).
  for (const name of names) await latencyPass(name, Math.min(20_000, n));
  for (let round = 0; round < p.latencyRounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length] as Name);
    for (const name of order) {
      await tick();
      gc();
      await latencyPass(name, n);
      const view = samples.subarray(0, n);
      for (let i = 0; i < n; i++) view[i] = Math.max(0, (view[i] as number) - overhead);
      view.sort();
      const p50 = percentile(view, 0.5) / 1000;
      const p99 = percentile(view, 0.99) / 1000;
      p50Us[name].push(p50);
      p99Us[name].push(p99);
      progress(
        `latency round ${round + 1}/${p.latencyRounds} ${name.padEnd(5)} p50 ${p50.toFixed(3)} µs  p99 ${p99.toFixed(3)} µs`,
      );
    }
  }

  return {
    opsPerS,
    denyRatio,
    p50Us,
    p99Us,
    timerOverheadNs: overhead,
    agentsTracked,
  };
}

// ---------------------------------------------------------------------------------------------
// Memory

function heapBytes(): { heapUsed: number; external: number; arrayBuffers: number } {
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers };
}

function settle(gc: () => void): void {
  for (let i = 0; i < 5; i++) gc();
}

interface MemoryResult {
  readonly bytesPerAgent: number;
  readonly heapPerAgent: number;
  readonly externalPerAgent: number;
  readonly extra: Record<string, number>;
}

/**
 * Retained bytes per agent of a structure holding `agents` idle agents. `build` creates the
 * structure from nothing and returns it; it stays reachable until after the measurement.
 */
async function measureMemory<T>(
  agents: number,
  gc: () => void,
  build: () => Promise<T> | T,
  after?: (structure: T, perAgent: (bytes: number) => number) => Record<string, number>,
): Promise<MemoryResult> {
  await tick();
  settle(gc);
  const before = heapBytes();
  let structure: T | undefined = await build();
  // No yielding to the event loop from here to the measurement (rate-limiter-flexible's
  // per-key expiry timers must not run in between).
  settle(gc);
  const now = heapBytes();
  const heap = now.heapUsed - before.heapUsed;
  const external = now.external - before.external;
  const perAgent = (bytes: number): number => bytes / agents;
  const extra = after?.(structure, perAgent) ?? {};
  structure = undefined;
  return {
    bytesPerAgent: perAgent(heap + external),
    heapPerAgent: perAgent(heap),
    externalPerAgent: perAgent(external),
    extra,
  };
}

interface MemoryResults {
  readonly ours: MemoryResult;
  readonly oursDrained: number;
  readonly plain: MemoryResult;
  readonly rlf: MemoryResult;
}

async function measureAllMemory(p: Params, gc: () => void): Promise<MemoryResults> {
  const n = p.memoryAgents;
  const perMs = p.decisionsPerMs;

  progress(`memory: ours, ${fmtInt(n)} distinct agents checked once`);
  const ours = await measureMemory(
    n,
    gc,
    () => {
      const lim = newOurs();
      for (let i = 0; i < n; i++) lim.check(`agent-${i}`, 1, T0 + Math.floor(i / perMs));
      return lim;
    },
    (lim, perAgent) => {
      const tracked = lim.size;
      const tableBytes = lim.tableBytes;
      const dirty = lim.dirtyCount();
      // Once the replication layer and the snapshotter have drained their change feeds, the
      // feed lists are gone too.
      const beforeDrain = heapBytes();
      const drainAt = T0 + Math.ceil(n / perMs);
      lim.drainDirty(drainAt, Number.POSITIVE_INFINITY, 'replication');
      lim.drainDirty(drainAt, Number.POSITIVE_INFINITY, 'snapshot');
      settle(gc);
      const afterDrain = heapBytes();
      const freed =
        beforeDrain.heapUsed + beforeDrain.external - (afterDrain.heapUsed + afterDrain.external);
      return {
        tracked,
        dirty_before_drain: dirty,
        packed_table_bytes_per_agent: perAgent(tableBytes),
        freed_by_drain_bytes_per_agent: perAgent(freed),
      };
    },
  );
  const drainedPerAgent = ours.bytesPerAgent - (ours.extra.freed_by_drain_bytes_per_agent ?? 0);
  progress(
    `memory: ours ${ours.bytesPerAgent.toFixed(1)} B/agent (${drainedPerAgent.toFixed(1)} after drainDirty)`,
  );

  progress(`memory: plain Map bucket, ${fmtInt(n)} agents`);
  const plain = await measureMemory(
    n,
    gc,
    () => {
      const b = new PlainBuckets(CAPACITY, REFILL_PER_SECOND);
      for (let i = 0; i < n; i++) b.check(`agent-${i}`, 1, T0 + Math.floor(i / perMs));
      return b;
    },
    (b) => ({ tracked: b.size }),
  );
  progress(`memory: plain ${plain.bytesPerAgent.toFixed(1)} B/agent`);

  progress(`memory: rate-limiter-flexible, ${fmtInt(n)} agents`);
  const rlf = await measureMemory(n, gc, async () => {
    const rl = newRlf();
    for (let i = 0; i < n; i++) await rl.consume(`agent-${i}`, 1);
    return rl;
  });
  progress(`memory: rate-limiter-flexible ${rlf.bytesPerAgent.toFixed(1)} B/agent`);
  // Let its per-key expiry timers fire so nothing of it outlives this phase.
  await sleep(RLF_DURATION_S * 1000 + 200);
  settle(gc);

  return { ours, oursDrained: drainedPerAgent, plain, rlf };
}

// ---------------------------------------------------------------------------------------------
// Report

interface Options {
  readonly quick: boolean;
  /** Throughput passes of one contender only (for profiling); nothing else, nothing written. */
  readonly only: Name | undefined;
}

function parseArgs(args: readonly string[]): Options {
  let quick = false;
  let only: Name | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--quick') quick = true;
    else if (arg === '--only' && NAMES.includes(args[i + 1] as Name)) only = args[++i] as Name;
    else {
      throw new Error(
        `core bench: unexpected argument "${arg}" (accepted: --quick, --only ${NAMES.join('|')})`,
      );
    }
  }
  return { quick, only };
}

export async function main(args: readonly string[]): Promise<void> {
  const { quick, only } = parseArgs(args);
  const p: Params =
    only === undefined ? (quick ? QUICK : FULL) : { ...(quick ? QUICK : FULL), latencyRounds: 0 };
  const gc = requireGc();
  const git = gitState();
  const loadStart = loadAverage();

  progress(
    `core bench${quick ? ' (quick)' : ''}: Node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'})`,
  );
  progress(
    `commit ${git.commit}${git.packagesDirty ? ' (packages/*/src modified)' : ''}, load average ${loadStart.join(' ')}`,
  );
  progress(
    `workload: ${fmtInt(p.decisions)} decisions over ${fmtInt(p.agents)} agents, Zipf s=${p.zipfS}, seed ${p.seed}`,
  );
  let workload: Workload | undefined = buildWorkload(p);
  const distinctAgents = workload.distinctAgents;
  const topAgentShare = workload.topAgentShare;
  progress(
    `workload ready: ${fmtInt(distinctAgents)} distinct agents, hottest agent gets ${(100 * topAgentShare).toFixed(1)}% of decisions`,
  );

  const speed = await measureSpeed(p, workload, gc, only === undefined ? NAMES : [only]);
  workload = undefined;
  if (only !== undefined) {
    progress(
      `--only ${only}: median ${fmtInt(median(speed.opsPerS[only]))} ops/s; nothing written`,
    );
    return;
  }
  // Let rate-limiter-flexible's expiry timers from the speed phase fire before measuring memory.
  await sleep(RLF_DURATION_S * 1000 + 200);
  settle(gc);
  const mem = await measureAllMemory(p, gc);

  const med = (r: Record<Name, number[]>, name: Name): number => median(r[name]);
  const ops = {
    ours: med(speed.opsPerS, 'ours'),
    rlf: med(speed.opsPerS, 'rlf'),
    plain: med(speed.opsPerS, 'plain'),
  };
  const oursOverRlf = ops.ours / ops.rlf;
  const oursOverPlain = ops.ours / ops.plain;
  // Same-round ratios: each round runs the contenders back to back, so a slow stretch of the
  // machine hits both sides of a ratio more often than with ratios of medians.
  const paired = (other: Name): number =>
    median(speed.opsPerS.ours.map((v, i) => v / (speed.opsPerS[other][i] as number)));
  const pairedOverRlf = paired('rlf');
  const pairedOverPlain = paired('plain');
  const bytesPerIdleAgent = mem.ours.bytesPerAgent;

  const rows: string[][] = [
    ['contender', 'ops/s (median)', 'ours ÷ this', 'p50 µs', 'p99 µs', 'deny %', 'B/idle agent'],
  ];
  const memFor: Record<Name, MemoryResult> = { ours: mem.ours, rlf: mem.rlf, plain: mem.plain };
  for (const name of NAMES) {
    rows.push([
      LABELS[name],
      fmtInt(ops[name]),
      name === 'ours' ? '1.00×' : `${(ops.ours / ops[name]).toFixed(2)}×`,
      med(speed.p50Us, name).toFixed(3),
      med(speed.p99Us, name).toFixed(3),
      (100 * med(speed.denyRatio, name)).toFixed(2),
      memFor[name].bytesPerAgent.toFixed(1),
    ]);
  }
  const met = {
    oursOverRlf: oursOverRlf >= TARGETS.oursOverRlf,
    oursOverPlain: oursOverPlain >= TARGETS.oursOverPlain,
    bytesPerIdleAgent: bytesPerIdleAgent <= TARGETS.bytesPerIdleAgent,
  };
  const verdict = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  console.log('');
  console.log(table(rows));
  console.log('');
  console.log(
    `ours / rlf   = ${oursOverRlf.toFixed(2)}×   (target ≥ ${TARGETS.oursOverRlf}×: ${verdict(met.oursOverRlf)})`,
  );
  console.log(
    `ours / plain = ${(100 * oursOverPlain).toFixed(1)}%   (target ≥ ${100 * TARGETS.oursOverPlain}%: ${verdict(met.oursOverPlain)})`,
  );
  console.log(
    `same-round ratios (median of ${p.repeats}): ours / rlf ${pairedOverRlf.toFixed(2)}×, ours / plain ${(100 * pairedOverPlain).toFixed(1)}%`,
  );
  console.log(
    `ours memory  = ${bytesPerIdleAgent.toFixed(1)} B/idle agent, ids included (${mem.oursDrained.toFixed(1)} after drainDirty)   (target ≤ ${TARGETS.bytesPerIdleAgent}: ${verdict(met.bytesPerIdleAgent)})`,
  );
  console.log('');

  const perContender = (name: Name) => ({
    ops_per_s_median: round(ops[name], 0),
    ops_per_s_passes: speed.opsPerS[name].map((v) => round(v, 0)),
    deny_ratio_median: round(med(speed.denyRatio, name), 6),
    deny_ratio_passes: speed.denyRatio[name].map((v) => round(v, 6)),
    latency_p50_us: round(med(speed.p50Us, name), 4),
    latency_p99_us: round(med(speed.p99Us, name), 4),
    latency_p50_us_rounds: speed.p50Us[name].map((v) => round(v, 4)),
    latency_p99_us_rounds: speed.p99Us[name].map((v) => round(v, 4)),
    memory_bytes_per_idle_agent: round(memFor[name].bytesPerAgent, 1),
    memory_heap_bytes_per_agent: round(memFor[name].heapPerAgent, 1),
    memory_external_bytes_per_agent: round(memFor[name].externalPerAgent, 1),
    memory_extra: memFor[name].extra,
  });
  const result = {
    benchmark: 'core',
    date: new Date().toISOString(),
    command: 'npm run bench -- core',
    node_command: nodeCommand(),
    node_version: process.version,
    v8_version: process.versions.v8,
    platform: `${process.platform} ${process.arch}`,
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    total_memory_gb: round(totalmem() / 2 ** 30, 1),
    git_commit: git.commit,
    packages_modified_vs_commit: git.packagesDirty,
    load_average_start: loadStart,
    load_average_end: loadAverage(),
    ours_ops_per_s: round(ops.ours, 0),
    rlf_ops_per_s: round(ops.rlf, 0),
    plain_ops_per_s: round(ops.plain, 0),
    ours_over_rlf: round(oursOverRlf, 3),
    ours_over_plain: round(oursOverPlain, 3),
    ours_over_rlf_same_round_median: round(pairedOverRlf, 3),
    ours_over_plain_same_round_median: round(pairedOverPlain, 3),
    bytes_per_idle_agent: round(bytesPerIdleAgent, 1),
    bytes_per_idle_agent_after_drain: round(mem.oursDrained, 1),
    plain_bytes_per_idle_agent: round(mem.plain.bytesPerAgent, 1),
    rlf_bytes_per_idle_agent: round(mem.rlf.bytesPerAgent, 1),
    targets: {
      ours_over_rlf_min: TARGETS.oursOverRlf,
      ours_over_plain_min: TARGETS.oursOverPlain,
      bytes_per_idle_agent_max: TARGETS.bytesPerIdleAgent,
      met: {
        ours_over_rlf: met.oursOverRlf,
        ours_over_plain: met.oursOverPlain,
        bytes_per_idle_agent: met.bytesPerIdleAgent,
      },
    },
    contenders: {
      ours: perContender('ours'),
      rlf: perContender('rlf'),
      plain: perContender('plain'),
    },
    timer_overhead_ns_subtracted: speed.timerOverheadNs,
    workload: {
      agents: p.agents,
      distinct_agents_in_sequence: distinctAgents,
      top_agent_share: round(topAgentShare, 5),
      zipf_s: p.zipfS,
      decisions_per_pass: p.decisions,
      cost: 1,
      virtual_ms_per_decisions: p.decisionsPerMs,
      warmup_decisions: p.warmup,
      timed_passes: p.repeats,
      latency_decisions: p.latencyDecisions,
      latency_rounds: p.latencyRounds,
      memory_agents: p.memoryAgents,
      seed: p.seed,
      prng: 'mulberry32',
      policy: { capacity: CAPACITY, refill_per_second: REFILL_PER_SECOND },
      rlf_config: {
        points: CAPACITY,
        duration_s: RLF_DURATION_S,
        clock: 'virtual: Date.now pinned to the same virtual time as the others during its passes',
      },
      agents_tracked_after_speed_phase: {
        ours: speed.agentsTracked.ours,
        plain: speed.agentsTracked.plain,
      },
    },
    notes: [
      'All contenders run in one process on one pre-generated workload; each timed pass is the whole sequence; medians of interleaved passes.',
      'rate-limiter-flexible RateLimiterMemory is a fixed-window counter (points 100 per 2 s window), awaited per decision with the rejection caught on deny; Date.now is pinned to the shared virtual time during its passes.',
      'All three see the same virtual time (1 ms per 100 decisions): passed in to ours and the plain bucket, through a pinned Date.now to rate-limiter-flexible.',
      'Latency: each decision timed with process.hrtime.bigint(); the median empty-timer cost is subtracted from every sample.',
      'Memory: heapUsed + external (external includes arrayBuffers) after forced GC, minus the baseline, divided by agents; id strings are built inside the loop so the key strings each structure retains are counted.',
      'Ours memory is measured with the change feeds (replication, snapshot) still listing every agent; bytes_per_idle_agent_after_drain is after draining both with drainDirty().',
    ],
  };
  progress(`load average at the end ${result.load_average_end.join(' ')}`);
  if (quick) {
    progress('quick run: results not written');
    return;
  }
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const file = new URL('core.json', dir);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  progress(`wrote bench/results/core.json`);
}
