import {
  ADMISSION_EPSILON,
  type AgentPolicy,
  type BucketEntry,
  type BucketState,
  type Cost,
  costFor,
  InvalidPolicyError,
  type Limit,
  MAX_COST,
  msUntilAvailable,
  msUntilFull,
  type SlotCounters,
  UnknownLimitError,
  uncappedTokens,
  validateAgentId,
  validateCost,
} from '@openclaw-edge/core';
import {
  BucketTable,
  EPOCH,
  OVERFLOW,
  OWN_CONSUMED,
  OWN_REFUNDED,
  PARAMS,
  REMOTE_USED,
  REVISION,
  STRIDE,
} from './bucket-table.js';
import type { AgentStatus, Decision, LimitStatus, MergeReport, RefundResult } from './types.js';

/** Options of a {@link Limiter}. */
export interface LimiterOptions {
  /** Stable id of this replica; part of every slot id it writes. */
  readonly nodeId: string;
  /**
   * Distinguishes this run of the replica from earlier ones (the start time in ms is a good
   * value), so counters written after a restart never collide with counters peers still hold
   * from before it.
   */
  readonly incarnation: number;
  /** Policy of every agent without an override. */
  readonly defaultPolicy: AgentPolicy;
  /**
   * Configured policies that are not the default (tiers, per-agent and pattern overrides from a
   * config file): returns an agent's policy, or undefined to use the default. Must be cheap and
   * pure; it runs when an agent is first seen and after the source changes.
   */
  readonly policySource?: PolicySource;
  /** A full bucket untouched for this long may be evicted (it carries no information). */
  readonly idleEvictMs?: number;
  /** Agents to reserve room for up front. */
  readonly initialAgents?: number;
}

/** Looks up an agent's configured policy; undefined means the default. */
export type PolicySource = (agentId: string) => AgentPolicy | undefined;

/**
 * Consumers of changes: the replication layer sends changed buckets to peers, the snapshotter
 * writes them to disk. Each drains its own feed at its own pace.
 */
export type ChangeFeed = 'replication' | 'snapshot';

/** Flag bit per feed: set while the agent waits in that feed's list. */
const FEED_BIT: Readonly<Record<ChangeFeed, number>> = { replication: 1, snapshot: 4 };
const CHANGED = FEED_BIT.replication | FEED_BIT.snapshot;
/** The agent has no runtime override: its policy comes from the default and the policy source. */
const FOLLOWS_CONFIG = 2;
const DEFAULT_IDLE_EVICT_MS = 15 * 60_000;

type RemoteSlots = Map<string, { consumed: number; refunded: number }>;

/**
 * The in-process limiter: a keyed store of CRDT token buckets (one per agent and limit) that
 * decides synchronously. Decisions never allocate a promise and touch only packed rows; the
 * replication layer drains changed agents as deltas and merges what peers send.
 *
 * Time is always passed in (`nowMs`), never read from a clock.
 */
export class Limiter {
  readonly nodeId: string;
  private readonly slotPrefix: string;
  private readonly idleEvictMs: number;
  private defaultPolicy: AgentPolicy;
  private policySource: PolicySource | undefined;
  /** Bumped when the default or the policy source changes; rows re-resolve lazily when behind. */
  private configGeneration = 0;
  private readonly overrides = new Map<string, AgentPolicy>();

  private readonly index = new Map<string, number>();
  private readonly buckets: BucketTable;
  private agentIds: (string | undefined)[] = [];
  private agentPolicy: (AgentPolicy | undefined)[] = [];
  private agentBase: Int32Array;
  private agentSeq: Float64Array;
  private agentLastMs: Float64Array;
  private agentFlags: Uint8Array;
  private agentGeneration: Uint32Array;
  private agentTop = 0;
  private readonly freeAgents: number[] = [];
  private nextSeq = 1;
  /** Remote slot counters by bucket row; absent for buckets only this replica has touched. */
  private readonly remote = new Map<number, RemoteSlots>();
  private readonly feeds: Record<ChangeFeed, number[]> = { replication: [], snapshot: [] };
  private evictCursor: Iterator<[string, number]> | undefined;
  /** Per-limit scratch for a check: uncapped tokens computed in the first pass. */
  private readonly scratch = new Float64Array(64);

  constructor(options: LimiterOptions) {
    if (typeof options.nodeId !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(options.nodeId)) {
      throw new InvalidPolicyError('nodeId', "must be 1-64 letters, digits, '_', '.', ':' or '-'");
    }
    if (!Number.isSafeInteger(options.incarnation) || options.incarnation < 0) {
      throw new InvalidPolicyError('incarnation', 'must be a non-negative integer');
    }
    this.nodeId = options.nodeId;
    this.slotPrefix = `${options.nodeId}~${options.incarnation.toString(36)}.`;
    this.defaultPolicy = options.defaultPolicy;
    this.policySource = options.policySource;
    this.idleEvictMs = options.idleEvictMs ?? DEFAULT_IDLE_EVICT_MS;
    const rows = Math.max(16, options.initialAgents ?? 1024);
    this.buckets = new BucketTable(rows * options.defaultPolicy.limits.length);
    this.agentBase = new Int32Array(rows);
    this.agentSeq = new Float64Array(rows);
    this.agentLastMs = new Float64Array(rows);
    this.agentFlags = new Uint8Array(rows);
    this.agentGeneration = new Uint32Array(rows);
  }

  /** Agents currently holding state. */
  get size(): number {
    return this.index.size;
  }

  /**
   * Checks `cost` against every limit of the agent (or only `limitNames`) and charges all of
   * them, or none when any lacks the tokens. A denied check changes nothing.
   */
  check(agentId: string, cost: Cost, nowMs: number, limitNames?: readonly string[]): Decision {
    if (typeof cost !== 'number' || !(cost >= 0 && cost <= MAX_COST)) validateCost(cost);
    const row = this.rowFor(agentId, nowMs);
    const policy = this.agentPolicy[row] as AgentPolicy;
    const limits = policy.limits;
    if (limitNames !== undefined) checkNames(policy, limitNames);
    const cells = this.buckets.cells;
    const base = this.agentBase[row] as number;
    const scratch = this.scratch;

    // Pass 1: what each limit has; find the denying limit that waits longest.
    let denied = -1;
    let retryAfterMs = 0;
    let tightest = -1;
    let tightestRatio = Number.POSITIVE_INFINITY;
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as Limit;
      if (limitNames !== undefined && !limitNames.includes(limit.name)) continue;
      const raw = this.uncapped(base + i, limit, nowMs);
      scratch[i] = raw;
      const available = Math.min(raw, limit.capacityTokens);
      const c = costFor(limit, cost);
      if (c > available + ADMISSION_EPSILON) {
        const wait = msUntilAvailable(limit, available, c);
        if (denied < 0 || wait > retryAfterMs) {
          denied = i;
          retryAfterMs = wait;
        }
      } else {
        const ratio = (available - c) / limit.capacityTokens;
        if (ratio < tightestRatio) {
          tightestRatio = ratio;
          tightest = i;
        }
      }
    }
    if (denied >= 0) {
      const limit = limits[denied] as Limit;
      const available = Math.min(scratch[denied] as number, limit.capacityTokens);
      return {
        allowed: false,
        retryAfterMs,
        limit,
        remaining: available,
        resetMs: msUntilFull(limit, available),
      };
    }

    // Pass 2: charge every checked limit. Refill above capacity goes to overflow first, so
    // tokens banked while the bucket sat full never become spendable.
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as Limit;
      if (limitNames !== undefined && !limitNames.includes(limit.name)) continue;
      const at = (base + i) * STRIDE;
      const raw = scratch[i] as number;
      if (raw > limit.capacityTokens) {
        cells[at + OVERFLOW] = (cells[at + OVERFLOW] as number) + (raw - limit.capacityTokens);
      }
      cells[at + OWN_CONSUMED] = (cells[at + OWN_CONSUMED] as number) + costFor(limit, cost);
    }
    this.touch(row, nowMs);
    const limit = limits[tightest] as Limit;
    const remaining =
      Math.min(scratch[tightest] as number, limit.capacityTokens) - costFor(limit, cost);
    return {
      allowed: true,
      retryAfterMs: 0,
      limit,
      remaining,
      resetMs: msUntilFull(limit, remaining),
    };
  }

  /** Every limit's state without charging; an unknown agent reads as full buckets. */
  peek(agentId: string, nowMs: number): AgentStatus {
    const row = this.index.get(agentId);
    if (row === undefined) {
      const policy = this.policyFor(agentId);
      return {
        agentId,
        tracked: false,
        limits: policy.limits.map((limit) => ({
          limit,
          remaining: limit.capacityTokens,
          resetMs: 0,
        })),
      };
    }
    this.refreshPolicy(row, nowMs);
    const policy = this.agentPolicy[row] as AgentPolicy;
    const limits: LimitStatus[] = policy.limits.map((limit, i) => {
      const remaining = this.available(this.agentBase[row] as number, i, limit, nowMs);
      return { limit, remaining, resetMs: msUntilFull(limit, remaining) };
    });
    return { agentId, tracked: true, limits };
  }

  /**
   * Gives tokens back (settling a reservation for less than was charged). Each limit is
   * credited at most up to its capacity: a refund on a full bucket is dropped, not banked.
   */
  refund(
    agentId: string,
    cost: Cost,
    nowMs: number,
    limitNames?: readonly string[],
  ): RefundResult[] {
    validateCost(cost);
    const row = this.index.get(agentId);
    const policy = row === undefined ? this.policyFor(agentId) : this.refreshPolicy(row, nowMs);
    if (limitNames !== undefined) checkNames(policy, limitNames);
    const results: RefundResult[] = [];
    let credited = false;
    for (let i = 0; i < policy.limits.length; i++) {
      const limit = policy.limits[i] as Limit;
      if (limitNames !== undefined && !limitNames.includes(limit.name)) continue;
      // An untracked agent has full buckets: there is nothing to give back.
      let refunded = 0;
      if (row !== undefined) {
        const base = this.agentBase[row] as number;
        const room = limit.capacityTokens - this.available(base, i, limit, nowMs);
        refunded = Math.max(0, Math.min(costFor(limit, cost), room));
        if (refunded > 0) {
          const at = (base + i) * STRIDE + OWN_REFUNDED;
          this.buckets.cells[at] = (this.buckets.cells[at] as number) + refunded;
          credited = true;
        }
      }
      results.push({ limit, refunded });
    }
    if (credited) this.touch(row as number, nowMs);
    return results;
  }

  /**
   * Merges bucket states received from peers (or restored from a snapshot). Unknown agents are
   * created; an entry of an older version (revision, params) than the local bucket is ignored,
   * a newer one replaces it. Merging does not mark agents dirty: state learnt from a
   * peer is not re-broadcast (anti-entropy repairs what a delta missed).
   */
  merge(entries: readonly BucketEntry[], nowMs: number): MergeReport {
    let applied = 0;
    let stale = 0;
    let unknownLimit = 0;
    for (const entry of entries) {
      const row = this.rowFor(entry.agentId, nowMs);
      const policy = this.agentPolicy[row] as AgentPolicy;
      const i = policy.limits.findIndex((limit) => limit.name === entry.limit);
      if (i < 0) {
        unknownLimit++;
        continue;
      }
      const bucket = (this.agentBase[row] as number) + i;
      // Absorb our banked refill first, or counts a peer made after a long idle would vanish in it.
      this.normaliseRow(bucket, policy.limits[i] as Limit, nowMs);
      if (this.mergeRow(bucket, this.slotId(row), policy.limits[i] as Limit, entry.state))
        applied++;
      else stale++;
    }
    return { applied, stale, unknownLimit };
  }

  /**
   * Bucket states of every agent changed locally (charges, refunds, policy changes) since the
   * feed was last drained, each agent once and at most `maxAgents` agents' worth: the replication
   * layer sends them as a delta, the snapshotter writes them.
   */
  drainDirty(
    nowMs: number,
    maxAgents = Number.POSITIVE_INFINITY,
    feed: ChangeFeed = 'replication',
  ): BucketEntry[] {
    const list = this.feeds[feed];
    const bit = FEED_BIT[feed];
    const out: BucketEntry[] = [];
    let taken = 0;
    let i = 0;
    for (; i < list.length && taken < maxAgents; i++) {
      const row = list[i] as number;
      if (((this.agentFlags[row] as number) & bit) === 0) continue;
      this.agentFlags[row] = (this.agentFlags[row] as number) & ~bit;
      this.exportRow(row, nowMs, out);
      taken++;
    }
    this.feeds[feed] = i >= list.length ? [] : list.slice(i);
    return out;
  }

  /** Agents waiting in a change feed (an upper bound: evicted agents leave stale entries). */
  dirtyCount(feed: ChangeFeed = 'replication'): number {
    return this.feeds[feed].length;
  }

  /** Full state of one agent's buckets (empty if untracked), for anti-entropy and snapshots. */
  exportAgent(agentId: string, nowMs: number): BucketEntry[] {
    const row = this.index.get(agentId);
    const out: BucketEntry[] = [];
    if (row !== undefined) this.exportRow(row, nowMs, out);
    return out;
  }

  /** Ids of every tracked agent. */
  agents(): IterableIterator<string> {
    return this.index.keys();
  }

  /**
   * Evicts agents whose buckets are all full, are not waiting to be replicated, and were last
   * touched at least `idleEvictMs` ago. Scans at most `maxScan` agents, resuming where the last
   * call stopped, so a caller can spread the sweep over time. Returns the evicted agents' ids.
   */
  evictIdle(nowMs: number, maxScan = Number.POSITIVE_INFINITY): string[] {
    const evicted: string[] = [];
    for (let scanned = 0; scanned < maxScan; scanned++) {
      this.evictCursor ??= this.index.entries();
      const next = this.evictCursor.next();
      if (next.done) {
        this.evictCursor = undefined;
        break;
      }
      const [agentId, row] = next.value;
      if (this.isEvictable(row, nowMs)) {
        this.removeAgent(agentId, row);
        evicted.push(agentId);
      }
    }
    return evicted;
  }

  /**
   * Sets an agent's own policy, over whatever config says. Limits whose parameters changed are
   * rebased so the agent keeps missing the tokens it was missing; limits that are new start full.
   */
  setOverride(agentId: string, policy: AgentPolicy, nowMs: number): void {
    this.overrides.set(agentId, policy);
    const row = this.index.get(agentId);
    if (row !== undefined) {
      this.agentFlags[row] = (this.agentFlags[row] as number) & ~FOLLOWS_CONFIG;
      this.applyPolicy(row, policy, nowMs);
    }
  }

  /**
   * Removes an agent's override; it falls back to its configured policy, rebased like any
   * change. False if there was no override.
   */
  clearOverride(agentId: string, nowMs: number): boolean {
    if (!this.overrides.delete(agentId)) return false;
    const row = this.index.get(agentId);
    if (row !== undefined) {
      this.agentFlags[row] = (this.agentFlags[row] as number) | FOLLOWS_CONFIG;
      this.refreshPolicy(row, nowMs);
    }
    return true;
  }

  /** The override set for an agent, if any. */
  getOverride(agentId: string): AgentPolicy | undefined {
    return this.overrides.get(agentId);
  }

  /**
   * Replaces the default policy. Agents on it move over lazily, at their next check or peek,
   * so a change never stalls the decision path with a sweep over every agent.
   */
  setDefaultPolicy(policy: AgentPolicy): void {
    this.defaultPolicy = policy;
    this.configGeneration++;
  }

  /**
   * Replaces the configured policy source (after a config reload). Like a new default, agents
   * move over lazily; limits whose parameters did not change keep their state.
   */
  setPolicySource(source: PolicySource | undefined): void {
    this.policySource = source;
    this.configGeneration++;
  }

  /** Policy that governs `agentId` (its override, or the default). */
  policyFor(agentId: string): AgentPolicy {
    const override = this.overrides.get(agentId);
    if (override !== undefined) return override;
    return this.policySource?.(agentId) ?? this.defaultPolicy;
  }

  /** Bytes held by the packed tables (excludes the id index and remote slot maps). */
  get tableBytes(): number {
    return (
      this.buckets.bytes +
      this.agentBase.byteLength +
      this.agentSeq.byteLength +
      this.agentLastMs.byteLength +
      this.agentFlags.byteLength +
      this.agentGeneration.byteLength +
      16 * this.agentIds.length
    );
  }

  /** Row of `agentId`, created on first sight; moves agents on the default onto its latest version. */
  private rowFor(agentId: string, nowMs: number): number {
    const row = this.index.get(agentId);
    if (row === undefined) return this.createAgent(agentId, nowMs);
    if (
      ((this.agentFlags[row] as number) & FOLLOWS_CONFIG) !== 0 &&
      this.agentGeneration[row] !== this.configGeneration
    ) {
      this.refreshPolicy(row, nowMs);
    }
    return row;
  }

  private refreshPolicy(row: number, nowMs: number): AgentPolicy {
    const agentId = this.agentIds[row] as string;
    const wanted = this.policyFor(agentId);
    const current = this.agentPolicy[row] as AgentPolicy;
    if (current.limits !== wanted.limits) {
      this.applyPolicy(row, wanted, nowMs);
    }
    this.agentGeneration[row] = this.configGeneration;
    return wanted;
  }

  private createAgent(agentId: string, nowMs: number): number {
    validateAgentId(agentId);
    const policy = this.policyFor(agentId);
    const row = this.allocateAgent();
    const base = this.buckets.allocate(policy.limits.length);
    const cells = this.buckets.cells;
    for (let i = 0; i < policy.limits.length; i++) {
      const at = (base + i) * STRIDE;
      cells[at + EPOCH] = nowMs;
      cells[at + PARAMS] = (policy.limits[i] as Limit).fingerprint;
    }
    this.agentBase[row] = base;
    this.agentSeq[row] = this.nextSeq++;
    this.agentLastMs[row] = nowMs;
    this.agentFlags[row] = this.overrides.has(agentId) ? 0 : FOLLOWS_CONFIG;
    this.agentGeneration[row] = this.configGeneration;
    this.agentPolicy[row] = policy;
    this.agentIds[row] = agentId;
    this.index.set(agentId, row);
    return row;
  }

  private allocateAgent(): number {
    const reused = this.freeAgents.pop();
    if (reused !== undefined) return reused;
    const row = this.agentTop++;
    if (row >= this.agentBase.length) {
      const size = this.agentBase.length * 2;
      this.agentBase = growInt32(this.agentBase, size);
      this.agentSeq = growFloat64(this.agentSeq, size);
      this.agentLastMs = growFloat64(this.agentLastMs, size);
      const flags = new Uint8Array(size);
      flags.set(this.agentFlags);
      this.agentFlags = flags;
      const generation = new Uint32Array(size);
      generation.set(this.agentGeneration);
      this.agentGeneration = generation;
    }
    return row;
  }

  private removeAgent(agentId: string, row: number): void {
    const policy = this.agentPolicy[row] as AgentPolicy;
    const base = this.agentBase[row] as number;
    for (let i = 0; i < policy.limits.length; i++) this.remote.delete(base + i);
    this.buckets.release(base, policy.limits.length);
    this.index.delete(agentId);
    this.agentIds[row] = undefined;
    this.agentPolicy[row] = undefined;
    this.agentFlags[row] = 0;
    this.freeAgents.push(row);
  }

  private isEvictable(row: number, nowMs: number): boolean {
    if (((this.agentFlags[row] as number) & FEED_BIT.replication) !== 0) return false;
    if (nowMs - (this.agentLastMs[row] as number) < this.idleEvictMs) return false;
    const policy = this.agentPolicy[row] as AgentPolicy;
    const base = this.agentBase[row] as number;
    for (let i = 0; i < policy.limits.length; i++) {
      const limit = policy.limits[i] as Limit;
      if (this.available(base, i, limit, nowMs) < limit.capacityTokens - ADMISSION_EPSILON)
        return false;
    }
    return true;
  }

  /** Moves an agent's buckets onto `policy`, keeping state of limits whose parameters did not change. */
  private applyPolicy(row: number, policy: AgentPolicy, nowMs: number): void {
    const old = this.agentPolicy[row] as AgentPolicy;
    const oldBase = this.agentBase[row] as number;
    const cells = this.buckets.cells;
    // Read everything needed from the old rows before allocating: allocation may move `cells`.
    const carried = policy.limits.map((limit) => {
      const j = old.limits.findIndex((o) => o.name === limit.name);
      if (j < 0) return { kind: 'fresh' as const };
      const oldLimit = old.limits[j] as Limit;
      const at = (oldBase + j) * STRIDE;
      // Already counting under these parameters (unchanged, or a peer rebased it first): keep.
      if (cells[at + PARAMS] === limit.fingerprint) {
        return {
          kind: 'keep' as const,
          row: cells.slice(at, at + STRIDE),
          remote: this.remote.get(oldBase + j),
        };
      }
      // The tokens the agent was missing stay missing, one revision up (core `rebase`).
      const debt = Math.max(
        0,
        oldLimit.capacityTokens - this.available(oldBase, j, oldLimit, nowMs),
      );
      return { kind: 'rebase' as const, debt, revision: (cells[at + REVISION] as number) + 1 };
    });
    for (let j = 0; j < old.limits.length; j++) this.remote.delete(oldBase + j);
    this.buckets.release(oldBase, old.limits.length);
    const base = this.buckets.allocate(policy.limits.length);
    const next = this.buckets.cells;
    carried.forEach((c, i) => {
      const at = (base + i) * STRIDE;
      if (c.kind === 'keep') {
        next.set(c.row, at);
        if (c.remote !== undefined) this.remote.set(base + i, c.remote);
      } else {
        next[at + EPOCH] = nowMs;
        next[at + PARAMS] = (policy.limits[i] as Limit).fingerprint;
        if (c.kind === 'rebase') {
          next[at + REVISION] = c.revision;
          next[at + OVERFLOW] = c.debt;
        }
      }
    });
    this.agentBase[row] = base;
    this.agentPolicy[row] = policy;
    this.markDirty(row);
  }

  /** Raises a row's overflow so it holds no refill above capacity as of `nowMs` (core `normalise`). */
  private normaliseRow(bucket: number, limit: Limit, nowMs: number): void {
    const raw = this.uncapped(bucket, limit, nowMs);
    if (raw > limit.capacityTokens) {
      const at = bucket * STRIDE + OVERFLOW;
      this.buckets.cells[at] = (this.buckets.cells[at] as number) + (raw - limit.capacityTokens);
    }
  }

  private available(base: number, i: number, limit: Limit, nowMs: number): number {
    return Math.min(this.uncapped(base + i, limit, nowMs), limit.capacityTokens);
  }

  private uncapped(bucket: number, limit: Limit, nowMs: number): number {
    const cells = this.buckets.cells;
    const at = bucket * STRIDE;
    return uncappedTokens(
      limit,
      cells[at + EPOCH] as number,
      (cells[at + OWN_CONSUMED] as number) -
        (cells[at + OWN_REFUNDED] as number) +
        (cells[at + REMOTE_USED] as number),
      cells[at + OVERFLOW] as number,
      nowMs,
    );
  }

  private touch(row: number, nowMs: number): void {
    this.agentLastMs[row] = nowMs;
    this.markDirty(row);
  }

  private markDirty(row: number): void {
    const flags = this.agentFlags[row] as number;
    if ((flags & CHANGED) === CHANGED) return;
    this.agentFlags[row] = flags | CHANGED;
    if ((flags & FEED_BIT.replication) === 0) this.feeds.replication.push(row);
    if ((flags & FEED_BIT.snapshot) === 0) this.feeds.snapshot.push(row);
  }

  private slotId(row: number): string {
    return this.slotPrefix + (this.agentSeq[row] as number).toString(36);
  }

  /** Appends the agent's bucket states, normalised as of `nowMs` so a receiver cannot absorb them. */
  private exportRow(row: number, nowMs: number, out: BucketEntry[]): void {
    const agentId = this.agentIds[row] as string;
    const policy = this.agentPolicy[row] as AgentPolicy;
    const base = this.agentBase[row] as number;
    const own = this.slotId(row);
    const cells = this.buckets.cells;
    for (let i = 0; i < policy.limits.length; i++) {
      this.normaliseRow(base + i, policy.limits[i] as Limit, nowMs);
      const at = (base + i) * STRIDE;
      const slots = new Map<string, SlotCounters>();
      const remote = this.remote.get(base + i);
      if (remote !== undefined) for (const [id, c] of remote) slots.set(id, { ...c });
      const consumed = cells[at + OWN_CONSUMED] as number;
      const refunded = cells[at + OWN_REFUNDED] as number;
      if (consumed > 0 || refunded > 0) slots.set(own, { consumed, refunded });
      const state: BucketState = {
        revision: cells[at + REVISION] as number,
        params: cells[at + PARAMS] as number,
        epochMs: cells[at + EPOCH] as number,
        overflow: cells[at + OVERFLOW] as number,
        slots,
      };
      out.push({ agentId, limit: (policy.limits[i] as Limit).name, state });
    }
  }

  /** Joins `state` into bucket row `bucket`; false when the state is of an older version. */
  private mergeRow(bucket: number, ownSlot: string, limit: Limit, state: BucketState): boolean {
    const cells = this.buckets.cells;
    const at = bucket * STRIDE;
    const revision = cells[at + REVISION] as number;
    const params = cells[at + PARAMS] as number;
    const order = state.revision !== revision ? state.revision - revision : state.params - params;
    if (order < 0) return false;
    let remote = this.remote.get(bucket);
    if (order > 0) {
      // A newer version replaces the bucket whole (lexicographic join, core `mergeBuckets`).
      cells[at + REVISION] = state.revision;
      cells[at + PARAMS] = state.params;
      cells[at + EPOCH] = state.epochMs;
      cells[at + OVERFLOW] = state.overflow;
      cells[at + OWN_CONSUMED] = 0;
      cells[at + OWN_REFUNDED] = 0;
      remote?.clear();
    } else {
      const epoch = cells[at + EPOCH] as number;
      let overflow = state.overflow;
      if (state.epochMs < epoch) {
        // Our bucket says "full at `epoch`". Their older state, read at that moment, cannot have
        // held more than capacity either: absorb what it banked by then, or the earlier epoch
        // would hand our later charges the refill of a time before our bucket existed (a late
        // message from a replica that charged long ago).
        let used = 0;
        for (const c of state.slots.values()) used += c.consumed - c.refunded;
        const raw = uncappedTokens(limit, state.epochMs, used, overflow, epoch);
        if (raw > limit.capacityTokens) overflow += raw - limit.capacityTokens;
      }
      cells[at + EPOCH] = Math.min(epoch, state.epochMs);
      cells[at + OVERFLOW] = Math.max(cells[at + OVERFLOW] as number, overflow);
    }
    for (const [id, theirs] of state.slots) {
      if (id === ownSlot) {
        cells[at + OWN_CONSUMED] = Math.max(cells[at + OWN_CONSUMED] as number, theirs.consumed);
        cells[at + OWN_REFUNDED] = Math.max(cells[at + OWN_REFUNDED] as number, theirs.refunded);
        continue;
      }
      if (remote === undefined) {
        remote = new Map();
        this.remote.set(bucket, remote);
      }
      const ours = remote.get(id);
      if (ours === undefined) {
        remote.set(id, { consumed: theirs.consumed, refunded: theirs.refunded });
      } else {
        ours.consumed = Math.max(ours.consumed, theirs.consumed);
        ours.refunded = Math.max(ours.refunded, theirs.refunded);
      }
    }
    let remoteUsed = 0;
    if (remote !== undefined)
      for (const c of remote.values()) remoteUsed += c.consumed - c.refunded;
    cells[at + REMOTE_USED] = remoteUsed;
    return true;
  }
}

function checkNames(policy: AgentPolicy, names: readonly string[]): void {
  names.forEach((name, i) => {
    if (!policy.limits.some((limit) => limit.name === name)) {
      throw new UnknownLimitError(
        `limits[${i}]`,
        `the agent's policy has no limit "${name}" (it has ${policy.limits.map((l) => l.name).join(', ')})`,
      );
    }
  });
}

function growInt32(a: Int32Array, size: number): Int32Array {
  const next = new Int32Array(size);
  next.set(a);
  return next;
}

function growFloat64(a: Float64Array, size: number): Float64Array {
  const next = new Float64Array(size);
  next.set(a);
  return next;
}
