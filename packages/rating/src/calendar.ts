/**
 * Calendar windows (day, ISO week starting Monday, month) aligned to an IANA time zone, as pure
 * functions of an instant. Boundaries are local midnights converted to UTC with the zone's
 * offset at that instant, so a day across a DST change is 23 or 25 hours long, as invoices see it.
 */

export type CalendarPeriod = 'day' | 'week' | 'month';

/** A half-open window [startMs, endMs). */
export interface Window {
  readonly startMs: number;
  readonly endMs: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** True when `timeZone` is an IANA zone this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    formatter(timeZone);
    return true;
  } catch {
    return false;
  }
}

interface LocalParts {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
}

function localParts(timeZone: string, ms: number): LocalParts {
  if (timeZone === 'UTC') {
    // The common case without Intl (formatToParts costs microseconds).
    const d = new Date(ms);
    return {
      year: d.getUTCFullYear(),
      month: d.getUTCMonth() + 1,
      day: d.getUTCDate(),
      hour: d.getUTCHours(),
      minute: d.getUTCMinutes(),
      second: d.getUTCSeconds(),
    };
  }
  const parts: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(ms)) {
    if (p.type !== 'literal') parts[p.type] = Number(p.value);
  }
  return parts as unknown as LocalParts;
}

/** The zone's offset from UTC at instant `ms`, in milliseconds (whole seconds). */
export function offsetMs(timeZone: string, ms: number): number {
  const p = localParts(timeZone, ms);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/**
 * The instant of local midnight starting `year-month-day` (month 1-12, day may overflow; Date.UTC
 * normalises). Where midnight does not exist (a DST jump at 00:00) the first instant after it.
 */
export function localMidnight(timeZone: string, year: number, month: number, day: number): number {
  const wall = Date.UTC(year, month - 1, day);
  const first = wall - offsetMs(timeZone, wall);
  const second = wall - offsetMs(timeZone, first);
  if (first === second) return first;
  // The offset changes between the two guesses: take the one that maps back to the same wall date.
  const p = localParts(timeZone, second);
  return Date.UTC(p.year, p.month - 1, p.day) === wall ? second : Math.max(first, second);
}

/** The calendar window of `period` in `timeZone` that contains instant `ms`. */
export function windowAt(period: CalendarPeriod, timeZone: string, ms: number): Window {
  const p = localParts(timeZone, ms);
  let start: number;
  let end: number;
  if (period === 'day') {
    start = localMidnight(timeZone, p.year, p.month, p.day);
    end = localMidnight(timeZone, p.year, p.month, p.day + 1);
  } else if (period === 'week') {
    const weekday = (new Date(Date.UTC(p.year, p.month - 1, p.day)).getUTCDay() + 6) % 7; // Monday = 0
    start = localMidnight(timeZone, p.year, p.month, p.day - weekday);
    end = localMidnight(timeZone, p.year, p.month, p.day - weekday + 7);
  } else {
    start = localMidnight(timeZone, p.year, p.month, 1);
    end = localMidnight(timeZone, p.year, p.month + 1, 1);
  }
  // A DST jump over midnight can land `start` just after `ms`; the window still contains it.
  return { startMs: Math.min(start, ms), endMs: end };
}
