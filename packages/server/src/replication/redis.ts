import { type BucketEntry, decodeEntries, encodeEntries } from '@openclaw-edge/core';
import type { RedisOptions } from 'ioredis';
import { DIGEST_BUCKETS } from './digest.js';
import { type Frame, FrameError, FrameKind } from './frame.js';
import {
  CommandBatch,
  createClient,
  type RedisClient,
  readRunIds,
  scanTargets,
} from './redis-client.js';
import type { PullPoint, ReplicaContext, ReplicationTransport } from './replicator.js';

/**
 * The `redis` transport (docs/replication.md, "Redis transport"): deltas are published on one
 * pub/sub channel, and every replica keeps its view of each agent it changed in a Redis hash, so
 * a cold replica (or a whole fleet after a restart) catches up from Redis. Redis is never on the
 * decision path: writes happen after the tick, off the request path, and when Redis is down they
 * are dropped (counted) and replaced by a full rewrite once it is back.
 *
 * Layout (every value a frame signed with the fleet secret, like the deltas):
 *
 * - `<prefix>:deltas`: the channel; each message is a delta frame.
 * - `<prefix>:a:{<agentId>}`: one hash per agent; field `<nodeId>` = an `entries` frame holding
 *   that node's view of the agent's buckets. Each replica writes only its own field, so writes
 *   never conflict, and a reader joins every field (merge is a join). Expires after
 *   {@link RedisOptions.stateTtlMs}: a key nobody wrote for that long can only have been full.
 * - `<prefix>:members`: field `<nodeId>` = a `hello` frame whose header is the node's pull point
 *   (incarnation, seq and clock of its last delta whose writes Redis confirmed) and whose payload
 *   is when it was last seen (membership).
 */
export interface RedisTransportOptions {
  /** `redis://host:port/db` (REDIS_URL); with `cluster`, any node of the cluster. */
  readonly url: string;
  /** A Redis Cluster: keys spread over its masters by hash slot (one slot per agent key). */
  readonly cluster?: boolean;
  /** Prefix of every key and of the channel. */
  readonly prefix: string;
  /** A replica not seen for this long has left the fleet. */
  readonly memberTtlMs: number;
  /** Membership is read (and stale presence pruned) every this many ms. */
  readonly membershipIntervalMs: number;
  /**
   * How long an agent's key must outlive its last write: long enough for every bucket of the
   * agent to refill completely whatever state it was left in ({@link stateTtlFor}).
   */
  readonly stateTtlMs: (agentId: string, replicas: number) => number;
  /** Per Redis command, and for the first connection at start. */
  readonly timeoutMs: number;
  /** Anti-entropy reads the whole state from Redis at most this often (it is a full scan). */
  readonly fullScanIntervalMs: number;
  /** Agents per pipeline when rewriting or scanning the whole state. */
  readonly batchSize?: number;
}

/** What the transport did, for tests, logs and diagnostics. */
export interface RedisTransportStats {
  /** Delta frames published. */
  published: number;
  /** Deltas not written or not published because Redis was unreachable or fell behind. */
  dropped: number;
  /** Write batches Redis refused or lost (each one forces a full rewrite). */
  writeFailures: number;
  /** Full rewrites of this replica's state into Redis. */
  rewrites: number;
  /** Full reads of the state in Redis. */
  scans: number;
  /** Hash fields or presence records refused (unsigned, malformed). */
  rejectedFields: number;
}

/** Publishes beyond this wait for Redis are dropped, oldest first (peers pull after the gap). */
const MAX_QUEUED_PUBLISHES = 64;
/** Presence records older than this many member TTLs are deleted. */
const PRUNE_AFTER_TTLS = 10;

/**
 * Seconds to keep an agent's key: the slowest of its limits to refill from the deepest debt the
 * fleet can run it into (`(R − 1)·C` below empty in `optimistic` mode, docs/crdt.md) back to
 * full, `R·C/r`, plus a minute. After that, whatever the key said, the bucket is full.
 */
export function stateTtlFor(
  limits: readonly { readonly capacityTokens: number; readonly refillPerMs: number }[],
  replicas: number,
): number {
  let slowest = 0;
  for (const l of limits) slowest = Math.max(slowest, l.capacityTokens / l.refillPerMs);
  return Math.ceil(Math.max(2, replicas) * slowest) + 60_000;
}

/** A write of this replica's view of one agent, waiting for the next flush. */
interface PendingWrite {
  readonly entries: BucketEntry[];
  readonly seq: number;
  readonly sentAtMs: number;
}

/** See {@link RedisTransportOptions}. */
export class RedisTransport implements ReplicationTransport {
  readonly kind = 'redis' as const;
  readonly stats: RedisTransportStats = {
    published: 0,
    dropped: 0,
    writeFailures: 0,
    rewrites: 0,
    scans: 0,
    rejectedFields: 0,
  };
  private ctx: ReplicaContext | undefined;
  /** Commands and publishes (writes land before the publish, see {@link CommandBatch}). */
  private cmd: RedisClient | undefined;
  private sub: RedisClient | undefined;
  private readonly channel: string;
  private readonly membersKey: string;
  /** Hash: field node id = an `overrides` frame with every override that node knew. */
  private readonly overridesKey: string;
  /** This replica's overrides changed since it last wrote them. */
  private overridesDue = false;
  private readonly batchSize: number;

  /** Latest view per agent not yet written; a later view replaces an earlier one. */
  private pendingWrites = new Map<string, PendingWrite>();
  private pendingPublish: Buffer[] = [];
  /** Position of the newest delta handed to `broadcast`. */
  private pendingPoint: { seq: number; sentAtMs: number } | undefined;
  /**
   * Something this replica sent may be missing in Redis (a write failed or was dropped, Redis
   * restarted, or nothing was written yet): no pull point is advertised until a full rewrite.
   */
  private needsRewrite = true;
  /** Whether this run has merged the whole state in Redis (before its first rewrite). */
  private scannedOnce = false;
  /**
   * Pull points read by the catch-up scan in `start`, each handed out once: the replicator's
   * start-up pull of every member follows at once, and that scan already merged everything.
   * A peer's delta that arrives once subscribed asks for a pull too: it waits for `startScan`.
   */
  private startPoints: Map<string, PullPoint> | undefined;
  private startScan: Promise<void> | undefined;
  /** The pull point advertised in the presence record; undefined while a rewrite is due. */
  private point: { seq: number; sentAtMs: number } | undefined;
  private flushing: Promise<void> | undefined;
  private runId: string | undefined;
  private members: string[] = [];
  private nextRound = 0;
  private lastFullScanAt = Number.NEGATIVE_INFINITY;
  private membershipTimer: NodeJS.Timeout | undefined;
  private scanWaiting: Promise<Map<string, PullPoint>> | undefined;
  private scanRunning: Promise<unknown> = Promise.resolve();
  private down = false;
  /** Set at the end of `start`, which does the first catch-up and rewrite itself. */
  private started = false;
  private stopped = false;

  constructor(readonly options: RedisTransportOptions) {
    this.channel = `${options.prefix}:deltas`;
    this.membersKey = `${options.prefix}:members`;
    this.overridesKey = `${options.prefix}:overrides`;
    this.batchSize = options.batchSize ?? 500;
  }

  get context(): ReplicaContext {
    if (this.ctx === undefined) throw new Error('redis transport not started');
    return this.ctx;
  }

  /** The key holding an agent's state (the hash tag keeps it in one Redis Cluster slot). */
  agentKey(agentId: string): string {
    return `${this.options.prefix}:a:{${agentId}}`;
  }

  /**
   * Connects, subscribes, merges the whole state in Redis (the cold start: this replica catches
   * up before it serves) and reads membership. If Redis does not answer within the timeout the
   * replica starts on its own state; the transport keeps reconnecting and catches up later.
   */
  async start(context: ReplicaContext, catchUpMs = Number.POSITIVE_INFINITY): Promise<void> {
    this.ctx = context;
    const base: RedisOptions = {
      lazyConnect: true,
      connectTimeout: this.options.timeoutMs,
      commandTimeout: this.options.timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(50 * times, 1000),
    };
    const { url } = this.options;
    const cluster = this.options.cluster === true;
    // No offline queue: while Redis is down a command fails at once instead of piling up.
    const cmd = createClient({
      url,
      cluster,
      offlineQueue: false,
      redis: {
        ...base,
        autoResendUnfulfilledCommands: false,
        connectionName: `openclaw-edge:${context.nodeId}`,
      },
    });
    // The subscriber keeps its SUBSCRIBE queued while Redis is down, and renews it on reconnects.
    const sub = createClient({
      url,
      cluster,
      offlineQueue: true,
      redis: { ...base, maxRetriesPerRequest: null, autoResubscribe: true },
    });
    this.cmd = cmd;
    this.sub = sub;
    cmd.on('error', (error: Error) => this.unreachable(error));
    sub.on('error', () => {});
    cmd.on('close', () => {
      // Whatever was in flight may be lost, and Redis may come back empty.
      this.needsRewrite = true;
      this.point = undefined;
    });
    cmd.on('ready', () => {
      if (this.started) void this.reconnected();
    });
    sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
      context.countBytes('received', message.length);
      context.receive(message);
    });
    const connected = await Promise.all([
      cmd.connect().then(
        () => true,
        () => false,
      ),
      sub.connect().then(
        () => true,
        () => false,
      ),
    ]);
    if (connected.every(Boolean)) {
      try {
        this.startScan = (async () => {
          // Subscribe before reading any pull point, so no delta after one can be missed.
          await sub.subscribe(this.channel);
          await this.readOverrides();
          this.startPoints = await this.scan();
        })();
        const scanned = this.startScan.then(() => true);
        scanned.catch(() => {}); // a failure after the deadline is handled below
        const caughtUp = Number.isFinite(catchUpMs)
          ? await Promise.race([scanned, sleep(catchUpMs).then(() => false)])
          : await scanned;
        if (caughtUp) await this.readMembership();
        else {
          context.logger.warn(
            { startup_sync_ms: catchUpMs },
            'catch-up from Redis not done within startup_sync_ms: serving, and merging the rest as it comes',
          );
          this.startScan
            .then(() => this.readMembership())
            .catch((error: Error) => this.unreachable(error));
        }
      } catch (error) {
        this.unreachable(error as Error);
      }
    } else {
      context.logger.warn(
        { url: redactUrl(this.options.url) },
        'Redis unreachable at start: deciding on local state until it answers',
      );
      sub.subscribe(this.channel).catch(() => {});
    }
    this.started = true;
    if (this.isReady()) {
      this.runId = await this.readRunId().catch(() => undefined);
      this.kick();
    }
    this.membershipTimer = setInterval(() => {
      void this.readMembership().catch((error: Error) => this.unreachable(error));
    }, this.options.membershipIntervalMs);
    this.membershipTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.membershipTimer);
    // Let the final delta (the replicator's last tick) reach Redis, then leave the fleet now
    // rather than after the member TTL.
    const deadline = Date.now() + this.options.timeoutMs;
    while (this.flushing !== undefined && Date.now() < deadline) {
      await Promise.race([this.flushing, sleep(deadline - Date.now())]);
    }
    if (this.isReady()) {
      await this.cmd?.hdel(this.membersKey, this.context.nodeId).catch(() => {});
    }
    this.cmd?.disconnect();
    this.sub?.disconnect();
  }

  /**
   * Queues the delta's agents for writing and the frame for publishing; a flush sends both (the
   * writes first, so Redis holds at least what a delta announced). Never throws or waits.
   */
  broadcast(frame: Buffer): void {
    if (!this.isReady()) {
      // Nothing to queue for: the rewrite after the reconnect covers this delta's agents.
      this.stats.dropped++;
      this.needsRewrite = true;
      return;
    }
    let decoded: Frame;
    let entries: BucketEntry[];
    try {
      decoded = this.context.codec.decode(frame);
      if (decoded.kind === FrameKind.overrides) {
        // Published like a delta; the fleet's overrides are also kept for replicas that start later.
        this.overridesDue = true;
        this.pendingPublish.push(frame);
        this.kick();
        return;
      }
      entries = decodeEntries(decoded.payload);
    } catch (error) {
      this.context.logger.error({ err: error }, 'redis transport: own delta does not decode');
      return;
    }
    for (const [agentId, list] of groupByAgent(entries)) {
      this.pendingWrites.set(agentId, {
        entries: list,
        seq: decoded.seq,
        sentAtMs: decoded.sentAtMs,
      });
    }
    this.pendingPublish.push(frame);
    if (this.pendingPublish.length > MAX_QUEUED_PUBLISHES) {
      this.pendingPublish.shift();
      this.stats.dropped++;
    }
    this.pendingPoint = { seq: decoded.seq, sentAtMs: decoded.sentAtMs };
    this.kick();
  }

  /**
   * Merges the state in Redis and returns where `nodeId` was: its presence record is read before
   * the state, and it only advertises a point once Redis held every charge it made before it.
   * Concurrent pulls share one scan. Undefined when the node has no point (yet) or Redis is down.
   */
  async pull(nodeId: string): Promise<PullPoint | undefined> {
    if (!this.isReady()) return undefined;
    await this.startScan?.catch(() => {});
    const fromStart = this.startPoints?.get(nodeId);
    if (fromStart !== undefined) {
      this.startPoints?.delete(nodeId);
      return fromStart;
    }
    const points = await this.scanShared();
    return points.get(nodeId);
  }

  /**
   * Checks that Redis still holds what this replica wrote (a restart or a flush without a
   * reconnect seen here forces a rewrite), then, at most every `fullScanIntervalMs`, merges the
   * whole state in Redis and reports one member's point (round robin).
   */
  async antiEntropy(): Promise<{ nodeId: string; point: PullPoint } | undefined> {
    const cmd = this.cmd;
    if (cmd === undefined || !this.isReady()) return undefined;
    const [runId, present] = await Promise.all([
      this.readRunId(),
      cmd.hexists(this.membersKey, this.context.nodeId),
    ]);
    if (runId !== this.runId || (this.point !== undefined && present === 0)) {
      this.context.logger.warn(
        { run_id: runId },
        'Redis lost this replica’s state (restart or flush): rewriting it',
      );
      this.runId = runId;
      this.needsRewrite = true;
      this.point = undefined;
      this.kick();
    }
    const now = this.context.now();
    if (this.members.length === 0 || now - this.lastFullScanAt < this.options.fullScanIntervalMs) {
      return undefined;
    }
    const nodeId = this.members[this.nextRound++ % this.members.length] as string;
    const point = await this.pull(nodeId);
    return point === undefined ? undefined : { nodeId, point };
  }

  private isReady(): boolean {
    return this.cmd?.status === 'ready';
  }

  private unreachable(error: Error): void {
    this.needsRewrite = true;
    this.point = undefined;
    if (this.down) return;
    this.down = true;
    this.ctx?.logger.warn(
      { err: error, url: redactUrl(this.options.url) },
      'Redis unreachable: replicas keep deciding; state is rewritten when it is back',
    );
    for (const id of this.members) this.ctx?.setReachable(id, false);
  }

  private async reconnected(): Promise<void> {
    if (this.down) this.context.logger.info('Redis reachable again');
    this.down = false;
    this.needsRewrite = true;
    this.point = undefined;
    try {
      const runId = await this.readRunId();
      if (this.runId !== undefined && runId !== this.runId) {
        this.context.logger.warn({ run_id: runId }, 'Redis restarted: rewriting this replica');
      }
      this.runId = runId;
    } catch {
      // The rewrite below is due anyway.
    }
    this.kick();
  }

  private async readRunId(): Promise<string | undefined> {
    return this.cmd === undefined ? undefined : readRunIds(this.cmd);
  }

  /** Starts a flush unless one runs; a running one picks up whatever was queued meanwhile. */
  private kick(): void {
    if (this.flushing !== undefined) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = undefined;
    });
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.isReady()) {
        if (this.needsRewrite) await this.rewrite();
        else if (this.pendingPublish.length > 0 || this.pendingWrites.size > 0) {
          await this.flushOnce();
        } else return;
      }
      this.discardPending();
    } catch (error) {
      this.needsRewrite = true;
      this.point = undefined;
      this.stats.writeFailures++;
      this.discardPending();
      this.context.logger.warn({ err: error }, 'redis transport: write failed; rewriting later');
    }
  }

  private discardPending(): void {
    this.stats.dropped += this.pendingPublish.length;
    this.pendingPublish = [];
    this.pendingWrites.clear();
  }

  /** Every override this replica knows, as a signed frame for the overrides hash. */
  private overridesFrame(): Buffer {
    const c = this.context;
    return c.codec.encode({
      kind: FrameKind.overrides,
      nodeId: c.nodeId,
      incarnation: c.incarnation,
      seq: 0,
      sentAtMs: c.now(),
      payload: c.overridesPayload(),
    });
  }

  /** Merges the overrides every replica left in Redis (last writer wins per agent). */
  private async readOverrides(): Promise<void> {
    const c = this.context;
    const raw = (await this.cmd?.hgetallBuffer(this.overridesKey)) ?? {};
    for (const value of Object.values(raw)) {
      try {
        const frame = c.codec.decode(value);
        if (frame.kind !== FrameKind.overrides || !c.mergeOverrides(frame.payload)) {
          throw new Error('not an overrides frame');
        }
      } catch {
        this.stats.rejectedFields++;
      }
    }
  }

  /** Writes the queued views, publishes the queued deltas, then advances the pull point. */
  private async flushOnce(): Promise<void> {
    const writes = this.pendingWrites;
    const frames = this.pendingPublish;
    const at = this.pendingPoint;
    this.pendingWrites = new Map();
    this.pendingPublish = [];
    const batch = new CommandBatch(this.cmd as RedisClient);
    for (const [agentId, w] of writes) this.queueWrite(batch, agentId, w.entries, w);
    if (this.overridesDue) {
      this.overridesDue = false;
      batch.hset(this.overridesKey, this.context.nodeId, this.overridesFrame());
    }
    for (const frame of frames) batch.publish(this.channel, frame);
    await batch.exec();
    this.stats.published += frames.length;
    for (const frame of frames) this.context.countBytes('sent', frame.length);
    // Only now does Redis hold every charge made before `at.sentAtMs` (needsRewrite is still
    // false: nothing was dropped since the last rewrite).
    if (at !== undefined && !this.needsRewrite && at.seq >= (this.point?.seq ?? 0)) this.point = at;
    await this.writePresence();
  }

  /**
   * Writes this replica's view of every agent it tracks, so a Redis that restarted empty (or
   * missed writes) holds it again, after merging what Redis holds if this run never did (its
   * own field from a previous run may know more than a fresh replica).
   */
  private async rewrite(): Promise<void> {
    const c = this.context;
    const cmd = this.cmd as RedisClient;
    await this.writePresence();
    // Overrides set while Redis was away (or before it restarted empty), both ways.
    await this.readOverrides();
    await cmd.hset(this.overridesKey, c.nodeId, this.overridesFrame());
    this.overridesDue = false;
    // The start's catch-up may still run (startup_sync_ms passed): it is the scan to wait for.
    if (!this.scannedOnce) await this.startScan?.catch(() => {});
    if (!this.scannedOnce) await this.scan();
    this.needsRewrite = false;
    // The export below is at least the state at this moment; queued views are older: drop them.
    const at = { seq: c.currentSeq(), sentAtMs: c.now() };
    this.pendingWrites.clear();
    const all = Array.from({ length: DIGEST_BUCKETS }, (_, i) => i);
    let agents = 0;
    // A slice of digest buckets at a time: each entriesOf call is one pass over the agents.
    for (let from = 0; from < DIGEST_BUCKETS; from += 64) {
      const { entries } = await c.entriesOf(all.slice(from, from + 64), Number.POSITIVE_INFINITY);
      const byAgent = groupByAgent(entries);
      let batch = new CommandBatch(cmd);
      let inBatch = 0;
      for (const [agentId, list] of byAgent) {
        this.queueWrite(batch, agentId, list, at);
        agents++;
        if (++inBatch >= this.batchSize) {
          await batch.exec();
          batch = new CommandBatch(cmd);
          inBatch = 0;
        }
      }
      if (inBatch > 0) await batch.exec();
      if (this.needsRewrite) throw new Error('Redis connection lost during the rewrite');
    }
    if (this.needsRewrite) throw new Error('a delta was dropped during the rewrite');
    this.stats.rewrites++;
    this.point = at;
    await this.writePresence();
    c.logger.info({ agents }, 'redis transport: this replica’s state written to Redis');
  }

  private queueWrite(
    batch: CommandBatch,
    agentId: string,
    entries: readonly BucketEntry[],
    at: { readonly seq: number; readonly sentAtMs: number },
  ): void {
    const c = this.context;
    const key = this.agentKey(agentId);
    const value = c.codec.encode({
      kind: FrameKind.entries,
      nodeId: c.nodeId,
      incarnation: c.incarnation,
      seq: at.seq,
      sentAtMs: at.sentAtMs,
      payload: encodeEntries(entries),
    });
    batch.hset(key, c.nodeId, value);
    batch.pexpire(key, this.options.stateTtlMs(agentId, this.members.length + 1));
  }

  /** This replica's presence: seen now, with its pull point when Redis holds all it promises. */
  private async writePresence(): Promise<void> {
    const c = this.context;
    const payload = Buffer.alloc(9);
    payload.writeDoubleBE(c.now(), 0);
    payload[8] = this.point === undefined ? 0 : 1;
    const value = c.codec.encode({
      kind: FrameKind.hello,
      nodeId: c.nodeId,
      incarnation: c.incarnation,
      seq: this.point?.seq ?? 0,
      sentAtMs: this.point?.sentAtMs ?? 0,
      payload,
    });
    await this.cmd?.hset(this.membersKey, c.nodeId, value);
  }

  /** Reads every presence record: live members, their pull points, and records to prune. */
  private async readPresence(): Promise<{
    live: string[];
    points: Map<string, PullPoint>;
    stale: string[];
  }> {
    const c = this.context;
    const raw = (await this.cmd?.hgetallBuffer(this.membersKey)) ?? {};
    const now = c.now();
    const live: string[] = [];
    const stale: string[] = [];
    const points = new Map<string, PullPoint>();
    for (const [field, value] of Object.entries(raw)) {
      let f: Frame;
      try {
        f = c.codec.decode(value);
        if (f.kind !== FrameKind.hello || f.nodeId !== field || f.payload.length !== 9) {
          throw new FrameError('frame_malformed', 'not a presence record');
        }
      } catch {
        this.stats.rejectedFields++;
        continue;
      }
      if (field === c.nodeId) continue;
      const seenAt = f.payload.readDoubleBE(0);
      if (now - seenAt <= this.options.memberTtlMs) live.push(field);
      else if (now - seenAt > PRUNE_AFTER_TTLS * this.options.memberTtlMs) stale.push(field);
      if (f.payload[8] === 1) {
        points.set(field, { incarnation: f.incarnation, seq: f.seq, sentAtMs: f.sentAtMs });
      }
    }
    return { live, points, stale };
  }

  /** Membership from presence; left unchanged while Redis is down (down is not gone). */
  private async readMembership(): Promise<void> {
    if (!this.isReady() || this.stopped) return;
    const { live, stale } = await this.readPresence();
    if (stale.length > 0) await this.cmd?.hdel(this.membersKey, ...stale);
    this.members = live.sort();
    this.context.setMembers(this.members);
    for (const id of this.members) this.context.setReachable(id, true);
  }

  /** Joins the next scan that has not read presence yet, or starts one. */
  private scanShared(): Promise<Map<string, PullPoint>> {
    if (this.scanWaiting !== undefined) return this.scanWaiting;
    const next = this.scanRunning
      .catch(() => {})
      .then(() => {
        this.scanWaiting = undefined;
        return this.scan();
      });
    this.scanWaiting = next;
    this.scanRunning = next;
    return next;
  }

  /**
   * Reads every presence record, then every agent key (SCAN, in pages), merging every field.
   * Presence first: a node's point then covers no more than what the keys read afterwards hold.
   */
  private async scan(): Promise<Map<string, PullPoint>> {
    const c = this.context;
    const cmd = this.cmd as RedisClient;
    const { points } = await this.readPresence();
    const pattern = `${this.options.prefix}:a:*`;
    let keys = 0;
    const rejectedBefore = this.stats.rejectedFields;
    // A cluster's keys are spread over its masters: each is scanned in turn.
    for (const target of scanTargets(cmd)) {
      let cursor = '0';
      do {
        const [next, page] = await target.scan(cursor, 'MATCH', pattern, 'COUNT', this.batchSize);
        cursor = next;
        if (page.length === 0) continue;
        const batch = new CommandBatch(cmd);
        for (const key of page) batch.hgetallBuffer(key);
        for (const hash of await batch.exec()) {
          const entries: BucketEntry[] = [];
          for (const [field, value] of Object.entries(hash as Record<string, Buffer>)) {
            try {
              const f = c.codec.decode(value);
              if (f.kind !== FrameKind.entries || f.nodeId !== field) {
                throw new FrameError('frame_malformed', 'not a state field');
              }
              entries.push(...decodeEntries(f.payload));
            } catch {
              this.stats.rejectedFields++;
            }
          }
          c.mergeEntries(entries);
        }
        keys += page.length;
      } while (cursor !== '0');
    }
    this.stats.scans++;
    this.scannedOnce = true;
    this.lastFullScanAt = c.now();
    const rejected = this.stats.rejectedFields - rejectedBefore;
    if (rejected > 0) {
      c.logger.warn({ rejected }, 'Redis holds state fields not signed with the fleet secret');
    }
    c.logger.debug({ keys }, 'redis transport: state read from Redis');
    return points;
  }
}

function groupByAgent(entries: readonly BucketEntry[]): Map<string, BucketEntry[]> {
  const byAgent = new Map<string, BucketEntry[]>();
  for (const e of entries) {
    const list = byAgent.get(e.agentId);
    if (list === undefined) byAgent.set(e.agentId, [e]);
    else list.push(e);
  }
  return byAgent;
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());
}
