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
  normalise,
  type SlotCounters,
  UnknownLimitError,
  uncappedTokens,
  validateAgentId,
  validateCost,
} from '@openclaw-edge/core';
import {
  BlockTable,
  EPOCH,
  H_FLAGS,
  H_GENERATION,
  H_LAST_MS,
  H_POLICY,
  H_RECENT,
  H_ROW,
  H_SCORE,
  H_SEQ,
  OVERFLOW,
  OWN_CONSUMED,
  OWN_REFUNDED,
  PARAMS,
  REMOTE_USED,
  REVISION,
  rowAt,
  SHARE,
  STRIDE,
  USED,
  USED_AT_RANK,
} from './block-table.js';
import { PolicyTable } from './policy-table.js';
import {
  S_AT,
  S_CUT_MS,
  S_LEVEL,
  S_MARK,
  S_SENT_MARK,
  S_SENT_MS,
  S_WEIGHT,
  S_WINDOW,
  ShareTable,
} from './share-table.js';
import { TopHeap } from './top-heap.js';
import type {
  AgentStatus,
  BucketReport,
  Decision,
  LimitStatus,
  LimitTotals,
  MergeReport,
  RankBy,
  RefundResult,
  TopAgent,
} from './types.js';

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
  /**
   * Node ids of the other replicas sharing every limit (see {@link Limiter.setPeers}). Empty by
   * default: a lone replica, for which `shared` admits exactly like `optimistic`.
   */
  readonly peers?: readonly string[];
  /**
   * Part of every share handed out equally (the rest goes by recorded demand), in [0, 1].
   * Default {@link DEFAULT_SHARE_FLOOR}. docs/replication.md explains the choice.
   */
  readonly shareFloor?: number;
  /**
   * How far the sync point may lag `now` while this replica still counts as hearing its peers
   * (default {@link DEFAULT_MAX_SYNC_LAG_MS}; a few sync intervals plus delivery). Beyond it,
   * refill is absorbed into overflow only up to `syncPoint + maxSyncLagMs`, so a replica cut off
   * from its peers does not raise overflow on a stale view (docs/crdt.md, "Normalising on a
   * stale view"). Irrelevant without peers.
   */
  readonly maxSyncLagMs?: number;
}

/** Default {@link LimiterOptions.maxSyncLagMs}: ten 100 ms sync intervals. */
export const DEFAULT_MAX_SYNC_LAG_MS = 1_000;

/**
 * Default part of a `shared` limit's shares that is split equally between replicas; the other
 * part follows each replica's recorded consumption. Keeps a replica that recorded no demand
 * from being starved, at the cost of parking `floor/R` of what remains on each idle replica
 * until the next sync point.
 */
export const DEFAULT_SHARE_FLOOR = 0.2;

/** One replica's `shared` admission state for one limit, as {@link Limiter.shareStatus} reports it. */
export interface ShareStatus {
  readonly limit: Limit;
  /** This replica's weight: the part of what remains it may spend until the next sync point. */
  readonly weight: number;
  /** Tokens this replica may still admit now under its share (refilling at weight·r). */
  readonly level: number;
  /** The sync point the share was cut at (`-Infinity`: before any). */
  readonly cutAtSyncPoint: number;
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
/** The agent is among the top agents of the last ranking: its usage has its own metric series. */
const TOP = 8;
/** Weight of the previous activity score at each ranking (halves per ranking). */
const ACTIVITY_DECAY = 0.5;
const DEFAULT_IDLE_EVICT_MS = 15 * 60_000;

/** A peer's slot counters, plus the node that writes them (for `shared` weights). */
type RemoteSlots = Map<string, { consumed: number; refunded: number; readonly node: string }>;

/**
 * The in-process limiter: a keyed store of CRDT token buckets (one per agent and limit) that
 * decides synchronously. Decisions never allocate a promise and touch only the agent's packed
 * block; the replication layer drains changed agents as deltas and merges what peers send.
 *
 * Every agent has a *block* (its offset in the block table: header plus one row per limit; it
 * moves when the agent's policy changes size) and a *row* (a stable small number: its place in
 * the id list and in the change feeds).
 *
 * Time is always passed in (`nowMs`), never read from a clock.
 */
export class Limiter {
  readonly nodeId: string;
  private readonly slotPrefix: string;
  private readonly idleEvictMs: number;
  private defaultPolicy: AgentPolicy;
  private policySource: PolicySource | undefined;
  /** Bumped when the default or the policy source changes; blocks re-resolve lazily when behind. */
  private configGeneration = 0;
  private readonly overrides = new Map<string, AgentPolicy>();

  /** Agent id → block offset. */
  private readonly index = new Map<string, number>();
  private readonly blocks: BlockTable;
  private readonly policies = new PolicyTable();
  /** Row → agent id (undefined for a free row). */
  private rowIds: (string | undefined)[] = [];
  /** Row → block offset, for the change feeds (cold path). */
  private rowBlock: Float64Array;
  private rowTop = 0;
  private readonly freeRows: number[] = [];
  private nextSeq = 1;
  /** Remote slot counters by bucket row offset; absent for buckets only this replica touched. */
  private readonly remote = new Map<number, RemoteSlots>();
  private readonly feeds: Record<ChangeFeed, number[]> = { replication: [], snapshot: [] };
  private evictCursor: Iterator<[string, number]> | undefined;
  /** Per-limit scratch for a check: uncapped tokens computed in the first pass. */
  private readonly scratch = new Float64Array(64);
  /** Per-limit scratch for a check: the `shared` level computed in the first pass, and its row's state. */
  private readonly shareScratch = new Float64Array(64);
  /** `shared` state of rows checked in `shared` mode with peers (docs/replication.md). */
  private readonly shares = new ShareTable();
  /** Replicas sharing every limit: this one plus the live peers. 1 = no share logic at all. */
  private replicaCount = 1;
  /** Live peers → latest send time up to which all their charges are merged here. */
  private readonly peerHeard = new Map<string, number>();
  /** min over live peers of `peerHeard`: every charge made before it is known here. */
  private syncPoint = Number.POSITIVE_INFINITY;
  private readonly shareFloor: number;
  private readonly maxSyncLagMs: number;
  /** Units charged to agents while outside the top set (plus evicted agents'), by resource. */
  private readonly otherUsed = new Map<string, number>();
  private allowedCount = 0;
  private deniedCount = 0;

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
    const agents = Math.max(16, options.initialAgents ?? 1024);
    this.blocks = new BlockTable(agents, options.defaultPolicy.limits.length);
    this.rowBlock = new Float64Array(agents);
    const floor = options.shareFloor ?? DEFAULT_SHARE_FLOOR;
    if (!(floor >= 0 && floor <= 1)) {
      throw new InvalidPolicyError('shareFloor', 'must be a number between 0 and 1');
    }
    this.shareFloor = floor;
    const lag = options.maxSyncLagMs ?? DEFAULT_MAX_SYNC_LAG_MS;
    if (!(lag >= 0)) throw new InvalidPolicyError('maxSyncLagMs', 'must be a number >= 0');
    this.maxSyncLagMs = lag;
    if (options.peers !== undefined) this.setPeers(options.peers);
  }

  /** Replicas sharing every limit (this one plus its live peers). */
  get replicas(): number {
    return this.replicaCount;
  }

  /**
   * The fleet sync point: every charge any live peer made before it has been merged here
   * (`-Infinity` until every peer has been heard from; `+Infinity` without peers).
   */
  get syncPointMs(): number {
    return this.syncPoint;
  }

  /**
   * Sets the other replicas that share every limit (by node id; this replica's own id is
   * ignored). The replication layer calls it when membership changes: from configuration or
   * discovery, never from reachability. A peer that is merely unreachable must stay in the set:
   * while it is not heard from the sync point stands still, so every `shared` limit keeps its
   * last share instead of growing (docs/replication.md, "Partitions"). A peer new to the set has
   * not been heard from yet. Removing a peer hands its part of what remains to the others at
   * the next share cut.
   */
  setPeers(peerIds: readonly string[]): void {
    const next = new Map<string, number>();
    for (const id of peerIds) {
      if (typeof id !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(id)) {
        throw new InvalidPolicyError(
          'peers',
          "must be node ids of 1-64 letters, digits, '_', '.', ':' or '-'",
        );
      }
      if (id === this.nodeId) continue;
      next.set(id, this.peerHeard.get(id) ?? Number.NEGATIVE_INFINITY);
    }
    this.peerHeard.clear();
    for (const [id, at] of next) this.peerHeard.set(id, at);
    this.replicaCount = next.size + 1;
    this.updateSyncPoint();
  }

  /**
   * Tells the engine that every charge `peerId` made before `sentAtMs` (its clock, stamped when
   * it drained the message) has now been merged here: a delta with no gap before it, or a full
   * anti-entropy export. The transport calls it after `merge` (also for an empty heartbeat
   * delta). False for a peer not in the set. Never moves a peer's time backwards.
   */
  peerHeardFrom(peerId: string, sentAtMs: number): boolean {
    const before = this.peerHeard.get(peerId);
    if (before === undefined) return false;
    if (sentAtMs > before) {
      this.peerHeard.set(peerId, sentAtMs);
      if (before === this.syncPoint) this.updateSyncPoint();
    }
    return true;
  }

  private updateSyncPoint(): void {
    let min = Number.POSITIVE_INFINITY;
    for (const at of this.peerHeard.values()) if (at < min) min = at;
    this.syncPoint = min;
  }

  /** Decisions made by `check` since the limiter was created (local, for metrics). */
  get decisions(): { readonly allowed: number; readonly denied: number } {
    return { allowed: this.allowedCount, denied: this.deniedCount };
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
    return this.decide(this.blockFor(agentId, nowMs), cost, nowMs, limitNames);
  }

  /**
   * `check`, plus every limit's state after the decision, as `peek` would report it, for one
   * lookup of the agent: what an API response needs.
   */
  checkAndPeek(
    agentId: string,
    cost: Cost,
    nowMs: number,
    limitNames?: readonly string[],
  ): { readonly decision: Decision; readonly status: AgentStatus } {
    if (typeof cost !== 'number' || !(cost >= 0 && cost <= MAX_COST)) validateCost(cost);
    const block = this.blockFor(agentId, nowMs);
    const decision = this.decide(block, cost, nowMs, limitNames);
    return { decision, status: this.describe(agentId, block, nowMs) };
  }

  private decide(
    block: number,
    cost: Cost,
    nowMs: number,
    limitNames?: readonly string[],
  ): Decision {
    const cells = this.blocks.cells;
    const policy = this.policies.get(cells[block + H_POLICY] as number);
    const limits = policy.limits;
    if (limitNames !== undefined) checkNames(policy, limitNames);
    const scratch = this.scratch;
    const sharing = this.replicaCount > 1;
    cells[block + H_RECENT] = (cells[block + H_RECENT] as number) + 1;

    // Pass 1: what each limit has; find the denying limit that waits longest.
    let denied = -1;
    let retryAfterMs = 0;
    let tightest = -1;
    let tightestRatio = Number.POSITIVE_INFINITY;
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as Limit;
      if (limitNames !== undefined && !limitNames.includes(limit.name)) continue;
      const raw = this.uncapped(rowAt(block, i), limit, nowMs);
      scratch[i] = raw;
      const available = Math.min(raw, limit.capacityTokens);
      const c = costFor(limit, cost);
      let wait = -1;
      if (c > available + ADMISSION_EPSILON) {
        wait = msUntilAvailable(limit, available, c);
        if (sharing) this.shareScratch[i] = Number.POSITIVE_INFINITY; // not the share's doing
      } else if (sharing && limit.mode === 'shared') {
        wait = this.shareWait(rowAt(block, i), limit, raw, c, nowMs, i);
      }
      if (wait >= 0) {
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
      this.deniedCount++;
      const limit = limits[denied] as Limit;
      let available = Math.min(scratch[denied] as number, limit.capacityTokens);
      // Denied by this replica's share: what it could still give is its share, not the bucket.
      if (sharing && limit.mode === 'shared') {
        const level = this.shareScratch[denied] as number;
        if (level < available) available = level;
      }
      return {
        allowed: false,
        retryAfterMs,
        limit,
        remaining: available,
        resetMs: msUntilFull(limit, available),
      };
    }

    // Pass 2: charge every checked limit. Refill above capacity goes to overflow first, so
    // tokens banked while the bucket sat full never become spendable. Cut off from peers, only
    // refill up to shortly after the sync point: peers may have spent what looks banked here.
    const horizon = this.syncPoint + this.maxSyncLagMs;
    const stale = sharing && horizon < nowMs;
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as Limit;
      if (limitNames !== undefined && !limitNames.includes(limit.name)) continue;
      const at = rowAt(block, i);
      const raw = stale ? this.uncapped(at, limit, horizon) : (scratch[i] as number);
      if (raw > limit.capacityTokens) {
        cells[at + OVERFLOW] = (cells[at + OVERFLOW] as number) + (raw - limit.capacityTokens);
      }
      const c = costFor(limit, cost);
      cells[at + OWN_CONSUMED] = (cells[at + OWN_CONSUMED] as number) + c;
      cells[at + USED] = (cells[at + USED] as number) + c;
      if (sharing && limit.mode === 'shared') {
        const sh = (cells[at + SHARE] as number) - 1;
        const shareCells = this.shares.cells;
        shareCells[sh + S_LEVEL] = (this.shareScratch[i] as number) - c;
        shareCells[sh + S_AT] = nowMs;
      }
    }
    this.touch(block, nowMs);
    this.allowedCount++;
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

  /**
   * `shared` admission of cost `c` on the row at `at`, whose bucket view holds `raw` uncapped
   * tokens (enough for `c`): -1 when this replica's share allows it, else the wait in ms. Cuts
   * a new share first when the sync point moved since the last cut. Leaves the share level in
   * `shareScratch[i]` for the charge. docs/replication.md has the rule and its reasoning.
   */
  private shareWait(
    at: number,
    limit: Limit,
    raw: number,
    c: number,
    nowMs: number,
    i: number,
  ): number {
    const sh = this.shareSlot(at);
    const level = this.shareLevel(sh, at, limit, raw, nowMs);
    this.shareScratch[i] = level;
    if (c <= level + ADMISSION_EPSILON) return -1;
    const weight = this.shares.cells[sh + S_WEIGHT] as number;
    const cap = weight * limit.capacityTokens;
    // A cost above the whole share could never pass until a new cut: let a full share take it
    // (the share goes into debt and refills), as a lone replica's full bucket would.
    if (c > cap && level >= cap - ADMISSION_EPSILON) return -1;
    const missing = Math.min(c, cap) - level;
    return Math.max(1, Math.ceil(missing / (weight * limit.refillPerMs)));
  }

  /** The share-table slot of the row at `at`, allocated on first use. */
  private shareSlot(at: number): number {
    const cells = this.blocks.cells;
    const ref = cells[at + SHARE] as number;
    if (ref > 0) return ref - 1;
    const sh = this.shares.allocate();
    cells[at + SHARE] = sh + 1;
    return sh;
  }

  /**
   * This replica's share level of the row at `at` (share slot `sh`) as of `nowMs`. Between
   * cuts the share refills at `weight · r` up to `weight · C`. A new share is cut when the sync
   * point moved past the last cut: as `weight · pool − x`, where `x` is what this replica
   * charged since a moment at or before the sync point and `pool = min(C, raw + x)` is what
   * remains with those charges set aside. Peers count our charges made after the sync point as
   * still available (they have not seen them), so they must come out of our share, not out of
   * the pool we all split (docs/replication.md, "Consistent cuts").
   */
  private shareLevel(sh: number, at: number, limit: Limit, raw: number, nowMs: number): number {
    const s = this.shares.cells;
    const sync = this.syncPoint;
    if (s[sh + S_WEIGHT] === 0 || (s[sh + S_WINDOW] as number) < sync) {
      const own = this.blocks.cells[at + OWN_CONSUMED] as number;
      // Our consumed counter at a moment at or before the sync point, as late as we know one:
      // at the last drain for replication (what peers have seen) or at the last cut.
      let mark = Number.NEGATIVE_INFINITY;
      if ((s[sh + S_SENT_MS] as number) <= sync) mark = s[sh + S_SENT_MARK] as number;
      if ((s[sh + S_CUT_MS] as number) <= sync && (s[sh + S_MARK] as number) > mark) {
        mark = s[sh + S_MARK] as number;
      }
      // The first cut sets nothing aside. Without a usable mark, keep the current share until
      // the sync point passes the last cut.
      if (s[sh + S_WEIGHT] === 0) mark = own;
      else if (mark === Number.NEGATIVE_INFINITY) return this.refilledShare(sh, limit, nowMs);
      const since = own > mark ? own - mark : 0;
      const weight = this.shareWeight(at);
      const pool = Math.min(raw + since, limit.capacityTokens);
      const level = pool > 0 ? weight * pool - since : -since;
      s[sh + S_WEIGHT] = weight;
      s[sh + S_WINDOW] = sync;
      s[sh + S_CUT_MS] = nowMs;
      s[sh + S_MARK] = own;
      s[sh + S_AT] = nowMs;
      s[sh + S_LEVEL] = level;
      return level;
    }
    return this.refilledShare(sh, limit, nowMs);
  }

  /** The share level as of `nowMs`: refilled at `weight · r` since it was last updated, capped. */
  private refilledShare(sh: number, limit: Limit, nowMs: number): number {
    const s = this.shares.cells;
    const weight = s[sh + S_WEIGHT] as number;
    const since = nowMs - (s[sh + S_AT] as number);
    const level =
      (s[sh + S_LEVEL] as number) + (since > 0 ? weight * limit.refillPerMs * since : 0);
    return Math.min(level, weight * limit.capacityTokens);
  }

  /**
   * This replica's weight for the row at `at`: `floor/R` plus `(1 − floor)` times its part of
   * what the live replicas' slots recorded as consumed. A function of the replicated counters
   * and the peer set only, so replicas holding the same state compute weights that sum to 1.
   */
  private shareWeight(at: number): number {
    const n = this.replicaCount;
    const cells = this.blocks.cells;
    let mine = cells[at + OWN_CONSUMED] as number;
    let total = mine;
    const remote = this.remote.get(at);
    if (remote !== undefined) {
      for (const slot of remote.values()) {
        if (slot.node === this.nodeId) {
          mine += slot.consumed;
          total += slot.consumed;
        } else if (this.peerHeard.has(slot.node)) {
          total += slot.consumed;
        }
      }
    }
    if (!(total > 0)) return 1 / n;
    return this.shareFloor / n + (1 - this.shareFloor) * (mine / total);
  }

  /**
   * This replica's `shared` state for each limit of the agent in `shared` mode (cutting a new
   * share when one is due, as a check would). Empty for an untracked agent or a lone replica.
   * For tests, the simulator and diagnostics; not on the decision path.
   */
  shareStatus(agentId: string, nowMs: number): ShareStatus[] {
    const block = this.index.get(agentId);
    if (block === undefined || this.replicaCount <= 1) return [];
    const limits = this.policyOf(block).limits;
    const out: ShareStatus[] = [];
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as Limit;
      if (limit.mode !== 'shared') continue;
      const at = rowAt(block, i);
      const sh = this.shareSlot(at);
      const level = this.shareLevel(sh, at, limit, this.uncapped(at, limit, nowMs), nowMs);
      const s = this.shares.cells;
      out.push({
        limit,
        weight: s[sh + S_WEIGHT] as number,
        level,
        cutAtSyncPoint: s[sh + S_WINDOW] as number,
      });
    }
    return out;
  }

  /** Every limit's state without charging; an unknown agent reads as full buckets. */
  peek(agentId: string, nowMs: number): AgentStatus {
    const block = this.index.get(agentId);
    if (block === undefined) {
      const policy = this.policyFor(agentId);
      return {
        agentId,
        tracked: false,
        policy,
        limits: policy.limits.map((limit) => ({
          limit,
          remaining: limit.capacityTokens,
          resetMs: 0,
        })),
      };
    }
    return this.describe(agentId, this.refreshPolicy(block, nowMs), nowMs);
  }

  /** Every limit's state of the agent whose block is `block`. */
  private describe(agentId: string, block: number, nowMs: number): AgentStatus {
    const policy = this.policyOf(block);
    const limits: LimitStatus[] = policy.limits.map((limit, i) => {
      const remaining = this.available(rowAt(block, i), limit, nowMs);
      return { limit, remaining, resetMs: msUntilFull(limit, remaining) };
    });
    return { agentId, tracked: true, policy, limits };
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
    let block = this.index.get(agentId);
    if (block !== undefined) block = this.refreshPolicy(block, nowMs);
    const policy = block === undefined ? this.policyFor(agentId) : this.policyOf(block);
    if (limitNames !== undefined) checkNames(policy, limitNames);
    const results: RefundResult[] = [];
    let credited = false;
    for (let i = 0; i < policy.limits.length; i++) {
      const limit = policy.limits[i] as Limit;
      if (limitNames !== undefined && !limitNames.includes(limit.name)) continue;
      // An untracked agent has full buckets: there is nothing to give back.
      let refunded = 0;
      if (block !== undefined) {
        const at = rowAt(block, i);
        const room = limit.capacityTokens - this.available(at, limit, nowMs);
        refunded = Math.max(0, Math.min(costFor(limit, cost), room));
        if (refunded > 0) {
          const cells = this.blocks.cells;
          cells[at + OWN_REFUNDED] = (cells[at + OWN_REFUNDED] as number) + refunded;
          credited = true;
        }
      }
      results.push({ limit, refunded });
    }
    if (credited) this.touch(block as number, nowMs);
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
      const block = this.blockFor(entry.agentId, nowMs);
      const policy = this.policyOf(block);
      const i = policy.limits.findIndex((limit) => limit.name === entry.limit);
      if (i < 0) {
        unknownLimit++;
        continue;
      }
      const limit = policy.limits[i] as Limit;
      const at = rowAt(block, i);
      // Absorb our banked refill first, or counts a peer made after a long idle would vanish in it.
      this.normaliseRow(at, limit, nowMs);
      if (this.mergeRow(at, this.slotId(block), limit, entry.state)) applied++;
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
    const cells = this.blocks.cells;
    const out: BucketEntry[] = [];
    let taken = 0;
    let i = 0;
    for (; i < list.length && taken < maxAgents; i++) {
      const row = list[i] as number;
      // A row freed by eviction, or already drained through an earlier entry, is skipped.
      if (this.rowIds[row] === undefined) continue;
      const block = this.rowBlock[row] as number;
      const flags = cells[block + H_FLAGS] as number;
      if ((flags & bit) === 0) continue;
      cells[block + H_FLAGS] = flags & ~bit;
      if (feed === 'replication' && this.replicaCount > 1) this.markSent(block, nowMs);
      this.exportBlock(block, nowMs, out);
      taken++;
    }
    this.feeds[feed] = i >= list.length ? [] : list.slice(i);
    return out;
  }

  /** Frees the share slot of the row at `at`, if it has one. */
  private releaseShare(at: number): void {
    const ref = this.blocks.cells[at + SHARE] as number;
    if (ref > 0) {
      this.shares.release(ref - 1);
      this.blocks.cells[at + SHARE] = 0;
    }
  }

  /** Remembers what each of the agent's rows carried to peers at `nowMs` (for `shared` cuts). */
  private markSent(block: number, nowMs: number): void {
    const limits = this.policyOf(block).limits.length;
    for (let i = 0; i < limits; i++) {
      const at = rowAt(block, i);
      const ref = this.blocks.cells[at + SHARE] as number;
      if (ref === 0) continue;
      const s = this.shares.cells;
      s[ref - 1 + S_SENT_MS] = nowMs;
      s[ref - 1 + S_SENT_MARK] = this.blocks.cells[at + OWN_CONSUMED] as number;
    }
  }

  /** Agents waiting in a change feed (an upper bound: evicted agents leave stale entries). */
  dirtyCount(feed: ChangeFeed = 'replication'): number {
    return this.feeds[feed].length;
  }

  /** Full state of one agent's buckets (empty if untracked), for anti-entropy and snapshots. */
  exportAgent(agentId: string, nowMs: number): BucketEntry[] {
    const block = this.index.get(agentId);
    const out: BucketEntry[] = [];
    if (block !== undefined) this.exportBlock(block, nowMs, out);
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
      const [agentId, block] = next.value;
      if (this.isEvictable(block, nowMs)) {
        this.removeAgent(agentId, block);
        evicted.push(agentId);
      }
    }
    return evicted;
  }

  /**
   * Chooses the `n` agents that get their own metric series: by decayed activity (decisions made
   * here: each ranking halves the old score and adds the decisions since) or, for a replica that
   * takes no traffic, by utilisation. Usage charged since the last ranking to agents outside the
   * top set is added to the "other" usage first. Agents in `exclude` never rank (a metrics
   * exporter excludes ids that would collide with its own label values). Cold path: one pass
   * over every agent.
   */
  rankAgents(
    n: number,
    nowMs: number,
    by: RankBy = 'activity',
    exclude?: ReadonlySet<string>,
  ): string[] {
    const cells = this.blocks.cells;
    const heap = new TopHeap(n);
    for (const [agentId, block] of this.index) {
      this.foldUsage(block, this.policyOf(block).limits);
      let score: number;
      if (by === 'activity') {
        score =
          (cells[block + H_SCORE] as number) * ACTIVITY_DECAY + (cells[block + H_RECENT] as number);
        cells[block + H_RECENT] = 0;
      } else {
        score = this.utilisation(block, nowMs);
      }
      cells[block + H_SCORE] = score;
      cells[block + H_FLAGS] = (cells[block + H_FLAGS] as number) & ~TOP;
      if (score > 0 && exclude?.has(agentId) !== true) heap.offer(block, score);
    }
    return heap.sorted().map((block) => {
      cells[block + H_FLAGS] = (cells[block + H_FLAGS] as number) | TOP;
      return this.rowIds[cells[block + H_ROW] as number] as string;
    });
  }

  /**
   * Totals per limit over every tracked agent, the top agents' buckets and usage, and the usage
   * of everyone else: what the metrics endpoint exports. Cold path: one pass over every agent.
   */
  bucketReport(nowMs: number): BucketReport {
    const cells = this.blocks.cells;
    const totals = new Map<string, LimitTotals>();
    const top: { agent: TopAgent; score: number }[] = [];
    const otherUsed = new Map(this.otherUsed);
    for (const [agentId, block] of this.index) {
      const limits = this.policyOf(block).limits;
      const isTop = ((cells[block + H_FLAGS] as number) & TOP) !== 0;
      for (let i = 0; i < limits.length; i++) {
        const limit = limits[i] as Limit;
        const available = Math.max(0, this.available(rowAt(block, i), limit, nowMs));
        let t = totals.get(limit.name);
        if (t === undefined) {
          t = {
            limit: limit.name,
            resource: limit.resource,
            agents: 0,
            capacity: 0,
            available: 0,
            fillPerSecond: 0,
            otherCapacity: 0,
            otherAvailable: 0,
          };
          totals.set(limit.name, t);
        }
        t.agents++;
        t.capacity += limit.capacityTokens;
        t.available += available;
        t.fillPerSecond += limit.refillPerMs * 1000;
        if (!isTop) {
          t.otherCapacity += limit.capacityTokens;
          t.otherAvailable += available;
        }
      }
      if (isTop) {
        const used = new Map<string, number>();
        const statuses = limits.map((limit, i) => {
          const at = rowAt(block, i);
          used.set(
            limit.resource,
            Math.max(used.get(limit.resource) ?? 0, cells[at + USED] as number),
          );
          const remaining = this.available(at, limit, nowMs);
          return { limit, remaining, resetMs: msUntilFull(limit, remaining) };
        });
        top.push({
          agent: { agentId, limits: statuses, used },
          score: cells[block + H_SCORE] as number,
        });
      } else {
        this.pendingUsage(block, limits, otherUsed);
      }
    }
    top.sort((a, b) => b.score - a.score);
    return {
      agents: this.index.size,
      limits: [...totals.values()],
      top: top.map((t) => t.agent),
      otherUsed,
    };
  }

  /**
   * Sets an agent's own policy, over whatever config says. Limits whose parameters changed are
   * rebased so the agent keeps missing the tokens it was missing; limits that are new start full.
   */
  setOverride(agentId: string, policy: AgentPolicy, nowMs: number): void {
    this.overrides.set(agentId, policy);
    const block = this.index.get(agentId);
    if (block !== undefined) {
      const cells = this.blocks.cells;
      cells[block + H_FLAGS] = (cells[block + H_FLAGS] as number) & ~FOLLOWS_CONFIG;
      this.applyPolicy(block, policy, nowMs);
    }
  }

  /**
   * Removes an agent's override; it falls back to its configured policy, rebased like any
   * change. False if there was no override.
   */
  clearOverride(agentId: string, nowMs: number): boolean {
    if (!this.overrides.delete(agentId)) return false;
    const block = this.index.get(agentId);
    if (block !== undefined) {
      const cells = this.blocks.cells;
      cells[block + H_FLAGS] = (cells[block + H_FLAGS] as number) | FOLLOWS_CONFIG;
      this.refreshPolicy(block, nowMs);
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
    return this.blocks.bytes + this.rowBlock.byteLength + 8 * this.rowIds.length;
  }

  /** Block of `agentId`, created on first sight; moves agents following config onto its latest version. */
  private blockFor(agentId: string, nowMs: number): number {
    const block = this.index.get(agentId);
    if (block === undefined) return this.createAgent(agentId, nowMs);
    const cells = this.blocks.cells;
    if (
      ((cells[block + H_FLAGS] as number) & FOLLOWS_CONFIG) !== 0 &&
      cells[block + H_GENERATION] !== this.configGeneration
    ) {
      return this.refreshPolicy(block, nowMs);
    }
    return block;
  }

  private policyOf(block: number): AgentPolicy {
    return this.policies.get(this.blocks.cells[block + H_POLICY] as number);
  }

  /** Re-resolves the agent's policy; returns its block, which moves if the policy changed. */
  private refreshPolicy(block: number, nowMs: number): number {
    const agentId = this.rowIds[this.blocks.cells[block + H_ROW] as number] as string;
    const wanted = this.policyFor(agentId);
    let at = block;
    if (this.policyOf(block).limits !== wanted.limits) at = this.applyPolicy(block, wanted, nowMs);
    this.blocks.cells[at + H_GENERATION] = this.configGeneration;
    return at;
  }

  private createAgent(agentId: string, nowMs: number): number {
    validateAgentId(agentId);
    const policy = this.policyFor(agentId);
    const row = this.allocateRow();
    const block = this.blocks.allocate(policy.limits.length);
    const cells = this.blocks.cells;
    cells[block + H_ROW] = row;
    cells[block + H_LAST_MS] = nowMs;
    cells[block + H_SEQ] = this.nextSeq++;
    cells[block + H_FLAGS] = this.overrides.has(agentId) ? 0 : FOLLOWS_CONFIG;
    cells[block + H_GENERATION] = this.configGeneration;
    cells[block + H_POLICY] = this.policies.acquire(policy);
    for (let i = 0; i < policy.limits.length; i++) {
      const at = rowAt(block, i);
      cells[at + EPOCH] = nowMs;
      cells[at + PARAMS] = (policy.limits[i] as Limit).fingerprint;
    }
    this.rowIds[row] = agentId;
    this.rowBlock[row] = block;
    this.index.set(agentId, block);
    return block;
  }

  private allocateRow(): number {
    const reused = this.freeRows.pop();
    if (reused !== undefined) return reused;
    const row = this.rowTop++;
    if (row >= this.rowBlock.length) {
      const next = new Float64Array(this.rowBlock.length * 2);
      next.set(this.rowBlock);
      this.rowBlock = next;
    }
    return row;
  }

  private removeAgent(agentId: string, block: number): void {
    const cells = this.blocks.cells;
    const row = cells[block + H_ROW] as number;
    const policyId = cells[block + H_POLICY] as number;
    const limits = this.policies.get(policyId).limits.length;
    this.foldUsage(block, this.policies.get(policyId).limits);
    for (let i = 0; i < limits; i++) {
      this.remote.delete(rowAt(block, i));
      this.releaseShare(rowAt(block, i));
    }
    this.policies.release(policyId);
    this.blocks.release(block, limits);
    this.index.delete(agentId);
    this.rowIds[row] = undefined;
    this.freeRows.push(row);
  }

  /**
   * Starts a new usage period for the agent's rows (those passing `which`): what was charged since
   * the last ranking goes to "other" usage, unless the agent is a top agent with its own series.
   */
  private foldUsage(
    block: number,
    limits: readonly Limit[],
    which?: (limit: Limit) => boolean,
  ): void {
    const cells = this.blocks.cells;
    if (((cells[block + H_FLAGS] as number) & TOP) === 0) {
      this.pendingUsage(block, limits, this.otherUsed, which);
    }
    for (let i = 0; i < limits.length; i++) {
      if (which !== undefined && !which(limits[i] as Limit)) continue;
      const at = rowAt(block, i);
      cells[at + USED_AT_RANK] = cells[at + USED] as number;
    }
  }

  /**
   * Adds the agent's usage since the last ranking to `into`, by resource. Limits sharing a
   * resource are charged the same cost, so a resource counts once (its largest row).
   */
  private pendingUsage(
    block: number,
    limits: readonly Limit[],
    into: Map<string, number>,
    which?: (limit: Limit) => boolean,
  ): void {
    const cells = this.blocks.cells;
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as Limit;
      if (which !== undefined && !which(limit)) continue;
      const at = rowAt(block, i);
      let pending = (cells[at + USED] as number) - (cells[at + USED_AT_RANK] as number);
      // Only what exceeds the earlier rows of the same resource is new.
      for (let j = 0; j < i; j++) {
        if ((limits[j] as Limit).resource !== limit.resource) continue;
        if (which !== undefined && !which(limits[j] as Limit)) continue;
        const aj = rowAt(block, j);
        pending -= (cells[aj + USED] as number) - (cells[aj + USED_AT_RANK] as number);
      }
      if (pending > 0) into.set(limit.resource, (into.get(limit.resource) ?? 0) + pending);
    }
  }

  /** Largest `1 − available/capacity` over the agent's limits. */
  private utilisation(block: number, nowMs: number): number {
    const limits = this.policyOf(block).limits;
    let most = 0;
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i] as Limit;
      const u = 1 - this.available(rowAt(block, i), limit, nowMs) / limit.capacityTokens;
      if (u > most) most = u;
    }
    return most;
  }

  private isEvictable(block: number, nowMs: number): boolean {
    const cells = this.blocks.cells;
    if (((cells[block + H_FLAGS] as number) & FEED_BIT.replication) !== 0) return false;
    if (nowMs - (cells[block + H_LAST_MS] as number) < this.idleEvictMs) return false;
    const policy = this.policyOf(block);
    for (let i = 0; i < policy.limits.length; i++) {
      const limit = policy.limits[i] as Limit;
      if (this.available(rowAt(block, i), limit, nowMs) < limit.capacityTokens - ADMISSION_EPSILON)
        return false;
    }
    return true;
  }

  /**
   * Moves an agent onto `policy` in a new block, keeping the state of limits whose parameters
   * did not change and rebasing the others. Returns the new block.
   */
  private applyPolicy(block: number, policy: AgentPolicy, nowMs: number): number {
    const cells = this.blocks.cells;
    const oldPolicyId = cells[block + H_POLICY] as number;
    const old = this.policies.get(oldPolicyId);
    // Read everything needed from the old block before allocating: allocation may move `cells`.
    const header = cells.slice(block, rowAt(block, 0));
    // Usage counters of limits that go away are counted as "other" usage before they vanish.
    this.foldUsage(block, old.limits, (o) => !policy.limits.some((l) => l.name === o.name));
    const carried = policy.limits.map((limit) => {
      const j = old.limits.findIndex((o) => o.name === limit.name);
      if (j < 0) return { kind: 'fresh' as const };
      const oldLimit = old.limits[j] as Limit;
      const at = rowAt(block, j);
      const used = cells[at + USED] as number;
      const usedAtRank = cells[at + USED_AT_RANK] as number;
      // Already counting under these parameters (unchanged, or a peer rebased it first): keep.
      if (cells[at + PARAMS] === limit.fingerprint) {
        return {
          kind: 'keep' as const,
          from: j,
          row: cells.slice(at, at + STRIDE),
          remote: this.remote.get(at),
        };
      }
      // The tokens the agent was missing stay missing, one revision up (core `rebase`).
      const debt = Math.max(0, oldLimit.capacityTokens - this.available(at, oldLimit, nowMs));
      return {
        kind: 'rebase' as const,
        debt,
        revision: (cells[at + REVISION] as number) + 1,
        used,
        usedAtRank,
      };
    });
    for (let j = 0; j < old.limits.length; j++) {
      this.remote.delete(rowAt(block, j));
      // A kept row carries its share slot in its copied cells; the others give theirs back.
      const kept = carried.some((c) => c.kind === 'keep' && c.from === j);
      if (!kept) this.releaseShare(rowAt(block, j));
    }
    this.blocks.release(block, old.limits.length);
    this.policies.release(oldPolicyId);
    const moved = this.blocks.allocate(policy.limits.length);
    const next = this.blocks.cells;
    // The header (row, flags with any pending feed bits, sequence) travels with the agent.
    next.set(header, moved);
    next[moved + H_POLICY] = this.policies.acquire(policy);
    carried.forEach((c, i) => {
      const at = rowAt(moved, i);
      if (c.kind === 'keep') {
        next.set(c.row, at);
        if (c.remote !== undefined) this.remote.set(at, c.remote);
      } else {
        next[at + EPOCH] = nowMs;
        next[at + PARAMS] = (policy.limits[i] as Limit).fingerprint;
        if (c.kind === 'rebase') {
          next[at + REVISION] = c.revision;
          next[at + OVERFLOW] = c.debt;
          next[at + USED] = c.used;
          next[at + USED_AT_RANK] = c.usedAtRank;
        }
      }
    });
    const row = next[moved + H_ROW] as number;
    this.rowBlock[row] = moved;
    this.index.set(this.rowIds[row] as string, moved);
    this.markDirty(moved);
    return moved;
  }

  /**
   * Raises a row's overflow so it holds no refill above capacity (core `normalise`) as of
   * `nowMs`, or as of `syncPoint + maxSyncLagMs` if that is earlier (cut off from peers):
   * refill that piled up after it may have been spent by peers we have not heard from, and an
   * overflow raised on it would be counted twice once their charges arrive (docs/crdt.md,
   * "Normalising on a stale view").
   */
  private normaliseRow(at: number, limit: Limit, nowMs: number): void {
    const raw = this.uncapped(at, limit, Math.min(nowMs, this.syncPoint + this.maxSyncLagMs));
    if (raw > limit.capacityTokens) {
      const cells = this.blocks.cells;
      cells[at + OVERFLOW] = (cells[at + OVERFLOW] as number) + (raw - limit.capacityTokens);
    }
  }

  private available(at: number, limit: Limit, nowMs: number): number {
    return Math.min(this.uncapped(at, limit, nowMs), limit.capacityTokens);
  }

  /** Uncapped tokens of the bucket row at offset `at` (core `uncappedTokens`). */
  private uncapped(at: number, limit: Limit, nowMs: number): number {
    const cells = this.blocks.cells;
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

  private touch(block: number, nowMs: number): void {
    this.blocks.cells[block + H_LAST_MS] = nowMs;
    this.markDirty(block);
  }

  private markDirty(block: number): void {
    const cells = this.blocks.cells;
    const flags = cells[block + H_FLAGS] as number;
    if ((flags & CHANGED) === CHANGED) return;
    cells[block + H_FLAGS] = flags | CHANGED;
    const row = cells[block + H_ROW] as number;
    if ((flags & FEED_BIT.replication) === 0) this.feeds.replication.push(row);
    if ((flags & FEED_BIT.snapshot) === 0) this.feeds.snapshot.push(row);
  }

  private slotId(block: number): string {
    return this.slotPrefix + (this.blocks.cells[block + H_SEQ] as number).toString(36);
  }

  /** Appends the agent's bucket states, normalised as of `nowMs` so a receiver cannot absorb them. */
  private exportBlock(block: number, nowMs: number, out: BucketEntry[]): void {
    const cells = this.blocks.cells;
    const agentId = this.rowIds[cells[block + H_ROW] as number] as string;
    const policy = this.policyOf(block);
    const own = this.slotId(block);
    for (let i = 0; i < policy.limits.length; i++) {
      const at = rowAt(block, i);
      this.normaliseRow(at, policy.limits[i] as Limit, nowMs);
      const slots = new Map<string, SlotCounters>();
      const remote = this.remote.get(at);
      if (remote !== undefined) {
        for (const [id, c] of remote) slots.set(id, { consumed: c.consumed, refunded: c.refunded });
      }
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

  /** Joins `state` into the bucket row at `at`; false when the state is of an older version. */
  private mergeRow(at: number, ownSlot: string, limit: Limit, state: BucketState): boolean {
    const cells = this.blocks.cells;
    const revision = cells[at + REVISION] as number;
    const params = cells[at + PARAMS] as number;
    const order = state.revision !== revision ? state.revision - revision : state.params - params;
    if (order < 0) return false;
    let remote = this.remote.get(at);
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
      // Our bucket says "full at `epoch`". Their older state, read at that moment, cannot have
      // held more than capacity either: absorb what it banked by then (core `normalise`), or the
      // earlier epoch would hand our later charges the refill of a time before our bucket existed
      // (a late message from a replica that charged long ago).
      const overflow =
        state.epochMs < epoch ? normalise(state, limit, epoch).overflow : state.overflow;
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
        this.remote.set(at, remote);
      }
      const ours = remote.get(id);
      if (ours === undefined) {
        const tilde = id.indexOf('~');
        remote.set(id, {
          consumed: theirs.consumed,
          refunded: theirs.refunded,
          node: tilde < 0 ? id : id.slice(0, tilde),
        });
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
