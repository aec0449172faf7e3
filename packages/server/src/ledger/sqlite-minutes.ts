/**
 * The SQLite ledger's per-minute totals (table `usage_minutes`, migration 002): what the writer
 * adds in the transaction that stores the events, and how a read over any range [from, to)
 * combines them with the events themselves.
 *
 * A range is answered in up to three parts: the whole UTC minutes inside it from the totals
 * (through their agent index), and the partial minutes at its ends from the events (through
 * their time index, which scans every agent's events of that part of the minute). Ranges on
 * minute boundaries, as calendar budget windows and tier months are, read totals only.
 */

export const MINUTE_MS = 60_000;

/** The start of the UTC minute holding `ms` (floor, also before 1970). */
export function minuteOf(ms: number): number {
  return ms - (((ms % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
}

/** The columns the totals sum, named as in the events table. */
const SUMMED = [
  'requests',
  'input_tokens',
  'cached_input_tokens',
  'cache_write_tokens',
  'output_tokens',
  'reasoning_tokens',
  'total_tokens',
  'cost_micros',
];

/** The minute of `time_ms` in SQL, as minuteOf computes it. */
export const MINUTE_OF_TIME_SQL = `time_ms - ((time_ms % ${MINUTE_MS}) + ${MINUTE_MS}) % ${MINUTE_MS}`;

/** The rowid of the last event stored (null when none is). */
export const LAST_ROWID_SQL = 'SELECT max(rowid) FROM usage_events';

/**
 * Adds the events stored after rowid ? to the totals. The writer runs it in the transaction that
 * stored them, so it reads them back from pages it just wrote, and sums them in SQLite.
 */
export const ADD_MINUTES_SQL = `INSERT INTO usage_minutes
  (minute_ms, agent_id, model, rule, events, ${SUMMED.join(', ')})
  SELECT ${MINUTE_OF_TIME_SQL}, agent_id, model, rule, count(*), ${SUMMED.map((c) => `sum(${c})`).join(', ')}
  FROM usage_events WHERE rowid > ? GROUP BY 1, 2, 3, 4
  ON CONFLICT (minute_ms, agent_id, model, rule) DO UPDATE SET
  events = events + excluded.events, ${SUMMED.map((c) => `${c} = ${c} + excluded.${c}`).join(', ')}`;

/** [from, to) as whole minutes [a, b) and the partial minutes before and after them. */
export interface MinuteSplit {
  /** The whole minutes (empty when a >= b). */
  readonly whole: readonly [number, number];
  /** The parts outside whole minutes; an empty part is [x, x). */
  readonly before: readonly [number, number];
  readonly after: readonly [number, number];
}

export function splitMinutes(fromMs: number, toMs: number): MinuteSplit {
  const a = minuteOf(fromMs) === fromMs ? fromMs : minuteOf(fromMs) + MINUTE_MS;
  const b = minuteOf(toMs);
  if (a >= b) return { whole: [a, a], before: [fromMs, toMs], after: [toMs, toMs] };
  return { whole: [a, b], before: [fromMs, a], after: [b, toMs] };
}

/** The named parameters of rangeSql's range: whole minutes, the part before, the part after. */
export function rangeParams(split: MinuteSplit): Record<string, number> {
  const { whole, before, after } = split;
  return { w0: whole[0], w1: whole[1], b0: before[0], b1: before[1], a0: after[0], a1: after[1] };
}

/** How one part of rangeSql's union spells the time and the event count. */
export interface RangePart {
  /** `minute_ms` in the totals, `time_ms` in the events. */
  readonly time: string;
  /** `events` in the totals, `1` in the events. */
  readonly events: string;
}

/**
 * The union of the totals over the whole minutes and the events of the partial ones, each part
 * selecting `columns(part)` where `where` (on columns both tables have) holds; the range's
 * parameters are named as rangeParams names them. The caller groups the union.
 */
export function rangeSql(columns: (part: RangePart) => string, where: string): string {
  const part = (table: string, p: RangePart, lo: string, hi: string) =>
    `SELECT ${columns(p)} FROM ${table} WHERE ${where} AND ${p.time} >= @${lo} AND ${p.time} < @${hi}`;
  const totals: RangePart = { time: 'minute_ms', events: 'events' };
  const events: RangePart = { time: 'time_ms', events: '1' };
  return [
    part('usage_minutes', totals, 'w0', 'w1'),
    part('usage_events', events, 'b0', 'b1'),
    part('usage_events', events, 'a0', 'a1'),
  ].join(' UNION ALL ');
}
