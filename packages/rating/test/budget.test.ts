import { AgentBudgets, type BudgetSpec, type FleetSpend } from '@openclaw-edge/rating';
import { describe, expect, it } from 'vitest';

const at = (iso: string) => Date.parse(iso);
const daily: BudgetSpec = {
  name: 'daily',
  amountMicros: 10_000_000,
  window: { kind: 'calendar', period: 'day' },
  onError: 'deny',
  thresholds: [0.8, 1],
};
const hourly: BudgetSpec = {
  name: 'hourly',
  amountMicros: 3_600_000,
  window: { kind: 'rolling', periodMs: 3_600_000 },
  onError: 'allow',
  thresholds: [],
};

describe('budgets', () => {
  it('a calendar budget denies what does not fit, resets at local midnight, and starts from the seeded spend', () => {
    const now = at('2026-03-10T10:00:00Z');
    const b = new AgentBudgets([daily], 'Europe/Berlin', now, () => 9_000_000);
    expect(b.deniedBy(1_000_000, now)).toBeUndefined();
    expect(b.deniedBy(1_000_001, now)?.name).toBe('daily');
    b.charge(2_000_000, now, now); // usage that happened is always taken
    const s = b.statuses(now)[0];
    expect(s?.remainingMicros).toBe(-1_000_000);
    expect(s?.resetMs).toBe(at('2026-03-10T23:00:00Z') - now);
    const tomorrow = at('2026-03-10T23:00:00Z');
    expect(b.statuses(tomorrow)[0]?.spentMicros).toBe(0);
    expect(b.deniedBy(10_000_000, tomorrow)).toBeUndefined();
  });

  it('zero-cost requests pass even an exhausted budget', () => {
    const now = at('2026-03-10T10:00:00Z');
    const b = new AgentBudgets([daily], 'UTC', now, () => 20_000_000);
    expect(b.deniedBy(0, now)).toBeUndefined();
    expect(b.deniedBy(1, now)?.name).toBe('daily');
  });

  it('late usage from a past window is not charged to the current one', () => {
    const now = at('2026-03-10T10:00:00Z');
    const b = new AgentBudgets([daily], 'UTC', now, () => 0);
    b.charge(5_000_000, at('2026-03-09T23:59:59Z'), now);
    expect(b.statuses(now)[0]?.spentMicros).toBe(0);
  });

  it('counts each threshold once, when a charge crosses it upwards', () => {
    const now = at('2026-03-10T10:00:00Z');
    const b = new AgentBudgets([daily], 'UTC', now, () => 0);
    expect(b.charge(7_999_999, now, now, 'hold')).toEqual([]);
    expect(b.charge(1, now, now, 'hold')).toEqual([{ budget: 'daily', threshold: 0.8 }]);
    expect(b.charge(1_000_000, now, now, 'hold')).toEqual([]);
    expect(b.charge(5_000_000, now, now, 'hold')).toEqual([{ budget: 'daily', threshold: 1 }]);
    b.refund(10_000_000, now, now); // holds given back
    expect(b.charge(20_000_000, now, now, 'hold')).toEqual([
      { budget: 'daily', threshold: 0.8 },
      { budget: 'daily', threshold: 1 },
    ]);
  });

  it('a rolling budget refills exactly, even below a micro-unit per millisecond', () => {
    const t0 = at('2026-03-10T10:00:00Z');
    const b = new AgentBudgets([hourly], 'UTC', t0, () => 0);
    b.charge(3_600_000, t0, t0);
    expect(b.statuses(t0)[0]?.remainingMicros).toBe(0);
    // 1 micro-unit per ms refill: after 1 s, 1000 back; refunds and refills never exceed the amount.
    expect(b.statuses(t0 + 1000)[0]?.remainingMicros).toBe(1000);
    const slow = new AgentBudgets(
      [{ ...hourly, amountMicros: 36, window: { kind: 'rolling', periodMs: 3_600_000 } }],
      'UTC',
      t0,
      () => 36,
    );
    // 36 per hour = one per 100 s. Looking every millisecond must not lose the fractions.
    for (let t = t0; t <= t0 + 200_000; t += 1000) slow.statuses(t);
    expect(slow.statuses(t0 + 200_000)[0]?.remainingMicros).toBe(2);
    expect(slow.statuses(t0 + 3_600_000)[0]?.remainingMicros).toBe(36);
  });

  it('several windows at once: the tightest one denies', () => {
    const now = at('2026-03-10T10:00:00Z');
    const b = new AgentBudgets([daily, hourly], 'UTC', now, () => 0);
    expect(b.deniedBy(3_600_001, now)?.name).toBe('hourly');
    b.charge(1_000_000, now, now);
    expect(b.statuses(now).map((s) => s.remainingMicros)).toEqual([9_000_000, 2_600_000]);
  });

  describe('fleet-wide calendar spend', () => {
    /** A fleet with other replicas' committed spend per window, and this replica's counter. */
    const fleetOf = (others: Map<number, number>) => {
      const own = new Map<number, number>();
      const fleet: FleetSpend = {
        spent: (_budget, start) => (others.get(start) ?? 0) + (own.get(start) ?? 0),
        committed: (_budget, start, micros) => own.set(start, (own.get(start) ?? 0) + micros),
      };
      return { fleet, own };
    };
    const now = at('2026-03-10T10:00:00Z');
    const today = at('2026-03-10T00:00:00Z');

    it('spend is the larger of the ledger seed plus own commits and the fleet sum, plus holds', () => {
      const others = new Map<number, number>();
      const { fleet, own } = fleetOf(others);
      // The ledger seed (shared ledger) already holds 4 of which the fleet counters know 3.
      const b = new AgentBudgets([daily], 'UTC', now, () => 4_000_000, fleet);
      others.set(today, 3_000_000);
      expect(b.statuses(now)[0]?.spentMicros).toBe(4_000_000); // seed wins, no double count
      b.charge(1_000_000, now, now, 'commit');
      expect(own.get(today)).toBe(1_000_000); // own counter moves with committed spend
      expect(b.statuses(now)[0]?.spentMicros).toBe(5_000_000);
      others.set(today, 7_000_000); // other replicas committed more than the seed knew
      expect(b.statuses(now)[0]?.spentMicros).toBe(8_000_000);
      b.charge(1_500_000, now, now, 'hold');
      expect(own.get(today)).toBe(1_000_000); // holds are not replicated
      expect(b.statuses(now)[0]?.spentMicros).toBe(9_500_000);
      expect(b.deniedBy(500_001, now)?.name).toBe('daily');
      expect(b.deniedBy(500_000, now)).toBeUndefined();
    });

    it('a hold becomes committed spend when its write is recorded, or is given back', () => {
      const { fleet, own } = fleetOf(new Map());
      const b = new AgentBudgets([daily, hourly], 'UTC', now, () => 0, fleet);
      b.charge(2_000_000, now, now, 'hold');
      b.charge(1_000_000, now, now, 'hold');
      expect(b.statuses(now).map((s) => s.spentMicros)).toEqual([3_000_000, 3_000_000]);
      b.commitHold(2_000_000, now, now);
      expect(own.get(today)).toBe(2_000_000);
      expect(b.statuses(now).map((s) => s.spentMicros)).toEqual([3_000_000, 3_000_000]);
      b.refund(1_000_000, now, now);
      expect(b.statuses(now).map((s) => s.spentMicros)).toEqual([2_000_000, 2_000_000]);
      // A refund never takes back committed spend of a calendar budget.
      b.refund(5_000_000, now, now);
      expect(b.statuses(now)[0]?.spentMicros).toBe(2_000_000);
    });

    it('counts threshold crossings on the fleet-wide spend', () => {
      const others = new Map([[today, 7_000_000]]);
      const { fleet } = fleetOf(others);
      const b = new AgentBudgets([daily], 'UTC', now, () => 0, fleet);
      expect(b.charge(1_000_000, now, now, 'commit')).toEqual([
        { budget: 'daily', threshold: 0.8 },
      ]);
    });

    it('a new window starts from the fleet counters of that window, not the last one', () => {
      const others = new Map([[today, 9_000_000]]);
      const { fleet, own } = fleetOf(others);
      const b = new AgentBudgets([daily], 'UTC', now, () => 9_500_000, fleet);
      b.charge(100_000, now, now, 'hold');
      const tomorrow = at('2026-03-11T00:00:00Z');
      expect(b.statuses(tomorrow)[0]?.spentMicros).toBe(0);
      others.set(tomorrow, 2_000_000);
      expect(b.statuses(tomorrow + 1)[0]?.spentMicros).toBe(2_000_000);
      // The hold of yesterday's window is not given back from today's.
      b.refund(100_000, now, tomorrow + 1);
      b.charge(500_000, tomorrow + 2, tomorrow + 2, 'commit');
      expect(own.get(tomorrow)).toBe(500_000);
      expect(b.statuses(tomorrow + 2)[0]?.spentMicros).toBe(2_500_000);
    });
  });
});
