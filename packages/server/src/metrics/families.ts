import type { BucketReport } from '@openclaw-edge/engine';

/** Label value of the series that sums every agent outside the top N. */
export const OTHER_AGENTS = '__other__';

/** The rating side's counters (`EdgeService.ratingStats()`), as the metrics read them. */
export interface RatingCounters {
  readonly ledger: {
    readonly batches: number;
    readonly batchesFailed: number;
    readonly batchesRecovered: number;
    readonly eventsRecorded: number;
    readonly eventsDuplicate: number;
    readonly queued: number;
  };
  readonly reservationsActive: number;
  readonly reservationsCreated: number;
  readonly reservationsSettled: number;
  readonly reservationsCancelled: number;
  readonly reservationsExpired: number;
  readonly budgetDenials: number;
  readonly budgetUnavailableDenied: number;
  readonly budgetUnavailableAllowed: number;
  readonly eventsRejected: number;
  /** By `budget:threshold`, e.g. `daily:0.8`; bounded by the configured budgets. */
  readonly budgetThresholdCrossings: ReadonlyMap<string, number>;
}

/** What one collection reads: the engine's bucket report and decision counts, and rating's counters. */
export interface Observation {
  readonly report: BucketReport;
  readonly decisions: { readonly allowed: number; readonly denied: number };
  readonly rating: RatingCounters | undefined;
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
  ...ratingFamilies(),
];

/** Families of the rating side: ledger, reservations, budgets (docs/metrics.md, "Rating"). */
function ratingFamilies(): FamilySpec[] {
  const family = (
    name: string,
    help: string,
    type: FamilySpec['type'],
    labels: readonly string[],
    read: (r: RatingCounters) => Iterable<readonly [Labels, number]>,
  ): FamilySpec => ({
    name,
    help,
    type,
    labels,
    traffic: true,
    read: (o) => (o.rating === undefined ? [] : read(o.rating)),
  });
  return [
    family(
      'openclaw_ledger_events_total',
      'Usage events written to the ledger (recorded) or answered from it (duplicate)',
      'counter',
      ['outcome'],
      (r) => [
        [{ outcome: 'recorded' }, r.ledger.eventsRecorded],
        [{ outcome: 'duplicate' }, r.ledger.eventsDuplicate],
      ],
    ),
    family(
      'openclaw_ledger_batches_total',
      'Group-commit transactions: committed, failed, or recovered (failed, then found committed)',
      'counter',
      ['outcome'],
      (r) => [
        [{ outcome: 'committed' }, r.ledger.batches],
        [{ outcome: 'failed' }, r.ledger.batchesFailed],
        [{ outcome: 'recovered' }, r.ledger.batchesRecovered],
      ],
    ),
    family(
      'openclaw_ledger_queued_events',
      'Usage events waiting for the next ledger batch',
      'gauge',
      [],
      (r) => [[{}, r.ledger.queued]],
    ),
    family(
      'openclaw_reservations_active',
      'Reservations holding an estimate now',
      'gauge',
      [],
      (r) => [[{}, r.reservationsActive]],
    ),
    family(
      'openclaw_reservations_total',
      'Reservations created, and how they ended: settled, cancelled, or expired (refunded)',
      'counter',
      ['outcome'],
      (r) => [
        [{ outcome: 'created' }, r.reservationsCreated],
        [{ outcome: 'settled' }, r.reservationsSettled],
        [{ outcome: 'cancelled' }, r.reservationsCancelled],
        [{ outcome: 'expired' }, r.reservationsExpired],
      ],
    ),
    family(
      'openclaw_budget_denials_total',
      'Admissions denied by a budget: exhausted, or unavailable (ledger unreadable, fail-closed)',
      'counter',
      ['reason'],
      (r) => [
        [{ reason: 'exhausted' }, r.budgetDenials],
        [{ reason: 'unavailable' }, r.budgetUnavailableDenied],
      ],
    ),
    family(
      'openclaw_budget_unchecked_total',
      'Admissions let through unchecked because the ledger was unreadable (fail-open budgets)',
      'counter',
      [],
      (r) => [[{}, r.budgetUnavailableAllowed]],
    ),
    family(
      'openclaw_budget_threshold_crossings_total',
      'Times an agent budget crossed a configured threshold (e.g. 0.8, 1)',
      'counter',
      ['budget', 'threshold'],
      function* (r) {
        for (const [key, n] of r.budgetThresholdCrossings) {
          const at = key.lastIndexOf(':');
          yield [{ budget: key.slice(0, at), threshold: key.slice(at + 1) }, n] as const;
        }
      },
    ),
    family(
      'openclaw_usage_events_rejected_total',
      'Usage events refused as invalid (each with its reason in the response)',
      'counter',
      [],
      (r) => [[{}, r.eventsRejected]],
    ),
  ];
}
