import type {
  BudgetCounterRow,
  OverrideRecord,
  Snapshot,
  SnapshotEntry,
  SnapshotStore,
} from './snapshot-store.js';

/** A snapshot store that keeps nothing across processes. */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly buckets = new Map<string, SnapshotEntry>();
  private readonly records = new Map<string, OverrideRecord>();
  private readonly counters = new Map<string, BudgetCounterRow>();

  load(): Snapshot {
    return { entries: [...this.buckets.values()], overrides: this.overrides() };
  }

  save(entries: readonly SnapshotEntry[], evicted: readonly string[]): void {
    for (const e of entries) this.buckets.set(`${e.agentId}\u0000${e.limit}`, e);
    if (evicted.length === 0) return;
    const gone = new Set(evicted);
    for (const [key, e] of this.buckets) if (gone.has(e.agentId)) this.buckets.delete(key);
  }

  saveOverride(record: OverrideRecord): void {
    this.records.set(record.agentId, record);
  }

  overrides(): OverrideRecord[] {
    return [...this.records.values()];
  }

  saveBudgetCounters(rows: readonly BudgetCounterRow[], nowMs: number): void {
    for (const r of rows) this.counters.set(`${r.agentId}\u0000${r.limit}\u0000${r.slot}`, r);
    for (const [key, r] of this.counters) if (r.endMs <= nowMs) this.counters.delete(key);
  }

  budgetCounters(nowMs: number): BudgetCounterRow[] {
    return [...this.counters.values()].filter((r) => r.endMs > nowMs);
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {}
}
