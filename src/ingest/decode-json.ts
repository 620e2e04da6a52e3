/**
 * JSON and NDJSON decoding: splits a payload into records without judging
 * them (validation does that).
 */
import { JsonCandidate } from './candidate.js';
import { errorText, rejection, tooManyReadings } from './rejection.js';
import type { DecodeResult, IngestLimits } from './types.js';

/**
 * One JSON document: a record (index 0) or an array of records (index =
 * array position). Invalid JSON is one INVALID_JSON rejection with the whole
 * payload as raw; an array longer than the reading limit is one
 * TOO_MANY_READINGS.
 */
export function decodeJson(text: string, limits: IngestLimits, out: DecodeResult): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    out.rejections.push(
      rejection('INVALID_JSON', `payload is not valid JSON: ${errorText(err)}`, text),
    );
    return;
  }
  if (!Array.isArray(parsed)) {
    out.candidates.push(new JsonCandidate(parsed, 0));
    return;
  }
  const n = parsed.length;
  if (n > limits.maxReadingsPerPayload) {
    out.rejections.push(tooManyReadings(text, n, limits.maxReadingsPerPayload));
    return;
  }
  const candidates = out.candidates;
  for (let i = 0; i < n; i++) candidates.push(new JsonCandidate(parsed[i], i));
}

/**
 * Newline-delimited JSON: one record per non-blank line. The index is the
 * line number - 1 (blank lines count), raw is the line. A line that is not
 * JSON is rejected alone; the other lines still count.
 */
export function decodeNdjson(text: string, limits: IngestLimits, out: DecodeResult): void {
  const len = text.length;
  const candidates = out.candidates;
  const rejections = out.rejections;
  let start = 0;
  let lineIndex = 0;
  while (start < len) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = len;
    const next = end + 1;
    if (end > start && text.charCodeAt(end - 1) === 13) end--; // CRLF
    if (!isBlank(text, start, end)) {
      const line = text.slice(start, end);
      let parsed: unknown;
      let ok = true;
      // One parse per line is unavoidable; the try costs nothing unless a line is bad.
      try {
        parsed = JSON.parse(line);
      } catch (err) {
        ok = false;
        rejections.push(
          rejection(
            'INVALID_JSON',
            `line ${lineIndex + 1} is not valid JSON: ${errorText(err)}`,
            line,
            lineIndex,
          ),
        );
      }
      if (ok) candidates.push(new JsonCandidate(parsed, lineIndex, line));
    }
    start = next;
    lineIndex++;
  }
  if (candidates.length + rejections.length > limits.maxReadingsPerPayload) {
    const count = candidates.length + rejections.length;
    candidates.length = 0;
    rejections.length = 0;
    rejections.push(tooManyReadings(text, count, limits.maxReadingsPerPayload));
  }
}

/** True when text[start, end) holds only spaces, tabs and line breaks. */
function isBlank(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13 && c !== 10) return false;
  }
  return true;
}
