import { globToRegExp, isGlob } from '@openclaw-edge/core';

/** Matches ids against a list of exact ids and globs. */
export class IdMatcher {
  private readonly exact = new Set<string>();
  private readonly globs: RegExp[] = [];

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      if (isGlob(p)) this.globs.push(globToRegExp(p));
      else this.exact.add(p);
    }
  }

  matches(id: string): boolean {
    return this.exact.has(id) || this.globs.some((g) => g.test(id));
  }
}
