import {
  divRoundHalfEven,
  formatMicros,
  parseMicros,
  tokenCostMicros,
  tokenCostMicrosSafe,
} from '@openclaw-edge/rating';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

describe('money in micro-units', () => {
  it('parses decimal text exactly, and YAML numbers through their decimal text', () => {
    expect(parseMicros('2.50')).toBe(2_500_000n);
    expect(parseMicros('0.000125')).toBe(125n);
    expect(parseMicros(0.15)).toBe(150_000n);
    expect(parseMicros(3)).toBe(3_000_000n);
  });

  it('refuses more than 6 decimals, exponents, signs and junk with a reason', () => {
    expect(parseMicros('0.0000001')).toMatch(/6 decimals/);
    expect(parseMicros(1e-7)).toMatch(/exponent/);
    expect(parseMicros('-1')).toMatch(/non-negative/);
    expect(parseMicros('1,5')).toMatch(/decimal/);
    expect(parseMicros('2000000000')).toMatch(/at most/);
  });

  it('rounds half to even at the micro-unit', () => {
    expect(divRoundHalfEven(5n, 2n)).toBe(2n); // 2.5 → 2
    expect(divRoundHalfEven(7n, 2n)).toBe(4n); // 3.5 → 4
    expect(divRoundHalfEven(11n, 4n)).toBe(3n); // 2.75 → 3
    expect(divRoundHalfEven(9n, 4n)).toBe(2n); // 2.25 → 2
    // $0.50 per million tokens is half a micro-unit per token.
    expect(tokenCostMicros(1, 500_000n)).toBe(0n);
    expect(tokenCostMicros(3, 500_000n)).toBe(2n);
    expect(tokenCostMicros(5, 500_000n)).toBe(2n);
    expect(tokenCostMicros(1_000_000, 2_500_000n)).toBe(2_500_000n);
  });

  it('half-even rounding is within half a micro-unit of the exact value', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 10n ** 24n }),
        fc.bigInt({ min: 1n, max: 10n ** 9n }),
        (n, d) => {
          const q = divRoundHalfEven(n, d);
          const err = q * d - n; // in units of 1/d
          expect(err * 2n <= d && err * 2n >= -d).toBe(true);
        },
      ),
    );
  });

  it('the safe-integer line cost equals the bigint one, or declines beyond 2^53', () => {
    const check = (tokens: number, price: number) => {
      const fast = tokenCostMicrosSafe(tokens, price);
      const exact = tokenCostMicros(tokens, BigInt(price));
      if (BigInt(tokens) * BigInt(price) <= BigInt(Number.MAX_SAFE_INTEGER)) {
        expect(fast).toBe(Number(exact));
      } else expect(fast).toBeUndefined();
    };
    // Ties round to even, as in the bigint version; the edge of the safe range declines.
    for (const [t, p] of [
      [1, 500_000],
      [3, 500_000],
      [5, 500_000],
      [1, 1_500_000],
      [2 ** 26, 2 ** 27 - 1],
      [2 ** 26, 2 ** 27],
      [2 ** 26, 2 ** 27 + 1],
      [1e12, 1e15],
    ]) {
      check(t as number, p as number);
    }
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 1e12 })),
        fc.oneof(fc.integer({ min: 0, max: 100_000_000 }), fc.integer({ min: 0, max: 1e15 })),
        check,
      ),
      { numRuns: 20_000 },
    );
  });

  it('formats micro-units as exact decimals', () => {
    expect(formatMicros(1_250_000)).toBe('1.25');
    expect(formatMicros(-5)).toBe('-0.000005');
    expect(formatMicros(0n)).toBe('0');
  });
});
