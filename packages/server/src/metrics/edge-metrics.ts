import type { Limiter, RankBy } from '@openclaw-edge/engine';
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  type OpenMetricsContentType,
  type PrometheusContentType,
  Registry,
} from 'prom-client';
import { FAMILIES, type Observation, OTHER_AGENTS, type RatingCounters } from './families.js';
import { LatencyHistogram } from './latency-histogram.js';
import type { OtlpPush } from './otlp.js';

/** Request latency histogram buckets, in seconds: 100 µs to 1 s. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];

const RESERVED_AGENT_IDS: ReadonlySet<string> = new Set([OTHER_AGENTS]);

/** Reads the engine (and rating's counters) once for a collection. */
export function observe(
  limiter: Limiter,
  nowMs: number,
  rating?: () => RatingCounters,
): Observation {
  return { report: limiter.bucketReport(nowMs), decisions: limiter.decisions, rating: rating?.() };
}

/** Options of {@link EdgeMetrics}. */
export interface EdgeMetricsOptions {
  readonly limiter: Limiter;
  readonly nodeId: string;
  readonly version: string;
  /** Agents with their own series (the rest are summed into `__other__`). */
  readonly topAgents: number;
  /**
   * `activity` for a replica taking traffic; `utilisation` for the exporter, which makes no
   * decisions and shows the agents closest to their limits instead. The exporter also leaves out
   * the traffic families (decisions, usage, request latency): it has none.
   */
  readonly rankBy: RankBy;
  /** Wall-clock milliseconds. */
  readonly now: () => number;
  /** Rating's counters (ledger, reservations, budgets), read at scrape time. */
  readonly rating?: () => RatingCounters;
  /** An OTLP push that also records request latency, when one is configured. */
  readonly otlp?: OtlpPush | undefined;
}

/** A rendered scrape. */
export interface Exposition {
  readonly contentType: PrometheusContentType | OpenMetricsContentType;
  readonly body: string;
}

/**
 * The service's Prometheus metrics (docs/metrics.md is the contract). Bucket gauges are computed
 * from one engine report when a scrape arrives; counters on the request path are plain numbers
 * in the engine, read at the same moment. Only request latency is recorded per request, into a
 * histogram keyed by route pattern (a bounded label).
 */
export class EdgeMetrics {
  private readonly registry = new Registry<PrometheusContentType | OpenMetricsContentType>();
  private observation: Observation | undefined;
  private rendering: Promise<unknown> = Promise.resolve();
  private readonly latency: LatencyHistogram | undefined;
  private readonly collectSeconds: Gauge;
  /** Replication health, set by the replicator (src/replication) when replication is configured. */
  readonly replication: {
    readonly peers: Gauge<'state'>;
    readonly lagSeconds: Gauge<'peer'>;
    readonly deltas: Counter<'direction' | 'outcome'>;
    readonly bytes: Counter<'direction'>;
    readonly budgetWindows: Gauge;
  };

  constructor(private readonly options: EdgeMetricsOptions) {
    const registers = [this.registry];
    const traffic = options.rankBy === 'activity';
    const metrics = this;
    for (const spec of FAMILIES) {
      if (spec.traffic && !traffic) continue;
      const collect = function (this: Gauge<string> | Counter<string>) {
        // `render` observes the engine once per scrape, before any collect runs.
        const observation = metrics.observation;
        this.reset();
        if (observation === undefined) return;
        for (const [labels, value] of spec.read(observation)) {
          if (this instanceof Gauge) this.set(labels, value);
          else this.inc(labels, value);
        }
      };
      const config = {
        name: spec.name,
        help: spec.help,
        labelNames: spec.labels,
        registers,
        collect,
      };
      if (spec.type === 'gauge') new Gauge(config);
      else new Counter(config);
    }
    // The edge answers in well under a millisecond: prom-client's default buckets (from 5 ms)
    // would put every request in the first one.
    this.latency = traffic
      ? new LatencyHistogram(
          'openclaw_http_request_duration_seconds',
          'Server time per HTTP request, by route pattern',
          LATENCY_BUCKETS,
        )
      : undefined;
    if (this.latency !== undefined) this.registry.registerMetric(this.latency.asMetric());
    this.replication = {
      peers: new Gauge({
        name: 'openclaw_replication_peers',
        help: 'Replication peers known and reachable',
        labelNames: ['state'],
        registers,
      }),
      lagSeconds: new Gauge({
        name: 'openclaw_replication_lag_seconds',
        help: 'Age of the newest state received from each peer',
        labelNames: ['peer'],
        registers,
      }),
      deltas: new Counter({
        name: 'openclaw_replication_deltas_total',
        help: 'Replication deltas sent and received, accepted or rejected',
        labelNames: ['direction', 'outcome'],
        registers,
      }),
      bytes: new Counter({
        name: 'openclaw_replication_bytes_total',
        help: 'Replication payload bytes sent and received',
        labelNames: ['direction'],
        registers,
      }),
      budgetWindows: new Gauge({
        name: 'openclaw_replication_budget_windows',
        help: 'Calendar budget windows whose fleet-wide spend counters this replica holds',
        registers,
      }),
    };
    this.replication.peers.set({ state: 'known' }, 0);
    this.replication.peers.set({ state: 'reachable' }, 0);
    this.collectSeconds = new Gauge({
      name: 'openclaw_metrics_collect_seconds',
      help: 'Time the last scrape spent computing the bucket metrics',
      registers,
    });
    new Gauge({
      name: 'openclaw_build_info',
      help: 'Build and node of this replica (always 1)',
      labelNames: ['version', 'node_id'],
      registers,
    }).set({ version: options.version, node_id: options.nodeId }, 1);
    collectDefaultMetrics({ register: this.registry });
  }

  /** Re-chooses the agents with their own series (run on an interval). */
  rank(): void {
    // An agent actually named "__other__" is summed into the other series, never beside it.
    this.options.limiter.rankAgents(
      this.options.topAgents,
      this.options.now(),
      this.options.rankBy,
      RESERVED_AGENT_IDS,
    );
  }

  /** Records one HTTP request's server time. */
  observeRequest(method: string, route: string, code: number, seconds: number): void {
    this.latency?.observe(method, route, code, seconds);
    this.options.otlp?.recordRequest({ method, route, code }, seconds);
  }

  /**
   * Renders a scrape in the format the `Accept` header asks for: OpenMetrics when it names
   * `application/openmetrics-text`, else the Prometheus text format. Scrapes run one at a time
   * (the format is a registry setting, and the report is shared by every collect).
   */
  render(accept: string | undefined): Promise<Exposition> {
    const next = this.rendering.then(() => this.renderNow(accept));
    this.rendering = next.catch(() => undefined);
    return next;
  }

  private async renderNow(accept: string | undefined): Promise<Exposition> {
    const started = process.hrtime.bigint();
    this.observation = observe(this.options.limiter, this.options.now(), this.options.rating);
    this.collectSeconds.set(Number(process.hrtime.bigint() - started) / 1e9);
    const contentType = wantsOpenMetrics(accept)
      ? Registry.OPENMETRICS_CONTENT_TYPE
      : Registry.PROMETHEUS_CONTENT_TYPE;
    this.registry.setContentType(contentType);
    try {
      return { contentType, body: await this.registry.metrics() };
    } finally {
      this.observation = undefined;
    }
  }
}

function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}
