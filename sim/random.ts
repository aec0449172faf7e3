/**
 * Seeded randomness for the simulator: one mulberry32 stream per purpose (workload, network),
 * so the same seed gives the same arrivals and the same message fates in every mode.
 */

/** A PRNG returning floats in [0, 1). Same seed, same sequence, on every machine. */
export type Random = () => number;

export function mulberry32(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives an independent seed for a named stream (FNV-1a of the name mixed into the seed). */
export function subSeed(seed: number, name: string): number {
  let hash = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Exponentially distributed gap with the given mean. */
export function exponential(random: Random, mean: number): number {
  return -Math.log(1 - random()) * mean;
}

/** Integer in [0, n). */
export function below(random: Random, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}

/** Sampler of ranks 0..n-1 with P(k) ∝ (k + 1)^-s (precomputed CDF, binary search). */
export function zipf(random: Random, n: number, s: number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) {
    sum += (k + 1) ** -s;
    cdf[k] = sum;
  }
  for (let k = 0; k < n; k++) cdf[k] = (cdf[k] as number) / sum;
  cdf[n - 1] = 1;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] as number) > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}
