/**
 * Globs for agent ids and model names: `*` matches any run of characters, `?` exactly one;
 * every other character stands for itself. One implementation for config agent rules, API-key
 * agent lists and pricing model rules.
 */

/** True when `pattern` holds a wildcard; otherwise it names one exact id. */
export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

/** Compiles a glob to an anchored RegExp (whole string, any script). */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\*?]/g, (c) =>
    c === '*' ? '.*' : c === '?' ? '.' : `\\${c}`,
  );
  return new RegExp(`^${body}$`, 'su');
}
