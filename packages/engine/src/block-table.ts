/**
 * Packed storage: one block per agent in a single growable Float64Array, instead of an object
 * per agent or bucket. A block is a header followed by one row per limit, so a decision touches
 * one contiguous run of memory after the id lookup (two cache lines for a one-limit agent), a
 * million idle agents cost a few dozen bytes each, and the garbage collector never walks them.
 * Freed blocks are reused by size.
 */

/** Header fields, as offsets from the start of a block. */
export const H_ROW = 0; // the agent's row: its index in the id list and the change-feed lists
export const H_LAST_MS = 1; // last local charge, refund or policy change
export const H_SEQ = 2; // bucket creation number: the agent's slot id in this run
export const H_FLAGS = 3; // FEED_BIT | FOLLOWS_CONFIG
export const H_GENERATION = 4; // config generation the agent's policy was resolved at
export const H_POLICY = 5; // index in the policy table
export const H_RECENT = 6; // decisions since the last activity ranking (local, for metrics)
export const H_SCORE = 7; // decayed activity score as of the last ranking
const HEADER = 8;

/** Bucket row fields, as offsets from the start of a row. */
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
/** Units charged by this replica's allowed decisions: a local, monotonic usage counter for metrics. */
export const USED = 7;
/** `USED` as of the last activity ranking. */
export const USED_AT_RANK = 8;
/** The row's slot in the share table plus one (0 = none): `shared` admission state. */
export const SHARE = 9;
export const STRIDE = 10;

/** Offset of limit `i`'s row in the block at `block`. */
export function rowAt(block: number, i: number): number {
  return block + HEADER + i * STRIDE;
}

/** Growable table of agent blocks, addressed by their offset in `cells`. */
export class BlockTable {
  /** Block data; read and written directly by the limiter on the hot path. */
  cells: Float64Array;
  private top = 0;
  private readonly freeBlocks = new Map<number, number[]>();

  constructor(initialAgents: number, limitsPerAgent: number) {
    this.cells = new Float64Array(Math.max(16, initialAgents) * (HEADER + limitsPerAgent * STRIDE));
  }

  /** Reserves a zeroed block for an agent with `limits` limits; returns its offset. */
  allocate(limits: number): number {
    const size = HEADER + limits * STRIDE;
    const reused = this.freeBlocks.get(size)?.pop();
    if (reused !== undefined) {
      this.cells.fill(0, reused, reused + size);
      return reused;
    }
    const block = this.top;
    this.top += size;
    if (this.top > this.cells.length) this.grow(this.top);
    return block;
  }

  /** Returns a block to the pool. */
  release(block: number, limits: number): void {
    const size = HEADER + limits * STRIDE;
    let free = this.freeBlocks.get(size);
    if (free === undefined) {
      free = [];
      this.freeBlocks.set(size, free);
    }
    free.push(block);
  }

  /** Bytes held by the block storage (for the memory report). */
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
