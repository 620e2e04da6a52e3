/**
 * DuckDB values → values `JSON.stringify` can write without loss of meaning.
 *
 * Built on the library's `JsonDuckDBValueConverter`, with three changes that
 * make query results easier to use from the API and the dashboard:
 * - 64/128-bit integers become numbers when they are safe integers, strings
 *   otherwise (the library always gives strings, so `count(*)` would be `"300"`);
 * - DECIMAL becomes a number (a double; the library gives a string);
 * - timestamps become ISO 8601 UTC strings with milliseconds
 *   (`2026-11-22T10:00:00.000Z`, the wire form of a reading) where the library
 *   gives `2026-11-22 10:00:00`. Sub-millisecond digits are dropped; ±infinity
 *   and values outside the JS Date range stay DuckDB's text (`infinity`).
 * Everything else is the library's JSON form: DATE and TIME as text, non-finite
 * doubles as `"NaN"`/`"Infinity"`, lists and arrays as arrays, structs as
 * objects, maps as `[{key, value}]`, intervals as `{months, days, micros}`.
 * Nested values go through this converter too.
 */
import {
  DuckDBDecimalValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  DuckDBTypeId,
  JsonDuckDBValueConverter,
  type DuckDBValueConverter,
  type Json,
} from '@duckdb/node-api';

/** Largest |epoch milliseconds| a JS Date accepts. */
const MAX_DATE_MS = 8_640_000_000_000_000n;

/** A bigint as a number when that is exact, else as its decimal string. */
export function bigintToJson(value: bigint): number | string {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

/** Floor division, so that instants before 1970 round towards the past. */
function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

function isoFromEpochMillis(ms: bigint, fallback: string): string {
  if (ms > MAX_DATE_MS || ms < -MAX_DATE_MS) return fallback;
  return new Date(Number(ms)).toISOString();
}

function timestampToJson(value: unknown): string | null {
  if (value instanceof DuckDBTimestampValue || value instanceof DuckDBTimestampTZValue) {
    return value.isFinite
      ? isoFromEpochMillis(floorDiv(value.micros, 1000n), value.toString())
      : value.toString();
  }
  if (value instanceof DuckDBTimestampMillisecondsValue) {
    return value.isFinite ? isoFromEpochMillis(value.millis, value.toString()) : value.toString();
  }
  if (value instanceof DuckDBTimestampSecondsValue) {
    return value.isFinite
      ? isoFromEpochMillis(value.seconds * 1000n, value.toString())
      : value.toString();
  }
  if (value instanceof DuckDBTimestampNanosecondsValue) {
    return value.isFinite
      ? isoFromEpochMillis(floorDiv(value.nanos, 1_000_000n), value.toString())
      : value.toString();
  }
  return null;
}

export const jsonSafeConverter: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (value === null) return null;
  switch (type.typeId) {
    case DuckDBTypeId.BIGINT:
    case DuckDBTypeId.UBIGINT:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
      if (typeof value === 'bigint') return bigintToJson(value);
      break;
    case DuckDBTypeId.DECIMAL:
      if (value instanceof DuckDBDecimalValue) return value.toDouble();
      break;
    case DuckDBTypeId.TIMESTAMP:
    case DuckDBTypeId.TIMESTAMP_TZ:
    case DuckDBTypeId.TIMESTAMP_S:
    case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_NS: {
      const iso = timestampToJson(value);
      if (iso !== null) return iso;
      break;
    }
    default:
      break;
  }
  return JsonDuckDBValueConverter(value, type, converter);
};
