import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../sim/random.js';
import { LATENCY_BUCKETS } from '../src/metrics/edge-metrics.js';
import { LatencyHistogram } from '../src/metrics/latency-histogram.js';

// Our request latency histogram replaces prom-client's on the hot path. It must render exactly
// what prom-client's Histogram renders for the same observations, in both text formats and as
// JSON, so scrapes and dashboards cannot tell them apart.

const NAME = 'openclaw_http_request_duration_seconds';
const HELP = 'Server time per HTTP request, by route pattern';

function pair() {
  const theirs = new Registry();
  const histogram = new Histogram({
    name: NAME,
    help: HELP,
    labelNames: ['method', 'route', 'code'],
    buckets: LATENCY_BUCKETS,
    registers: [theirs],
  });
  const ours = new Registry();
  const latency = new LatencyHistogram(NAME, HELP, LATENCY_BUCKETS);
  ours.registerMetric(latency.asMetric());
  const observe = (method: string, route: string, code: number, seconds: number) => {
    histogram.observe({ method, route, code }, seconds);
    latency.observe(method, route, code, seconds);
  };
  return { theirs, ours, observe };
}

const render = async (registry: Registry, type: string) => {
  registry.setContentType(type as typeof Registry.PROMETHEUS_CONTENT_TYPE);
  return registry.metrics();
};

describe('the request latency histogram', () => {
  it('renders what prom-client renders, in both text formats and as JSON', async () => {
    const { theirs, ours, observe } = pair();
    const next = mulberry32(42);
    const routes = [
      ['POST', '/v1/check'],
      ['GET', '/v1/agents/:agent_id'],
      ['POST', '/v1/check/batch'],
    ] as const;
    const codes = [200, 429, 400, 500];
    // Every bound exactly, zero, values between and beyond the last bound.
    const edges = [0, ...LATENCY_BUCKETS, 1.5, 30];
    for (let i = 0; i < 5_000; i++) {
      const [method, route] = routes[Math.floor(next() * routes.length)] as (typeof routes)[number];
      const code = codes[Math.floor(next() * codes.length)] as number;
      const seconds =
        i % 5 === 0 ? (edges[i % edges.length] as number) : next() ** 4 * 1.2 + 0.00001;
      observe(method, route, code, seconds);
    }
    for (const type of [Registry.PROMETHEUS_CONTENT_TYPE, Registry.OPENMETRICS_CONTENT_TYPE]) {
      const expected = await render(theirs, type);
      expect(expected).toContain(`${NAME}_bucket{le="0.0001",method="POST",route="/v1/check"`);
      expect(await render(ours, type)).toBe(expected);
    }
    expect(await ours.getMetricsAsJSON()).toEqual(await theirs.getMetricsAsJSON());
  });

  it('starts empty and is empty again after a reset', async () => {
    const { theirs, ours, observe } = pair();
    expect(await render(ours, Registry.PROMETHEUS_CONTENT_TYPE)).toBe(
      await render(theirs, Registry.PROMETHEUS_CONTENT_TYPE),
    );
    observe('POST', '/v1/check', 200, 0.0003);
    theirs.resetMetrics();
    ours.resetMetrics();
    expect(await render(ours, Registry.PROMETHEUS_CONTENT_TYPE)).toBe(
      await render(theirs, Registry.PROMETHEUS_CONTENT_TYPE),
    );
  });

  it('ignores a duration that is not a finite number instead of failing the request', async () => {
    const latency = new LatencyHistogram(NAME, HELP, LATENCY_BUCKETS);
    latency.observe('POST', '/v1/check', 200, Number.NaN);
    latency.observe('POST', '/v1/check', 200, 0.002);
    const { values } = await latency.get();
    expect(values.find((v) => v.metricName === `${NAME}_count`)?.value).toBe(1);
    expect(values.find((v) => v.metricName === `${NAME}_sum`)?.value).toBe(0.002);
  });

  it('refuses bucket bounds that do not increase', () => {
    expect(() => new LatencyHistogram(NAME, HELP, [0.1, 0.1])).toThrow(/must increase/);
  });
});
