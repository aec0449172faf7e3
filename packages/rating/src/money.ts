/**
 * Money as integer micro-units (one millionth of the currency unit), never a float. Prices are
 * parsed from their decimal text; products are computed in bigint and rounded once, half to
 * even, at the micro-unit. Amounts leave this module as safe integers (checked).
 */

/** Micro-units per currency unit. */
export const MICROS_PER_UNIT = 1_000_000n;

/** Largest amount of micro-units any single price, budget or cost may reach (1e9 units). */
export const MAX_MICROS = 1_000_000_000_000_000;

const DECIMAL = /^(\d{1,15})(?:\.(\d{1,6}))?$/;

/**
 * Parses a non-negative decimal amount of currency units ("2.50", "0.000125", 3) into
 * micro-units. Numbers are read through their shortest decimal text (so YAML's `0.15` is exactly
 * 0.15); more than 6 decimals, exponents, signs and anything above MAX_MICROS are refused with
 * a message saying why. Returns the amount or an error message.
 */
export function parseMicros(value: string | number): bigint | string {
  const text = typeof value === 'number' ? String(value) : value.trim();
  const m = DECIMAL.exec(text);
  if (m === null) {
    return /e/i.test(text)
      ? 'write the amount as a plain decimal (no exponent)'
      : /^\d+\.\d{7,}$/.test(text)
        ? 'at most 6 decimals (micro-units)'
        : 'must be a non-negative decimal amount such as "2.50"';
  }
  const units = BigInt(m[1] as string);
  const frac = BigInt((m[2] ?? '').padEnd(6, '0'));
  const micros = units * MICROS_PER_UNIT + frac;
  if (micros > BigInt(MAX_MICROS)) return `must be at most ${MAX_MICROS / 1e6} units`;
  return micros;
}

/** `n / d` rounded to the nearest integer, ties to even (banker's rounding); `d > 0`, `n >= 0`. */
export function divRoundHalfEven(n: bigint, d: bigint): bigint {
  const q = n / d;
  const r = n % d;
  const twice = r * 2n;
  if (twice > d || (twice === d && q % 2n === 1n)) return q + 1n;
  return q;
}

/** Micro-units for `tokens` at `microsPerMillion` (a price per million tokens), rounded half-even. */
export function tokenCostMicros(tokens: number, microsPerMillion: bigint): bigint {
  if (tokens === 0 || microsPerMillion === 0n) return 0n;
  return divRoundHalfEven(BigInt(tokens) * microsPerMillion, 1_000_000n);
}

/**
 * `tokenCostMicros` without bigint, for when `tokens × microsPerMillion` is a safe integer (any
 * realistic event): the product, remainder and quotient are then exact integers in a double, and
 * the rounding is the same half-to-even. Both arguments are non-negative integers. Returns
 * undefined when the product is beyond 2^53 - 1 (use tokenCostMicros).
 */
export function tokenCostMicrosSafe(tokens: number, microsPerMillion: number): number | undefined {
  const product = tokens * microsPerMillion;
  // A true product above MAX_SAFE_INTEGER rounds to at least 2^53, so this test is exact.
  if (!(product <= Number.MAX_SAFE_INTEGER)) return undefined;
  const r = product % 1_000_000;
  const q = (product - r) / 1_000_000;
  const twice = r * 2;
  return twice > 1_000_000 || (twice === 1_000_000 && q % 2 === 1) ? q + 1 : q;
}

/** A bigint amount as a safe integer; throws a RangeError (a bug or absurd input) beyond 2^53. */
export function toSafeMicros(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new RangeError(`amount of ${value} micro-units is beyond the safe integer range`);
  }
  return Number(value);
}

/** Micro-units as a decimal string of currency units ("1.250000" → "1.25"); exact. */
export function formatMicros(micros: number | bigint): string {
  const v = BigInt(micros);
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const units = abs / MICROS_PER_UNIT;
  const frac = (abs % MICROS_PER_UNIT).toString().padStart(6, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${units}${frac ? `.${frac}` : ''}`;
}
