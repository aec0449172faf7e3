import type { AgentPolicy } from '@openclaw-edge/core';
import type { Snapshot, SnapshotEntry, SnapshotStore } from './snapshot-store.js';

/** A snapshot store that keeps nothing across processes. */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly buckets = new Map<string, SnapshotEntry>();
  private readonly overrides = new Map<string, AgentPolicy>();

  load(): Snapshot {
    return {
      entries: [...this.buckets.values()],
      overrides: [...this.overrides].map(([agentId, policy]) => ({ agentId, policy })),
    };
  }

  save(entries: readonly SnapshotEntry[], evicted: readonly string[]): void {
    for (const e of entries) this.buckets.set(`${e.agentId}\u0000${e.limit}`, e);
    if (evicted.length === 0) return;
    const gone = new Set(evicted);
    for (const [key, e] of this.buckets) if (gone.has(e.agentId)) this.buckets.delete(key);
  }

  saveOverride(agentId: string, policy: AgentPolicy | undefined): void {
    if (policy === undefined) this.overrides.delete(agentId);
    else this.overrides.set(agentId, policy);
  }

  close(): void {}
}
