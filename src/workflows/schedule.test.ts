import { describe, expect, it } from 'vitest';
import type { WorkflowSchedule } from './definition.js';
import {
  CURRENT_SLOT_GRACE_MS,
  checkSchedule,
  dueSlots,
  isSlot,
  nextSlot,
  previousSlot,
  slotsBetween,
} from './schedule.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const at = (iso: string) => Date.parse(iso);

/** The local date and time of an instant in a zone, as `YYYY-MM-DD HH:mm` (the oracle). */
function local(ms: number, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** Every whole UTC hour whose local date in the zone is `date`: the hours of that local day. */
function localDayHours(date: string, timeZone: string): number[] {
  const hours: number[] = [];
  for (let t = at(`${date}T00:00:00Z`) - 14 * HOUR; t < at(`${date}T00:00:00Z`) + 38 * HOUR;) {
    if (local(t, timeZone).startsWith(date)) hours.push(t);
    t += HOUR;
  }
  return hours;
}

/** The slots of one local calendar day (slots whose local date is `date`). */
function slotsOfLocalDay(schedule: WorkflowSchedule, date: string): number[] {
  const tz = schedule.timezone ?? 'UTC';
  const around = at(`${date}T00:00:00Z`);
  return slotsBetween(schedule, around - 2 * DAY, around + 2 * DAY).filter((s) =>
    local(s, tz).startsWith(date),
  );
}

describe('slots over a day', () => {
  it('*/15 gives the 96 quarter hours of a UTC day', () => {
    const day = at('2026-06-10T00:00:00Z');
    const slots = slotsBetween({ cron: '*/15 * * * *' }, day - 1, day + DAY - 1);
    expect(slots).toEqual(Array.from({ length: 96 }, (_, i) => day + i * 15 * MIN));
  });

  it('an hourly job in London has 23 slots on the spring-forward day and 25 on the fall-back day', () => {
    const hourly = { cron: '0 * * * *', timezone: 'Europe/London' };
    const spring = slotsOfLocalDay(hourly, '2026-03-29');
    const autumn = slotsOfLocalDay(hourly, '2026-10-25');
    expect(spring).toHaveLength(23);
    expect(autumn).toHaveLength(25);
    expect(spring).toEqual(localDayHours('2026-03-29', 'Europe/London'));
    expect(autumn).toEqual(localDayHours('2026-10-25', 'Europe/London'));
    // 01:00 local does not exist in spring and happens twice in autumn.
    expect(spring.map((s) => local(s, 'Europe/London').slice(11))).not.toContain('01:00');
    expect(
      autumn.map((s) => local(s, 'Europe/London').slice(11)).filter((t) => t === '01:00'),
    ).toHaveLength(2);
  });

  it('an hourly job in New York has 23 and 25 slots on its DST days too', () => {
    const hourly = { cron: '0 * * * *', timezone: 'America/New_York' };
    expect(slotsOfLocalDay(hourly, '2026-03-08')).toEqual(
      localDayHours('2026-03-08', 'America/New_York'),
    );
    expect(slotsOfLocalDay(hourly, '2026-03-08')).toHaveLength(23);
    expect(slotsOfLocalDay(hourly, '2026-11-01')).toHaveLength(25);
  });

  it('a daily 01:30 job in London runs once on every local day, across both DST changes', () => {
    const daily = { cron: '30 1 * * *', timezone: 'Europe/London' };
    for (const [from, to] of [
      ['2026-03-26', '2026-04-01'],
      ['2026-10-22', '2026-10-28'],
    ] as const) {
      const slots = slotsBetween(daily, at(`${from}T00:00:00Z`), at(`${to}T00:00:00Z`));
      const days = slots.map((s) => local(s, 'Europe/London').slice(0, 10));
      expect(new Set(days).size).toBe(days.length);
      expect(days).toHaveLength(6);
    }
    // Spring forward: 01:30 does not exist; the slot is the first instant after the gap,
    // 02:00 BST. Fall back: 01:30 happens twice; the slot is the first, 01:30 BST.
    expect(slotsOfLocalDay(daily, '2026-03-29')).toEqual([at('2026-03-29T01:00:00Z')]);
    expect(local(at('2026-03-29T01:00:00Z'), 'Europe/London')).toBe('2026-03-29 02:00');
    expect(slotsOfLocalDay(daily, '2026-10-25')).toEqual([at('2026-10-25T00:30:00Z')]);
    // The days either side keep 01:30 local.
    expect(slotsOfLocalDay(daily, '2026-03-28')).toEqual([at('2026-03-28T01:30:00Z')]);
    expect(slotsOfLocalDay(daily, '2026-03-30')).toEqual([at('2026-03-30T00:30:00Z')]);
    expect(slotsOfLocalDay(daily, '2026-10-26')).toEqual([at('2026-10-26T01:30:00Z')]);
  });
});

describe('next, previous and membership', () => {
  const quarter = { cron: '*/15 * * * *' };
  const t = at('2026-06-10T10:15:00Z');

  it('nextSlot is strictly after, previousSlot at or before, also between whole seconds', () => {
    expect(nextSlot(quarter, t)).toBe(t + 15 * MIN);
    expect(nextSlot(quarter, t - 1)).toBe(t);
    expect(nextSlot(quarter, t + 500)).toBe(t + 15 * MIN);
    expect(previousSlot(quarter, t)).toBe(t);
    expect(previousSlot(quarter, t - 1)).toBe(t - 15 * MIN);
    expect(previousSlot(quarter, t + 14 * MIN)).toBe(t);
    expect(isSlot(quarter, t)).toBe(true);
    expect(isSlot(quarter, t + 1000)).toBe(false);
    expect(nextSlot({ cron: '0 0 30 2 *' }, t)).toBeNull();
  });

  it('checkSchedule names a bad cron, an unknown zone and a cron that never fires', () => {
    expect(checkSchedule({ cron: '*/5 * * * *', timezone: 'Europe/London' })).toBeNull();
    expect(checkSchedule({ cron: 'every day' })).toMatch(/bad cron 'every day'/);
    expect(checkSchedule({ cron: '* * * * *', timezone: 'Mars/Olympus' })).toMatch(
      /unknown time zone 'Mars\/Olympus'/,
    );
    expect(checkSchedule({ cron: '0 0 30 2 *' })).toMatch(/never fires/);
  });
});

describe('dueSlots', () => {
  const hourly = { cron: '0 * * * *' };
  const last = at('2026-06-10T02:00:00Z');
  // Down from just after 02:00 until 07:20: 03:00 … 07:00 were missed.
  const now = at('2026-06-10T07:20:00Z');
  const missed = [3, 4, 5, 6, 7].map((h) => at(`2026-06-10T0${h}:00:00Z`));

  it('once runs only the latest missed slot', () => {
    expect(dueSlots(hourly, last, now, 'once')).toEqual([missed[4]]);
  });

  it('all runs every missed slot, oldest first, capped to the newest maxCatchUp', () => {
    expect(dueSlots(hourly, last, now, 'all')).toEqual(missed);
    expect(dueSlots({ ...hourly, maxCatchUp: 2 }, last, now, 'all')).toEqual(missed.slice(3));
  });

  it('skip runs only a slot that is due now', () => {
    expect(dueSlots(hourly, last, now, 'skip')).toEqual([]);
    const justAfter = at('2026-06-10T07:00:30Z');
    expect(dueSlots(hourly, last, justAfter, 'skip')).toEqual([missed[4]]);
    expect(dueSlots(hourly, last, missed[4]! + CURRENT_SLOT_GRACE_MS, 'skip')).toEqual([]);
  });

  it('nothing is due once the current slot has its run', () => {
    for (const policy of ['once', 'all', 'skip'] as const) {
      expect(dueSlots(hourly, missed[4]!, now, policy)).toEqual([]);
    }
  });

  it('a new workflow runs only the current slot, and only if it is due now', () => {
    for (const policy of ['once', 'all', 'skip'] as const) {
      expect(dueSlots(hourly, null, now, policy)).toEqual([]);
      expect(dueSlots(hourly, null, missed[4]! + 1000, policy)).toEqual([missed[4]]);
    }
  });

  it('the policy defaults to the schedule’s, else once', () => {
    expect(dueSlots({ ...hourly, catchUp: 'all' }, last, now)).toEqual(missed);
    expect(dueSlots(hourly, last, now)).toEqual([missed[4]]);
  });
});
