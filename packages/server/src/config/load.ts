import { readFileSync } from 'node:fs';
import { compilePriceBook, PricingSpecError } from '@openclaw-edge/rating';
import { LineCounter, parseDocument } from 'yaml';
import { type Config, configSchema } from './schema.js';

/** One problem found in a config, with where it is. */
export interface ConfigIssue {
  /** Dotted path with indices: `limits[0].capacity`, or the env var that set it. */
  readonly path: string;
  /** 1-based line in the file, when the problem sits at a known place in it. */
  readonly line?: number;
  readonly message: string;
}

/** A config that cannot be used; `issues` lists every problem, not just the first. */
export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  constructor(
    readonly source: string,
    readonly issues: readonly ConfigIssue[],
  ) {
    super(
      `invalid config ${source}:\n${issues
        .map(
          (i) =>
            `  ${i.line === undefined ? '' : `line ${i.line}: `}${i.path || '(root)'}: ${i.message}`,
        )
        .join('\n')}`,
    );
    this.name = 'ConfigError';
  }
}

/** Environment variables that override config fields (the common ones). */
export const ENV_OVERRIDES = {
  HOST: ['server', 'host'],
  PORT: ['server', 'port'],
  OPENCLAW_EDGE_DATA_DIR: ['data_dir'],
  OPENCLAW_EDGE_NODE_ID: ['node_id'],
  LOG_LEVEL: ['logging', 'level'],
  OPENCLAW_EDGE_LOG_FORMAT: ['logging', 'format'],
  DATABASE_URL: ['ledger', 'url'],
  OPENCLAW_EDGE_LEDGER_DRIVER: ['ledger', 'driver'],
  OPENCLAW_EDGE_REPLICATION_SECRET: ['replication', 'secret'],
  REDIS_URL: ['replication', 'redis', 'url'],
} as const;

/** Reads, parses and validates a config file, then applies env overrides. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [
      { path: '', message: `cannot read the file (${(error as Error).message})` },
    ]);
  }
  return parseConfig(text, path, env);
}

/** The config used when no file is given: every default, plus env overrides. */
export function defaultConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig('{}', '(built-in defaults)', env);
}

/** Parses and validates YAML config text; `source` names it in errors. */
export function parseConfig(
  text: string,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((e) => ({
        path: '',
        line: e.linePos?.[0]?.line,
        message: `YAML syntax: ${e.message.split('\n')[0]}`,
      })),
    );
  }
  const raw: unknown = doc.toJS() ?? {};
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, [{ path: '', message: 'must be a mapping of settings' }]);
  }
  const overridden = applyEnv(raw as Record<string, unknown>, env);
  const parsed = configSchema.safeParse(overridden.value);
  const issues: ConfigIssue[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
      const dotted = path.join('.');
      const fromEnv = [...overridden.fromEnv].find(([k]) => dotted.startsWith(k))?.[1];
      issues.push({
        path: fromEnv ?? formatPath(path),
        line: fromEnv === undefined ? lineOf(doc, lines, path) : undefined,
        message: issue.message,
      });
    }
    throw new ConfigError(source, issues);
  }
  const config = parsed.data;
  checkReferences(config, (path, message) =>
    issues.push({ path: formatPath(path), line: lineOf(doc, lines, path), message }),
  );
  if (issues.length > 0) throw new ConfigError(source, issues);
  return config;
}

/** Cross-field checks the schema cannot express: tier references and unique names. */
function checkReferences(
  config: Config,
  report: (path: (string | number)[], message: string) => void,
): void {
  config.agents.forEach((rule, i) => {
    if (rule.tier !== undefined && !Object.hasOwn(config.tiers, rule.tier)) {
      const known = Object.keys(config.tiers);
      report(
        ['agents', i, 'tier'],
        `unknown tier "${rule.tier}" (tiers: ${known.length ? known.join(', ') : 'none defined'})`,
      );
    }
  });
  const checkUniqueLimits = (list: readonly { name: string }[], at: (string | number)[]) => {
    const seen = new Set<string>();
    list.forEach((l, i) => {
      if (seen.has(l.name))
        report([...at, i, 'name'], `duplicates another limit's name "${l.name}"`);
      seen.add(l.name);
    });
  };
  checkUniqueLimits(config.limits, ['limits']);
  for (const [tier, t] of Object.entries(config.tiers))
    checkUniqueLimits(t.limits, ['tiers', tier, 'limits']);
  config.agents.forEach((rule, i) => {
    if (rule.limits) checkUniqueLimits(rule.limits, ['agents', i, 'limits']);
  });
  if (config.ledger.driver === 'postgres' && config.ledger.url === undefined) {
    report(['ledger', 'url'], 'the postgres ledger needs a URL (ledger.url or DATABASE_URL)');
  }
  const r = config.replication;
  if (r.transport !== 'none' && r.secret === undefined) {
    report(
      ['replication', 'secret'],
      'replication needs a shared secret (replication.secret or OPENCLAW_EDGE_REPLICATION_SECRET)',
    );
  }
  if (r.transport === 'mesh' && r.mesh.peers.length === 0 && r.mesh.dns === undefined) {
    report(['replication', 'mesh', 'peers'], 'the mesh needs peers or a dns name');
  }
  if (config.pricing !== undefined) {
    try {
      compilePriceBook(config.pricing);
    } catch (error) {
      if (!(error instanceof PricingSpecError)) throw error;
      report(['pricing', ...error.path], error.message.slice(error.message.indexOf(': ') + 2));
    }
  }
  const checkUniqueBudgets = (list: readonly { name: string }[], at: (string | number)[]) => {
    const seen = new Set<string>();
    list.forEach((b, i) => {
      if (seen.has(b.name))
        report([...at, i, 'name'], `duplicates another budget's name "${b.name}"`);
      seen.add(b.name);
    });
  };
  checkUniqueBudgets(config.budgets.default, ['budgets', 'default']);
  config.budgets.agents.forEach((rule, i) => {
    checkUniqueBudgets(rule.budgets, ['budgets', 'agents', i, 'budgets']);
  });
  const keyNames = new Set<string>();
  const hashes = new Set<string>();
  config.api_keys.forEach((key, i) => {
    if (keyNames.has(key.name))
      report(['api_keys', i, 'name'], `duplicates another key's name "${key.name}"`);
    if (hashes.has(key.sha256))
      report(['api_keys', i, 'sha256'], 'duplicates another key (same secret)');
    keyNames.add(key.name);
    hashes.add(key.sha256);
  });
}

function applyEnv(
  raw: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): { value: Record<string, unknown>; fromEnv: Map<string, string> } {
  const value: Record<string, unknown> = structuredClone(raw);
  const fromEnv = new Map<string, string>();
  for (const [variable, path] of Object.entries(ENV_OVERRIDES)) {
    const text = env[variable];
    if (text === undefined || text === '') continue;
    let target = value;
    for (const key of path.slice(0, -1)) {
      const next = target[key];
      target[key] = next !== null && typeof next === 'object' && !Array.isArray(next) ? next : {};
      target = target[key] as Record<string, unknown>;
    }
    const leaf = path[path.length - 1] as string;
    target[leaf] = variable === 'PORT' ? (/^\d+$/.test(text) ? Number(text) : text) : text;
    fromEnv.set(path.join('.'), `${path.join('.')} (from env ${variable})`);
  }
  return { value, fromEnv };
}

function formatPath(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (out, p) => (typeof p === 'number' ? `${out}[${p}]` : out ? `${out}.${p}` : p),
    '',
  );
}

function lineOf(
  doc: ReturnType<typeof parseDocument>,
  lines: LineCounter,
  path: readonly (string | number)[],
): number | undefined {
  // The deepest node that exists on the path: a missing field is reported at its parent.
  for (let depth = path.length; depth > 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true) as
      | { range?: [number, number, number] }
      | undefined;
    if (node?.range) return lines.linePos(node.range[0]).line;
  }
  return undefined;
}
