/**
 * Strict decimal parsing for values that arrive as text (CSV cells, numeric
 * strings in JSON).
 */

/**
 * Parses a plain decimal number such as `21.4`, `-200`, `.5`, `1e3`.
 * Returns NaN for anything else: empty or padded text, hex/binary/octal
 * literals, `Infinity`, and values that overflow to ±Infinity.
 *
 * `Number()` alone is too lenient (`Number('') === 0`, `Number('0x10') === 16`,
 * `Number(' 1 ') === 1`), so the first, second and last characters are checked
 * before calling it. This avoids a regular expression on the CSV hot path.
 */
export function parseDecimal(text: string): number {
  const len = text.length;
  if (len === 0) return NaN;
  const first = text.charCodeAt(0);
  // first: digit, '+', '-' or '.'
  if (!((first >= 48 && first <= 57) || first === 43 || first === 45 || first === 46)) return NaN;
  const last = text.charCodeAt(len - 1);
  // last: digit or '.' (as in `1.`)
  if (!((last >= 48 && last <= 57) || last === 46)) return NaN;
  if (len > 2 && first === 48) {
    // Reject 0x.., 0b.., 0o.. radix literals that Number() would accept.
    const second = text.charCodeAt(1) | 0x20;
    if (second === 120 || second === 98 || second === 111) return NaN;
  }
  const n = Number(text);
  return Number.isFinite(n) ? n : NaN;
}
