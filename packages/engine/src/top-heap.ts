/**
 * Keeps the `n` keys with the highest scores seen, in O(log n) per offer: a min-heap whose root is
 * the weakest of the current top, so a scan over a million agents for the top 500 needs no sort.
 */
export class TopHeap {
  private readonly keys: number[] = [];
  private readonly scores: number[] = [];

  constructor(private readonly n: number) {}

  offer(key: number, score: number): void {
    if (this.n <= 0) return;
    if (this.keys.length < this.n) {
      this.keys.push(key);
      this.scores.push(score);
      this.up(this.keys.length - 1);
    } else if (score > (this.scores[0] as number)) {
      this.keys[0] = key;
      this.scores[0] = score;
      this.down(0);
    }
  }

  /** The kept keys, highest score first. */
  sorted(): number[] {
    const order = this.keys.map((_, i) => i);
    order.sort((a, b) => (this.scores[b] as number) - (this.scores[a] as number));
    return order.map((i) => this.keys[i] as number);
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((this.scores[parent] as number) <= (this.scores[i] as number)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const size = this.keys.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < size && (this.scores[l] as number) < (this.scores[least] as number)) least = l;
      if (r < size && (this.scores[r] as number) < (this.scores[least] as number)) least = r;
      if (least === i) return;
      this.swap(i, least);
      i = least;
    }
  }

  private swap(a: number, b: number): void {
    [this.keys[a], this.keys[b]] = [this.keys[b] as number, this.keys[a] as number];
    [this.scores[a], this.scores[b]] = [this.scores[b] as number, this.scores[a] as number];
  }
}
