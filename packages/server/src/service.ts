import { type FSWatcher, watch } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { basename, dirname } from 'node:path';
import { DEFAULT_MAX_SYNC_LAG_MS, Limiter } from '@openclaw-edge/engine';
import { compilePriceBook, type PriceBook } from '@openclaw-edge/rating';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ApiKeys } from './auth/api-keys.js';
import { ConfigError, defaultConfig, loadConfigFile } from './config/load.js';
import { type CompiledPolicies, compilePolicies } from './config/policies.js';
import type { Config } from './config/schema.js';
import { buildApp } from './http/app.js';
import type { EdgeRuntime } from './http/runtime.js';
import { GroupCommitWriter } from './ledger/group-commit.js';
import type { LedgerStore } from './ledger/ledger-store.js';
import { openPostgresLedger } from './ledger/postgres.js';
import { openMemoryLedger, openSqliteLedger } from './ledger/sqlite.js';
import { createLogger } from './logger.js';
import { EdgeMetrics } from './metrics/edge-metrics.js';
import { OtlpPush } from './metrics/otlp.js';
import { BudgetCache, type BudgetResolver, compileBudgets } from './rating/budget-book.js';
import { BudgetReplica } from './rating/budget-replica.js';
import { RatingService } from './rating/rating-service.js';
import { Reservations } from './rating/reservations.js';
import { FrameCodec } from './replication/frame.js';
import { MeshTransport } from './replication/mesh.js';
import { type ReplicationTransport, Replicator } from './replication/replicator.js';
import { restoreSnapshot } from './restore.js';
import { MemorySnapshotStore } from './snapshot/memory-store.js';
import { drainChangedBuckets, type SnapshotStore } from './snapshot/snapshot-store.js';
import { SqliteSnapshotStore } from './snapshot/sqlite-store.js';

/** Version reported by the API and the CLI. */
export const VERSION = '0.1.0';

/** How the service is started. */
export interface ServiceOptions {
  /** YAML config file; without one the built-in defaults (plus env overrides) apply. */
  readonly configPath?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Watch the config file and reload on change (SIGHUP always reloads). Default true. */
  readonly watchConfig?: boolean;
  /**
   * `edge` (default) takes traffic. `exporter` is the metrics sidecar: it serves only health and
   * /metrics, reading the bucket state the edge writes to the data dir, and writes nothing.
   */
  readonly role?: 'edge' | 'exporter';
  /** Listen address instead of `server.host`/`server.port` (the exporter's own port). */
  readonly listen?: { readonly host: string; readonly port: number };
}

const EVICT_EVERY_MS = 10_000;
/** How often open reservations are checked for expiry. */
const RESERVATION_SWEEP_MS = 1000;
/** Agents' budgets unused this long leave memory (read from the ledger again when needed). */
const BUDGET_IDLE_MS = 15 * 60_000;
const EVICT_SCAN = 50_000;
/**
 * Agents per snapshot transaction; the next slice is encoded once the writer thread wrote this
 * one.
 */
const SNAPSHOT_SLICE = 1_000;

/**
 * The running edge: the composition root. It is the only place that reads config and picks
 * implementations (snapshot store, logger), wires them to the limiter and the HTTP app, and
 * owns the lifecycle: restore → listen → ready → (reload)* → drain → final snapshot → exit.
 */
export class EdgeService {
  private ready = false;
  private stopping: Promise<void> | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private watcher: FSWatcher | undefined;
  private evicted: string[] = [];
  private keys: ApiKeys;
  private snapshotting = false;
  private book: PriceBook | undefined;
  private budgetResolver: BudgetResolver;
  private readonly budgetCache: BudgetCache;
  readonly rating: RatingService;
  readonly reservations: Reservations;
  /** Bucket state replication between replicas; undefined for a lone replica. */
  replicator: Replicator | undefined;
  /** The fleet's calendar budget counters; undefined without replication. */
  private budgetReplica: BudgetReplica | undefined;

  readonly app: FastifyInstance;
  readonly metrics: EdgeMetrics | undefined;
  private readonly otlp: OtlpPush | undefined;

  private constructor(
    private config: Config,
    private policies: CompiledPolicies,
    readonly logger: Logger,
    readonly limiter: Limiter,
    private readonly store: SnapshotStore,
    private readonly options: ServiceOptions,
    /** The durable ledger of rated usage and its group-commit writer. */
    readonly ledger: LedgerStore,
    private readonly writer: GroupCommitWriter,
  ) {
    this.keys = new ApiKeys(config.api_keys);
    this.book = config.pricing === undefined ? undefined : compilePriceBook(config.pricing);
    const budgets = compileBudgets(config);
    this.budgetResolver = budgets.resolve;
    this.budgetCache = new BudgetCache(budgets.resolve, budgets.timeZone, ledger, writer);
    this.rating = new RatingService({
      book: () => this.book,
      budgets: this.budgetCache,
      resolveBudgets: () => this.budgetResolver,
      store: ledger,
      writer,
      limiter,
      isKnownAgent: (agentId) =>
        this.policies.source(agentId) !== undefined || limiter.getOverride(agentId) !== undefined,
      options: () => ({
        maxFutureMs: this.config.usage.max_future_ms,
        unknownAgents: this.config.usage.unknown_agents,
      }),
    });
    this.reservations = new Reservations(this.rating, () => this.config.usage.reservation_ttl_ms);
    // The HTTP layer reads keys, tiers and readiness through getters: a reload swaps them.
    const runtime: EdgeRuntime = {
      limiter,
      now: () => Date.now(),
      apiKeys: () => this.keys,
      tiers: () => this.policies.tiers,
      isReady: () => this.ready,
      overrideChanged: (agentId, policy) => {
        const record = this.replicator?.overrideChanged(agentId, policy) ?? {
          agentId,
          policy,
          at: Date.now(),
          node: limiter.nodeId,
        };
        this.store.saveOverride(record);
      },
      replication: () => this.replicator?.status(),
      maxBatch: config.server.max_batch,
      bodyLimitBytes: config.server.body_limit_bytes,
      rating: {
        service: this.rating,
        reservations: this.reservations,
        timeZone: () => this.config.budgets.time_zone,
      },
    };
    const otel = config.diagnostics.otel;
    this.otlp = otel.enabled
      ? new OtlpPush({
          limiter,
          nodeId: limiter.nodeId,
          version: VERSION,
          endpoint: otel.endpoint,
          intervalMs: otel.interval_ms,
          headers: otel.headers,
          now: () => Date.now(),
          rating: () => this.ratingStats(),
        })
      : undefined;
    this.metrics = config.metrics.enabled
      ? new EdgeMetrics({
          limiter,
          nodeId: limiter.nodeId,
          version: VERSION,
          topAgents: config.metrics.top_agents,
          rankBy: this.role === 'exporter' ? 'utilisation' : 'activity',
          now: () => Date.now(),
          rating: () => this.ratingStats(),
          otlp: this.otlp,
        })
      : undefined;
    this.app = buildApp(runtime, {
      logger,
      version: VERSION,
      logRequests: config.logging.requests,
      role: this.role,
      // A host name (localhost) may stand for several addresses, which only a server Fastify
      // creates itself binds all of.
      fastCheck: isIP(options.listen?.host ?? config.server.host) !== 0,
      ...(this.metrics === undefined ? {} : { metrics: this.metrics }),
    });
  }

  private get role(): 'edge' | 'exporter' {
    return this.options.role ?? 'edge';
  }

  /** Loads config, restores state, starts listening; resolves once ready for traffic. */
  static async start(options: ServiceOptions = {}): Promise<EdgeService> {
    const env = options.env ?? process.env;
    const config = options.configPath
      ? loadConfigFile(options.configPath, env)
      : defaultConfig(env);
    const logger = createLogger(config.logging);
    const policies = compilePolicies(config);
    const nodeId = config.node_id ?? sanitizeNodeId(hostname());
    const incarnation = Date.now();
    const limiter = new Limiter({
      nodeId,
      incarnation,
      defaultPolicy: policies.defaultPolicy,
      policySource: policies.source,
      // Cut off for longer than ten sync intervals, a replica stops banking refill (crdt.md).
      maxSyncLagMs: Math.max(DEFAULT_MAX_SYNC_LAG_MS, 10 * config.replication.sync_interval_ms),
    });
    const store: SnapshotStore = config.snapshot.enabled
      ? new SqliteSnapshotStore(config.data_dir, (error) =>
          logger.error({ err: error }, 'snapshot write failed'),
        )
      : new MemorySnapshotStore();
    if (options.role === 'exporter' && !config.snapshot.enabled) {
      throw new ConfigError(options.configPath ?? '(defaults)', [
        {
          path: 'snapshot.enabled',
          message:
            'the exporter reads the bucket state the edge snapshots to data_dir; enable snapshots',
        },
      ]);
    }
    const report = restoreSnapshot(limiter, store.load(), Date.now(), {
      compactSlots: options.role !== 'exporter' && config.replication.transport === 'none',
    });
    logger.info({ ...report, node_id: nodeId, data_dir: config.data_dir }, 'state restored');
    let ledger: LedgerStore;
    try {
      ledger = options.role === 'exporter' ? openMemoryLedger() : await openLedger(config);
      let upgrading: { migrations: readonly string[]; started: number } | undefined;
      await ledger.migrate((migrations) => {
        upgrading = { migrations, started: performance.now() };
        logger.info(
          { driver: ledger.driver, migrations },
          'ledger: upgrading its tables (on a large ledger this takes a while)',
        );
      });
      if (upgrading !== undefined) {
        const ms = Math.round(performance.now() - upgrading.started);
        logger.info({ migrations: upgrading.migrations, ms }, 'ledger: upgraded');
      }
    } catch (error) {
      await store.close();
      throw new Error(
        `cannot open the ${config.ledger.driver} ledger: ${(error as Error).message}`,
        { cause: error },
      );
    }
    logger.info({ driver: ledger.driver }, 'ledger open');
    const writer = new GroupCommitWriter(
      ledger,
      config.ledger.group_commit_ms,
      config.ledger.max_batch_events,
      ledger.appendConcurrency,
    );

    const service = new EdgeService(
      config,
      policies,
      logger,
      limiter,
      store,
      options,
      ledger,
      writer,
    );
    if (!service.keys.enabled) {
      logger.warn('no api_keys configured: serving loopback clients only, with every scope');
    }
    try {
      if (options.role !== 'exporter') await service.startReplication(incarnation);
      await service.app.listen(
        options.listen ?? { host: config.server.host, port: config.server.port },
      );
    } catch (error) {
      await service.replicator?.stop().catch(() => {});
      await store.close();
      await writer.close();
      await ledger.close();
      throw error;
    }
    service.startBackgroundWork();
    service.ready = true;
    logger.info({ address: service.address }, 'ready');
    return service;
  }

  /**
   * Starts replication when configured: listens for peers, pulls their state (bounded by
   * `replication.startup_sync_ms`, so the first requests are decided on the fleet's state, not
   * on full-looking buckets), then sends deltas every sync interval.
   */
  private async startReplication(incarnation: number): Promise<void> {
    const r = this.config.replication;
    if (r.transport === 'none') return;
    const codec = new FrameCodec(r.secret as string, r.max_message_bytes);
    // Calendar budgets count the fleet's committed spend, not only this replica's.
    const cache = this.budgetCache;
    const budgetReplica = new BudgetReplica(
      `${this.limiter.nodeId}#${incarnation}`,
      (agentId, budget, startMs) => cache.windowEnd(agentId, budget, startMs),
    );
    // Counters kept by the last run (its own, now another slot, and its peers'): a fleet
    // restarted at once still counts the spend of the current windows.
    budgetReplica.restore(this.store.budgetCounters(Date.now()), Date.now());
    this.budgetReplica = budgetReplica;
    cache.replicate(budgetReplica);
    let transport: ReplicationTransport;
    if (r.transport === 'mesh') {
      transport = new MeshTransport({
        host: r.mesh.host,
        port: r.mesh.port,
        peers: r.mesh.peers,
        ...(r.mesh.dns === undefined
          ? {}
          : {
              dns: {
                name: r.mesh.dns.name,
                port: r.mesh.dns.port,
                intervalMs: r.mesh.dns.interval_ms,
                ...(r.mesh.dns.servers === undefined ? {} : { servers: r.mesh.dns.servers }),
              },
            }),
        timeoutMs: r.mesh.timeout_ms,
        maxEntriesPerMessage: 20_000,
      });
    } else {
      // Loaded only when configured: a mesh or lone replica never loads ioredis.
      const { RedisTransport, stateTtlFor } = await import('./replication/redis.js');
      const limiter = this.limiter;
      transport = new RedisTransport({
        url: r.redis.url,
        cluster: r.redis.cluster,
        prefix: r.redis.prefix,
        memberTtlMs: r.redis.member_ttl_ms,
        membershipIntervalMs: Math.min(1000, Math.floor(r.redis.member_ttl_ms / 3)),
        // An agent's key also carries its budget counters: kept until their windows end.
        stateTtlMs: (agentId, replicas) =>
          Math.max(
            stateTtlFor(limiter.policyFor(agentId).limits, replicas),
            (budgetReplica.latestEndMs(agentId) ?? 0) - Date.now() + 60_000,
          ),
        timeoutMs: r.redis.timeout_ms,
        fullScanIntervalMs: r.redis.full_scan_interval_ms,
      });
    }
    this.replicator = new Replicator({
      limiter: this.limiter,
      incarnation,
      transport,
      codec,
      logger: this.logger.child({ component: 'replication' }),
      syncIntervalMs: r.sync_interval_ms,
      antiEntropyIntervalMs: r.anti_entropy_interval_ms,
      ...(this.metrics === undefined ? {} : { metrics: this.metrics }),
      // A peer's override is kept like one set here: it survives a restart, and so does the
      // order of every record (a restarted replica does not take back an older one).
      overrideApplied: (record) => this.store.saveOverride(record),
      overrides: this.store.overrides(),
      budgets: budgetReplica,
    });
    await this.replicator.start(r.startup_sync_ms);
    this.logger.info(
      { transport: r.transport, peers: this.replicator.peers() },
      'replication started',
    );
  }

  /** Where the service listens, as `http://host:port`. */
  get address(): string {
    const a = this.app.server.address();
    if (a === null || typeof a === 'string') return String(a);
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    return `http://${host}:${a.port}`;
  }

  /**
   * Re-reads the config file and applies what can change live (limits, tiers, agent rules, API
   * keys, log level). A bad file is rejected with the error logged; the old config keeps serving.
   * Returns whether the new config was applied.
   */
  reload(): boolean {
    if (this.options.configPath === undefined) {
      this.logger.info('no config file to reload; built-in defaults stay');
      return false;
    }
    let next: Config;
    let policies: CompiledPolicies;
    try {
      next = loadConfigFile(this.options.configPath, this.options.env ?? process.env);
      policies = compilePolicies(next);
    } catch (error) {
      const issues = error instanceof ConfigError ? error.issues : undefined;
      this.logger.error(
        { err: error, issues },
        'config reload rejected; the previous config keeps serving',
      );
      return false;
    }
    const restartOnly = (
      [
        'server',
        'data_dir',
        'node_id',
        'snapshot',
        'ledger',
        'metrics',
        'diagnostics',
        'replication',
      ] as const
    ).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(this.config[k]));
    if (restartOnly.length > 0) {
      this.logger.warn({ fields: restartOnly }, 'these settings change only at the next restart');
    }
    let book: PriceBook | undefined;
    try {
      book = next.pricing === undefined ? undefined : compilePriceBook(next.pricing);
    } catch (error) {
      this.logger.error(
        { err: error },
        'config reload rejected; the previous config keeps serving',
      );
      return false;
    }
    this.book = book;
    const budgets = compileBudgets(next);
    this.budgetResolver = budgets.resolve;
    this.budgetCache.reconfigure(budgets.resolve, budgets.timeZone);
    this.limiter.setDefaultPolicy(policies.defaultPolicy);
    this.limiter.setPolicySource(policies.source);
    this.policies = policies;
    this.keys = new ApiKeys(next.api_keys);
    this.logger.level = next.logging.level;
    this.config = next;
    this.logger.info('config reloaded');
    return true;
  }

  /**
   * Graceful stop: not ready, stop accepting, finish in-flight requests, write the final
   * snapshot, close the store. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.ready = false;
      for (const t of this.timers) clearInterval(t);
      this.watcher?.close();
      await this.app.close();
      await this.replicator
        ?.stop()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'replication stop failed'));
      // Every accepted event is committed before the ledger closes.
      await this.writer.close();
      await this.ledger.close();
      this.logger.info({ ledger: this.writer.stats() }, 'ledger closed');
      if (this.role === 'edge') this.snapshot();
      await this.store.close();
      await this.otlp
        ?.shutdown()
        .catch((error: unknown) => this.logger.warn({ err: error }, 'final OTLP push failed'));
      this.logger.info('stopped');
    })();
    return this.stopping;
  }

  /**
   * Writes buckets changed since the last snapshot (at most `maxAgents` agents' worth, in one
   * transaction) and drops evicted agents. Returns true when changed agents remain.
   */
  snapshot(maxAgents = Number.POSITIVE_INFINITY): boolean {
    const now = Date.now();
    const entries = drainChangedBuckets(this.limiter, now, maxAgents);
    const evicted = this.evicted;
    this.evicted = [];
    if (entries.length > 0 || evicted.length > 0) this.store.save(entries, evicted, now);
    const counters = this.budgetReplica?.drainSnapshot() ?? [];
    if (counters.length > 0) this.store.saveBudgetCounters(counters, now);
    return this.limiter.dirtyCount('snapshot') > 0;
  }

  /** Resolves once every snapshot write made so far is written (tests and tools). */
  snapshotWritten(): Promise<void> {
    return this.store.flush();
  }

  /**
   * The periodic snapshot, in slices of SNAPSHOT_SLICE agents: the event loop encodes a slice and
   * the store's writer thread writes it, and the next slice waits until it is written, so a
   * million changed agents never queue up in memory or stall requests for one big write.
   */
  private snapshotInSlices(): void {
    if (this.snapshotting) return;
    this.snapshotting = true;
    void (async () => {
      try {
        let more = true;
        while (more && !this.stopping) {
          more = this.snapshot(SNAPSHOT_SLICE);
          await this.store.flush();
          // A store that writes at once (memory) resolves without a turn of the event loop.
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch (error) {
        this.logger.error({ err: error }, 'snapshot failed');
      }
      this.snapshotting = false;
    })();
  }

  /**
   * The exporter's view of the edge: merges what the edge last snapshotted. Merging is a join,
   * so reading the same state again changes nothing; the exporter's own change feeds are dropped
   * (it sends and writes nothing), which also keeps its idle agents evictable.
   */
  private refreshFromSnapshot(): void {
    const now = Date.now();
    restoreSnapshot(this.limiter, this.store.load(), now);
    this.limiter.drainDirty(now, Number.POSITIVE_INFINITY, 'replication');
    this.limiter.drainDirty(now, Number.POSITIVE_INFINITY, 'snapshot');
  }

  private startBackgroundWork(): void {
    const every = (ms: number, work: () => void, what: string) => {
      const timer = setInterval(() => {
        try {
          work();
        } catch (error) {
          this.logger.error({ err: error }, `${what} failed`);
        }
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    if (this.role === 'edge') {
      every(this.config.snapshot.interval_ms, () => this.snapshotInSlices(), 'snapshot');
    } else {
      every(this.config.snapshot.interval_ms, () => this.refreshFromSnapshot(), 'snapshot read');
    }
    const metrics = this.metrics;
    if (metrics !== undefined) {
      metrics.rank();
      every(this.config.metrics.rank_interval_ms, () => metrics.rank(), 'metrics ranking');
    }
    every(
      EVICT_EVERY_MS,
      () => this.evicted.push(...this.limiter.evictIdle(Date.now(), EVICT_SCAN)),
      'eviction',
    );
    every(RESERVATION_SWEEP_MS, () => this.reservations.sweep(Date.now()), 'reservation expiry');
    const budgetReplica = this.budgetReplica;
    if (budgetReplica !== undefined) {
      every(
        EVICT_EVERY_MS,
        () => {
          const now = Date.now();
          budgetReplica.prune(now);
          this.store.saveBudgetCounters([], now);
        },
        'budget counter expiry',
      );
    }
    every(
      EVICT_EVERY_MS,
      () =>
        this.budgetCache.evictIdle(Date.now(), BUDGET_IDLE_MS, (agentId) =>
          this.reservations.holdsFor(agentId),
        ),
      'budget eviction',
    );
    const path = this.options.configPath;
    if (path !== undefined && this.options.watchConfig !== false) {
      let debounce: NodeJS.Timeout | undefined;
      try {
        // Watch the directory, not the file: editors and config-map updates replace the file.
        this.watcher = watch(dirname(path), (_event, name) => {
          if (name !== null && name !== basename(path) && name !== '..data') return;
          clearTimeout(debounce);
          debounce = setTimeout(() => this.reload(), 200);
        });
        this.watcher.on('error', (error) =>
          this.logger.warn({ err: error }, 'config watch stopped; SIGHUP still reloads'),
        );
      } catch (error) {
        this.logger.warn({ err: error }, 'cannot watch the config file; SIGHUP still reloads');
      }
    }
  }

  /**
   * Counters and gauges of rating, for metrics: ledger batches and events, reservations
   * (expired among them), budget denials and threshold crossings by `budget:threshold`.
   */
  ratingStats() {
    return {
      ledgerDriver: this.ledger.driver,
      ledger: this.writer.stats(),
      ...this.reservations.stats(),
      ...this.rating.stats(),
    };
  }
}

/** Opens the ledger the config names: SQLite in the data dir, or PostgreSQL. */
function openLedger(config: Config): Promise<LedgerStore> {
  const l = config.ledger;
  if (l.driver === 'postgres') {
    return openPostgresLedger(l.url as string, l.schema, l.pool_size);
  }
  return Promise.resolve(
    openSqliteLedger(config.data_dir, l.sqlite_synchronous, l.max_batch_events),
  );
}

function sanitizeNodeId(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 64);
  return cleaned.length > 0 ? cleaned : 'edge';
}
