/**
 * The SQLite ledger's per-minute totals (table `usage_minutes`, migration 002): what the writer
 * adds in the transaction that stores the events, and how a read over any range [from, to)
 * combines them with the events themselves.
 *
 * A range is answered in up to three parts: whole UTC minutes from the totals (through their
 * agent index), and at each end that cuts a minute, events read through their time index (which
 * visits every agent's events of that part of the minute; see rangeParams for which part).
 * Ranges on minute boundaries, as calendar budget windows and tier months are, read totals only.
 */

import type { UsageMinutesTable } from './tables.js';

export const MINUTE_MS = 60_000;

/** The start of the UTC minute holding `ms` (floor, also before 1970). */
export function minuteOf(ms: number): number {
  return ms - (((ms % MINUTE_MS) + MINUTE_MS) % MINUTE_MS);
}

/** The columns the totals sum, named as in the events table. */
export const SUMMED = [
  'requests',
  'input_tokens',
  'cached_input_tokens',
  'cache_write_tokens',
  'output_tokens',
  'reasoning_tokens',
  'total_tokens',
  'cost_micros',
] as const satisfies readonly (keyof UsageMinutesTable)[];

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

/**
 * The named parameters of rangeSql for [from, to): the whole minutes [w0, w1) read from the
 * totals, and two ranges of events, [b0, b1) and [a0, a1), each added (sign +1) or taken away
 * (-1). A range that cuts a minute is read from the shorter side of the cut: the events of the
 * part inside it, or the minute's total less the events of the part outside. So a cut costs at
 * most half a minute of events, and the end of a window that closes now (a rolling budget's) reads
 * only the events stamped after now, if any.
 */
export function rangeParams(fromMs: number, toMs: number): Record<string, number> {
  let w0 = minuteOf(fromMs);
  let w1 = minuteOf(toMs) === toMs ? toMs : minuteOf(toMs) + MINUTE_MS;
  // Within [w0, w1), the parts before `from` and from `to` on are outside the range.
  const before = fromMs - w0;
  const after = w1 - toMs;
  if (w1 - w0 === MINUTE_MS && before + after > MINUTE_MS / 2) {
    // Inside one minute, mostly outside the range: its events alone.
    return { w0, w1: w0, b0: fromMs, b1: toMs, bs: 1, a0: toMs, a1: toMs, as: 1 };
  }
  let b = { b0: w0, b1: fromMs, bs: -1 };
  if (before > MINUTE_MS / 2) {
    w0 += MINUTE_MS;
    b = { b0: fromMs, b1: w0, bs: 1 };
  }
  let a = { a0: toMs, a1: w1, as: -1 };
  if (after > MINUTE_MS / 2) {
    w1 -= MINUTE_MS;
    a = { a0: w1, a1: toMs, as: 1 };
  }
  return { w0, w1, ...b, ...a };
}

/** How one part of rangeSql's union spells the time, the event count and its sign. */
export interface RangePart {
  /** `minute_ms` in the totals, `time_ms` in the events. */
  readonly time: string;
  /** The part's event count: `events` in the totals, the sign in the events. */
  readonly events: string;
  /** What the part's sums are multiplied by: 1, or the sign parameter of an events part. */
  readonly sign: string;
}

/**
 * The union of the totals over the whole minutes and the two signed ranges of events, each part
 * selecting `columns(part)` where `where` (on columns both tables have) holds; the parameters
 * are named as rangeParams names them. The caller sums the union; a group whose events sum to
 * zero held only events taken away, and is no group.
 */
export function rangeSql(columns: (part: RangePart) => string, where: string): string {
  const part = (table: string, p: RangePart, lo: string, hi: string) =>
    `SELECT ${columns(p)} FROM ${table} WHERE ${where} AND ${p.time} >= @${lo} AND ${p.time} < @${hi}`;
  return [
    part('usage_minutes', { time: 'minute_ms', events: 'events', sign: '1' }, 'w0', 'w1'),
    part('usage_events', { time: 'time_ms', events: '@bs', sign: '@bs' }, 'b0', 'b1'),
    part('usage_events', { time: 'time_ms', events: '@as', sign: '@as' }, 'a0', 'a1'),
  ].join(' UNION ALL ');
}
