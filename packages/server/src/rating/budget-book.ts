import { globToRegExp, isGlob } from '@openclaw-edge/core';
import {
  AgentBudgets,
  type BudgetSpec,
  type CalendarPeriod,
  parseMicros,
  toSafeMicros,
  windowAt,
} from '@openclaw-edge/rating';
import type { Config, ConfigBudget } from '../config/schema.js';
import type { GroupCommitWriter } from '../ledger/group-commit.js';
import type { LedgerStore } from '../ledger/ledger-store.js';
import type { BudgetReplica } from './budget-replica.js';

const PERIOD_MS = { hour: 3_600_000, day: 86_400_000, month: 30 * 86_400_000 } as const;

interface Waiter {
  resolve(budgets: AgentBudgets): void;
  reject(error: unknown): void;
}

/** Which budgets govern an agent: an exact id, then patterns in order, then the default list. */
export type BudgetResolver = (agentId: string) => readonly BudgetSpec[];

/** Compiles the `budgets` section. */
export function compileBudgets(config: Config): { resolve: BudgetResolver; timeZone: string } {
  const { thresholds } = config.budgets;
  const toSpec = (b: ConfigBudget): BudgetSpec => ({
    name: b.name,
    amountMicros: toSafeMicros(parseMicros(b.amount) as bigint),
    window:
      b.window !== undefined
        ? { kind: 'calendar', period: b.window as CalendarPeriod }
        : { kind: 'rolling', periodMs: PERIOD_MS[b.per ?? 'day'] },
    onError: b.on_error,
    thresholds,
  });
  const fallback = config.budgets.default.map(toSpec);
  const exact = new Map<string, BudgetSpec[]>();
  const patterns: { re: RegExp; specs: BudgetSpec[] }[] = [];
  for (const rule of config.budgets.agents) {
    const specs = rule.budgets.map(toSpec);
    if (!isGlob(rule.match)) {
      if (!exact.has(rule.match)) exact.set(rule.match, specs);
    } else patterns.push({ re: globToRegExp(rule.match), specs });
  }
  const resolve: BudgetResolver = (agentId) => {
    const hit = exact.get(agentId);
    if (hit !== undefined) return hit;
    for (const p of patterns) if (p.re.test(agentId)) return p.specs;
    return fallback;
  };
  return { resolve, timeZone: config.budgets.time_zone };
}

/**
 * The budgets of every agent seen, loaded from the ledger on first use. Loads run through the
 * group-commit writer between batches, so a load sees exactly the batches acknowledged before
 * it: a committed charge is applied in memory only when the agent was already loaded (a later
 * load counts it from the ledger instead). That makes each event count once, never twice.
 */
export class BudgetCache {
  private readonly loaded = new Map<string, AgentBudgets>();
  private readonly loading = new Map<string, Promise<AgentBudgets>>();
  /** Agents waiting for the next load. */
  private queued = new Map<string, Waiter>();
  private loadScheduled = false;
  /** When each loaded agent was last used (for eviction). */
  private readonly lastUsed = new Map<string, number>();
  /** Bumped by a reload: a load started under the old config must not install its result. */
  private generation = 0;
  /** Fleet-wide committed spend of calendar budgets, when replication is on. */
  private fleet: BudgetReplica | undefined;

  constructor(
    private resolve: BudgetResolver,
    private timeZone: string,
    private readonly store: LedgerStore,
    private readonly writer: GroupCommitWriter,
  ) {}

  /** Swaps the budget config (a reload); agents are reloaded from the ledger on next use. */
  reconfigure(resolve: BudgetResolver, timeZone: string): void {
    this.resolve = resolve;
    this.timeZone = timeZone;
    this.generation++;
    this.loaded.clear();
    this.lastUsed.clear();
    // Loads still queued read under the new config; one already running is not kept.
  }

  /**
   * Forgets agents unused for `idleMs` and not `pinned` (an open reservation holds money in
   * their in-memory budgets, which the ledger does not know). A forgotten agent is read from
   * the ledger again at its next request. Returns how many were forgotten.
   */
  evictIdle(nowMs: number, idleMs: number, pinned: (agentId: string) => boolean): number {
    let evicted = 0;
    for (const [agentId, at] of this.lastUsed) {
      if (nowMs - at >= idleMs && !pinned(agentId)) {
        this.loaded.delete(agentId);
        this.lastUsed.delete(agentId);
        evicted++;
      }
    }
    return evicted;
  }

  /**
   * Shares committed calendar spend with the fleet through `fleet` (replication on). Set before
   * the first request: budgets loaded earlier would not read it.
   */
  replicate(fleet: BudgetReplica): void {
    this.fleet = fleet;
  }

  /**
   * The end of the window of the agent's calendar budget `budget` that starts at `startMs`, as
   * the current config has it; for a budget it does not know, the longest window (a month) plus
   * a day, so counters from a peer with another config are still dropped in time.
   */
  windowEnd(agentId: string, budget: string, startMs: number): number {
    const spec = this.resolve(agentId).find((s) => s.name === budget);
    if (spec !== undefined && spec.window.kind === 'calendar') {
      return windowAt(spec.window.period, this.timeZone, startMs).endMs;
    }
    return startMs + 32 * 86_400_000;
  }

  /**
   * A usage row of an agent whose budgets are not in memory was committed: its load counts it
   * from the ledger, and the fleet's counters get it here (each calendar budget whose current
   * window holds `timeMs`).
   */
  committedUnloaded(agentId: string, costMicros: number, timeMs: number, nowMs: number): void {
    const fleet = this.fleet;
    if (fleet === undefined || costMicros <= 0) return;
    for (const spec of this.resolve(agentId)) {
      if (spec.window.kind !== 'calendar') continue;
      const w = windowAt(spec.window.period, this.timeZone, nowMs);
      if (timeMs >= w.startMs && timeMs < w.endMs)
        fleet.add(agentId, spec.name, w.startMs, costMicros);
    }
  }

  /** True when the agent has no budgets (nothing to load or check). */
  hasNone(agentId: string): boolean {
    return this.resolve(agentId).length === 0;
  }

  /** The loaded budgets of an agent, or undefined. */
  peek(agentId: string): AgentBudgets | undefined {
    return this.loaded.get(agentId);
  }

  /** The loaded budgets of an agent, marked as used now (for eviction), or undefined. */
  touch(agentId: string, nowMs: number): AgentBudgets | undefined {
    const have = this.loaded.get(agentId);
    if (have !== undefined) this.lastUsed.set(agentId, nowMs);
    return have;
  }

  /**
   * The agent's budgets, loading their spend from the ledger first if needed. Agents asked for
   * while a load is queued join it: one read serves them all (one grouped query per distinct
   * window), so a restart under load does not queue one read per agent in front of the writes.
   */
  get(agentId: string, nowMs: number): Promise<AgentBudgets> {
    const have = this.loaded.get(agentId);
    if (have !== undefined) {
      this.lastUsed.set(agentId, nowMs);
      return Promise.resolve(have);
    }
    const pending = this.loading.get(agentId);
    if (pending !== undefined) return pending;
    let waiter!: Waiter;
    const promise = new Promise<AgentBudgets>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    this.loading.set(agentId, promise);
    this.queued.set(agentId, waiter);
    if (!this.loadScheduled) {
      this.loadScheduled = true;
      // After this turn: every agent asked for by the same request (a batch) joins one read.
      setImmediate(() => void this.loadQueued(nowMs));
    }
    return promise;
  }

  /** One read for every agent queued so far. */
  private async loadQueued(nowMs: number): Promise<void> {
    let generation = this.generation;
    let batch = new Map<string, Waiter>();
    try {
      await this.writer.read(
        async () => {
          // Taken when the read runs, so agents queued while it waited for the writer join it.
          generation = this.generation;
          batch = this.queued;
          this.queued = new Map();
          this.loadScheduled = false;
          return this.readSpend([...batch.keys()], nowMs);
        },
        (loaded) => {
          for (const [agentId, budgets] of loaded) {
            this.loading.delete(agentId);
            // A reload during the read: answer this once, but do not keep old-config budgets.
            if (generation === this.generation) {
              this.loaded.set(agentId, budgets);
              this.lastUsed.set(agentId, nowMs);
            }
            batch.get(agentId)?.resolve(budgets);
          }
        },
      );
    } catch (error) {
      for (const [agentId, w] of batch) {
        this.loading.delete(agentId);
        w.reject(error);
      }
    }
  }

  /** Budgets of `agentIds` with their stored spend: one grouped query per distinct window. */
  private async readSpend(agentIds: readonly string[], nowMs: number) {
    const timeZone = this.timeZone;
    const plans = agentIds.map((agentId) => {
      const specs = this.resolve(agentId);
      const windows = specs.map((spec) =>
        spec.window.kind === 'calendar'
          ? windowAt(spec.window.period, timeZone, nowMs)
          : { startMs: nowMs - spec.window.periodMs, endMs: nowMs + 1 },
      );
      return { agentId, specs, windows };
    });
    const byWindow = new Map<string, { startMs: number; endMs: number; agents: Set<string> }>();
    for (const p of plans) {
      for (const w of p.windows) {
        const key = `${w.startMs}:${w.endMs}`;
        let group = byWindow.get(key);
        if (group === undefined) {
          group = { ...w, agents: new Set() };
          byWindow.set(key, group);
        }
        group.agents.add(p.agentId);
      }
    }
    const sums = new Map<string, Map<string, number>>();
    for (const [key, g] of byWindow) {
      sums.set(key, await this.store.spentByAgent([...g.agents], g.startMs, g.endMs));
    }
    const out = new Map<string, AgentBudgets>();
    for (const p of plans) {
      const seeds = p.windows.map((w) => sums.get(`${w.startMs}:${w.endMs}`)?.get(p.agentId) ?? 0);
      out.set(
        p.agentId,
        new AgentBudgets(
          p.specs,
          timeZone,
          nowMs,
          (spec) => seeds[p.specs.indexOf(spec)] ?? 0,
          this.fleet?.fleetOf(p.agentId),
        ),
      );
    }
    return out;
  }

  /** Agents whose budgets are in memory. */
  get size(): number {
    return this.loaded.size;
  }
}
