/** Query-parameter parsing with errors that name the parameter (CANOPY_API_BAD_REQUEST). */
import { CanopyError } from '../core/errors.js';
import { parseTimestamp } from '../ingest/index.js';

type Query = Record<string, unknown>;

export function optionalString(query: Query, name: string): string | undefined {
  const value = query[name];
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string')
    throw new CanopyError('CANOPY_API_BAD_REQUEST', `${name} must be given once`);
  return value;
}

export function parseLimit(query: Query, fallback: number, max: number): number {
  const raw = optionalString(query, 'limit');
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      `limit must be an integer from 1 to ${max}, got "${raw}"`,
    );
  }
  return n;
}

/** ISO 8601 (no zone = UTC), or epoch seconds / milliseconds: the same rule as reading timestamps. */
export function parseTimeParam(query: Query, name: string): number | undefined {
  const raw = optionalString(query, name);
  if (raw === undefined) return undefined;
  const ms = parseTimestamp(raw);
  if (Number.isNaN(ms)) {
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      `${name} must be an ISO 8601 time or epoch seconds/milliseconds, got "${raw}"`,
    );
  }
  return ms;
}
