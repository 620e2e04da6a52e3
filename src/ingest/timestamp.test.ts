import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../test/helpers/random.js';
import { parseDecimal } from './numbers.js';
import { epochToMs, parseIso, parseTimestamp } from './timestamp.js';
import { validateRecord } from './validate.js';
import { DEFAULT_LIMITS } from './types.js';

const int = (rand: () => number, min: number, max: number): number =>
  min + Math.floor(rand() * (max - min + 1));
const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** 1000-01-01 .. 9999-12-31, the years ISO strings and toISOString write with four digits. */
const MIN_MS = Date.UTC(1000, 0, 1);
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Formats `ms` as wall-clock time at `offsetMinutes` from UTC, with that offset written out. */
function isoWithOffset(ms: number, offsetMinutes: number): string {
  const d = new Date(ms + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${d.toISOString().slice(0, 23)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

describe('parseIso', () => {
  it('agrees with Date.parse on random valid instants in UTC and with offsets', () => {
    const rand = seededRandom(1);
    for (let i = 0; i < 5000; i++) {
      const ms = int(rand, MIN_MS, MAX_MS);
      const z = new Date(ms).toISOString();
      expect(parseIso(z, 0)).toBe(ms);
      expect(parseIso(z, 0)).toBe(Date.parse(z));
      const offset = int(rand, -23 * 60 - 59, 23 * 60 + 59);
      const withOffset = isoWithOffset(ms, offset);
      expect(parseIso(withOffset, 0)).toBe(ms);
      expect(parseIso(withOffset, 0)).toBe(Date.parse(withOffset));
    }
  });

  it('reads a date-time without zone as UTC (Date.parse would use local time)', () => {
    expect(parseIso('2026-11-22T10:00:00', 0)).toBe(Date.parse('2026-11-22T10:00:00Z'));
    expect(parseIso('2026-11-22T10:00', 0)).toBe(Date.parse('2026-11-22T10:00:00Z'));
    expect(parseIso('2026-11-22 10:00:00.25', 0)).toBe(Date.parse('2026-11-22T10:00:00.250Z'));
    // A default offset applies only when the string has no zone of its own.
    expect(parseIso('2026-11-22T10:00:00', 60)).toBe(Date.parse('2026-11-22T09:00:00Z'));
    expect(parseIso('2026-11-22T10:00:00Z', 60)).toBe(Date.parse('2026-11-22T10:00:00Z'));
  });

  it.each([
    ['2026-11-22', '2026-11-22T00:00:00.000Z'],
    ['2026-11-22t10:00:00z', '2026-11-22T10:00:00.000Z'],
    ['2026-11-22T10:00:00.123456789Z', '2026-11-22T10:00:00.123Z'],
    ['2026-11-22T10:00:00.1Z', '2026-11-22T10:00:00.100Z'],
    ['2026-11-22T10:00:00+0130', '2026-11-22T08:30:00.000Z'],
    ['2026-11-22T10:00:00-05', '2026-11-22T15:00:00.000Z'],
    ['2026-11-22T24:00:00Z', '2026-11-23T00:00:00.000Z'],
    ['2024-02-29T12:00:00Z', '2024-02-29T12:00:00.000Z'],
    ['2000-02-29T00:00:00Z', '2000-02-29T00:00:00.000Z'],
    ['0050-06-01T00:00:00Z', '0050-06-01T00:00:00.000Z'],
  ])('parses %s', (input, iso) => {
    expect(new Date(parseIso(input, 0)).toISOString()).toBe(iso);
  });

  it.each([
    '2026-02-30T00:00:00Z',
    '2023-02-29',
    '1900-02-29',
    '2026-13-01',
    '2026-00-10',
    '2026-11-00',
    '2026-11-22T24:00:01Z',
    '2026-11-22T10:60:00Z',
    '2026-11-22T10:00:60Z',
    '2026-11-22T10:00:00.Z',
    '2026-11-22T10:00:00+24:00',
    '2026-11-22T10:00:00+01:60',
    '2026-11-22T10:00:00+1',
    '2026-11-22T10:00:00+01:',
    '2026-11-22T10:00:00ZZ',
    '2026-11-22T10:00:00 Z',
    '2026-11-22T10',
    '2026-11-22X10:00:00Z',
    '2026-1-22',
    '26-11-22T10:00:00Z',
    '2026-11-22Z',
    '+2026-11-22',
    '2026/11/22',
    '２０２６-11-22',
  ])('rejects %s', (input) => {
    expect(parseIso(input, 0)).toBeNaN();
  });
});

describe('parseTimestamp', () => {
  it('gives the same event time for epoch s, epoch ms and ISO of one instant (random instants)', () => {
    const rand = seededRandom(2);
    // From March 1973 on, epoch milliseconds are >= 1e11 and cannot be read as seconds.
    const from = 1e11;
    const to = Date.UTC(5000, 0, 1);
    for (let i = 0; i < 5000; i++) {
      const ms = int(rand, from, to);
      const forms: unknown[] = [
        ms,
        String(ms),
        ms / 1000,
        String(ms / 1000),
        new Date(ms).toISOString(),
        isoWithOffset(ms, int(rand, -720, 840)),
      ];
      for (const form of forms) expect(parseTimestamp(form), String(form)).toBe(ms);
    }
  });

  it('gives the same eventTime through validation for every form', () => {
    const now = Date.UTC(2026, 10, 22, 12);
    const rand = seededRandom(3);
    for (let i = 0; i < 500; i++) {
      // Whole seconds, so epoch seconds can be an integer too.
      const ms = int(rand, 1e8, now / 1000) * 1000;
      const forms = [ms, ms / 1000, String(ms / 1000), new Date(ms).toISOString()];
      const times = forms.map((ts) => {
        const r = validateRecord(
          { record: { sensor_id: 's', ts, value: 1 }, index: 0, raw: '' },
          { limits: DEFAULT_LIMITS },
          now,
        );
        expect(r.rejections).toEqual([]);
        return r.readings[0]!.eventTime;
      });
      expect(new Set(times)).toEqual(new Set([ms]));
    }
  });

  it('splits seconds from milliseconds at 1e11 and rounds to whole milliseconds', () => {
    expect(parseTimestamp(99_999_999_999)).toBe(99_999_999_999_000);
    expect(parseTimestamp(100_000_000_000)).toBe(100_000_000_000);
    expect(parseTimestamp(1_700_000_000.123)).toBe(1_700_000_000_123);
    expect(parseTimestamp(1_700_000_000_123.6)).toBe(1_700_000_000_124);
    expect(parseTimestamp(0)).toBe(0);
    expect(parseTimestamp(-86_400)).toBe(-86_400_000);
    expect(parseTimestamp('1e9')).toBe(1e12);
  });

  it.each([
    NaN,
    Infinity,
    -Infinity,
    1e300,
    8.64e15 + 1,
    true,
    null,
    undefined,
    {},
    [],
    '',
    ' 1700000000',
    '0x10',
    'now',
  ])('rejects %s', (value) => {
    expect(parseTimestamp(value)).toBeNaN();
  });

  it('epochToMs keeps the ECMAScript date range', () => {
    expect(epochToMs(8.64e15)).toBe(8.64e15);
    expect(epochToMs(-8.64e15)).toBe(-8.64e15);
    expect(epochToMs(8.64e15 + 1)).toBeNaN();
  });
});

describe('parseDecimal', () => {
  it.each([
    ['21.4', 21.4],
    ['-200', -200],
    ['-200.0', -200],
    ['+3', 3],
    ['.5', 0.5],
    ['5.', 5],
    ['1e3', 1000],
    ['1E-3', 0.001],
    ['007', 7],
    ['0', 0],
  ])('parses %s', (text, n) => {
    expect(parseDecimal(text)).toBe(n);
  });

  it.each([
    '',
    ' ',
    ' 1',
    '1 ',
    '0x10',
    '0b1',
    '0o7',
    'Infinity',
    '-Infinity',
    'NaN',
    '1e999',
    '1,5',
    '1_000',
    'abc',
    '--1',
    '.',
    '1e',
    'e5',
  ])('rejects %j', (text) => {
    expect(parseDecimal(text)).toBeNaN();
  });

  it('round-trips random doubles through String()', () => {
    const rand = seededRandom(4);
    for (let i = 0; i < 5000; i++) {
      const x = (rand() - 0.5) * 10 ** int(rand, -30, 30);
      expect(parseDecimal(String(x))).toBe(x);
    }
  });
});
