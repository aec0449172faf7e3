/**
 * Packed storage for bucket rows: one Float64Array with a fixed stride instead of an object per
 * bucket, so a million idle agents cost a few dozen bytes each and the garbage collector never
 * walks them. An agent's buckets sit in one contiguous block of rows; freed blocks are reused
 * by size.
 */

/** Column offsets within a bucket row. */
export const EPOCH = 0;
export const OVERFLOW = 1;
/** This replica's counters for the bucket (its current slot). */
export const OWN_CONSUMED = 2;
export const OWN_REFUNDED = 3;
/** Σconsumed − Σrefunded over every other slot, kept in step with the remote slot map. */
export const REMOTE_USED = 4;
/** Parameter changes the bucket went through (core `BucketState.revision`). */
export const REVISION = 5;
/** Fingerprint of the limit parameters the row counts under (core `BucketState.params`). */
export const PARAMS = 6;
export const STRIDE = 7;

/** Growable table of bucket rows addressed by row index. */
export class BucketTable {
  /** Row data; read and written directly by the limiter on the hot path. */
  cells: Float64Array;
  private top = 0;
  private readonly freeBlocks = new Map<number, number[]>();

  constructor(initialRows: number) {
    this.cells = new Float64Array(Math.max(16, initialRows) * STRIDE);
  }

  /** Reserves `count` contiguous rows, zeroed, and returns the first row index. */
  allocate(count: number): number {
    const free = this.freeBlocks.get(count);
    const reused = free?.pop();
    const base = reused ?? this.top;
    if (reused === undefined) {
      this.top += count;
      if (this.top * STRIDE > this.cells.length) this.grow(this.top * STRIDE);
    }
    this.cells.fill(0, base * STRIDE, (base + count) * STRIDE);
    return base;
  }

  /** Returns a block to the pool. */
  release(base: number, count: number): void {
    let free = this.freeBlocks.get(count);
    if (free === undefined) {
      free = [];
      this.freeBlocks.set(count, free);
    }
    free.push(base);
  }

  /** Bytes held by the row storage (for the memory report). */
  get bytes(): number {
    return this.cells.byteLength;
  }

  private grow(minLength: number): void {
    let length = this.cells.length * 2;
    while (length < minLength) length *= 2;
    const next = new Float64Array(length);
    next.set(this.cells);
    this.cells = next;
  }
}
