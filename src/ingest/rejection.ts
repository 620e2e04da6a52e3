/**
 * Building rejections and their human messages. Only called on the error
 * path, so clarity wins over speed here.
 */
import type { RejectReason } from '../core/errors.js';
import type { Candidate, Rejection } from '../core/ingest.js';

/** Longest rendering of a bad value inside a message. */
const MAX_SHOWN = 80;

export function rejection(
  reason: RejectReason,
  message: string,
  raw: string,
  index?: number,
): Rejection {
  return index === undefined ? { reason, message, raw } : { reason, message, index, raw };
}

/** A rejection of one decoded record; `candidate.raw` may be computed lazily, so it is read only here. */
export function rejectCandidate(
  reason: RejectReason,
  message: string,
  candidate: Candidate,
): Rejection {
  return { reason, message, index: candidate.index, raw: candidate.raw };
}

/**
 * A decoded record as text, for a rejection's raw. Never throws: JSON.parse
 * accepts nesting deeper than JSON.stringify can render (a few kilobytes of
 * `[` are enough), and such a record gets a placeholder naming why.
 */
export function recordText(record: unknown): string {
  try {
    return JSON.stringify(record) ?? String(record);
  } catch (err) {
    return `(record not renderable as JSON: ${errorText(err)})`;
  }
}

/** Renders a value for a message: JSON where possible, cut to a readable length. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    text = String(value);
  } else {
    try {
      text = JSON.stringify(value) ?? `(${typeof value})`;
    } catch {
      // Cyclic or otherwise unserialisable values can only come from in-process callers.
      text = Object.prototype.toString.call(value);
    }
  }
  return truncate(text, MAX_SHOWN);
}

export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} chars)`;
}

/** Describes the JSON type of a value, for "expected X, got Y" messages. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'object':
      return 'an object';
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    default:
      return typeof value;
  }
}

/** The whole payload turned away because it carries too many readings. */
export function tooManyReadings(payloadText: string, count: number, max: number): Rejection {
  return rejection(
    'TOO_MANY_READINGS',
    `payload carries ${count} readings, limit ${max} (ingest.maxReadingsPerPayload); split it`,
    payloadText,
  );
}

/** The message of a caught parser error, for a rejection message. */
export function errorText(err: unknown): string {
  return truncate(err instanceof Error ? err.message : String(err), 200);
}
