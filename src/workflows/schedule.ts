/**
 * Schedule slots: the instants (epoch ms) a workflow's cron fires at, read in
 * its time zone by croner, and which of them are due after a pause or a
 * downtime.
 *
 * Daylight saving time follows croner (the Vixie cron rules):
 * - a fixed-time job (one value each in minute and hour, e.g. `30 1 * * *`)
 *   fires once per local calendar day: when its time falls in the
 *   spring-forward gap it fires at the first instant after the gap (01:30 in
 *   London on the last Sunday of March fires at 02:00 BST = 01:00 UTC), and
 *   when its time happens twice on the fall-back day it fires at the first
 *   occurrence only (01:30 BST);
 * - an interval job (a wildcard, step, list or range in minute or hour, e.g.
 *   `0 * * * *`) skips the times that do not exist and fires on both
 *   occurrences of a repeated time: an hourly job has 23 slots on the
 *   spring-forward day and 25 on the fall-back day.
 *
 * Cron slots are whole seconds: a slot is always a multiple of 1 000 ms.
 */
import { Cron } from 'croner';
import type { CatchUpPolicy, WorkflowSchedule } from './definition.js';

/**
 * How long after its instant a slot still counts as current: a tick that
 * comes later than that (a stalled process, a pause) finds it missed, and
 * the catch-up policy decides. Covers ticks delayed by a slow store.
 */
export const CURRENT_SLOT_GRACE_MS = 60_000;

/** Default cap for `catchUp: all`. */
export const DEFAULT_MAX_CATCH_UP = 100;

/** Instances cached per (cron, zone): croner parses the pattern on construction. */
const crons = new Map<string, Cron>();

/**
 * The croner job for a schedule (never started: it is only used to compute
 * times). Throws croner's TypeError for a bad pattern; an unknown time zone
 * throws on first use (`checkSchedule` reports both).
 */
function cronFor(schedule: WorkflowSchedule): Cron {
  const timezone = schedule.timezone ?? 'UTC';
  const key = `${timezone}\u0000${schedule.cron}`;
  let cron = crons.get(key);
  if (cron === undefined) {
    cron = new Cron(schedule.cron, { timezone, paused: true });
    crons.set(key, cron);
  }
  return cron;
}

/**
 * The problem with a schedule, or null when it is usable: a cron croner
 * cannot parse, a time zone Intl does not know, or a cron that never fires.
 */
export function checkSchedule(schedule: WorkflowSchedule): string | null {
  if (schedule.timezone !== undefined) {
    try {
      new Intl.DateTimeFormat('en-GB', { timeZone: schedule.timezone });
    } catch {
      return `unknown time zone '${schedule.timezone}'`;
    }
  }
  let cron: Cron;
  try {
    cron = cronFor(schedule);
  } catch (err) {
    return `bad cron '${schedule.cron}': ${err instanceof Error ? err.message : String(err)}`;
  }
  try {
    if (cron.nextRun(new Date(0)) === null) return `cron '${schedule.cron}' never fires`;
  } catch (err) {
    return `cron '${schedule.cron}' cannot be evaluated: ${err instanceof Error ? err.message : String(err)}`;
  }
  return null;
}

/** The first slot strictly after `after`, or null if the cron never fires again. */
export function nextSlot(schedule: WorkflowSchedule, after: number): number | null {
  // croner strips milliseconds from the reference: step past a fractional second first,
  // so that a slot equal to the truncated reference is not returned again.
  const reference = Math.floor(after / 1000) * 1000;
  const next = cronFor(schedule).nextRun(new Date(reference));
  return next === null ? null : next.getTime();
}

/**
 * The latest slots at or before `atOrBefore`, newest first, at most `n`.
 */
function latestSlots(schedule: WorkflowSchedule, atOrBefore: number, n: number): number[] {
  // previousRuns excludes a run at the reference itself: look from just after it.
  const reference = new Date(Math.floor(atOrBefore / 1000) * 1000 + 1000);
  return cronFor(schedule)
    .previousRuns(n, reference)
    .map((d) => d.getTime())
    .filter((t) => t <= atOrBefore);
}

/** The latest slot at or before `atOrBefore`, or null. */
export function previousSlot(schedule: WorkflowSchedule, atOrBefore: number): number | null {
  return latestSlots(schedule, atOrBefore, 1)[0] ?? null;
}

/** Every slot in (fromExclusive, toInclusive], oldest first. */
export function slotsBetween(
  schedule: WorkflowSchedule,
  fromExclusive: number,
  toInclusive: number,
): number[] {
  const slots: number[] = [];
  let cursor = fromExclusive;
  for (;;) {
    const next = nextSlot(schedule, cursor);
    if (next === null || next > toInclusive) return slots;
    slots.push(next);
    cursor = next;
  }
}

/** Whether `at` is one of the schedule's slots. */
export function isSlot(schedule: WorkflowSchedule, at: number): boolean {
  return nextSlot(schedule, at - 1) === at;
}

/**
 * The slots to create runs for at `now`, oldest first, given the latest slot
 * that already has a run (`lastSlot`, null for a workflow that never ran).
 *
 * The current slot is the latest one at or before `now`; it is "due now"
 * when it came less than `graceMs` ago. Slots after `lastSlot` up to `now`
 * are missed, and `policy` picks from them:
 * - `once`: the newest one (the current slot, due now or not);
 * - `all`: every one, oldest first; over `maxCatchUp` only the newest ones;
 * - `skip`: the current slot if it is due now, else none.
 *
 * A workflow that never ran (`lastSlot` null) gets only the current slot, and
 * only if it is due now, whatever the policy: history is not backfilled.
 */
export function dueSlots(
  schedule: WorkflowSchedule,
  lastSlot: number | null,
  now: number,
  policy: CatchUpPolicy = schedule.catchUp ?? 'once',
  graceMs: number = CURRENT_SLOT_GRACE_MS,
): number[] {
  const current = previousSlot(schedule, now);
  if (current === null || (lastSlot !== null && current <= lastSlot)) return [];
  const dueNow = now - current < graceMs;
  if (lastSlot === null || policy === 'skip') return dueNow ? [current] : [];
  if (policy === 'once') return [current];
  const cap = schedule.maxCatchUp ?? DEFAULT_MAX_CATCH_UP;
  return latestSlots(schedule, now, cap)
    .filter((slot) => slot > lastSlot)
    .reverse();
}
