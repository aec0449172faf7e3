/**
 * Packed `shared` admission state (docs/replication.md): one 8-number slot per bucket row that
 * has been checked in `shared` mode while the replica had peers, in one growable Float64Array
 * like the block table. A row names its slot in its `SHARE` field (slot offset + 1; 0 = none),
 * so a shared check reads one more contiguous run of memory and allocates nothing, while idle
 * agents and lone replicas pay only that one field. Local bookkeeping, never replicated.
 */

/** Tokens left in the share as of `S_AT` (negative after a request larger than the share). */
export const S_LEVEL = 0;
/** When `S_LEVEL` was last brought up to date. */
export const S_AT = 1;
/** This replica's weight in (0, 1]; 0 = no share cut yet. */
export const S_WEIGHT = 2;
/** The sync point the share was cut at. */
export const S_WINDOW = 3;
/** When the share was cut, and our own consumed counter then. */
export const S_CUT_MS = 4;
export const S_MARK = 5;
/** When the row was last drained for replication, and our own consumed counter it carried. */
export const S_SENT_MS = 6;
export const S_SENT_MARK = 7;
const SIZE = 8;

export class ShareTable {
  cells: Float64Array;
  private top = 0;
  private readonly free: number[] = [];

  constructor(initialSlots = 64) {
    this.cells = new Float64Array(initialSlots * SIZE);
  }

  /** A fresh slot (no share cut yet, never drained); returns its offset. */
  allocate(): number {
    let at = this.free.pop();
    if (at === undefined) {
      at = this.top;
      this.top += SIZE;
      if (this.top > this.cells.length) {
        const next = new Float64Array(this.cells.length * 2);
        next.set(this.cells);
        this.cells = next;
      }
    }
    const cells = this.cells;
    cells.fill(0, at, at + SIZE);
    cells[at + S_WINDOW] = Number.NEGATIVE_INFINITY;
    cells[at + S_CUT_MS] = Number.POSITIVE_INFINITY;
    cells[at + S_SENT_MS] = Number.POSITIVE_INFINITY;
    return at;
  }

  release(at: number): void {
    this.free.push(at);
  }

  /** Slots in use. */
  get size(): number {
    return this.top / SIZE - this.free.length;
  }
}
