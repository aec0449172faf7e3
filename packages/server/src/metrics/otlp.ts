import type { Limiter } from '@openclaw-edge/engine';
import type { Attributes, Histogram, Observable } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { LATENCY_BUCKETS, observe } from './edge-metrics.js';
import { FAMILIES, type RatingCounters } from './families.js';

/** Options of {@link OtlpPush}. */
export interface OtlpPushOptions {
  readonly limiter: Limiter;
  readonly nodeId: string;
  readonly version: string;
  /** OTLP/HTTP metrics endpoint, e.g. `http://collector:4318/v1/metrics`. */
  readonly endpoint: string;
  readonly intervalMs: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly now: () => number;
  readonly rating?: () => RatingCounters;
}

/**
 * Pushes the same families as /metrics over OTLP/HTTP (JSON) on an interval, for platforms that
 * collect with an OpenTelemetry Collector rather than by scraping. Counter names drop the
 * Prometheus `_total` suffix (a Prometheus exporter in the collector adds it back). Observable
 * instruments read the engine once per export through one batch callback, so the request path
 * does nothing extra but record its latency.
 */
export class OtlpPush {
  private readonly provider: MeterProvider;
  private readonly latency: Histogram;

  constructor(options: OtlpPushOptions) {
    this.provider = new MeterProvider({
      resource: resourceFromAttributes({
        'service.name': 'openclaw-edge',
        'service.version': options.version,
        'service.instance.id': options.nodeId,
      }),
      readers: [
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({
            url: options.endpoint,
            headers: { ...options.headers },
          }),
          exportIntervalMillis: options.intervalMs,
          exportTimeoutMillis: Math.min(options.intervalMs, 10_000),
        }),
      ],
    });
    const meter = this.provider.getMeter('openclaw-edge', options.version);
    const instruments: [(typeof FAMILIES)[number], Observable][] = FAMILIES.map((spec) => {
      const name = spec.name.replace(/_total$/, '');
      const instrument =
        spec.type === 'gauge'
          ? meter.createObservableGauge(name, { description: spec.help })
          : meter.createObservableCounter(name, { description: spec.help });
      return [spec, instrument];
    });
    meter.addBatchObservableCallback(
      (result) => {
        const observation = observe(options.limiter, options.now(), options.rating);
        for (const [spec, instrument] of instruments) {
          for (const [labels, value] of spec.read(observation))
            result.observe(instrument, value, labels);
        }
      },
      instruments.map(([, instrument]) => instrument),
    );
    this.latency = meter.createHistogram('openclaw_http_request_duration_seconds', {
      description: 'Server time per HTTP request, by route pattern',
      unit: 's',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS },
    });
  }

  recordRequest(attributes: Attributes, seconds: number): void {
    this.latency.record(seconds, attributes);
  }

  /** Pushes what is pending and stops. */
  shutdown(): Promise<void> {
    return this.provider.shutdown();
  }
}
