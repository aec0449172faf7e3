import type { BucketReport } from '@openclaw-edge/engine';

/** Label value of the series that sums every agent outside the top N. */
export const OTHER_AGENTS = '__other__';

/** What one collection reads: the engine's bucket report and its decision counts. */
export interface Observation {
  readonly report: BucketReport;
  readonly decisions: { readonly allowed: number; readonly denied: number };
}

type Labels = Record<string, string>;

/**
 * A metric family computed from engine state at collection time. Both exporters read these
 * specs (prom-client for /metrics, OpenTelemetry for OTLP push), so the two can never disagree.
 */
export interface FamilySpec {
  /** Prometheus name; counters end in `_total`, which OTLP names leave off. */
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter';
  readonly labels: readonly string[];
  /** Only meaningful on a replica that takes traffic (not the exporter). */
  readonly traffic: boolean;
  read(o: Observation): Iterable<readonly [Labels, number]>;
}

function* perLimit(o: Observation, value: (t: BucketReport['limits'][number]) => number) {
  for (const t of o.report.limits) yield [{ limit: t.limit }, value(t)] as const;
}

function* perAgent(
  o: Observation,
  top: (s: BucketReport['top'][number]['limits'][number]) => number,
  other: (t: BucketReport['limits'][number]) => number,
) {
  for (const a of o.report.top) {
    for (const s of a.limits) yield [{ agent_id: a.agentId, limit: s.limit.name }, top(s)] as const;
  }
  for (const t of o.report.limits)
    yield [{ agent_id: OTHER_AGENTS, limit: t.limit }, other(t)] as const;
}

/** Every engine-derived family of docs/metrics.md. */
export const FAMILIES: readonly FamilySpec[] = [
  {
    name: 'openclaw_agent_token_bucket',
    help: 'Tokens available in an agent bucket (top agents; __other__ sums the rest)',
    type: 'gauge',
    labels: ['agent_id', 'limit'],
    traffic: false,
    read: (o) =>
      perAgent(
        o,
        (s) => Math.max(0, s.remaining),
        (t) => t.otherAvailable,
      ),
  },
  {
    name: 'openclaw_agent_bucket_capacity',
    help: 'Capacity of an agent bucket (top agents; __other__ sums the rest)',
    type: 'gauge',
    labels: ['agent_id', 'limit'],
    traffic: false,
    read: (o) =>
      perAgent(
        o,
        (s) => s.limit.capacityTokens,
        (t) => t.otherCapacity,
      ),
  },
  {
    name: 'openclaw_token_bucket_capacity',
    help: 'Sum of bucket capacities over every tracked agent',
    type: 'gauge',
    labels: ['limit'],
    traffic: false,
    read: (o) => perLimit(o, (t) => t.capacity),
  },
  {
    name: 'openclaw_token_bucket_available',
    help: 'Sum of available tokens over every tracked agent',
    type: 'gauge',
    labels: ['limit'],
    traffic: false,
    read: (o) => perLimit(o, (t) => t.available),
  },
  {
    name: 'openclaw_token_bucket_fill_rate',
    help: 'Sum of refill rates over every tracked agent, in tokens per second',
    type: 'gauge',
    labels: ['limit'],
    traffic: false,
    read: (o) => perLimit(o, (t) => t.fillPerSecond),
  },
  {
    name: 'openclaw_token_bucket_utilisation',
    help: 'One minus available over capacity, over every tracked agent (1 = exhausted)',
    type: 'gauge',
    labels: ['limit'],
    traffic: false,
    read: (o) => perLimit(o, (t) => (t.capacity > 0 ? 1 - t.available / t.capacity : 0)),
  },
  {
    name: 'openclaw_rating_api_token_bucket_fill',
    help: 'Available over capacity, over every tracked agent (1 = every bucket full)',
    type: 'gauge',
    labels: ['limit'],
    traffic: false,
    read: (o) => perLimit(o, (t) => (t.capacity > 0 ? t.available / t.capacity : 1)),
  },
  {
    name: 'openclaw_agents_tracked',
    help: 'Agents holding bucket state on this replica',
    type: 'gauge',
    labels: [],
    traffic: false,
    read: (o) => [[{}, o.report.agents]],
  },
  {
    name: 'openclaw_tokens_used_total',
    help: 'Units of each resource charged by allowed decisions on this replica (top agents; __other__ for the rest)',
    type: 'counter',
    labels: ['agent_id', 'resource'],
    traffic: true,
    *read(o) {
      for (const a of o.report.top) {
        for (const [resource, used] of a.used)
          yield [{ agent_id: a.agentId, resource }, used] as const;
      }
      for (const [resource, used] of o.report.otherUsed) {
        yield [{ agent_id: OTHER_AGENTS, resource }, used] as const;
      }
    },
  },
  {
    name: 'openclaw_rating_api_requests_total',
    help: 'Limit decisions made on this replica (each batch item counts)',
    type: 'counter',
    labels: ['decision'],
    traffic: true,
    read: (o) => [
      [{ decision: 'allowed' }, o.decisions.allowed],
      [{ decision: 'denied' }, o.decisions.denied],
    ],
  },
];
