import { type CalendarPeriod, type Window, windowAt } from './calendar.js';

/**
 * Money budgets of one agent, in integer micro-units. Two kinds:
 * - calendar: at most `amountMicros` per day, ISO week or month in a time zone; the spend
 *   resets at the local boundary.
 * - rolling: a token bucket of money, `amountMicros` capacity refilled at `amountMicros` per
 *   period, kept exactly in bigint (micro-units × period-ms) so slow refills never round away.
 * Charges for usage that already happened are always taken (a budget can go negative: the
 * usage is real); admission (`deniedBy`) is what denies. Pure: time is passed in.
 *
 * A calendar budget keeps committed spend and holds apart: its spend is
 * max(committed, fleet's committed) + held, where the fleet's part comes from `fleet` (when the
 * budgets are replicated). Both committed values are lower bounds of what the whole fleet spent
 * in the window, so their larger one is too. A rolling budget counts holds and commits alike.
 */

/** What an operator configures for one budget. */
export interface BudgetSpec {
  readonly name: string;
  readonly amountMicros: number;
  readonly window:
    | { readonly kind: 'calendar'; readonly period: CalendarPeriod }
    | { readonly kind: 'rolling'; readonly periodMs: number };
  /** When the budget cannot be checked (its spend cannot be loaded): deny, or allow and say so. */
  readonly onError: 'deny' | 'allow';
  /** Fractions of the amount (0.8, 1) whose upward crossing is counted. */
  readonly thresholds: readonly number[];
}

/** One budget's state after a decision, as the API reports it. */
export interface BudgetStatus {
  readonly name: string;
  readonly amountMicros: number;
  readonly spentMicros: number;
  /** amount - spent; negative when usage overdrew it. */
  readonly remainingMicros: number;
  /** Milliseconds until the calendar window resets, or until the bucket is full again. */
  readonly resetMs: number;
  /** The calendar window, when the budget has one. */
  readonly window?: Window;
}

/** A threshold a charge crossed upwards. */
export interface Crossing {
  readonly budget: string;
  readonly threshold: number;
}

/**
 * Committed spend of calendar windows across a fleet of replicas (per-replica grow-only
 * counters, see docs/rating.md). `spent` is the sum of every replica's counter for a window, a
 * lower bound of what the fleet committed in it; `committed` adds to this replica's own counter.
 */
export interface FleetSpend {
  spent(budget: string, windowStartMs: number): number;
  committed(budget: string, windowStartMs: number, micros: number): void;
}

/** Whether a charge holds money for a write not made yet, or counts usage that was committed. */
export type ChargeKind = 'hold' | 'commit';

interface CalendarState {
  window: Window;
  /** The ledger's spend at load plus what this replica committed since. */
  committed: number;
  /** Admissions waiting for their write (local to this replica). */
  held: number;
}

interface RollingState {
  /** Spend in micro-units × periodMs (exact); decays by amount per ms. */
  usedScaled: bigint;
  lastMs: number;
}

/** Every budget of one agent. */
export class AgentBudgets {
  private readonly states: (CalendarState | RollingState)[];

  /**
   * `seed(spec, window)` gives the spend already recorded: for a calendar budget, in the window
   * containing `nowMs`; for a rolling one, in the period before `nowMs` (a conservative start:
   * it ignores the refill within that period).
   */
  constructor(
    readonly specs: readonly BudgetSpec[],
    private readonly timeZone: string,
    nowMs: number,
    seed: (spec: BudgetSpec, window: Window) => number,
    private readonly fleet?: FleetSpend,
  ) {
    this.states = specs.map((spec) => {
      if (spec.window.kind === 'calendar') {
        const window = windowAt(spec.window.period, timeZone, nowMs);
        return { window, committed: seed(spec, window), held: 0 };
      }
      const spent = seed(spec, { startMs: nowMs - spec.window.periodMs, endMs: nowMs + 1 });
      return { usedScaled: BigInt(spent) * BigInt(spec.window.periodMs), lastMs: nowMs };
    });
  }

  /** The first budget that cannot take `costMicros` now, or undefined when all can. Zero cost always passes. */
  deniedBy(costMicros: number, nowMs: number): BudgetStatus | undefined {
    if (costMicros <= 0) return undefined;
    for (let i = 0; i < this.specs.length; i++) {
      const s = this.status(i, nowMs);
      if (s.remainingMicros < costMicros) return s;
    }
    return undefined;
  }

  /**
   * Charges `costMicros` for usage at `timeMs` (always taken): a `hold` for an admission whose
   * write is still to come, or a `commit` of usage whose row was committed. A calendar budget is
   * charged only when `timeMs` falls in its current window (late usage of a past window is in the
   * ledger, not in today's budget); a rolling one when `timeMs` is within its last period.
   * Returns the thresholds crossed upwards.
   */
  charge(
    costMicros: number,
    timeMs: number,
    nowMs: number,
    kind: ChargeKind = 'commit',
  ): Crossing[] {
    const crossings: Crossing[] = [];
    if (costMicros === 0) return crossings;
    this.specs.forEach((spec, i) => {
      const before = this.status(i, nowMs).spentMicros;
      if (!this.apply(i, costMicros, timeMs, nowMs, kind)) return;
      const after = this.status(i, nowMs).spentMicros;
      for (const t of spec.thresholds) {
        const mark = spec.amountMicros * t;
        if (before < mark && after >= mark) crossings.push({ budget: spec.name, threshold: t });
      }
    });
    return crossings;
  }

  /**
   * Turns a hold of `costMicros` for `timeMs` into committed spend (its write was recorded). A
   * rolling budget already counts the hold as spend: nothing changes there.
   */
  commitHold(costMicros: number, timeMs: number, nowMs: number): void {
    if (costMicros === 0) return;
    this.specs.forEach((spec, i) => {
      if (spec.window.kind !== 'calendar') return;
      if (this.apply(i, -costMicros, timeMs, nowMs, 'hold')) {
        this.apply(i, costMicros, timeMs, nowMs, 'commit');
      }
    });
  }

  /**
   * Gives back a hold of `costMicros` charged for `timeMs` (a cancelled or over-estimated
   * reservation, a replayed or failed write). Committed spend is never given back.
   */
  refund(costMicros: number, timeMs: number, nowMs: number): void {
    if (costMicros === 0) return;
    this.specs.forEach((_, i) => {
      this.apply(i, -costMicros, timeMs, nowMs, 'hold');
    });
  }

  /** Every budget's state at `nowMs`. */
  statuses(nowMs: number): BudgetStatus[] {
    return this.specs.map((_, i) => this.status(i, nowMs));
  }

  private apply(
    i: number,
    micros: number,
    timeMs: number,
    nowMs: number,
    kind: ChargeKind,
  ): boolean {
    const spec = this.specs[i] as BudgetSpec;
    const state = this.states[i] as CalendarState | RollingState;
    if (spec.window.kind === 'calendar') {
      const c = this.roll(i, nowMs) as CalendarState;
      if (timeMs < c.window.startMs || timeMs >= c.window.endMs) return false;
      if (kind === 'hold') {
        c.held = Math.max(0, c.held + micros);
      } else {
        c.committed += micros;
        if (micros > 0) this.fleet?.committed(spec.name, c.window.startMs, micros);
      }
      return true;
    }
    const r = state as RollingState;
    if (timeMs <= nowMs - spec.window.periodMs) return false;
    this.decay(i, nowMs);
    r.usedScaled += BigInt(micros) * BigInt(spec.window.periodMs);
    if (r.usedScaled < 0n) r.usedScaled = 0n;
    return true;
  }

  private roll(i: number, nowMs: number): CalendarState | RollingState {
    const spec = this.specs[i] as BudgetSpec;
    const state = this.states[i] as CalendarState;
    if (spec.window.kind === 'calendar' && nowMs >= state.window.endMs) {
      state.window = windowAt(spec.window.period, this.timeZone, nowMs);
      state.committed = 0;
      state.held = 0;
    }
    return state;
  }

  private decay(i: number, nowMs: number): void {
    const spec = this.specs[i] as BudgetSpec;
    const r = this.states[i] as RollingState;
    if (nowMs > r.lastMs) {
      r.usedScaled -= BigInt(nowMs - r.lastMs) * BigInt(spec.amountMicros);
      if (r.usedScaled < 0n) r.usedScaled = 0n;
      r.lastMs = nowMs;
    }
  }

  private status(i: number, nowMs: number): BudgetStatus {
    const spec = this.specs[i] as BudgetSpec;
    if (spec.window.kind === 'calendar') {
      const c = this.roll(i, nowMs) as CalendarState;
      const fleet = this.fleet?.spent(spec.name, c.window.startMs) ?? 0;
      const spent = Math.max(c.committed, fleet) + c.held;
      return {
        name: spec.name,
        amountMicros: spec.amountMicros,
        spentMicros: spent,
        remainingMicros: spec.amountMicros - spent,
        resetMs: c.window.endMs - nowMs,
        window: c.window,
      };
    }
    this.decay(i, nowMs);
    const r = this.states[i] as RollingState;
    const period = BigInt(spec.window.periodMs);
    // Spend rounds up to the micro-unit: the remaining amount is never overstated.
    const spent = Number((r.usedScaled + period - 1n) / period);
    const resetMs =
      spec.amountMicros === 0
        ? 0
        : Number((r.usedScaled + BigInt(spec.amountMicros) - 1n) / BigInt(spec.amountMicros));
    return {
      name: spec.name,
      amountMicros: spec.amountMicros,
      spentMicros: spent,
      remainingMicros: spec.amountMicros - spent,
      resetMs,
    };
  }
}
