/** True when `pattern` holds a glob wildcard (`*` or `?`); otherwise it names one exact id. */
export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/** Compiles a glob (`*` any run of characters, `?` exactly one) to an anchored RegExp. */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) =>
    c === '*' ? '.*' : c === '?' ? '.' : `\\${c}`,
  );
  return new RegExp(`^${body}$`, 'su');
}

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
