import type { BucketReport, Limiter, RankBy } from '@openclaw-edge/engine';
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type OpenMetricsContentType,
  type PrometheusContentType,
  Registry,
} from 'prom-client';

/** Label value of the series that sums every agent outside the top N. */
export const OTHER_AGENTS = '__other__';

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
  private report: BucketReport | undefined;
  private rendering: Promise<unknown> = Promise.resolve();
  private readonly latency: Histogram<'method' | 'route' | 'code'> | undefined;
  private readonly collectSeconds: Gauge;
  /** Replication health, set by the replication layer once it exists. */
  readonly replication: {
    readonly peers: Gauge<'state'>;
    readonly lagSeconds: Gauge<'peer'>;
    readonly deltas: Counter<'direction' | 'outcome'>;
    readonly bytes: Counter<'direction'>;
  };

  constructor(private readonly options: EdgeMetricsOptions) {
    const registers = [this.registry];
    const traffic = options.rankBy === 'activity';
    const bucketGauge = (
      name: string,
      help: string,
      labelNames: readonly string[],
      fill: (gauge: Gauge<string>, report: BucketReport) => void,
    ) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect: function (this: Gauge<string>) {
          // `render` computes the report once per scrape, before any collect runs.
          const report = metrics.report;
          this.reset();
          if (report !== undefined) fill(this, report);
        },
      });
    const metrics = this;

    bucketGauge(
      'openclaw_agent_token_bucket',
      'Tokens available in an agent bucket (top agents; __other__ sums the rest)',
      ['agent_id', 'limit'],
      (g, r) => {
        for (const a of r.top) {
          for (const s of a.limits)
            g.set({ agent_id: a.agentId, limit: s.limit.name }, Math.max(0, s.remaining));
        }
        for (const t of r.limits)
          g.set({ agent_id: OTHER_AGENTS, limit: t.limit }, t.otherAvailable);
      },
    );
    bucketGauge(
      'openclaw_agent_bucket_capacity',
      'Capacity of an agent bucket (top agents; __other__ sums the rest)',
      ['agent_id', 'limit'],
      (g, r) => {
        for (const a of r.top) {
          for (const s of a.limits)
            g.set({ agent_id: a.agentId, limit: s.limit.name }, s.limit.capacityTokens);
        }
        for (const t of r.limits)
          g.set({ agent_id: OTHER_AGENTS, limit: t.limit }, t.otherCapacity);
      },
    );
    const perLimit = (
      name: string,
      help: string,
      value: (t: BucketReport['limits'][number]) => number,
    ) =>
      bucketGauge(name, help, ['limit'], (g, r) => {
        for (const t of r.limits) g.set({ limit: t.limit }, value(t));
      });
    perLimit(
      'openclaw_token_bucket_capacity',
      'Sum of bucket capacities over every tracked agent',
      (t) => t.capacity,
    );
    perLimit(
      'openclaw_token_bucket_available',
      'Sum of available tokens over every tracked agent',
      (t) => t.available,
    );
    perLimit(
      'openclaw_token_bucket_fill_rate',
      'Sum of refill rates over every tracked agent, in tokens per second',
      (t) => t.fillPerSecond,
    );
    perLimit(
      'openclaw_token_bucket_utilisation',
      'One minus available over capacity, over every tracked agent (1 = exhausted)',
      (t) => (t.capacity > 0 ? 1 - t.available / t.capacity : 0),
    );
    perLimit(
      'openclaw_rating_api_token_bucket_fill',
      'Available over capacity, over every tracked agent (1 = every bucket full)',
      (t) => (t.capacity > 0 ? t.available / t.capacity : 1),
    );
    bucketGauge(
      'openclaw_agents_tracked',
      'Agents holding bucket state on this replica',
      [],
      (g, r) => g.set(r.agents),
    );

    if (traffic) {
      new Counter({
        name: 'openclaw_tokens_used_total',
        help: 'Units of each resource charged by allowed decisions on this replica (top agents; __other__ for the rest)',
        labelNames: ['agent_id', 'resource'],
        registers,
        collect: function (this: Counter<string>) {
          const report = metrics.report;
          this.reset();
          if (report === undefined) return;
          for (const a of report.top) {
            for (const [resource, used] of a.used)
              this.inc({ agent_id: a.agentId, resource }, used);
          }
          for (const [resource, used] of report.otherUsed) {
            this.inc({ agent_id: OTHER_AGENTS, resource }, used);
          }
        },
      });
      new Counter({
        name: 'openclaw_rating_api_requests_total',
        help: 'Limit decisions made on this replica (each batch item counts)',
        labelNames: ['decision'],
        registers,
        collect: function (this: Counter<string>) {
          const { allowed, denied } = options.limiter.decisions;
          this.reset();
          this.inc({ decision: 'allowed' }, allowed);
          this.inc({ decision: 'denied' }, denied);
        },
      });
      this.latency = new Histogram({
        name: 'openclaw_http_request_duration_seconds',
        help: 'Server time per HTTP request, by route pattern',
        labelNames: ['method', 'route', 'code'],
        buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
        registers,
      });
    }
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
    this.options.limiter.rankAgents(
      this.options.topAgents,
      this.options.now(),
      this.options.rankBy,
    );
  }

  /** Records one HTTP request's server time. */
  observeRequest(method: string, route: string, code: number, seconds: number): void {
    this.latency?.observe({ method, route, code }, seconds);
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
    this.report = this.options.limiter.bucketReport(this.options.now());
    this.collectSeconds.set(Number(process.hrtime.bigint() - started) / 1e9);
    const contentType = wantsOpenMetrics(accept)
      ? Registry.OPENMETRICS_CONTENT_TYPE
      : Registry.PROMETHEUS_CONTENT_TYPE;
    this.registry.setContentType(contentType);
    try {
      return { contentType, body: await this.registry.metrics() };
    } finally {
      this.report = undefined;
    }
  }
}

function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && /application\/openmetrics-text/i.test(accept);
}
