import type { BucketEntry } from '@openclaw-edge/core';
import type { FleetSpend } from '@openclaw-edge/rating';
import type { BudgetCounterRow } from '../snapshot/snapshot-store.js';

/**
 * Limit names of budget counters start with this. Configured limit names are letters, digits,
 * '_', '.', ':' and '-' (core/policy.ts), so none can start with '$'.
 */
export const BUDGET_LIMIT_PREFIX = '$budget:';

/** The reserved limit name that carries one budget window's counters: `$budget:<name>@<startMs>`. */
export function budgetLimitName(budget: string, windowStartMs: number): string {
  return `${BUDGET_LIMIT_PREFIX}${budget}@${windowStartMs}`;
}

/** True when a replicated entry's limit name is a budget counter's. */
export function isBudgetLimit(limit: string): boolean {
  return limit.startsWith(BUDGET_LIMIT_PREFIX);
}

/** The budget and window start of a budget counter's limit name, or undefined when malformed. */
export function parseBudgetLimit(
  limit: string,
): { readonly budget: string; readonly windowStartMs: number } | undefined {
  if (!isBudgetLimit(limit)) return undefined;
  const at = limit.lastIndexOf('@');
  if (at <= BUDGET_LIMIT_PREFIX.length) return undefined;
  const start = limit.slice(at + 1);
  if (!/^-?\d{1,16}$/.test(start)) return undefined;
  const windowStartMs = Number(start);
  if (!Number.isSafeInteger(windowStartMs)) return undefined;
  return { budget: limit.slice(BUDGET_LIMIT_PREFIX.length, at), windowStartMs };
}

/** When the window of `budget` that starts at `windowStartMs` ends, as this replica's config says. */
export type WindowEnd = (agentId: string, budget: string, windowStartMs: number) => number;

interface WindowCounters {
  readonly budget: string;
  readonly startMs: number;
  readonly endMs: number;
  /** Committed micro-units per replica slot (`node#incarnation`); only grow. */
  readonly slots: Map<string, number>;
  /** Sum of the slots. */
  total: number;
}

/**
 * Fleet-wide committed spend of calendar budgets (docs/rating.md, "Budgets across replicas").
 * Per agent, budget and window: one grow-only counter per replica slot, incremented only by its
 * own replica when a usage row it committed is charged, merged by taking the larger value per
 * slot. The slot is `node#incarnation`, so a restarted replica starts a new counter instead of
 * counting its old one again from 0. Windows that ended are dropped by `prune`.
 */
export class BudgetReplica {
  /** agentId -> limit name -> counters. */
  private readonly byAgent = new Map<string, Map<string, WindowCounters>>();
  /** Agents whose own counters changed since the replicator last drained them. */
  private dirty = new Set<string>();
  /** Agents whose counters (own or peers') changed since the last snapshot. */
  private unsaved = new Set<string>();
  private windowCount = 0;

  constructor(
    readonly slotId: string,
    private readonly windowEnd: WindowEnd,
  ) {}

  /** The `FleetSpend` an agent's budgets read and charge through. */
  fleetOf(agentId: string): FleetSpend {
    return {
      spent: (budget, windowStartMs) => this.fleetSpent(agentId, budget, windowStartMs),
      committed: (budget, windowStartMs, micros) =>
        this.add(agentId, budget, windowStartMs, micros),
    };
  }

  /** Adds committed spend of this replica to its own counter. */
  add(agentId: string, budget: string, windowStartMs: number, micros: number): void {
    if (!Number.isSafeInteger(micros) || micros <= 0) return;
    const w = this.window(agentId, budget, windowStartMs);
    w.slots.set(this.slotId, (w.slots.get(this.slotId) ?? 0) + micros);
    w.total += micros;
    this.dirty.add(agentId);
    this.unsaved.add(agentId);
  }

  /** The sum of every replica's counter for the window (0 when none is known). */
  fleetSpent(agentId: string, budget: string, windowStartMs: number): number {
    return this.byAgent.get(agentId)?.get(budgetLimitName(budget, windowStartMs))?.total ?? 0;
  }

  /** Agents changed here since the last drain; the replicator sends their entries. */
  drainDirty(): Set<string> {
    const out = this.dirty;
    this.dirty = new Set();
    return out;
  }

  /** Agents with counters. */
  agents(): IterableIterator<string> {
    return this.byAgent.keys();
  }

  /** Every counter of one agent, as replication entries. */
  entriesOfAgent(agentId: string): BucketEntry[] {
    const windows = this.byAgent.get(agentId);
    if (windows === undefined) return [];
    const out: BucketEntry[] = [];
    for (const [limit, w] of windows) {
      const slots = new Map<string, { consumed: number; refunded: number }>();
      for (const [slot, micros] of w.slots) slots.set(slot, { consumed: micros, refunded: 0 });
      out.push({
        agentId,
        limit,
        state: { revision: 0, params: 0, epochMs: w.startMs, overflow: 0, slots },
      });
    }
    return out;
  }

  /**
   * Merges counters from peers (larger value per slot). Entries of windows that ended, malformed
   * ones and non-integer counters are skipped; returns how many were skipped.
   */
  merge(entries: readonly BucketEntry[], nowMs: number): number {
    let skipped = 0;
    for (const e of entries) {
      const parsed = parseBudgetLimit(e.limit);
      if (parsed === undefined || e.state.epochMs !== parsed.windowStartMs) {
        skipped++;
        continue;
      }
      const known = this.byAgent.get(e.agentId)?.get(e.limit);
      const endMs = known?.endMs ?? this.windowEnd(e.agentId, parsed.budget, parsed.windowStartMs);
      if (endMs <= nowMs) {
        skipped++;
        continue;
      }
      const w = known ?? this.window(e.agentId, parsed.budget, parsed.windowStartMs, endMs);
      for (const [slot, c] of e.state.slots) {
        if (!Number.isSafeInteger(c.consumed)) {
          skipped++;
          continue;
        }
        const have = w.slots.get(slot) ?? 0;
        if (c.consumed > have) {
          w.slots.set(slot, c.consumed);
          w.total += c.consumed - have;
          this.unsaved.add(e.agentId);
        }
      }
      // A window created for an entry with no usable slot is dropped again.
      if (w.slots.size === 0) this.drop(e.agentId, e.limit);
    }
    return skipped;
  }

  /** Every counter of the agents changed since the last call, as snapshot rows. */
  drainSnapshot(): BudgetCounterRow[] {
    const rows: BudgetCounterRow[] = [];
    for (const agentId of this.unsaved) {
      for (const [limit, w] of this.byAgent.get(agentId) ?? []) {
        for (const [slot, micros] of w.slots) {
          rows.push({ agentId, limit, slot, micros, endMs: w.endMs });
        }
      }
    }
    this.unsaved.clear();
    return rows;
  }

  /**
   * Takes counters back from a snapshot (larger value per slot; windows that ended are left
   * out). This replica's counters of an earlier run are other slots: its new one starts at 0.
   */
  restore(rows: readonly BudgetCounterRow[], nowMs: number): void {
    for (const r of rows) {
      const parsed = parseBudgetLimit(r.limit);
      if (parsed === undefined || r.endMs <= nowMs || !Number.isSafeInteger(r.micros)) continue;
      const w = this.window(r.agentId, parsed.budget, parsed.windowStartMs, r.endMs);
      const have = w.slots.get(r.slot) ?? 0;
      if (r.micros > have) {
        w.slots.set(r.slot, r.micros);
        w.total += r.micros - have;
      }
    }
  }

  /** Drops every window that ended by `nowMs`; returns how many. */
  prune(nowMs: number): number {
    let dropped = 0;
    for (const [agentId, windows] of this.byAgent) {
      for (const [limit, w] of windows) {
        if (w.endMs <= nowMs) {
          windows.delete(limit);
          this.windowCount--;
          dropped++;
        }
      }
      if (windows.size === 0) this.byAgent.delete(agentId);
    }
    return dropped;
  }

  /** The latest end of an agent's windows (Redis keeps the agent's state at least that long). */
  latestEndMs(agentId: string): number | undefined {
    const windows = this.byAgent.get(agentId);
    if (windows === undefined) return undefined;
    let end: number | undefined;
    for (const w of windows.values()) if (end === undefined || w.endMs > end) end = w.endMs;
    return end;
  }

  /** Windows held (all agents). */
  get size(): number {
    return this.windowCount;
  }

  private window(agentId: string, budget: string, startMs: number, endMs?: number): WindowCounters {
    let windows = this.byAgent.get(agentId);
    if (windows === undefined) {
      windows = new Map();
      this.byAgent.set(agentId, windows);
    }
    const limit = budgetLimitName(budget, startMs);
    let w = windows.get(limit);
    if (w === undefined) {
      w = {
        budget,
        startMs,
        endMs: endMs ?? this.windowEnd(agentId, budget, startMs),
        slots: new Map(),
        total: 0,
      };
      windows.set(limit, w);
      this.windowCount++;
    }
    return w;
  }

  private drop(agentId: string, limit: string): void {
    const windows = this.byAgent.get(agentId);
    if (windows?.delete(limit)) this.windowCount--;
    if (windows?.size === 0) this.byAgent.delete(agentId);
  }
}
