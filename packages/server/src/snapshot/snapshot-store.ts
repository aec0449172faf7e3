import {
  type AgentPolicy,
  type BucketEntry,
  defineLimit,
  type Limit,
  limitFingerprint,
} from '@openclaw-edge/core';

/**
 * A bucket state with the limit it counted under when saved, so a restart under changed limits
 * can rebase it instead of dropping it.
 */
export interface SnapshotEntry extends BucketEntry {
  readonly savedLimit: Limit;
}

/** What a snapshot holds: bucket states and runtime policy overrides. */
export interface Snapshot {
  readonly entries: SnapshotEntry[];
  readonly overrides: { readonly agentId: string; readonly policy: AgentPolicy }[];
}

/**
 * Durable bucket state for one node, so a restart does not hand every agent a full bucket.
 * Implementations: `sqlite` (embedded default, in the data dir) and `memory` (no durability,
 * for tests and `snapshot.enabled: false`). Writes are synchronous and transactional.
 */
export interface SnapshotStore {
  /** Everything saved so far. */
  load(): Snapshot;
  /** Upserts bucket states and deletes evicted agents, in one transaction. */
  save(entries: readonly SnapshotEntry[], evicted: readonly string[], nowMs: number): void;
  /** Persists a runtime override (or its removal) at once: an acknowledged change survives a crash. */
  saveOverride(agentId: string, policy: AgentPolicy | undefined): void;
  close(): void;
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
