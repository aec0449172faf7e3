/**
 * The ledger: every rated usage event, stored once by `event_id`. One interface, two
 * implementations on Kysely (SQLite embedded, PostgreSQL for fleets), chosen by the composition
 * root. Money is integer micro-units; the full rating is kept as JSON so a replay returns it
 * exactly as first answered.
 */

import type { Usage } from '@openclaw-edge/rating';

/** One rated event as stored: its usage counts, and what it was rated at. */
export interface LedgerRow extends Usage {
  readonly eventId: string;
  readonly agentId: string;
  readonly timeMs: number;
  readonly model: string;
  /** The pricing rule that matched (tiers count volume per rule). */
  readonly rule: string;
  readonly currency: string;
  readonly totalTokens: number;
  readonly costMicros: number;
  /** What else a replay needs to answer the rating as first answered (the encoding is the rating service's). */
  readonly rating: string;
  /** The event's attributes (JSON), or null. */
  readonly attributes: string | null;
  readonly recordedMs: number;
}

/** Outcome of appending one row: stored now, or already there (the stored row is returned). */
export type AppendOutcome =
  | { readonly status: 'recorded'; readonly row: LedgerRow }
  | { readonly status: 'duplicate'; readonly row: LedgerRow };

/** Usage totals of one group. */
export interface UsageTotals {
  /** The model, or the window start (ms) when grouped by time. */
  readonly key: string | number;
  readonly events: number;
  readonly requests: number;
  readonly inputTokens: number;
  readonly cachedInputTokens: number;
  readonly cacheWriteTokens: number;
  readonly outputTokens: number;
  readonly reasoningTokens: number;
  readonly costMicros: number;
}

/** The storage behind the ledger. */
export interface LedgerStore {
  /** Which implementation, for logs and stats. */
  readonly driver: 'sqlite' | 'postgres';
  /** Batches that may be appending at once: the group-commit writer's in-flight limit. */
  readonly appendConcurrency: number;
  /**
   * Creates or upgrades the tables. When existing tables are upgraded, `starting` hears the names
   * of the migrations about to run, before they run (one may take minutes on a large ledger).
   */
  migrate(starting?: (pending: readonly string[]) => void): Promise<void>;
  /**
   * Appends rows in ONE transaction, durable when the promise resolves. Rows whose `eventId` is
   * already stored, or repeated earlier in `rows`, are not written; their outcome carries the
   * stored (first) row. Outcomes are in the order of `rows`.
   */
  append(rows: readonly LedgerRow[]): Promise<AppendOutcome[]>;
  /** Sum of cost of an agent's events with `fromMs <= time < toMs`. */
  spent(agentId: string, fromMs: number, toMs: number): Promise<number>;
  /** Sum of cost per agent of `agentIds`' events with `fromMs <= time < toMs` (absent: none). */
  spentByAgent(
    agentIds: readonly string[],
    fromMs: number,
    toMs: number,
  ): Promise<Map<string, number>>;
  /** Sum of tokens of an agent's events under `rule` with `fromMs <= time < toMs`. */
  volume(agentId: string, rule: string, fromMs: number, toMs: number): Promise<number>;
  /** Totals of an agent's events in [fromMs, toMs) grouped by model or by UTC hour. */
  usage(
    agentId: string,
    fromMs: number,
    toMs: number,
    groupBy: 'model' | 'hour',
  ): Promise<UsageTotals[]>;
  /** Rows by event id (tests and tools). */
  get(eventIds: readonly string[]): Promise<LedgerRow[]>;
  close(): Promise<void>;
}
