import {
  AgentBudgets,
  type BudgetSpec,
  type CalendarPeriod,
  parseMicros,
  toSafeMicros,
  windowAt,
} from '@openclaw-edge/rating';
import { globToRegExp, isGlob } from '../config/glob.js';
import type { Config, ConfigBudget } from '../config/schema.js';
import type { GroupCommitWriter } from '../ledger/group-commit.js';
import type { LedgerStore } from '../ledger/ledger-store.js';

const PERIOD_MS = { hour: 3_600_000, day: 86_400_000, month: 30 * 86_400_000 } as const;

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
  /** When each loaded agent was last used (for eviction). */
  private readonly lastUsed = new Map<string, number>();
  /** Bumped by a reload: a load started under the old config must not install its result. */
  private generation = 0;

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
    this.loading.clear();
    this.lastUsed.clear();
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

  /** True when the agent has no budgets (nothing to load or check). */
  hasNone(agentId: string): boolean {
    return this.resolve(agentId).length === 0;
  }

  /** The loaded budgets of an agent, or undefined. */
  peek(agentId: string): AgentBudgets | undefined {
    return this.loaded.get(agentId);
  }

  /** The agent's budgets, loading their spend from the ledger first if needed. */
  get(agentId: string, nowMs: number): Promise<AgentBudgets> {
    const have = this.loaded.get(agentId);
    if (have !== undefined) {
      this.lastUsed.set(agentId, nowMs);
      return Promise.resolve(have);
    }
    let pending = this.loading.get(agentId);
    if (pending === undefined) {
      const specs = this.resolve(agentId);
      const timeZone = this.timeZone;
      const generation = this.generation;
      pending = this.writer
        .read(
          async () => {
            const seeds = await Promise.all(
              specs.map((spec) => {
                const w =
                  spec.window.kind === 'calendar'
                    ? windowAt(spec.window.period, timeZone, nowMs)
                    : { startMs: nowMs - spec.window.periodMs, endMs: nowMs + 1 };
                return this.store.spent(agentId, w.startMs, w.endMs);
              }),
            );
            return new AgentBudgets(
              specs,
              timeZone,
              nowMs,
              (spec) => seeds[specs.indexOf(spec)] ?? 0,
            );
          },
          (budgets) => {
            if (generation !== this.generation) return;
            this.loaded.set(agentId, budgets);
            this.lastUsed.set(agentId, nowMs);
            this.loading.delete(agentId);
          },
        )
        .catch((error: unknown) => {
          this.loading.delete(agentId);
          throw error;
        });
      this.loading.set(agentId, pending);
    }
    return pending;
  }

  /** Agents whose budgets are in memory. */
  get size(): number {
    return this.loaded.size;
  }
}
