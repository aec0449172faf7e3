import {
  type AgentPolicy,
  type BucketEntry,
  defineLimit,
  type Limit,
  limitFingerprint,
} from '@openclaw-edge/core';
import type { Limiter } from '@openclaw-edge/engine';

/**
 * A bucket state with the limit it counted under when saved, so a restart under changed limits
 * can rebase it instead of dropping it.
 */
export interface SnapshotEntry extends BucketEntry {
  readonly savedLimit: Limit;
}

/**
 * The buckets of at most `maxAgents` agents changed since the last snapshot, each with the limit
 * it counts under (a bucket whose limit the agent no longer has is left out).
 */
export function drainChangedBuckets(
  limiter: Limiter,
  nowMs: number,
  maxAgents: number,
): SnapshotEntry[] {
  const entries: SnapshotEntry[] = [];
  for (const entry of limiter.drainDirty(nowMs, maxAgents, 'snapshot')) {
    const savedLimit = limiter.policyFor(entry.agentId).limits.find((l) => l.name === entry.limit);
    if (savedLimit !== undefined) entries.push({ ...entry, savedLimit });
  }
  return entries;
}

/**
 * A runtime policy override (`PUT/DELETE /v1/agents/{id}/policy`) as a last-writer-wins record:
 * ordered by (time, node id) across the fleet. A removal is a record too (policy undefined), so
 * it beats the older setting it removes, also after a restart.
 */
export interface OverrideRecord {
  readonly agentId: string;
  /** The override, or undefined for "back to the configured policy". */
  readonly policy: AgentPolicy | undefined;
  /** Wall-clock ms of the change on the replica that made it (0: saved before times were kept). */
  readonly at: number;
  readonly node: string;
}

/**
 * One replica's counter of committed spend in one calendar budget window of one agent
 * (`rating/budget-replica.ts`), kept so a fleet restarted at once still counts its spend.
 */
export interface BudgetCounterRow {
  readonly agentId: string;
  /** The counter's reserved limit name, `$budget:<name>@<windowStartMs>`. */
  readonly limit: string;
  /** The replica (`node#incarnation`) that counted it. */
  readonly slot: string;
  readonly micros: number;
  /** When the window ends: the row is useless after. */
  readonly endMs: number;
}

/** What a snapshot holds: bucket states and runtime policy override records (removals too). */
export interface Snapshot {
  readonly entries: SnapshotEntry[];
  readonly overrides: OverrideRecord[];
}

/**
 * Durable bucket state for one node, so a restart does not hand every agent a full bucket.
 * Implementations: `sqlite` (embedded default, in the data dir) and `memory` (no durability,
 * for tests and `snapshot.enabled: false`). Each write is one transaction. Bucket states and
 * budget counters may be written after the call returns, in call order (`flush` waits for them);
 * override records are written before it returns.
 */
export interface SnapshotStore {
  /** Everything saved so far. */
  load(): Snapshot;
  /** Upserts bucket states and deletes evicted agents, in one transaction. */
  save(entries: readonly SnapshotEntry[], evicted: readonly string[], nowMs: number): void;
  /**
   * Persists an override record (a setting or a removal) at once, replacing the agent's
   * previous one: an acknowledged change survives a crash, with the time that orders it.
   */
  saveOverride(record: OverrideRecord): void;
  /** The override records alone (what replication seeds its last-writer-wins log with). */
  overrides(): OverrideRecord[];
  /**
   * Upserts budget counters (one row per agent, window and replica slot) and deletes those of
   * windows that ended by `nowMs`, in one transaction.
   */
  saveBudgetCounters(rows: readonly BudgetCounterRow[], nowMs: number): void;
  /** The budget counters of windows that end after `nowMs`. */
  budgetCounters(nowMs: number): BudgetCounterRow[];
  /** Resolves once every bucket and counter write made so far is done (or failed). */
  flush(): Promise<void>;
  /** Flushes, then closes. */
  close(): Promise<void>;
}

/**
 * A limit read back from its JSON form (snapshots, replicated overrides), validated again as a
 * limit. The refill rate is kept exactly as stored (per ms), not re-derived from a period.
 */
export function limitFromJson(stored: Limit): Limit {
  const limit = defineLimit(
    {
      name: stored.name,
      resource: stored.resource,
      capacity: stored.capacityTokens,
      refill: stored.refillPerMs * 1000,
      per: 'second',
      mode: stored.mode,
    },
    'snapshot limit',
  );
  const refillPerMs = stored.refillPerMs;
  return {
    ...limit,
    refillPerMs,
    fingerprint: limitFingerprint(limit.capacityTokens, refillPerMs, limit.resource),
  };
}
