/**
 * Key rules shared by every `ObjectStore` adapter, so that a key valid for
 * one lake is valid for all of them and a caller sees the same refusal from
 * each (see `core/object-store.ts` for the contract).
 *
 * Beyond the rules in the interface comment, two kinds of key are refused
 * everywhere, because one adapter could not store them faithfully:
 * - control characters (U+0000–U+001F, U+007F): a file name cannot hold NUL,
 *   and S3's XML listing cannot carry most of them;
 * - a segment ending in `.canopy-tmp`: the local adapter names its temporary
 *   files that way and leaves them out of listings, so such a key could be
 *   written but never listed.
 */
import { CanopyError } from '../core/errors.js';

/** Suffix of the local adapter's temporary files; reserved in keys. */
export const TEMP_SUFFIX = '.canopy-tmp';

// eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Why `key` is not a valid object key, or undefined when it is. */
function keyProblem(key: unknown, allowTrailingSlash: boolean): string | undefined {
  if (typeof key !== 'string') return 'not a string';
  if (key === '') return 'empty';
  if (key.startsWith('/')) return 'absolute (leading "/")';
  if (key.includes('\\')) return 'contains a backslash';
  if (CONTROL_CHARS.test(key)) return 'contains a control character';
  const segments = key.split('/');
  // A prefix may end in "/" ("bronze/"), which leaves one empty last segment.
  if (allowTrailingSlash && segments.length > 1 && segments[segments.length - 1] === '') {
    segments.pop();
  }
  for (const segment of segments) {
    if (segment === '') return 'has an empty segment';
    if (segment === '.' || segment === '..') return `has a "${segment}" segment`;
    if (segment.endsWith(TEMP_SUFFIX)) return `has a segment ending in reserved "${TEMP_SUFFIX}"`;
  }
  return undefined;
}

/** Throws CANOPY_LAKE_INVALID_KEY unless `key` is a valid object key. */
export function assertValidKey(key: string): void {
  const problem = keyProblem(key, false);
  if (problem !== undefined) {
    throw new CanopyError(
      'CANOPY_LAKE_INVALID_KEY',
      `Invalid lake key ${JSON.stringify(key)}: ${problem}`,
    );
  }
}

/**
 * Throws CANOPY_LAKE_INVALID_KEY unless `prefix` is a valid listing prefix:
 * empty (everything), or a key, optionally ending in "/". A prefix may end in
 * the middle of a segment (`gold/sensor_5min/date=2026-11`) and matches keys
 * by plain string prefix, as S3 does.
 */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  const problem = keyProblem(prefix, true);
  if (problem !== undefined) {
    throw new CanopyError(
      'CANOPY_LAKE_INVALID_KEY',
      `Invalid lake prefix ${JSON.stringify(prefix)}: ${problem}`,
    );
  }
}

/** True when `key` is valid; for filtering what a listing found. */
export function isValidKey(key: string): boolean {
  return keyProblem(key, false) === undefined;
}

/**
 * The order `list` promises: by UTF-16 code unit (JavaScript's default string
 * order). It equals S3's UTF-8 byte order for every key without characters
 * above U+FFFF, which covers the lake's own keys.
 */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
