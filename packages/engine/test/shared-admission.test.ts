import { createBucket, definePolicy, tryConsume } from '@openclaw-edge/core';
import { Limiter } from '@openclaw-edge/engine';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { worstExcess } from './helpers.js';

/**
 * `shared` admission (docs/replication.md): a replica in a fleet of R spends a shared limit only
 * out of its share, cut as weight·available whenever the fleet sync point moves.
 */

function mulberry(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const names = (n: number) => Array.from({ length: n }, (_, i) => `r${i}`);

function fleetOf(
  n: number,
  capacity: number,
  refillPerSecond: number,
  mode: 'shared' | 'optimistic' = 'shared',
): Limiter[] {
  const policy = definePolicy([
    { name: 'l', capacity, refill: refillPerSecond, per: 'second', mode },
  ]);
  const ids = names(n);
  return ids.map(
    (nodeId) => new Limiter({ nodeId, incarnation: 1, defaultPolicy: policy, peers: ids }),
  );
}

/** Full all-to-all exchange at `t`, after which every replica has heard every peer up to `t`. */
function syncAll(fleet: readonly Limiter[], t: number): void {
  const deltas = fleet.map((r) => r.drainDirty(t));
  fleet.forEach((r, i) => {
    deltas.forEach((d, j) => {
      if (i !== j) r.merge(d, t);
    });
  });
  for (const r of fleet) for (const p of fleet) if (p !== r) r.peerHeardFrom(p.nodeId, t);
}

describe('shared admission', () => {
  it('with one replica decides exactly like the textbook bucket (and like optimistic)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 2000 }),
            cost: fc.integer({ min: 0, max: 30 }),
          }),
          {
            maxLength: 200,
          },
        ),
        (capacity, refill, steps) => {
          const spec = { name: 'l', capacity, refill, per: 'second' } as const;
          const shared = new Limiter({
            nodeId: 'solo',
            incarnation: 1,
            defaultPolicy: definePolicy([{ ...spec, mode: 'shared' }]),
            peers: ['solo'],
          });
          const optimistic = new Limiter({
            nodeId: 'solo',
            incarnation: 1,
            defaultPolicy: definePolicy([{ ...spec, mode: 'optimistic' }]),
          });
          const limit = definePolicy([spec]).limits[0];
          if (limit === undefined) throw new Error('no limit');
          let state = createBucket(limit, 0);
          let t = 0;
          for (const step of steps) {
            t += step.gap;
            const a = shared.check('agent', step.cost, t);
            const b = optimistic.check('agent', step.cost, t);
            const ref = tryConsume(state, limit, 'solo', step.cost, t);
            if (ref.allowed) state = ref.state;
            expect(shared.replicas).toBe(1);
            expect({ ...a, limit: a.limit.name }).toEqual({ ...b, limit: b.limit.name });
            expect(a.allowed).toBe(ref.allowed);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('cuts shares that never sum to more than what remains at the sync point', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.integer({ min: 1, max: 500 }),
        fc.integer({ min: 1, max: 500 }),
        fc.array(
          fc.record({
            replica: fc.nat(),
            gap: fc.integer({ min: 0, max: 500 }),
            cost: fc.integer({ min: 1, max: 20 }),
            sync: fc.boolean(),
          }),
          { maxLength: 150 },
        ),
        (n, capacity, refill, steps) => {
          const fleet = fleetOf(n, capacity, refill);
          let t = 0;
          // Uneven histories: charges on random replicas, full syncs now and then.
          for (const step of steps) {
            t += step.gap;
            (fleet[step.replica % n] as Limiter).check('agent', step.cost, t);
            if (step.sync) syncAll(fleet, t);
          }
          t += 1;
          syncAll(fleet, t);
          // Anti-entropy: full exports, so every replica holds the same state (a merge-time
          // normalisation is not in any delta).
          const full = fleet.map((r) => r.exportAgent('agent', t));
          for (const r of fleet) for (const f of full) r.merge(f, t);
          const views = fleet.map((r) => r.peek('agent', t).limits[0]?.remaining ?? 0);
          for (const v of views) expect(v).toBeCloseTo(views[0] ?? 0, 9);
          const remaining = Math.max(0, ...views);
          const shares = fleet.map((r) => r.shareStatus('agent', t)[0]);
          if (shares.some((s) => s === undefined)) return; // agent never seen: nothing to share
          const weights = shares.reduce((sum, s) => sum + (s?.weight ?? 0), 0);
          const levels = shares.reduce((sum, s) => sum + (s?.level ?? 0), 0);
          expect(weights).toBeLessThanOrEqual(1 + 1e-9);
          expect(levels).toBeLessThanOrEqual(remaining * (1 + 1e-9) + 1e-9);
          for (const s of shares) expect(s?.cutAtSyncPoint).toBe(t);
        },
      ),
      { numRuns: 150 },
    );
  });

  const scenario = fc.record({
    replicas: fc.integer({ min: 2, max: 5 }),
    syncMs: fc.integer({ min: 5, max: 200 }),
    delayFraction: fc.double({ min: 0, max: 0.9, noNaN: true }),
    capacity: fc.integer({ min: 1, max: 200 }),
    refillPerSecond: fc.integer({ min: 1, max: 500 }),
    maxCost: fc.integer({ min: 1, max: 10 }),
    load: fc.double({ min: 0.01, max: 0.9, noNaN: true }),
    idleGapMs: fc.integer({ min: 0, max: 20_000 }),
    seed: fc.integer(),
    staggered: fc.boolean(),
  });

  type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

  /**
   * Every replica sends at the same tick; deltas arrive `delay` ms later (delay < sync
   * interval), and then the receiver has heard its peers up to the tick. Returns the worst
   * window excess of the fleet's admissions.
   */
  function runFleet(s: Scenario, mode: 'shared' | 'optimistic'): number {
    const fleet = fleetOf(s.replicas, s.capacity, s.refillPerSecond, mode);
    const random = mulberry(s.seed);
    const delay = Math.floor(s.delayFraction * s.syncMs);
    // Every replica ticks at the same phase, or (staggered) each at its own.
    const phases = fleet.map((_, i) =>
      s.staggered ? Math.floor(mulberry(s.seed + i)() * s.syncMs) : s.syncMs - 1,
    );
    const inFlight: {
      at: number;
      sentAt: number;
      from: number;
      entries: ReturnType<Limiter['drainDirty']>;
    }[] = [];
    const admissions: { t: number; cost: number }[] = [];
    const durationMs = 3_000 + s.idleGapMs;
    for (let t = 0; t < durationMs; t++) {
      while (inFlight.length > 0 && (inFlight[0]?.at ?? Infinity) <= t) {
        const m = inFlight.shift();
        if (m === undefined) break;
        fleet.forEach((r, i) => {
          if (i === m.from) return;
          r.merge(m.entries, t);
          r.peerHeardFrom(`r${m.from}`, m.sentAt);
        });
      }
      const active = t < 1_500 || t >= 1_500 + s.idleGapMs;
      if (active) {
        for (const replica of fleet) {
          if (random() >= s.load) continue;
          const cost = 1 + Math.floor(random() * s.maxCost);
          if (replica.check('agent', cost, t).allowed) admissions.push({ t, cost });
        }
      }
      fleet.forEach((r, i) => {
        if (t % s.syncMs !== (phases[i] as number)) return;
        inFlight.push({ at: t + delay, sentAt: t, from: i, entries: r.drainDirty(t) });
      });
      inFlight.sort((x, y) => x.at - y.at);
    }
    return worstExcess(admissions, s.capacity, s.refillPerSecond / 1000);
  }

  it('over-admits under sync delay at most a quarter bucket with aligned ticks, an R-th of optimistic with staggered ones', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const r = s.refillPerSecond / 1000;
        const delay = Math.floor(s.delayFraction * s.syncMs);
        const shared = runFleet(s, 'shared');
        // docs/replication.md. Replicas ticking together (the transport contract): a quarter
        // bucket (C + r·L')/4 beyond an exact bucket whatever R (L' = sync interval + delay).
        // Each at its own phase: their sync points differ, so cuts split slightly different
        // pools; (R − 1)/R·(C + r·L'), an R-th of what optimistic allows, (R − 1)·(C + r·L').
        // Plus one request per replica larger than a whole share (admitted on a full share).
        // Measured, not proven: 400 random fleets each peaked at 0.07 and 0.33 of (C + r·L').
        const unit = s.capacity + r * (s.syncMs + delay);
        const bound =
          (s.staggered ? ((s.replicas - 1) / s.replicas) * unit : unit / 4) +
          s.replicas * s.maxCost;
        expect(shared).toBeLessThanOrEqual(bound + 1e-6);
      }),
      { numRuns: 60 },
    );
  });

  it('tracks the sync point as the oldest peer heard from, and only for peers in the set', () => {
    const [a] = fleetOf(3, 10, 1);
    if (a === undefined) throw new Error('no replica');
    expect(a.replicas).toBe(3);
    expect(a.syncPointMs).toBe(Number.NEGATIVE_INFINITY);
    expect(a.peerHeardFrom('r1', 100)).toBe(true);
    expect(a.syncPointMs).toBe(Number.NEGATIVE_INFINITY);
    expect(a.peerHeardFrom('r2', 50)).toBe(true);
    expect(a.syncPointMs).toBe(50);
    expect(a.peerHeardFrom('r2', 40)).toBe(true); // never backwards
    expect(a.syncPointMs).toBe(50);
    expect(a.peerHeardFrom('stranger', 500)).toBe(false);
    a.setPeers(['r1', 'r0']); // r2 is gone for good; r0 is this replica
    expect(a.replicas).toBe(2);
    expect(a.syncPointMs).toBe(100);
    a.setPeers([]);
    expect(a.replicas).toBe(1);
    expect(a.syncPointMs).toBe(Number.POSITIVE_INFINITY);
  });

  it('a replica cut off from its peers keeps to its last share, refilled at its weight', () => {
    // Capacity 100, 10/s, 4 replicas that never hear from each other: each is held to a
    // quarter of the bucket and of its refill, so together they cannot pass one exact bucket.
    const fleet = fleetOf(4, 100, 10);
    const durationMs = 60_000;
    let admitted = 0;
    for (let t = 0; t < durationMs; t += 5) {
      for (const r of fleet) if (r.check('agent', 1, t).allowed) admitted++;
    }
    const exact = 100 + (10 * durationMs) / 1000;
    expect(admitted).toBeLessThanOrEqual(exact);
    expect(admitted).toBeGreaterThanOrEqual(exact - 4);
    for (const r of fleet) expect(r.shareStatus('agent', durationMs)[0]?.weight).toBe(0.25);
  });

  it('a replica cut off from its peers does not raise overflow on its stale view (docs/crdt.md hazard)', () => {
    // C = 10, r = 1/s. a spends 1/s for an hour while b, cut off and idle, charges 1 at the end.
    // Normalising on b's stale view would set overflow = 3,600 and, merged, leave the fleet
    // thousands of tokens in debt; only refill up to the sync point may be absorbed, so after
    // the heal both see what an exact bucket created at a's first charge (t = 1 s) would:
    // 10 + 3,599 − 3,601 = 8.
    const [a, b] = fleetOf(2, 10, 1, 'optimistic');
    if (a === undefined || b === undefined) throw new Error('no fleet');
    syncAll([a, b], 0);
    for (let t = 1_000; t <= 3_600_000; t += 1_000)
      expect(a.check('agent', 1, t).allowed).toBe(true);
    expect(b.check('agent', 1, 3_600_000).allowed).toBe(true);
    syncAll([a, b], 3_600_000);
    for (const r of [a, b])
      expect(r.peek('agent', 3_600_000).limits[0]?.remaining).toBeCloseTo(8, 6);
  });

  it('a denial by the share reports what the share still holds, and when it will hold enough', () => {
    // 2 replicas that never hear from each other: each holds half of C = 10, refilled at 0.5/s.
    const [a] = fleetOf(2, 10, 1);
    if (a === undefined) throw new Error('no replica');
    expect(a.check('agent', 5, 0).allowed).toBe(true);
    const denied = a.check('agent', 1, 0);
    expect(denied.allowed).toBe(false);
    expect(denied.remaining).toBeCloseTo(0, 9);
    expect(denied.retryAfterMs).toBe(2_000);
    // A denial by the bucket itself (cost above what the view holds) reports the bucket.
    const tooBig = a.check('agent', 6, 0);
    expect(tooBig.allowed).toBe(false);
    expect(tooBig.remaining).toBeCloseTo(5, 9);
    expect(a.check('agent', 1, 2_000).allowed).toBe(true);
  });
});
