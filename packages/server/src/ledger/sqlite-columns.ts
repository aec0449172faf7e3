import type { LedgerRow } from './ledger-store.js';
import type { UsageEventsTable } from './tables.js';

/**
 * How a ledger row crosses from the event loop to the SQLite writer thread: the values of every
 * row of a batch in one flat array, `COLUMNS.length` values per row in `COLUMNS` order (one
 * array to clone per batch, not one object per row), bound positionally by `INSERT_SQL`.
 */
export const COLUMNS = [
  'event_id',
  'agent_id',
  'time_ms',
  'model',
  'rule',
  'currency',
  'input_tokens',
  'cached_input_tokens',
  'cache_write_tokens',
  'output_tokens',
  'reasoning_tokens',
  'requests',
  'total_tokens',
  'cost_micros',
  'rating',
  'attributes',
  'recorded_ms',
] as const satisfies readonly (keyof UsageEventsTable)[];

export const INSERT_SQL = `INSERT INTO usage_events (${COLUMNS.join(', ')})
  VALUES (${COLUMNS.map(() => '?').join(', ')}) ON CONFLICT (event_id) DO NOTHING`;

export const SELECT_BY_ID_SQL = 'SELECT * FROM usage_events WHERE event_id = ?';

/** Appends a row's values to `out` in COLUMNS order. */
export function pushValues(out: unknown[], r: LedgerRow): void {
  out.push(
    r.eventId,
    r.agentId,
    r.timeMs,
    r.model,
    r.rule,
    r.currency,
    r.inputTokens,
    r.cachedInputTokens,
    r.cacheWriteTokens,
    r.outputTokens,
    r.reasoningTokens,
    r.requests,
    r.totalTokens,
    r.costMicros,
    r.rating,
    r.attributes,
    r.recordedMs,
  );
}
