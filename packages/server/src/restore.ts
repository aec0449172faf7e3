import { rebase } from '@openclaw-edge/core';
import type { Limiter } from '@openclaw-edge/engine';
import type { Snapshot } from './snapshot/snapshot-store.js';

/** What a restore did, for the start-up log. */
export interface RestoreReport {
  readonly agents: number;
  readonly buckets: number;
  /** Buckets whose limit changed while the service was down, carried over by a rebase. */
  readonly rebased: number;
  /** Buckets of limits that no longer exist. */
  readonly dropped: number;
  readonly overrides: number;
}

/**
 * Loads a snapshot into a limiter: overrides first, so agents are created under them (a removal
 * record clears one the limiter holds), then bucket states. A bucket saved under parameters that
 * have since changed in config is rebased onto the new limit, as a live policy change would be;
 * the limit saved with it says what its counters meant.
 */
export function restoreSnapshot(
  limiter: Limiter,
  snapshot: Snapshot,
  nowMs: number,
): RestoreReport {
  let overrides = 0;
  for (const o of snapshot.overrides) {
    if (o.policy !== undefined) {
      limiter.setOverride(o.agentId, o.policy, nowMs);
      overrides++;
    } else if (limiter.getOverride(o.agentId) !== undefined) {
      // A removal (the exporter reads the edge's snapshots again and again).
      limiter.clearOverride(o.agentId, nowMs);
    }
  }
  let rebased = 0;
  let dropped = 0;
  const agents = new Set<string>();
  const entries = snapshot.entries.flatMap((entry) => {
    const limit = limiter.policyFor(entry.agentId).limits.find((l) => l.name === entry.limit);
    if (limit === undefined) {
      dropped++;
      return [];
    }
    agents.add(entry.agentId);
    if (
      entry.state.params === limit.fingerprint ||
      entry.savedLimit.fingerprint !== entry.state.params
    ) {
      return [entry];
    }
    rebased++;
    return [{ ...entry, state: rebase(entry.state, entry.savedLimit, limit, nowMs) }];
  });
  limiter.merge(entries, nowMs);
  return {
    agents: agents.size,
    buckets: entries.length,
    rebased,
    dropped,
    overrides,
  };
}
