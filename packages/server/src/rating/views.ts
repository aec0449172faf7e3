import type { BudgetStatus, Rating } from '@openclaw-edge/rating';
import { formatMicros } from '@openclaw-edge/rating';
import type { LedgerRow } from '../ledger/ledger-store.js';

/**
 * ISO text of an instant that recurs in answers (price versions, budget window bounds): a few
 * distinct values serve every event, so their text is kept instead of formatted each time.
 */
const isoTexts = new Map<number, string>();
function isoOf(ms: number): string {
  let text = isoTexts.get(ms);
  if (text === undefined) {
    if (isoTexts.size >= 1024) isoTexts.clear();
    text = new Date(ms).toISOString();
    isoTexts.set(ms, text);
  }
  return text;
}

/** A rating as the API answers it (and as the ledger keeps it, for replays). */
export function ratingView(r: Rating) {
  return {
    currency: r.currency,
    cost_micros: r.costMicros,
    cost: formatMicros(r.costMicros),
    lines_micros: r.lines,
    rule: r.rule,
    price_version: isoOf(r.priceVersionMs),
    tier: r.tier,
    long_context: r.longContext,
  };
}
export type RatingView = ReturnType<typeof ratingView>;

/**
 * What of a rating the ledger row does not already hold, as a short JSON array: the six line
 * items, tier, long context (0/1) and the price version (ms). Currency, rule and total are columns.
 * Small rows keep SQLite's insert cost down (the rating is stored with every event).
 */
export function encodeRating(r: Rating): string {
  const l = r.lines;
  return `[${l.input},${l.cached_input},${l.cache_write},${l.output},${l.reasoning},${l.request},${r.tier},${r.longContext ? 1 : 0},${r.priceVersionMs}]`;
}

/** The rating as first answered, rebuilt from a stored row (a replay answers exactly this). */
export function storedRatingView(row: LedgerRow): RatingView {
  const [input, cachedInput, cacheWrite, output, reasoning, request, tier, longContext, version] =
    JSON.parse(row.rating) as number[];
  return ratingView({
    currency: row.currency,
    costMicros: row.costMicros,
    lines: {
      input: input ?? 0,
      cached_input: cachedInput ?? 0,
      cache_write: cacheWrite ?? 0,
      output: output ?? 0,
      reasoning: reasoning ?? 0,
      request: request ?? 0,
    },
    rule: row.rule,
    priceVersionMs: version ?? 0,
    tier: tier ?? 0,
    longContext: longContext === 1,
  });
}

/** A budget's state as the API shows it. */
export function budgetView(b: BudgetStatus) {
  return {
    name: b.name,
    amount_micros: b.amountMicros,
    spent_micros: b.spentMicros,
    remaining_micros: b.remainingMicros,
    reset_ms: b.resetMs,
    ...(b.window === undefined
      ? {}
      : {
          window_start: isoOf(b.window.startMs),
          window_end: isoOf(b.window.endMs),
        }),
  };
}
export type BudgetView = ReturnType<typeof budgetView>;
