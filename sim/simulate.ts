/**
 * The replication simulator: R in-process `Limiter` replicas (the real engine) in virtual time,
 * exchanging deltas (`drainDirty` → `merge`) every sync interval and full exports (anti-entropy)
 * less often, over a network with delay, jitter, loss and partitions. The same arrivals are fed
 * to an optimistic fleet, a shared fleet and one exact bucket; docs/replication-sim.md.
 */
import { type BucketEntry, definePolicy } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import { mulberry32, type Random, subSeed } from './random.js';
import { type Arrivals, generateArrivals, type Routing, type WorkloadSpec } from './workload.js';

/** Replicas split into groups that cannot talk to each other from `startMs` until `healMs`. */
export interface Partition {
  readonly groups: readonly (readonly number[])[];
  readonly startMs: number;
  readonly healMs: number;
}

export interface NetworkSpec {
  /** Every replica drains its dirty agents and sends them to every peer this often. */
  readonly syncMs: number;
  /** One-way delay of every message, plus a uniform jitter in [0, jitterMs). */
  readonly delayMs: number;
  readonly jitterMs: number;
  /** Probability that a message is lost. */
  readonly loss: number;
  /** Every replica sends a full export of its agents to every peer this often. */
  readonly antiEntropyMs: number;
  readonly partitions: readonly Partition[];
  /**
   * Replicas tick on a shared grid (multiples of `syncMs`, as with synchronised clocks) instead
   * of each at its own random phase.
   */
  readonly alignedTicks?: boolean;
}

export interface ScenarioSpec {
  readonly name: string;
  readonly description: string;
  readonly replicas: number;
  readonly durationMs: number;
  readonly workload: WorkloadSpec;
  readonly routing: Routing;
  /** One limit per agent, cost 1 per request. */
  readonly limit: { readonly capacity: number; readonly refillPerS: number };
  readonly network: NetworkSpec;
  readonly seed: number;
  /** `LimiterOptions.shareFloor` of the shared fleet (engine default when absent). */
  readonly shareFloor?: number;
}

export type Mode = 'exact' | 'optimistic' | 'shared';
export const MODES: readonly Mode[] = ['exact', 'optimistic', 'shared'];

export interface ModeResult {
  readonly mode: Mode;
  /** Requests admitted (cost 1 each). */
  readonly admitted: number;
  readonly denied: number;
  /** Σ over agents of admissions beyond the exact bucket's, in % of the exact admissions. */
  readonly overAdmissionPct: number;
  /** Σ over agents of min(admitted, exact admitted), in % of the exact admissions. */
  readonly utilisationPct: number;
  /**
   * Admissions no exact bucket could have made: the fleet's admitted sequence replayed through
   * one exact bucket, counting what it refuses, in % of the exact admissions. Stricter than
   * over-admission: it also catches excess in one burst that later denials paid back.
   */
  readonly burstExcessPct: number;
  /** p99 over every replica's sync ticks of (now − sync point) in ms; exact: 0. */
  readonly syncLagP99Ms: number;
  readonly messages: number;
  readonly lost: number;
  /** Requests of agent 0 (the hot or top-ranked agent) admitted in each second of the run. */
  readonly agent0PerSecond: readonly number[];
}

export interface SimResult {
  readonly scenario: ScenarioSpec;
  readonly arrivals: number;
  readonly agentsSeen: number;
  readonly modes: readonly ModeResult[];
}

interface Message {
  readonly from: number;
  readonly to: number;
  readonly kind: 'delta' | 'full';
  /** Delta: its sequence number from `from` to `to`; full: the last delta seq sent before it. */
  readonly seq: number;
  readonly sentAt: number;
  readonly entries: readonly BucketEntry[];
}

/** What a receiver knows about one sender: which deltas arrived, up to when it has everything. */
interface Link {
  expected: number;
  /** Deltas that arrived ahead of a gap: seq → sent time. */
  readonly ahead: Map<number, number>;
}

export function runScenario(spec: ScenarioSpec): SimResult {
  const arrivals = generateArrivals(
    spec.workload,
    spec.routing,
    spec.replicas,
    spec.durationMs,
    mulberry32(subSeed(spec.seed, 'workload')),
  );
  const ids = Array.from({ length: spec.workload.agents }, (_, k) => `agent-${k}`);
  const exact = runExact(spec, arrivals, ids);
  const modes = MODES.map((mode) =>
    mode === 'exact' ? exact : runFleet(spec, arrivals, ids, mode, exact),
  );
  const seen = new Set<number>();
  for (let i = 0; i < arrivals.count; i++) seen.add(arrivals.agent[i] as number);
  return {
    scenario: spec,
    arrivals: arrivals.count,
    agentsSeen: seen.size,
    modes: modes.map((m) => m.result),
  };
}

interface Outcome {
  readonly result: ModeResult;
  readonly perAgent: Float64Array;
}

function policyOf(spec: ScenarioSpec, mode: 'optimistic' | 'shared') {
  return definePolicy([
    {
      name: 'rps',
      capacity: spec.limit.capacity,
      refill: spec.limit.refillPerS,
      per: 'second',
      mode,
    },
  ]);
}

function runExact(spec: ScenarioSpec, arrivals: Arrivals, ids: readonly string[]): Outcome {
  const one = new Limiter({
    nodeId: 'exact',
    incarnation: 1,
    defaultPolicy: policyOf(spec, 'shared'),
  });
  const perAgent = new Float64Array(ids.length);
  const agent0 = new Array<number>(Math.ceil(spec.durationMs / 1000)).fill(0);
  let admitted = 0;
  for (let i = 0; i < arrivals.count; i++) {
    const agent = arrivals.agent[i] as number;
    const t = arrivals.t[i] as number;
    if (one.check(ids[agent] as string, 1, t).allowed) {
      admitted++;
      perAgent[agent] = (perAgent[agent] as number) + 1;
      if (agent === 0) countSecond(agent0, t);
    }
  }
  return {
    perAgent,
    result: {
      mode: 'exact',
      admitted,
      denied: arrivals.count - admitted,
      overAdmissionPct: 0,
      utilisationPct: 100,
      burstExcessPct: 0,
      syncLagP99Ms: 0,
      messages: 0,
      lost: 0,
      agent0PerSecond: agent0,
    },
  };
}

function runFleet(
  spec: ScenarioSpec,
  arrivals: Arrivals,
  ids: readonly string[],
  mode: 'optimistic' | 'shared',
  exact: Outcome,
): Outcome {
  const R = spec.replicas;
  const net = spec.network;
  const policy = policyOf(spec, mode);
  const names = Array.from({ length: R }, (_, i) => `r${i}`);
  const fleet = names.map(
    (nodeId) =>
      new Limiter({
        nodeId,
        incarnation: 1,
        defaultPolicy: policy,
        peers: names,
        ...(spec.shareFloor === undefined ? {} : { shareFloor: spec.shareFloor }),
      }),
  );
  // The network's fate of every message depends only on the seed: the same in every mode.
  const random: Random = mulberry32(subSeed(spec.seed, 'network'));
  const phase = names.map(() => {
    const p = Math.floor(random() * net.syncMs);
    return net.alignedTicks === true ? 0 : p;
  });
  const aePhase = names.map(() => Math.floor(random() * net.antiEntropyMs));
  const sendSeq = names.map(() => new Array<number>(R).fill(0));
  const links = names.map(() => names.map((): Link => ({ expected: 1, ahead: new Map() })));
  const inbox = new Map<number, Message[]>();
  const lags: number[] = [];
  let messages = 0;
  let lost = 0;

  const cut = (a: number, b: number, t: number): boolean =>
    net.partitions.some(
      (p) =>
        t >= p.startMs &&
        t < p.healMs &&
        p.groups.findIndex((g) => g.includes(a)) !== p.groups.findIndex((g) => g.includes(b)),
    );

  const send = (m: Message): void => {
    messages++;
    // Draw for every message, delivered or not, so every mode sees the same network.
    const drop = random() < net.loss;
    const at = Math.ceil(m.sentAt + net.delayMs + random() * net.jitterMs) || m.sentAt + 1;
    const deliverAt = Math.max(at, m.sentAt + 1);
    if (drop || cut(m.from, m.to, m.sentAt)) {
      lost++;
      return;
    }
    let list = inbox.get(deliverAt);
    if (list === undefined) {
      list = [];
      inbox.set(deliverAt, list);
    }
    list.push(m);
  };

  const receive = (m: Message, t: number): void => {
    if (cut(m.from, m.to, t)) {
      lost++;
      return;
    }
    const to = fleet[m.to] as Limiter;
    to.merge(m.entries, t);
    const link = (links[m.to] as Link[])[m.from] as Link;
    if (m.kind === 'full') {
      // A full export holds everything the sender had when it sent it, every delta up to `seq`.
      if (m.seq + 1 > link.expected) link.expected = m.seq + 1;
      to.peerHeardFrom(names[m.from] as string, m.sentAt);
    } else if (m.seq >= link.expected) {
      link.ahead.set(m.seq, m.sentAt);
    }
    // Deltas without a gap before them tell us the sender's charges up to their send time.
    for (let next = link.ahead.get(link.expected); next !== undefined; ) {
      link.ahead.delete(link.expected);
      link.expected++;
      to.peerHeardFrom(names[m.from] as string, next);
      next = link.ahead.get(link.expected);
    }
    for (const seq of link.ahead.keys()) if (seq < link.expected) link.ahead.delete(seq);
  };

  const perAgent = new Float64Array(ids.length);
  const agent0 = new Array<number>(Math.ceil(spec.durationMs / 1000)).fill(0);
  const admittedT: number[] = [];
  const admittedAgent: number[] = [];
  let admitted = 0;
  let next = 0;
  for (let t = 0; t < spec.durationMs; t++) {
    const due = inbox.get(t);
    if (due !== undefined) {
      inbox.delete(t);
      for (const m of due) receive(m, t);
    }
    for (; next < arrivals.count && (arrivals.t[next] as number) < t + 1; next++) {
      const agent = arrivals.agent[next] as number;
      const at = arrivals.t[next] as number;
      const replica = fleet[arrivals.replica[next] as number] as Limiter;
      if (replica.check(ids[agent] as string, 1, at).allowed) {
        admitted++;
        perAgent[agent] = (perAgent[agent] as number) + 1;
        admittedT.push(at);
        admittedAgent.push(agent);
        if (agent === 0) countSecond(agent0, at);
      }
    }
    for (let i = 0; i < R; i++) {
      const me = fleet[i] as Limiter;
      if ((t - (phase[i] as number)) % net.syncMs === 0) {
        lags.push(t - me.syncPointMs);
        // Every tick sends, even an empty delta: it is the heartbeat that moves sync points.
        const entries = me.drainDirty(t, Number.POSITIVE_INFINITY, 'replication');
        for (let j = 0; j < R; j++) {
          if (j === i) continue;
          const seqs = sendSeq[i] as number[];
          const seq = (seqs[j] as number) + 1;
          seqs[j] = seq;
          send({ from: i, to: j, kind: 'delta', seq, sentAt: t, entries });
        }
      }
      if ((t - (aePhase[i] as number)) % net.antiEntropyMs === 0 && t > 0) {
        const entries: BucketEntry[] = [];
        for (const id of me.agents()) entries.push(...me.exportAgent(id, t));
        for (let j = 0; j < R; j++) {
          if (j === i) continue;
          const seq = (sendSeq[i] as number[])[j] as number;
          send({ from: i, to: j, kind: 'full', seq, sentAt: t, entries });
        }
      }
    }
  }
  const exactTotal = exact.result.admitted;
  let over = 0;
  let util = 0;
  for (let a = 0; a < ids.length; a++) {
    const m = perAgent[a] as number;
    const e = exact.perAgent[a] as number;
    if (m > e) over += m - e;
    util += Math.min(m, e);
  }
  return {
    perAgent,
    result: {
      mode,
      admitted,
      denied: arrivals.count - admitted,
      overAdmissionPct: pct(over, exactTotal),
      utilisationPct: pct(util, exactTotal),
      burstExcessPct: pct(auditExcess(spec, ids, admittedT, admittedAgent), exactTotal),
      syncLagP99Ms: percentile(lags.filter(Number.isFinite), 0.99),
      messages,
      lost,
      agent0PerSecond: agent0,
    },
  };
}

/** Admissions an exact bucket refuses when fed exactly what the fleet admitted, in time order. */
function auditExcess(
  spec: ScenarioSpec,
  ids: readonly string[],
  t: readonly number[],
  agent: readonly number[],
): number {
  const order = t.map((_, i) => i).sort((a, b) => (t[a] as number) - (t[b] as number) || a - b);
  const auditor = new Limiter({
    nodeId: 'audit',
    incarnation: 1,
    defaultPolicy: policyOf(spec, 'shared'),
  });
  let refused = 0;
  for (const i of order) {
    if (!auditor.check(ids[agent[i] as number] as string, 1, t[i] as number).allowed) refused++;
  }
  return refused;
}

function countSecond(perSecond: number[], tMs: number): void {
  const s = Math.floor(tMs / 1000);
  perSecond[s] = (perSecond[s] ?? 0) + 1;
}

function pct(part: number, whole: number): number {
  return whole === 0 ? 0 : (100 * part) / whole;
}

function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] as number;
}
