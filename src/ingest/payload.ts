/**
 * Turning a payload into text and measuring it.
 */

/** The payload as text: UTF-8 decoded, a leading byte-order mark removed. */
export function payloadText(payload: Buffer | string): string {
  const text = typeof payload === 'string' ? payload : payload.toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * The payload's UTF-8 size in bytes when it exceeds `limit`, else undefined.
 * A string is measured only when its length cannot settle it: a UTF-16 code
 * unit takes 1 to 3 UTF-8 bytes, so length <= bytes <= 3 * length.
 */
export function oversizeBytes(payload: Buffer | string, limit: number): number | undefined {
  if (typeof payload !== 'string') return payload.length > limit ? payload.length : undefined;
  if (payload.length * 3 <= limit) return undefined;
  const bytes = Buffer.byteLength(payload, 'utf8');
  return bytes > limit ? bytes : undefined;
}

/** The first `chars` characters of the payload, for a dead letter that must not hold all of it. */
export function payloadPrefix(payload: Buffer | string, chars: number): string {
  if (typeof payload === 'string') return payload.slice(0, chars);
  // Up to 4 bytes per character; a character cut at the end decodes as U+FFFD.
  return payload
    .subarray(0, chars * 4)
    .toString('utf8')
    .slice(0, chars);
}
