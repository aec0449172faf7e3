import { isValidTimeZone, windowAt } from '@openclaw-edge/rating';
import { describe, expect, it } from 'vitest';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const HOUR = 3_600_000;

describe('calendar windows', () => {
  it('a Berlin day is local midnight to local midnight', () => {
    const w = windowAt('day', 'Europe/Berlin', at('2026-01-15T22:30:00Z')); // 23:30 local
    expect(iso(w.startMs)).toBe('2026-01-14T23:00:00.000Z');
    expect(iso(w.endMs)).toBe('2026-01-15T23:00:00.000Z');
    // Half an hour later it is the next local day.
    expect(iso(windowAt('day', 'Europe/Berlin', at('2026-01-15T23:30:00Z')).startMs)).toBe(
      '2026-01-15T23:00:00.000Z',
    );
  });

  it('the spring-forward day is 23 hours long and the fall-back day 25', () => {
    const spring = windowAt('day', 'Europe/Berlin', at('2026-03-29T12:00:00Z'));
    expect(spring.endMs - spring.startMs).toBe(23 * HOUR);
    expect(iso(spring.startMs)).toBe('2026-03-28T23:00:00.000Z');
    expect(iso(spring.endMs)).toBe('2026-03-29T22:00:00.000Z');
    const fall = windowAt('day', 'America/New_York', at('2026-11-01T12:00:00Z'));
    expect(fall.endMs - fall.startMs).toBe(25 * HOUR);
    expect(iso(fall.startMs)).toBe('2026-11-01T04:00:00.000Z');
  });

  it('months end at the local first of the next month, across the year and a DST change', () => {
    const feb = windowAt('month', 'Europe/Berlin', at('2026-02-28T23:30:00Z')); // Mar 1 00:30 local
    expect(iso(feb.startMs)).toBe('2026-02-28T23:00:00.000Z');
    expect(iso(feb.endMs)).toBe('2026-03-31T22:00:00.000Z'); // April starts in summer time
    const dec = windowAt('month', 'UTC', at('2026-12-31T23:59:59Z'));
    expect(iso(dec.endMs)).toBe('2027-01-01T00:00:00.000Z');
    const leap = windowAt('month', 'UTC', at('2028-02-29T12:00:00Z'));
    expect(iso(leap.startMs)).toBe('2028-02-01T00:00:00.000Z');
    expect(iso(leap.endMs)).toBe('2028-03-01T00:00:00.000Z');
  });

  it('weeks start on Monday in the zone', () => {
    // Sunday 2026-03-29 (the DST day) belongs to the week from Monday 2026-03-23.
    const w = windowAt('week', 'Europe/Berlin', at('2026-03-29T20:00:00Z'));
    expect(iso(w.startMs)).toBe('2026-03-22T23:00:00.000Z');
    expect(iso(w.endMs)).toBe('2026-03-29T22:00:00.000Z');
    expect(w.endMs - w.startMs).toBe(7 * 24 * HOUR - HOUR);
  });

  it('every instant lies in its window, and the next window starts where it ends', () => {
    for (const zone of [
      'UTC',
      'Europe/Berlin',
      'America/New_York',
      'Asia/Kolkata',
      'Australia/Lord_Howe',
    ]) {
      for (
        let t = at('2026-01-01T00:00:00Z');
        t < at('2027-01-01T00:00:00Z');
        t += 7 * HOUR + 13 * 60_000
      ) {
        for (const period of ['day', 'week', 'month'] as const) {
          const w = windowAt(period, zone, t);
          expect(t >= w.startMs && t < w.endMs, `${zone} ${period} ${iso(t)}`).toBe(true);
          expect(windowAt(period, zone, w.endMs).startMs).toBe(w.endMs);
        }
      }
    }
  });

  it('knows valid zones', () => {
    expect(isValidTimeZone('Europe/Berlin')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
  });
});
