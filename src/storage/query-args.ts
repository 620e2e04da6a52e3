/**
 * Argument checks and keyset cursors shared by every hot-store adapter, so
 * that the API sees the same validation and the same error codes whichever
 * store is configured.
 *
 * Cursors are opaque to callers: base64url of a small tagged text. The tag
 * keeps a readings cursor from being accepted as a dead-letter cursor (and
 * the other way round), which would silently return the wrong page.
 */
import { CanopyError } from '../core/errors.js';
import type { ImputedValue, PurgeOptions } from '../core/store.js';

/** Largest page a caller may ask for. */
export const MAX_PAGE_LIMIT = 10_000;

/** Position after the last row of a readings page (newest-first order). */
export interface ReadingCursor {
  eventTime: number;
  seq: bigint;
}

/** A short rendering of a caller's bad value for an error message. */
function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 100));
  if (typeof value === 'object' && value !== null) return typeof value;
  return String(value);
}

function badRequest(message: string): CanopyError {
  return new CanopyError('CANOPY_API_BAD_REQUEST', message);
}

/** Throws CANOPY_API_BAD_REQUEST unless the purge bounds are finite epoch milliseconds. */
export function checkPurgeBounds(before: unknown, options: PurgeOptions): void {
  for (const [name, bound] of [
    ['purge bound', before],
    ['receipt purge bound', options.receiptsBefore ?? 0],
    ['MQTT receipt purge bound', options.mqttReceiptsBefore ?? 0],
  ] as const) {
    if (typeof bound !== 'number' || !Number.isFinite(bound)) {
      throw badRequest(`${name} must be a finite epoch-milliseconds number, got ${String(bound)}`);
    }
  }
}

/** Throws CANOPY_API_BAD_REQUEST unless every value and event time is finite. */
export function checkImputedValues(values: readonly ImputedValue[]): void {
  for (const v of values) {
    if (!Number.isFinite(v.value) || !Number.isFinite(v.eventTime)) {
      throw badRequest(
        `an imputed value needs a finite value and event time (${v.sensorId} at ${v.eventTime}: ${v.value})`,
      );
    }
  }
}

/** Throws CANOPY_API_BAD_REQUEST unless `limit` is an integer in 1..10 000. */
export function checkLimit(limit: unknown): number {
  if (
    typeof limit !== 'number' ||
    !Number.isInteger(limit) ||
    limit < 1 ||
    limit > MAX_PAGE_LIMIT
  ) {
    throw badRequest(`limit must be an integer from 1 to ${MAX_PAGE_LIMIT}, got ${show(limit)}`);
  }
  return limit;
}

/** Throws CANOPY_API_BAD_REQUEST unless `value` is undefined or a finite epoch-ms number. */
export function checkOptionalTime(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw badRequest(`${name} must be a finite epoch-milliseconds number, got ${show(value)}`);
  }
  return value;
}

// Strict alphabet check first: Buffer's base64url decoder skips characters it
// does not know, so without it "a!b" and "ab" would decode alike.
const BASE64URL = /^[A-Za-z0-9_-]+$/;

function decodeTagged(cursor: unknown, tag: string): string {
  if (typeof cursor !== 'string' || !BASE64URL.test(cursor)) {
    throw badRequest('cursor is not a cursor returned by this endpoint');
  }
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  // Re-encoding must give back the input exactly, or the text was not ours.
  if (Buffer.from(text, 'utf8').toString('base64url') !== cursor || !text.startsWith(`${tag}:`)) {
    throw badRequest('cursor is not a cursor returned by this endpoint');
  }
  return text.slice(tag.length + 1);
}

const READING_CURSOR_BODY = /^(-?\d{1,16}):(\d{1,19})$/;
const DEAD_LETTER_CURSOR_BODY = /^(\d{1,19})$/;

export function encodeReadingCursor(c: ReadingCursor): string {
  return Buffer.from(`r1:${c.eventTime}:${c.seq}`, 'utf8').toString('base64url');
}

/** Throws CANOPY_API_BAD_REQUEST for anything `encodeReadingCursor` did not produce. */
export function decodeReadingCursor(cursor: unknown): ReadingCursor {
  const m = READING_CURSOR_BODY.exec(decodeTagged(cursor, 'r1'));
  const eventTime = m ? Number(m[1]) : NaN;
  if (!m || !Number.isSafeInteger(eventTime)) {
    throw badRequest('cursor is not a cursor returned by this endpoint');
  }
  return { eventTime, seq: BigInt(m[2] as string) };
}

export function encodeDeadLetterCursor(id: bigint): string {
  return Buffer.from(`d1:${id}`, 'utf8').toString('base64url');
}

/** Throws CANOPY_API_BAD_REQUEST for anything `encodeDeadLetterCursor` did not produce. */
export function decodeDeadLetterCursor(cursor: unknown): bigint {
  const m = DEAD_LETTER_CURSOR_BODY.exec(decodeTagged(cursor, 'd1'));
  if (!m) throw badRequest('cursor is not a cursor returned by this endpoint');
  return BigInt(m[1] as string);
}
