import { bucketToJson, InvalidCostError, UnknownLimitError } from '@openclaw-edge/core';
import { describe, expect, it } from 'vitest';
import { limiter, tenPerTenSeconds } from './helpers.js';

const snapshot = (l: ReturnType<typeof limiter>, agent: string) =>
  l.exportAgent(agent, 0).map((e) => ({ limit: e.limit, state: bucketToJson(e.state) }));

describe('a single limiter', () => {
  it('admits exactly the burst, then denies with the wait until one token is back', () => {
    const l = limiter([tenPerTenSeconds]);
    for (let i = 0; i < 10; i++) expect(l.check('a', 1, 1_000).allowed).toBe(true);
    const denied = l.check('a', 1, 1_000);
    expect(denied).toMatchObject({
      allowed: false,
      retryAfterMs: 1_000,
      remaining: 0,
      resetMs: 10_000,
    });
    expect(l.check('a', 1, 1_999).allowed).toBe(false);
    expect(l.check('a', 1, 2_000).allowed).toBe(true);
  });

  it('reports the remaining tokens of the tightest limit', () => {
    const l = limiter([
      tenPerTenSeconds,
      { name: 'tokens', resource: 'tokens', capacity: 1000, refill: 10, per: 'second' },
    ]);
    const d = l.check('a', { requests: 1, tokens: 900 }, 0);
    expect(d.allowed).toBe(true);
    expect(d.limit.name).toBe('tokens');
    expect(d.remaining).toBe(100);
    expect(d.resetMs).toBe(90_000);
  });

  it('denied check charges nothing', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 7, 0);
    const before = snapshot(l, 'a');
    expect(l.check('a', 5, 0).allowed).toBe(false);
    expect(snapshot(l, 'a')).toEqual(before);
  });

  it('charges all limits or none', () => {
    const l = limiter([
      tenPerTenSeconds,
      { name: 'tokens', resource: 'tokens', capacity: 100, refill: 1, per: 'second' },
    ]);
    expect(l.check('a', { requests: 1, tokens: 150 }, 0)).toMatchObject({
      allowed: false,
      retryAfterMs: Number.POSITIVE_INFINITY,
    });
    expect(l.peek('a', 0).limits.map((s) => s.remaining)).toEqual([10, 100]);
    expect(l.check('a', { requests: 1, tokens: 60 }, 0).allowed).toBe(true);
    expect(l.peek('a', 0).limits.map((s) => s.remaining)).toEqual([9, 40]);
  });

  it('checks only the named limits when asked', () => {
    const l = limiter([tenPerTenSeconds, { name: 'burst', capacity: 2, refill: 1, per: 'minute' }]);
    expect(l.check('a', 5, 0, ['rps']).allowed).toBe(true);
    expect(l.peek('a', 0).limits.map((s) => s.remaining)).toEqual([5, 2]);
    expect(() => l.check('a', 1, 0, ['nope'])).toThrow(UnknownLimitError);
  });

  it('checkAndPeek decides like check and reports what peek reports afterwards', () => {
    const specs = [
      tenPerTenSeconds,
      { name: 'tokens', resource: 'tokens', capacity: 100, refill: 1, per: 'second' as const },
    ];
    const a = limiter(specs);
    const b = limiter(specs);
    const steps: [number, { requests: number; tokens: number }, string[] | undefined][] = [
      [0, { requests: 1, tokens: 60 }, undefined],
      [100, { requests: 3, tokens: 50 }, undefined],
      [200, { requests: 2, tokens: 0 }, ['rps']],
      [5_000, { requests: 1, tokens: 45 }, undefined],
    ];
    for (const [now, cost, names] of steps) {
      const both = a.checkAndPeek('x', cost, now, names);
      expect(both.decision).toEqual(b.check('x', cost, now, names));
      expect(both.status).toEqual(b.peek('x', now));
    }
  });

  it('retry-after is the longest wait among the denying limits', () => {
    const l = limiter([tenPerTenSeconds, { name: 'slow', capacity: 10, refill: 1, per: 'minute' }]);
    l.check('a', 10, 0);
    expect(l.check('a', 2, 0).retryAfterMs).toBe(120_000);
  });

  it('peek reads without charging and shows an unknown agent as full', () => {
    const l = limiter([tenPerTenSeconds]);
    expect(l.peek('ghost', 0)).toMatchObject({
      tracked: false,
      limits: [{ remaining: 10, resetMs: 0 }],
    });
    expect(l.size).toBe(0);
    l.check('a', 4, 0);
    expect(l.peek('a', 500).limits[0]).toMatchObject({ remaining: 6.5, resetMs: 3_500 });
    expect(l.peek('a', 500).limits[0]?.remaining).toBe(6.5);
  });

  it('refunds give tokens back but never past capacity', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 8, 0);
    expect(l.refund('a', 5, 0)[0]?.refunded).toBe(5);
    expect(l.peek('a', 0).limits[0]?.remaining).toBe(7);
    expect(l.refund('a', 50, 0)[0]?.refunded).toBe(3);
    expect(l.peek('a', 0).limits[0]?.remaining).toBe(10);
    // Refunding a full bucket banks nothing: the burst stays 10.
    expect(l.refund('a', 5, 0)[0]?.refunded).toBe(0);
    for (let i = 0; i < 10; i++) expect(l.check('a', 1, 0).allowed).toBe(true);
    expect(l.check('a', 1, 0).allowed).toBe(false);
    expect(l.refund('ghost', 1, 0)[0]?.refunded).toBe(0);
  });

  it('never lets a long idle period bank more than the burst', () => {
    const l = limiter([tenPerTenSeconds]);
    l.check('a', 10, 0);
    const dayLater = 86_400_000;
    for (let i = 0; i < 10; i++) expect(l.check('a', 1, dayLater).allowed).toBe(true);
    expect(l.check('a', 1, dayLater).allowed).toBe(false);
  });

  it('rejects bad costs with a coded error and charges nothing', () => {
    const l = limiter([tenPerTenSeconds]);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, 1e16]) {
      expect(() => l.check('a', bad, 0)).toThrow(InvalidCostError);
    }
    expect(() => l.check('a', { requests: -1 }, 0)).toThrow(/cost\.requests/);
    expect(l.size).toBe(0);
  });
});
