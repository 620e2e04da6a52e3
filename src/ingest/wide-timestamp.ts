/**
 * Timestamps of wide CSV files, whose date and time are often in local
 * formats and separate columns (the UCI air-quality file: `10/03/2004`,
 * `18:00:00`). Runs once per row, not per reading.
 */
import { parseDecimal } from './numbers.js';
import { parseIso, wallClockToMs } from './timestamp.js';
import type { WideTimestampFormat } from './types.js';

/** ECMAScript's Date range, ms. */
const MAX_EPOCH_MS = 8.64e15;

/**
 * Epoch ms of one row's timestamp, or NaN if the cells do not match the
 * format. `timeCell` is the separate time-of-day cell, if the mapping has one;
 * without it, dmy/mdy/ymd dates may carry the time after a space or `T`.
 * `offsetMinutes` is the file clock's offset from UTC (ignored for epochs and
 * for ISO strings that carry a zone).
 */
export function parseWideTimestamp(
  dateCell: string,
  timeCell: string | undefined,
  format: WideTimestampFormat,
  offsetMinutes: number,
): number {
  switch (format) {
    case 'epoch_s':
      return inRange(Math.round(parseDecimal(dateCell) * 1000));
    case 'epoch_ms':
      return inRange(Math.round(parseDecimal(dateCell)));
    case 'iso': {
      if (timeCell === undefined) return parseIso(dateCell, offsetMinutes);
      // Date in one column, time of day in the other.
      if (dateCell.length !== 10) return NaN;
      const midnight = parseIso(dateCell, 0);
      const tod = parseTimeOfDay(new Scanner(timeCell));
      return midnight + tod - offsetMinutes * 60_000; // NaN if either is
    }
    case 'dmy':
    case 'mdy':
    case 'ymd':
      return parseLocalDate(dateCell, timeCell, format, offsetMinutes);
  }
}

function inRange(ms: number): number {
  return ms >= -MAX_EPOCH_MS && ms <= MAX_EPOCH_MS ? ms : NaN;
}

/** A read position in a string. */
class Scanner {
  pos = 0;
  constructor(readonly s: string) {}

  atEnd(): boolean {
    return this.pos >= this.s.length;
  }

  /** Consumes `code` if it is next. */
  take(code: number): boolean {
    if (this.pos < this.s.length && this.s.charCodeAt(this.pos) === code) {
      this.pos++;
      return true;
    }
    return false;
  }

  /** Consumes minDigits..maxDigits decimal digits; -1 if fewer than minDigits. */
  int(minDigits: number, maxDigits: number): number {
    const start = this.pos;
    const end = Math.min(this.s.length, start + maxDigits);
    let n = 0;
    while (this.pos < end) {
      const c = this.s.charCodeAt(this.pos) - 48;
      if (c < 0 || c > 9) break;
      n = n * 10 + c;
      this.pos++;
    }
    return this.pos - start < minDigits ? -1 : n;
  }
}

/**
 * `d/m/yyyy`, `m/d/yyyy` or `yyyy/m/d`: separators '/', '-' or '.' (the same
 * one twice), one or two digits for day and month, four for the year.
 */
function parseLocalDate(
  dateCell: string,
  timeCell: string | undefined,
  format: 'dmy' | 'mdy' | 'ymd',
  offsetMinutes: number,
): number {
  const sc = new Scanner(dateCell);
  const a = format === 'ymd' ? sc.int(4, 4) : sc.int(1, 2);
  const sep = sc.pos < dateCell.length ? dateCell.charCodeAt(sc.pos) : -1;
  if (a < 0 || !(sep === 47 || sep === 45 || sep === 46)) return NaN;
  sc.pos++;
  const b = sc.int(1, 2);
  if (b < 0 || !sc.take(sep)) return NaN;
  const c = format === 'ymd' ? sc.int(1, 2) : sc.int(4, 4);
  if (c < 0) return NaN;
  let year: number;
  let month: number;
  let day: number;
  if (format === 'dmy') [day, month, year] = [a, b, c];
  else if (format === 'mdy') [month, day, year] = [a, b, c];
  else [year, month, day] = [a, b, c];

  let tod = 0;
  if (!sc.atEnd()) {
    // Time in the same cell, after a space or 'T'.
    if (timeCell !== undefined || !(sc.take(32) || sc.take(84))) return NaN;
    tod = parseTimeOfDay(sc);
  } else if (timeCell !== undefined) {
    tod = parseTimeOfDay(new Scanner(timeCell));
  }
  return wallClockToMs(year, month, day, 0, 0, 0, 0, offsetMinutes) + tod; // NaN if either is
}

/** `h[h]:mm[:ss[.fff…]]` up to the end of the scanner's text, as ms since midnight; NaN if malformed. */
function parseTimeOfDay(sc: Scanner): number {
  const h = sc.int(1, 2);
  if (h < 0 || h > 23 || !sc.take(58)) return NaN;
  const m = sc.int(2, 2);
  if (m < 0 || m > 59) return NaN;
  let sec = 0;
  let ms = 0;
  if (sc.take(58)) {
    sec = sc.int(2, 2);
    if (sec < 0 || sec > 59) return NaN;
    if (sc.take(46)) {
      const start = sc.pos;
      const f = sc.int(1, 3);
      if (f < 0) return NaN;
      const digits = sc.pos - start;
      ms = digits === 1 ? f * 100 : digits === 2 ? f * 10 : f;
      // Digits beyond milliseconds are truncated.
      sc.int(0, Infinity);
    }
  }
  if (!sc.atEnd()) return NaN;
  return ((h * 60 + m) * 60 + sec) * 1000 + ms;
}
