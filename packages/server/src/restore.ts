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
  /** Buckets whose slots were folded into one fresh revision (`compactSlots`). */
  readonly compacted: number;
  readonly overrides: number;
}

export interface RestoreOptions {
  /**
   * Fold each bucket's slots away: a rebase onto its own limit, one revision up, that keeps what
   * the agent has left. Every process run charges under a slot of its own, so without this a
   * lone replica's buckets gain a slot per restart and every snapshot, export and merge carries
   * them all (after 18 restarts: 11.7 times the bytes per state, and the p99 at 2,500 req/s 2-4
   * times higher in four of six paired runs; BENCHMARKS.md, "Restarts and the tail"). Only for
   * a replica with no peers and at start: a peer still holding an old slot would count it
   * again, and a reader that compacted would rank its own revision above the writer's.
   */
  readonly compactSlots?: boolean;
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
  options: RestoreOptions = {},
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
  let compacted = 0;
  const agents = new Set<string>();
  const entries = snapshot.entries.flatMap((entry) => {
    const limit = limiter.policyFor(entry.agentId).limits.find((l) => l.name === entry.limit);
    if (limit === undefined) {
      dropped++;
      return [];
    }
    agents.add(entry.agentId);
    if (entry.state.params === limit.fingerprint) {
      if (!options.compactSlots || entry.state.slots.size === 0) return [entry];
      compacted++;
      return [{ ...entry, state: rebase(entry.state, limit, limit, nowMs) }];
    }
    if (entry.savedLimit.fingerprint !== entry.state.params) return [entry];
    rebased++;
    return [{ ...entry, state: rebase(entry.state, entry.savedLimit, limit, nowMs) }];
  });
  limiter.merge(entries, nowMs);
  return {
    agents: agents.size,
    buckets: entries.length,
    rebased,
    dropped,
    compacted,
    overrides,
  };
}
