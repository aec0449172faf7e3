import {
  MAX_MICROS,
  parseMicros,
  tokenCostMicros,
  tokenCostMicrosSafe,
  toSafeMicros,
} from './money.js';
import { PatternTable } from './pattern.js';

/**
 * Price books: per-model prices per million tokens for every billed token class plus a price
 * per request, graduated monthly-volume tiers, a long-context tier, a default rule, one
 * currency, and versions with effective dates. `rate` is a pure function of the book, the
 * event and the agent's month-to-date volume: the server supplies that volume, nothing here
 * reads a clock or a database.
 */

/** Token classes billed separately. `input` excludes cached and cache-write tokens; `output` excludes reasoning. */
export const TOKEN_CLASSES = [
  'input',
  'cached_input',
  'cache_write',
  'output',
  'reasoning',
] as const;
export type TokenClass = (typeof TOKEN_CLASSES)[number];

/** Prices in micro-units: per million tokens of each class, and per request. */
export type Prices = Readonly<Record<TokenClass | 'request', bigint>>;

/** Decimal amounts as written in config (currency units); absent classes cost nothing (or inherit, in tiers). */
export type PriceSpec = Partial<Record<TokenClass | 'request', string | number>>;

/** A model rule as written in config. */
export interface ModelRuleSpec extends PriceSpec {
  readonly match: string;
  /** Above this many prompt tokens (input + cached + cache write) the whole request is priced at `long_context`. */
  readonly long_context?: PriceSpec & { readonly above_input_tokens: number };
  /** Graduated by month-to-date volume: from `from_monthly_tokens` on, these prices apply. */
  readonly tiers?: readonly (PriceSpec & { readonly from_monthly_tokens: number })[];
}

/** One version of the book as written in config. */
export interface PriceVersionSpec {
  /** ISO 8601 instant from which this version applies. */
  readonly effective_from: string;
  readonly models?: readonly ModelRuleSpec[];
  readonly default?: Omit<ModelRuleSpec, 'match'>;
}

/** A whole price book as written in config. */
export interface PriceBookSpec {
  readonly currency: string;
  readonly versions: readonly PriceVersionSpec[];
}

/** A compiled model rule. */
export interface ModelRule {
  /** The pattern as written, or `*default*` for the default rule; recorded with each rating. */
  readonly match: string;
  readonly base: Prices;
  readonly longContext?: { readonly aboveInputTokens: number; readonly prices: Prices };
  /** Ascending by `fromMonthlyTokens`; the base prices apply below the first. */
  readonly tiers: readonly { readonly fromMonthlyTokens: number; readonly prices: Prices }[];
}

interface PriceVersion {
  readonly effectiveFromMs: number;
  readonly table: PatternTable<ModelRule>;
  readonly fallback?: ModelRule;
}

/** A compiled, immutable price book. */
export interface PriceBook {
  readonly currency: string;
  /** Ascending by `effectiveFromMs`. */
  readonly versions: readonly PriceVersion[];
}

/** A problem in a price book spec, with the path of the field. */
export class PricingSpecError extends Error {
  constructor(
    readonly path: readonly (string | number)[],
    message: string,
  ) {
    super(`${path.join('.')}: ${message}`);
    this.name = 'PricingSpecError';
  }
}

/** Usage of one event, as counts. */
export interface Usage {
  readonly inputTokens: number;
  readonly cachedInputTokens: number;
  readonly cacheWriteTokens: number;
  readonly outputTokens: number;
  readonly reasoningTokens: number;
  readonly requests: number;
}

/** The price of one event: line items (each rounded half-even) and their sum. */
export interface Rating {
  readonly currency: string;
  readonly costMicros: number;
  /** Micro-units per token class and for requests. */
  readonly lines: Readonly<Record<TokenClass | 'request', number>>;
  /** The rule that priced the event (`*default*` when the default did). */
  readonly rule: string;
  /** Effective date of the price version used (ms since the epoch). */
  readonly priceVersionMs: number;
  /** 0 for the base prices, n for the n-th volume tier. */
  readonly tier: number;
  readonly longContext: boolean;
}

/** No rule prices this model in the version valid at the event's time. */
export interface Unpriced {
  readonly unpriced: true;
  readonly reason: string;
}

const DEFAULT_RULE = '*default*';

/** Compiles and validates a price book; throws PricingSpecError naming the field. */
export function compilePriceBook(spec: PriceBookSpec): PriceBook {
  if (!/^[A-Z]{3}$/.test(spec.currency)) {
    throw new PricingSpecError(['currency'], 'must be an ISO 4217 code such as "USD"');
  }
  const versions = spec.versions.map((v, i) => {
    const at = ['versions', i];
    const effectiveFromMs = Date.parse(v.effective_from);
    if (!Number.isFinite(effectiveFromMs) || !/^\d{4}-\d{2}-\d{2}T/.test(v.effective_from)) {
      throw new PricingSpecError(
        [...at, 'effective_from'],
        'must be an ISO 8601 instant such as 2026-01-01T00:00:00Z',
      );
    }
    const rules = (v.models ?? []).map((m, j) => compileRule(m, m.match, [...at, 'models', j]));
    const version: PriceVersion = {
      effectiveFromMs,
      table: new PatternTable(rules.map((r) => [r.match, r] as const)),
      ...(v.default === undefined
        ? {}
        : { fallback: compileRule(v.default, DEFAULT_RULE, [...at, 'default']) }),
    };
    return version;
  });
  const sorted = [...versions].sort((a, b) => a.effectiveFromMs - b.effectiveFromMs);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.effectiveFromMs === sorted[i - 1]?.effectiveFromMs) {
      throw new PricingSpecError(['versions'], 'two versions have the same effective_from');
    }
  }
  return { currency: spec.currency, versions: sorted };
}

function compilePrices(
  spec: PriceSpec,
  inherit: Prices | undefined,
  at: readonly (string | number)[],
): Prices {
  const out: Record<string, bigint> = {};
  for (const key of [...TOKEN_CLASSES, 'request'] as const) {
    const raw = spec[key];
    if (raw === undefined) {
      out[key] = inherit?.[key] ?? 0n;
      continue;
    }
    const parsed = parseMicros(raw);
    if (typeof parsed === 'string') throw new PricingSpecError([...at, key], parsed);
    out[key] = parsed;
  }
  return out as Prices;
}

function compileRule(
  spec: Omit<ModelRuleSpec, 'match'>,
  match: string,
  at: readonly (string | number)[],
): ModelRule {
  const base = compilePrices(spec, undefined, at);
  const tiers = (spec.tiers ?? []).map((t, k) => {
    if (!Number.isSafeInteger(t.from_monthly_tokens) || t.from_monthly_tokens <= 0) {
      throw new PricingSpecError(
        [...at, 'tiers', k, 'from_monthly_tokens'],
        'must be an integer > 0',
      );
    }
    return {
      fromMonthlyTokens: t.from_monthly_tokens,
      prices: compilePrices(t, base, [...at, 'tiers', k]),
    };
  });
  for (let k = 1; k < tiers.length; k++) {
    if ((tiers[k]?.fromMonthlyTokens ?? 0) <= (tiers[k - 1]?.fromMonthlyTokens ?? 0)) {
      throw new PricingSpecError([...at, 'tiers', k, 'from_monthly_tokens'], 'tiers must ascend');
    }
  }
  const lc = spec.long_context;
  if (
    lc !== undefined &&
    (!Number.isSafeInteger(lc.above_input_tokens) || lc.above_input_tokens <= 0)
  ) {
    throw new PricingSpecError(
      [...at, 'long_context', 'above_input_tokens'],
      'must be an integer > 0',
    );
  }
  return {
    match,
    base,
    tiers,
    ...(lc === undefined
      ? {}
      : {
          longContext: {
            aboveInputTokens: lc.above_input_tokens,
            prices: compilePrices(lc, base, [...at, 'long_context']),
          },
        }),
  };
}

/** The version valid at `timeMs` (the latest with `effectiveFromMs <= timeMs`), if any. */
export function versionAt(book: PriceBook, timeMs: number): PriceVersion | undefined {
  let found: PriceVersion | undefined;
  for (const v of book.versions) {
    if (v.effectiveFromMs <= timeMs) found = v;
    else break;
  }
  return found;
}

/** The rule that prices `model` at `timeMs`, or why there is none. */
export function ruleFor(
  book: PriceBook,
  model: string,
  timeMs: number,
): { rule: ModelRule; versionMs: number } | Unpriced {
  const version = versionAt(book, timeMs);
  if (version === undefined) {
    return {
      unpriced: true,
      reason: `no price version is effective at ${new Date(timeMs).toISOString()}`,
    };
  }
  const rule = version.table.find(model) ?? version.fallback;
  if (rule === undefined) {
    return {
      unpriced: true,
      reason: `no pricing rule matches model "${model}" and the price version has no default`,
    };
  }
  return { rule, versionMs: version.effectiveFromMs };
}

/** Prompt-side tokens: what the long-context threshold compares against. */
export function promptTokens(u: Usage): number {
  return u.inputTokens + u.cachedInputTokens + u.cacheWriteTokens;
}

/** Every token of the event (what volume tiers count). */
export function totalTokens(u: Usage): number {
  return promptTokens(u) + u.outputTokens + u.reasoningTokens;
}

/**
 * Prices one event at its time. `monthVolumeTokens` is the agent's volume under the same rule
 * in the month so far, before this event: the event is priced at the tier that volume reaches
 * (tiers are graduated at event granularity; an event is never split across tiers). A long
 * prompt switches the whole request to the long-context prices, which take precedence over tiers.
 */
export function rate(
  book: PriceBook,
  model: string,
  usage: Usage,
  timeMs: number,
  monthVolumeTokens = 0,
): Rating | Unpriced {
  const found = ruleFor(book, model, timeMs);
  if ('unpriced' in found) return found;
  const { rule, versionMs } = found;
  let prices = rule.base;
  let tier = 0;
  rule.tiers.forEach((t, k) => {
    if (monthVolumeTokens >= t.fromMonthlyTokens) {
      prices = t.prices;
      tier = k + 1;
    }
  });
  const longContext =
    rule.longContext !== undefined && promptTokens(usage) > rule.longContext.aboveInputTokens;
  if (longContext && rule.longContext !== undefined) prices = rule.longContext.prices;
  const fast = safeLines(usage, prices);
  if (fast !== undefined) {
    return {
      currency: book.currency,
      costMicros: fast.total,
      lines: fast.lines,
      rule: rule.match,
      priceVersionMs: versionMs,
      tier,
      longContext,
    };
  }
  const lines = {
    input: tokenCostMicros(usage.inputTokens, prices.input),
    cached_input: tokenCostMicros(usage.cachedInputTokens, prices.cached_input),
    cache_write: tokenCostMicros(usage.cacheWriteTokens, prices.cache_write),
    output: tokenCostMicros(usage.outputTokens, prices.output),
    reasoning: tokenCostMicros(usage.reasoningTokens, prices.reasoning),
    request: BigInt(usage.requests) * prices.request,
  };
  let total = 0n;
  for (const v of Object.values(lines)) total += v;
  if (total > BigInt(MAX_MICROS)) {
    return { unpriced: true, reason: `the cost exceeds ${MAX_MICROS} micro-units for one event` };
  }
  return {
    currency: book.currency,
    costMicros: toSafeMicros(total),
    lines: {
      input: toSafeMicros(lines.input),
      cached_input: toSafeMicros(lines.cached_input),
      cache_write: toSafeMicros(lines.cache_write),
      output: toSafeMicros(lines.output),
      reasoning: toSafeMicros(lines.reasoning),
      request: toSafeMicros(lines.request),
    },
    rule: rule.match,
    priceVersionMs: versionMs,
    tier,
    longContext,
  };
}

/** Prices as numbers (every price is at most MAX_MICROS, a safe integer), per compiled Prices. */
const numericPrices = new WeakMap<Prices, Readonly<Record<TokenClass | 'request', number>>>();

/**
 * The line items in safe-integer arithmetic, or undefined when a product or a line is too large
 * for it (then `rate` computes them in bigint, with the same result). Lines of at most
 * MAX_MICROS each keep their sum exact.
 */
function safeLines(
  usage: Usage,
  prices: Prices,
): { lines: Rating['lines']; total: number } | undefined {
  let n = numericPrices.get(prices);
  if (n === undefined) {
    n = {
      input: Number(prices.input),
      cached_input: Number(prices.cached_input),
      cache_write: Number(prices.cache_write),
      output: Number(prices.output),
      reasoning: Number(prices.reasoning),
      request: Number(prices.request),
    };
    numericPrices.set(prices, n);
  }
  const input = tokenCostMicrosSafe(usage.inputTokens, n.input);
  const cachedInput = tokenCostMicrosSafe(usage.cachedInputTokens, n.cached_input);
  const cacheWrite = tokenCostMicrosSafe(usage.cacheWriteTokens, n.cache_write);
  const output = tokenCostMicrosSafe(usage.outputTokens, n.output);
  const reasoning = tokenCostMicrosSafe(usage.reasoningTokens, n.reasoning);
  const request = usage.requests * n.request;
  if (
    input === undefined ||
    cachedInput === undefined ||
    cacheWrite === undefined ||
    output === undefined ||
    reasoning === undefined ||
    input > MAX_MICROS ||
    cachedInput > MAX_MICROS ||
    cacheWrite > MAX_MICROS ||
    output > MAX_MICROS ||
    reasoning > MAX_MICROS ||
    !(request <= MAX_MICROS)
  ) {
    return undefined;
  }
  const total = input + cachedInput + cacheWrite + output + reasoning + request;
  if (total > MAX_MICROS) return undefined;
  return {
    lines: {
      input,
      cached_input: cachedInput,
      cache_write: cacheWrite,
      output,
      reasoning,
      request,
    },
    total,
  };
}
