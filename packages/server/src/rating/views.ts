import type { BudgetStatus, Rating } from '@openclaw-edge/rating';
import { formatMicros } from '@openclaw-edge/rating';

/** A rating as the API answers it (and as the ledger keeps it, for replays). */
export function ratingView(r: Rating) {
  return {
    currency: r.currency,
    cost_micros: r.costMicros,
    cost: formatMicros(r.costMicros),
    lines_micros: r.lines,
    rule: r.rule,
    price_version: new Date(r.priceVersionMs).toISOString(),
    tier: r.tier,
    long_context: r.longContext,
  };
}
export type RatingView = ReturnType<typeof ratingView>;

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
          window_start: new Date(b.window.startMs).toISOString(),
          window_end: new Date(b.window.endMs).toISOString(),
        }),
  };
}
export type BudgetView = ReturnType<typeof budgetView>;
