/**
 * Model-name patterns: an exact name, or a glob where `*` is any run of characters and `?` one
 * character. Exact names win over globs; globs are tried in the order written.
 */

import { globToRegExp, isGlob } from '@openclaw-edge/core';

/** First match of `name` among exact entries, then glob entries in order. */
export class PatternTable<T> {
  private readonly exact = new Map<string, T>();
  private readonly globs: { re: RegExp; value: T }[] = [];

  constructor(entries: readonly (readonly [pattern: string, value: T])[]) {
    for (const [pattern, value] of entries) {
      if (isGlob(pattern)) this.globs.push({ re: globToRegExp(pattern), value });
      else if (!this.exact.has(pattern)) this.exact.set(pattern, value);
    }
  }

  find(name: string): T | undefined {
    const hit = this.exact.get(name);
    if (hit !== undefined) return hit;
    for (const g of this.globs) if (g.re.test(name)) return g.value;
    return undefined;
  }
}
