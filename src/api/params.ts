/** Query-parameter and body parsing with errors that name what is wrong (CANOPY_API_BAD_REQUEST). */
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

/** A JSON object request body (raw buffer, as the API keeps bodies); an empty body is `{}`. */
export function jsonObjectBody(body: unknown): Record<string, unknown> {
  const text = Buffer.isBuffer(body) ? body.toString('utf8').trim() : '';
  if (text === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CanopyError('CANOPY_API_BAD_REQUEST', 'the body must be a JSON object');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new CanopyError('CANOPY_API_BAD_REQUEST', 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}
