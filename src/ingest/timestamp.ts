/**
 * Timestamp parsing for the hot path.
 *
 * ISO 8601 strings are parsed by hand rather than with `Date.parse` because
 * `Date.parse` reads a zone-less date-time as *local* time (the contract says
 * UTC), silently rolls invalid dates over (`2026-02-30` becomes 2 March) and
 * accepts implementation-specific legacy forms. The hand parser is also
 * several times faster; the tests check it against `Date.parse` on valid input.
 */
import { parseDecimal } from './numbers.js';

const MS_PER_DAY = 86_400_000;
/** ECMAScript's Date range: ±100 000 000 days around the epoch. */
const MAX_EPOCH_MS = 8.64e15;
/**
 * 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: the event times a reading
 * may carry. Every hot store, the lake's partition names and ISO 8601 text
 * hold four-digit years only; validation rejects times outside.
 */
export const MIN_EVENT_TIME_MS = -62_135_596_800_000;
export const MAX_EVENT_TIME_MS = 253_402_300_799_999;
/** Numbers below this (in magnitude) are epoch seconds, above it epoch milliseconds (1e11 s ≈ year 5138). */
const EPOCH_SECONDS_BELOW = 1e11;

/**
 * Converts any accepted timestamp value to integer epoch milliseconds.
 * Accepted: an ISO 8601 string, a number, or a numeric string; numbers below
 * 1e11 in magnitude are epoch seconds, others epoch milliseconds.
 * Returns NaN when the value is none of these.
 */
export function parseTimestamp(value: unknown): number {
  if (typeof value === 'string') {
    // ISO dates have '-' at index 4; numeric strings never do.
    if (value.length >= 10 && value.charCodeAt(4) === 45) return parseIso(value, 0);
    return epochToMs(parseDecimal(value));
  }
  if (typeof value === 'number') return epochToMs(value);
  return NaN;
}

/** Epoch seconds or milliseconds (see {@link parseTimestamp}) to integer ms; NaN if out of range. */
export function epochToMs(n: number): number {
  if (!Number.isFinite(n)) return NaN;
  // Rounding, not truncation, removes binary noise such as 1700000000.123 * 1000 = …123.00002.
  const ms = Math.round(n > -EPOCH_SECONDS_BELOW && n < EPOCH_SECONDS_BELOW ? n * 1000 : n);
  return ms >= -MAX_EPOCH_MS && ms <= MAX_EPOCH_MS ? ms : NaN;
}

/** Two ASCII digits at `i` as a number, or -1. The caller guarantees `i + 1 < s.length`. */
function digits2(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** True when y-m-d is a real calendar date (proleptic Gregorian). */
function isValidDate(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const dim = m === 2 && isLeapYear(y) ? 29 : (DAYS_IN_MONTH[m - 1] as number);
  return d <= dim;
}

/**
 * Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's
 * days_from_civil). Pure arithmetic: unlike Date.UTC it does not map years
 * 0–99 to 1900–1999.
 */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/**
 * Epoch ms of a wall-clock time, or NaN if any field is out of range.
 * 24:00:00.000 is accepted as the end of the day, as ISO 8601 allows.
 */
export function wallClockToMs(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
  offsetMinutes: number,
): number {
  if (!isValidDate(year, month, day)) return NaN;
  if (minute > 59 || second > 59 || hour > 24) return NaN;
  if (hour === 24 && (minute !== 0 || second !== 0 || ms !== 0)) return NaN;
  return (
    daysFromCivil(year, month, day) * MS_PER_DAY +
    hour * 3_600_000 +
    minute * 60_000 +
    second * 1000 +
    ms -
    offsetMinutes * 60_000
  );
}

/**
 * Parses ISO 8601 extended format: `YYYY-MM-DD`, optionally followed by
 * `T` (or `t`, or a space) `hh:mm[:ss[.fraction]]` and a zone `Z`, `±hh:mm`,
 * `±hhmm` or `±hh`. A date-time without a zone is at `defaultOffsetMinutes`
 * from UTC (0 for the wire contract). The fraction is truncated to whole
 * milliseconds. Returns integer epoch ms, or NaN for anything else.
 */
export function parseIso(s: string, defaultOffsetMinutes: number): number {
  const len = s.length;
  if (len < 10 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return NaN;
  const y1 = digits2(s, 0);
  const y2 = digits2(s, 2);
  const month = digits2(s, 5);
  const day = digits2(s, 8);
  if (y1 < 0 || y2 < 0 || month < 0 || day < 0) return NaN;
  const year = y1 * 100 + y2;
  if (len === 10) return wallClockToMs(year, month, day, 0, 0, 0, 0, 0);

  const sep = s.charCodeAt(10);
  // 'T', 't' or ' '
  if (!(sep === 84 || sep === 116 || sep === 32) || len < 16 || s.charCodeAt(13) !== 58) return NaN;
  const hour = digits2(s, 11);
  const minute = digits2(s, 14);
  if (hour < 0 || minute < 0) return NaN;
  let second = 0;
  let ms = 0;
  let pos = 16;
  if (pos < len && s.charCodeAt(pos) === 58) {
    if (pos + 2 >= len) return NaN;
    second = digits2(s, pos + 1);
    if (second < 0) return NaN;
    pos += 3;
    if (pos < len && s.charCodeAt(pos) === 46) {
      pos++;
      const start = pos;
      let c = pos < len ? s.charCodeAt(pos) - 48 : -1;
      while (c >= 0 && c <= 9) {
        // Only the first three digits count; finer precision is truncated.
        if (pos - start < 3) ms = ms * 10 + c;
        pos++;
        c = pos < len ? s.charCodeAt(pos) - 48 : -1;
      }
      const n = pos - start;
      if (n === 0) return NaN;
      if (n === 1) ms *= 100;
      else if (n === 2) ms *= 10;
    }
  }

  let offset = defaultOffsetMinutes;
  if (pos < len) {
    const z = s.charCodeAt(pos);
    if (z === 90 || z === 122) {
      // 'Z' / 'z'
      offset = 0;
      pos++;
    } else if (z === 43 || z === 45) {
      // '+' / '-'
      if (pos + 2 >= len) return NaN;
      const oh = digits2(s, pos + 1);
      if (oh < 0 || oh > 23) return NaN;
      pos += 3;
      let om = 0;
      if (pos < len) {
        if (s.charCodeAt(pos) === 58) pos++;
        if (pos + 1 >= len) return NaN;
        om = digits2(s, pos);
        if (om < 0 || om > 59) return NaN;
        pos += 2;
      }
      offset = (z === 45 ? -1 : 1) * (oh * 60 + om);
    } else {
      return NaN;
    }
  }
  if (pos !== len) return NaN;
  return wallClockToMs(year, month, day, hour, minute, second, ms, offset);
}
