import {
  type AgentPolicy,
  type BucketEntry,
  decodeEntries,
  encodeEntries,
} from '@openclaw-edge/core';
import type { Limiter } from '@openclaw-edge/engine';
import type { Logger } from 'pino';
import type { EdgeMetrics } from '../metrics/edge-metrics.js';
import { type BudgetReplica, isBudgetLimit } from '../rating/budget-replica.js';
import { computeDigest, type Digest, type DigestRange, entriesOfBuckets } from './digest.js';
import { type Frame, type FrameCodec, FrameError, FrameKind } from './frame.js';
import { decodeOverrides, encodeOverrides, OverrideLog, type OverrideRecord } from './overrides.js';

/**
 * What a transport gets from the replicator: this replica's identity and state, and the calls it
 * makes when something arrives or membership changes.
 */
export interface ReplicaContext {
  readonly nodeId: string;
  readonly incarnation: number;
  readonly codec: FrameCodec;
  readonly logger: Logger;
  now(): number;
  /** A frame arrived (any kind a transport does not answer itself); false if refused. */
  receive(bytes: Uint8Array): boolean;
  /** Merges state a transport fetched (repairs, cold start); counts it. */
  mergeEntries(entries: readonly BucketEntry[]): void;
  /** The replica's current digest of a range of digest buckets (computed in slices, digest.ts). */
  digest(range?: DigestRange): Promise<Digest>;
  /** Full state of the agents in these digest buckets, at most about `maxEntries` entries. */
  entriesOf(
    buckets: readonly number[],
    maxEntries: number,
  ): Promise<{ entries: BucketEntry[]; rest: number[] }>;
  /** Seq of the last delta this replica sent (peers use it to place a pull in the stream). */
  currentSeq(): number;
  /** Every runtime override this replica knows, as an `overrides` payload (for newcomers). */
  overridesPayload(): Buffer;
  /** Applies an `overrides` payload a transport fetched; false when it does not decode. */
  mergeOverrides(payload: Buffer): boolean;
  /** Membership changed: the node ids of the other replicas (from config or discovery). */
  setMembers(nodeIds: readonly string[]): void;
  /** A peer became reachable or unreachable (metrics only; membership is unchanged). */
  setReachable(nodeId: string, reachable: boolean): void;
  /** Counts a frame the transport refused before it reached `receive`. */
  countRejected(reason: string): void;
  /** Counts payload bytes the transport sent or received (deltas, digests, repairs). */
  countBytes(direction: 'sent' | 'received', bytes: number): void;
}

/** Where a peer was when a pull read its state. */
export interface PullPoint {
  readonly sentAtMs: number;
  readonly incarnation: number;
  readonly seq: number;
}

/** A way for replicas to reach each other: the mesh (HTTP/2) or a Redis backplane. */
export interface ReplicationTransport {
  readonly kind: 'mesh' | 'redis';
  /**
   * Starts the transport. A transport that catches up at start (Redis) waits for that at most
   * `catchUpMs`; the rest of the catch-up continues in the background.
   */
  start(context: ReplicaContext, catchUpMs: number): Promise<void>;
  /** Sends a delta frame to every peer, in order per peer; best effort (gaps are repaired). */
  broadcast(frame: Buffer): void;
  /**
   * Brings this replica up to date with `nodeId`'s full state (merging through the context) and
   * resolves with where the peer was when its state was read: its clock (every charge it made
   * before it is now merged here), its incarnation and the seq of the last delta it had sent.
   * Undefined when the peer could not be reached.
   */
  pull(nodeId: string): Promise<PullPoint | undefined>;
  /**
   * One anti-entropy round with some peer (digest, then repair both ways). Resolves with the
   * peer and where it was, like `pull`, when the round covered the peer's whole state; undefined
   * when it covered only part of it or no peer was reached.
   */
  antiEntropy(): Promise<{ readonly nodeId: string; readonly point: PullPoint } | undefined>;
  stop(): Promise<void>;
}

/** A warning of one kind (a rejection reason, say) is logged at most once per this many ms. */
const WARN_EVERY_MS = 10_000;

/** Per sending peer: where its delta stream is, and whether we hold everything before it. */
interface Inbound {
  incarnation: number;
  /** Next delta seq expected from this incarnation. */
  expect: number;
  /** First seq of the unbroken run of deltas that ends at `expect - 1`. */
  runStart: number;
  /**
   * True once a full pull since the last gap (or the first contact, or a restart of the peer)
   * has been merged; until then deltas are merged but do not move the peer's sync time.
   */
  synced: boolean;
  /** The newest sentAt passed to `peerHeardFrom`. */
  heardAt: number;
}

export interface ReplicatorOptions {
  readonly limiter: Limiter;
  readonly incarnation: number;
  readonly transport: ReplicationTransport;
  readonly codec: FrameCodec;
  readonly logger: Logger;
  readonly syncIntervalMs: number;
  readonly antiEntropyIntervalMs: number;
  readonly metrics?: EdgeMetrics;
  readonly now?: () => number;
  /** A peer's runtime override record was applied here (the service persists it). */
  readonly overrideApplied?: (record: OverrideRecord) => void;
  /** The override records this replica kept from before (its snapshot): their order survives a restart. */
  readonly overrides?: readonly OverrideRecord[];
  /**
   * The fleet's calendar budget counters: carried in the same deltas, digests, pulls and repairs
   * as the limiter's entries, under reserved limit names (`$budget:<name>@<windowStartMs>`).
   */
  readonly budgets?: BudgetReplica;
}

/** Replication as GET /v1/replication reports it; lags are null until first heard. */
export interface ReplicationStatus {
  readonly transport: 'mesh' | 'redis';
  readonly node_id: string;
  readonly incarnation: number;
  readonly sync_interval_ms: number;
  /** Seq of the last delta sent. */
  readonly seq: number;
  /** How far behind now every peer is heard (the sync point `shared` shares are cut at). */
  readonly sync_point_lag_ms: number | null;
  readonly peers: readonly {
    readonly node_id: string;
    readonly reachable: boolean;
    /** Its delta stream is known complete (no gap since the last pull). */
    readonly synced: boolean;
    readonly lag_ms: number | null;
  }[];
  readonly deltas_sent: number;
  readonly deltas_received: number;
  readonly rejected: number;
  readonly gaps: number;
  readonly pulls: number;
  readonly unknown_limit_entries: number;
}

/** Counters of the replication layer (tests, logs, metrics). */
export interface ReplicationStats {
  deltasSent: number;
  deltasReceived: number;
  rejected: number;
  gaps: number;
  pulls: number;
  /** Entries of limits this replica does not configure (config differs between replicas). */
  unknownLimit: number;
}

/**
 * Replicates the limiter's bucket state over a transport (docs/replication.md): every sync
 * interval, on a grid shared by every replica (multiples of the interval), it drains the changed
 * agents and broadcasts them as one numbered delta (empty = heartbeat); it merges what peers
 * send, tells the engine how far each peer is heard (`peerHeardFrom`) while the peer's stream has
 * no gap, and pulls a peer's full state after a gap, a restart of the peer or the first contact.
 * Periodic anti-entropy repairs whatever slipped through.
 */
export class Replicator {
  readonly stats: ReplicationStats = {
    deltasSent: 0,
    deltasReceived: 0,
    rejected: 0,
    gaps: 0,
    pulls: 0,
    unknownLimit: 0,
  };
  private seq = 0;
  /** Runtime overrides across the fleet, and this replica's changes not sent yet. */
  private readonly overrides = new OverrideLog();
  private pendingOverrides: OverrideRecord[] = [];
  private readonly inbound = new Map<string, Inbound>();
  /** At most one pull per peer at a time; whoever asks while one runs waits for that one. */
  private readonly pulls = new Map<string, Promise<void>>();
  private members: readonly string[] = [];
  private readonly reachable = new Set<string>();
  /** Per warning: when it was last logged, and how many since went unlogged. */
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  private tickTimer: NodeJS.Timeout | undefined;
  private antiEntropyTimer: NodeJS.Timeout | undefined;
  private antiEntropyRunning = false;
  private stopped = false;
  private readonly now: () => number;
  readonly context: ReplicaContext;

  constructor(private readonly options: ReplicatorOptions) {
    this.now = options.now ?? Date.now;
    for (const record of options.overrides ?? []) this.overrides.offer(record);
    const limiter = options.limiter;
    this.context = {
      nodeId: limiter.nodeId,
      incarnation: options.incarnation,
      codec: options.codec,
      logger: options.logger,
      now: this.now,
      receive: (bytes) => this.receive(bytes),
      mergeEntries: (entries) => this.mergeEntries(entries),
      digest: (range) => computeDigest(limiter, this.now, range, options.budgets),
      entriesOf: (buckets, max) =>
        entriesOfBuckets(limiter, buckets, this.now, max, options.budgets),
      currentSeq: () => this.seq,
      overridesPayload: () => encodeOverrides(this.overrides.all()),
      mergeOverrides: (payload) => this.mergeOverrides(payload),
      setMembers: (ids) => this.setMembers(ids),
      setReachable: (id, up) => this.setReachable(id, up),
      countRejected: (reason) => this.countRejected(reason),
      countBytes: (direction, bytes) =>
        options.metrics?.replication.bytes.inc({ direction }, bytes),
    };
  }

  /** Starts the transport, pulls every reachable peer's state (bounded by `startupMs`), then ticks. */
  async start(startupMs: number): Promise<void> {
    const deadlineAt = performance.now() + startupMs;
    await this.options.transport.start(this.context, startupMs);
    const left = Math.max(0, deadlineAt - performance.now());
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, left).unref());
    // A peer whose delta arrived while the transport started may be pulled (or pulling) already.
    const unsynced = this.members.filter((id) => this.inbound.get(id)?.synced !== true);
    await Promise.race([Promise.allSettled(unsynced.map((id) => this.pull(id))), deadline]);
    this.scheduleTick();
    this.antiEntropyTimer = setInterval(() => {
      void this.runAntiEntropy();
    }, this.options.antiEntropyIntervalMs);
    this.antiEntropyTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.tickTimer);
    clearInterval(this.antiEntropyTimer);
    // A last delta, so peers get our final charges without waiting for anti-entropy.
    this.tick();
    await this.options.transport.stop();
  }

  /** Peers (node ids) and how far each is heard; for diagnostics and tests. */
  peers(): { nodeId: string; reachable: boolean; synced: boolean; heardAtMs: number }[] {
    return this.members.map((nodeId) => {
      const s = this.inbound.get(nodeId);
      return {
        nodeId,
        reachable: this.reachable.has(nodeId),
        synced: s?.synced ?? false,
        heardAtMs: s?.heardAt ?? Number.NEGATIVE_INFINITY,
      };
    });
  }

  /** What an operator wants to see (GET /v1/replication). */
  status(): ReplicationStatus {
    const now = this.now();
    const sync = this.options.limiter.syncPointMs;
    return {
      transport: this.options.transport.kind,
      node_id: this.context.nodeId,
      incarnation: this.context.incarnation,
      sync_interval_ms: this.options.syncIntervalMs,
      seq: this.seq,
      sync_point_lag_ms: Number.isFinite(sync) ? Math.max(0, now - sync) : null,
      peers: this.peers().map((p) => ({
        node_id: p.nodeId,
        reachable: p.reachable,
        synced: p.synced,
        lag_ms: Number.isFinite(p.heardAtMs) ? Math.max(0, now - p.heardAtMs) : null,
      })),
      deltas_sent: this.stats.deltasSent,
      deltas_received: this.stats.deltasReceived,
      rejected: this.stats.rejected,
      gaps: this.stats.gaps,
      pulls: this.stats.pulls,
      unknown_limit_entries: this.stats.unknownLimit,
    };
  }

  /**
   * A runtime override was set (or removed, `policy` undefined) on this replica: peers get it
   * with the next tick, and it wins over any change they made earlier. Returns the record (for
   * the snapshot).
   */
  overrideChanged(agentId: string, policy: AgentPolicy | undefined): OverrideRecord {
    const record = this.overrides.stamp(agentId, policy, this.now(), this.context.nodeId);
    this.pendingOverrides.push(record);
    return record;
  }

  /** Applies the records of an `overrides` payload that are later than what is known here. */
  private mergeOverrides(payload: Buffer): boolean {
    let records: OverrideRecord[];
    try {
      records = decodeOverrides(payload);
    } catch {
      return false;
    }
    const now = this.now();
    for (const r of records) {
      if (!this.overrides.offer(r)) continue;
      if (r.policy === undefined) this.options.limiter.clearOverride(r.agentId, now);
      else this.options.limiter.setOverride(r.agentId, r.policy, now);
      this.options.overrideApplied?.(r);
    }
    return true;
  }

  /** Drains changed agents and broadcasts them as the next delta (also when empty). */
  tick(): void {
    const now = this.now();
    const entries = this.options.limiter.drainDirty(now, Number.POSITIVE_INFINITY, 'replication');
    const budgets = this.options.budgets;
    if (budgets !== undefined) {
      this.options.metrics?.replication.budgetWindows.set(budgets.size);
      // Every agent in the delta goes with all its entries, limiter's and budget counters alike:
      // the Redis transport stores a delta's entries of an agent as this replica's whole view.
      const inDelta = new Set<string>();
      for (const e of entries) inDelta.add(e.agentId);
      for (const agentId of inDelta) entries.push(...budgets.entriesOfAgent(agentId));
      for (const agentId of budgets.drainDirty()) {
        if (inDelta.has(agentId)) continue;
        entries.push(
          ...this.options.limiter.exportAgent(agentId, now),
          ...budgets.entriesOfAgent(agentId),
        );
      }
    }
    const frame = this.options.codec.encode({
      kind: FrameKind.delta,
      nodeId: this.context.nodeId,
      incarnation: this.context.incarnation,
      seq: ++this.seq,
      sentAtMs: now,
      payload: encodeEntries(entries),
    });
    this.options.transport.broadcast(frame);
    this.stats.deltasSent++;
    if (this.pendingOverrides.length > 0) {
      this.options.transport.broadcast(
        this.options.codec.encode({
          kind: FrameKind.overrides,
          nodeId: this.context.nodeId,
          incarnation: this.context.incarnation,
          seq: 0,
          sentAtMs: now,
          payload: encodeOverrides(this.pendingOverrides),
        }),
      );
      this.pendingOverrides = [];
    }
    // Bytes are counted by the transport, which knows what it actually sent.
    this.options.metrics?.replication.deltas.inc({ direction: 'sent', outcome: 'ok' });
    this.updateLag(now);
  }

  private scheduleTick(): void {
    if (this.stopped) return;
    const interval = this.options.syncIntervalMs;
    const now = this.now();
    // On the shared grid: every replica drains at the same moments (docs/replication.md, item 2).
    const wait = interval - (now % interval);
    this.tickTimer = setTimeout(() => {
      try {
        this.tick();
      } catch (error) {
        this.options.logger.error({ err: error }, 'replication tick failed');
      }
      this.scheduleTick();
    }, wait);
    this.tickTimer.unref();
  }

  /** Handles one frame from a peer; false when it was refused. */
  receive(bytes: Uint8Array): boolean {
    let frame: Frame;
    try {
      frame = this.options.codec.decode(bytes);
    } catch (error) {
      this.countRejected(error instanceof FrameError ? error.code : 'frame_malformed');
      return false;
    }
    if (frame.nodeId === this.context.nodeId) {
      if (frame.incarnation !== this.context.incarnation) {
        this.options.logger.error(
          { node_id: frame.nodeId },
          'another replica uses this node id: give every replica its own node_id',
        );
        this.countRejected('node_id_clash');
        return false;
      }
      return true; // our own broadcast echoed back (Redis pub/sub)
    }
    if (frame.kind === FrameKind.overrides) {
      if (!this.mergeOverrides(frame.payload)) {
        this.countRejected('bad_overrides');
        return false;
      }
      return true;
    }
    if (frame.kind !== FrameKind.delta) {
      this.countRejected('unexpected_kind');
      return false;
    }
    let entries: BucketEntry[];
    try {
      entries = decodeEntries(frame.payload);
    } catch {
      this.countRejected('bad_entries');
      return false;
    }
    this.mergeEntries(entries);
    this.stats.deltasReceived++;
    this.options.metrics?.replication.deltas.inc({ direction: 'received', outcome: 'ok' });
    this.followStream(frame);
    return true;
  }

  /** Sequence bookkeeping of one delta: heard while contiguous, a pull after a gap. */
  private followStream(frame: Frame): void {
    const id = frame.nodeId;
    let s = this.inbound.get(id);
    if (s === undefined || frame.incarnation > s.incarnation) {
      // First contact, or the peer restarted: what it did before is not known to be here.
      s = this.track(id, frame.incarnation, frame.seq, false, s?.heardAt);
    } else if (frame.incarnation < s.incarnation) {
      return; // a late delta of the peer's previous run: merged, says nothing about the stream
    }
    if (frame.seq < s.expect) return; // a duplicate or a replay: merged, nothing to learn
    if (frame.seq > s.expect) {
      this.stats.gaps++;
      s.runStart = frame.seq;
      s.synced = false;
    }
    s.expect = frame.seq + 1;
    if (s.synced) this.heard(id, s, frame.sentAtMs);
    else void this.pull(id);
  }

  private track(
    nodeId: string,
    incarnation: number,
    nextSeq: number,
    synced: boolean,
    heardAt = Number.NEGATIVE_INFINITY,
  ): Inbound {
    const s: Inbound = {
      incarnation,
      expect: nextSeq,
      runStart: nextSeq,
      synced,
      heardAt,
    };
    this.inbound.set(nodeId, s);
    return s;
  }

  /**
   * Pulls `nodeId`'s full state. The peer's clock and delta seq at the moment it was read say
   * what it covers: every charge before that moment, every delta up to that seq. If the deltas
   * received since form an unbroken run from there, the stream counts as gap-free again.
   */
  private pull(nodeId: string): Promise<void> {
    const running = this.pulls.get(nodeId);
    if (running !== undefined || this.stopped) return running ?? Promise.resolve();
    const pull = this.options.transport
      .pull(nodeId)
      .then(
        (point) => {
          if (point !== undefined) this.pulled(nodeId, point);
        },
        (error) =>
          this.options.logger.warn({ err: error, peer: nodeId }, 'replication pull failed'),
      )
      .finally(() => this.pulls.delete(nodeId));
    this.pulls.set(nodeId, pull);
    return pull;
  }

  /** Applies what a pull (or an anti-entropy round) with `nodeId` established. */
  private pulled(nodeId: string, point: PullPoint): void {
    this.stats.pulls++;
    let s = this.inbound.get(nodeId);
    if (s === undefined || point.incarnation > s.incarnation) {
      s = this.track(nodeId, point.incarnation, point.seq + 1, true, s?.heardAt);
    } else if (point.incarnation === s.incarnation && s.runStart <= point.seq + 1) {
      s.synced = true;
      if (s.expect < point.seq + 1) {
        s.expect = point.seq + 1;
        s.runStart = point.seq + 1;
      }
    }
    // Whatever the stream says, everything the peer charged before `sentAtMs` is here now.
    this.heard(nodeId, s, point.sentAtMs);
  }

  private heard(nodeId: string, s: Inbound, sentAtMs: number): void {
    if (sentAtMs > s.heardAt) s.heardAt = sentAtMs;
    this.options.limiter.peerHeardFrom(nodeId, sentAtMs);
  }

  private mergeEntries(all: readonly BucketEntry[]): void {
    if (all.length === 0) return;
    let entries = all;
    const budgets = this.options.budgets;
    if (budgets !== undefined && all.some((e) => isBudgetLimit(e.limit))) {
      // Budget counters go to their own store: they are no limit of the limiter's.
      entries = all.filter((e) => !isBudgetLimit(e.limit));
      budgets.merge(
        all.filter((e) => isBudgetLimit(e.limit)),
        this.now(),
      );
    }
    const report = this.options.limiter.merge(entries, this.now());
    if (report.unknownLimit > 0) {
      this.stats.unknownLimit += report.unknownLimit;
      this.warnAtMostEvery(
        'unknown_limit',
        { entries: report.unknownLimit },
        'peers sent state of limits this replica does not have: is the limits config the same on every replica?',
      );
    }
  }

  private setMembers(ids: readonly string[]): void {
    const next = [...new Set(ids)].filter((id) => id !== this.context.nodeId).sort();
    if (next.join('\u0000') === this.members.join('\u0000')) return;
    const added = next.filter((id) => !this.members.includes(id));
    const removed = this.members.filter((id) => !next.includes(id));
    this.members = next;
    this.options.limiter.setPeers(next);
    for (const id of removed) {
      this.inbound.delete(id);
      this.reachable.delete(id);
      this.options.metrics?.replication.lagSeconds.remove({ peer: id });
    }
    this.options.logger.info({ peers: next, added, removed }, 'replication peers changed');
    this.updatePeerGauges();
  }

  private setReachable(nodeId: string, up: boolean): void {
    const was = this.reachable.has(nodeId);
    if (up === was) return;
    if (up) this.reachable.add(nodeId);
    else this.reachable.delete(nodeId);
    this.options.logger[up ? 'info' : 'warn'](
      { peer: nodeId },
      up ? 'peer reachable' : 'peer unreachable',
    );
    this.updatePeerGauges();
  }

  private updatePeerGauges(): void {
    const peers = this.options.metrics?.replication.peers;
    peers?.set({ state: 'known' }, this.members.length);
    peers?.set({ state: 'reachable' }, this.members.filter((id) => this.reachable.has(id)).length);
  }

  private updateLag(now: number): void {
    const lag = this.options.metrics?.replication.lagSeconds;
    if (lag === undefined) return;
    for (const id of this.members) {
      const at = this.inbound.get(id)?.heardAt ?? Number.NEGATIVE_INFINITY;
      if (Number.isFinite(at)) lag.set({ peer: id }, Math.max(0, now - at) / 1000);
    }
  }

  private countRejected(reason: string): void {
    this.stats.rejected++;
    this.options.metrics?.replication.deltas.inc({ direction: 'received', outcome: 'rejected' });
    this.warnAtMostEvery(reason, { reason }, 'replication frame rejected');
  }

  /** One log line per `key` per 10 s: a flood of bad input must not become a flood of logs. */
  private warnAtMostEvery(key: string, fields: object, message: string): void {
    const now = this.now();
    const last = this.warned.get(key);
    if (last !== undefined && now - last.at < WARN_EVERY_MS) {
      last.suppressed++;
      return;
    }
    this.options.logger.warn({ ...fields, suppressed_since_last: last?.suppressed ?? 0 }, message);
    this.warned.set(key, { at: now, suppressed: 0 });
  }

  private async runAntiEntropy(): Promise<void> {
    if (this.antiEntropyRunning || this.stopped) return;
    this.antiEntropyRunning = true;
    try {
      const round = await this.options.transport.antiEntropy();
      if (round !== undefined && this.members.includes(round.nodeId)) {
        this.pulled(round.nodeId, round.point);
      }
    } catch (error) {
      this.options.logger.warn({ err: error }, 'anti-entropy round failed');
    } finally {
      this.antiEntropyRunning = false;
    }
  }
}
