import type { Metric } from 'prom-client';

/**
 * The request latency histogram, recorded on every request. prom-client's `Histogram.observe`
 * builds a label object, a hash string and a closure per call; this one looks the series up in
 * three maps of constant strings and counts into a typed array: about 33 ns against 390 ns
 * (BENCHMARKS.md, "The check fast path, again (sixth session)"). It hands the registry the
 * same data a prom-client Histogram would (`get` and `getForPromString`), so the exposition, in
 * either format, is the same text: `latency-histogram.test.ts` renders both side by side.
 */
export type RequestLabels = { method: string; route: string; code: number };

interface Series {
  readonly labels: RequestLabels;
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

interface ValuePair {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string | number>;
  value: number;
  metricName: string;
  exemplar?: null;
}

export class LatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly byMethod = new Map<string, Map<string, Map<number, Series>>>();
  private readonly all: Series[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {
    for (let i = 1; i < bounds.length; i++) {
      if (!((bounds[i] as number) > (bounds[i - 1] as number))) {
        throw new Error('latency histogram: bucket bounds must increase');
      }
    }
  }

  /** Counts one request of `seconds` for the label set. */
  observe(method: string, route: string, code: number, seconds: number): void {
    if (!Number.isFinite(seconds)) return; // a clock fault is not worth a failed request
    const series = this.series(method, route, code);
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    series.counts[i] = (series.counts[i] as number) + 1;
    series.sum += seconds;
    series.count++;
  }

  /** The registry's view, as prom-client's Histogram gives it (labels splayed). */
  async get() {
    const data = await this.getForPromString();
    return {
      ...data,
      values: data.values.map(({ labels, sharedLabels, ...rest }) => ({
        ...rest,
        labels: { ...labels, ...sharedLabels },
      })),
    };
  }

  /** The registry's view for the text formats: `le` first, then the series' labels. */
  async getForPromString() {
    const values: ValuePair[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.all) {
      const shared = { ...s.labels };
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += s.counts[i] as number;
        values.push({
          labels: { le },
          sharedLabels: shared,
          value: cumulative,
          metricName: bucket,
          exemplar: null,
        });
      });
      values.push(
        {
          labels: { le: '+Inf' },
          sharedLabels: shared,
          value: s.count,
          metricName: bucket,
          exemplar: null,
        },
        { labels: {}, sharedLabels: shared, value: s.sum, metricName: `${this.name}_sum` },
        { labels: {}, sharedLabels: shared, value: s.count, metricName: `${this.name}_count` },
      );
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    };
  }

  reset(): void {
    this.byMethod.clear();
    this.all.length = 0;
  }

  /**
   * This histogram as the registry's `Metric` type. prom-client's registry only calls `get`,
   * `getForPromString` and `reset` and reads `name`, `help`, `type` and `aggregator`, which this
   * class has; its type names only prom-client's own classes.
   */
  asMetric(): Metric {
    return this as unknown as Metric;
  }

  private series(method: string, route: string, code: number): Series {
    let byRoute = this.byMethod.get(method);
    if (byRoute === undefined) {
      byRoute = new Map();
      this.byMethod.set(method, byRoute);
    }
    let byCode = byRoute.get(route);
    if (byCode === undefined) {
      byCode = new Map();
      byRoute.set(route, byCode);
    }
    let series = byCode.get(code);
    if (series === undefined) {
      series = {
        labels: { method, route, code },
        counts: new Float64Array(this.bounds.length + 1),
        sum: 0,
        count: 0,
      };
      byCode.set(code, series);
      this.all.push(series);
    }
    return series;
  }
}
