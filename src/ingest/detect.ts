/**
 * Payload format detection: the explicit format, else the content type, else
 * a look at the first bytes.
 */
import type { IngestMessage, PayloadFormat } from '../core/ingest.js';
import { CSV_SENSOR_ID_COLUMNS, CSV_TIMESTAMP_COLUMNS } from './decode-csv.js';
import { payloadText } from './payload.js';

const CONTENT_TYPES: Readonly<Record<string, PayloadFormat>> = {
  'application/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'text/csv': 'csv',
};

/**
 * The format of a message, or undefined when it is none Canopy decodes.
 * Wide CSV and plants records are never guessed: they need `message.format`.
 */
export function detectFormat(message: IngestMessage): PayloadFormat | undefined {
  if (message.format !== undefined) return message.format;
  return detectFromText(message.contentType, payloadText(message.payload));
}

/** Detection on already-decoded text (the BOM removed). */
export function detectFromText(
  contentType: string | undefined,
  text: string,
): PayloadFormat | undefined {
  if (contentType !== undefined) {
    const semicolon = contentType.indexOf(';');
    const mediaType = (semicolon < 0 ? contentType : contentType.slice(0, semicolon))
      .trim()
      .toLowerCase();
    const known = CONTENT_TYPES[mediaType];
    if (known !== undefined) return known;
  }
  return sniff(text);
}

/**
 * `[` → json; `{` → json, unless the first line is a whole object and the
 * next non-blank line starts another (ndjson); a first line that is a CSV
 * header with a timestamp and a device/sensor id column → csv.
 */
function sniff(text: string): PayloadFormat | undefined {
  const first = skipSpace(text, 0);
  if (first >= text.length) return undefined;
  const c = text.charCodeAt(first);
  if (c === 91) return 'json'; // '['
  const lineEnd = endOfLine(text, first);
  if (c === 123) {
    // '{'
    const line = text.slice(first, lineEnd).trimEnd();
    if (!line.endsWith('}')) return 'json';
    const next = skipSpace(text, lineEnd);
    return next < text.length && text.charCodeAt(next) === 123 ? 'ndjson' : 'json';
  }
  return isLongCsvHeader(text.slice(first, lineEnd)) ? 'csv' : undefined;
}

function isLongCsvHeader(line: string): boolean {
  const names = line.split(',').map((n) =>
    n
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase(),
  );
  const has = (wanted: readonly string[]): boolean => wanted.some((w) => names.includes(w));
  return has(CSV_TIMESTAMP_COLUMNS) && has(CSV_SENSOR_ID_COLUMNS);
}

/** Index of the first character at or after `i` that is not whitespace (or text.length). */
export function skipSpace(text: string, i: number): number {
  const len = text.length;
  while (i < len) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 10 && c !== 13) break;
    i++;
  }
  return i;
}

function endOfLine(text: string, from: number): number {
  const nl = text.indexOf('\n', from);
  return nl < 0 ? text.length : nl;
}
