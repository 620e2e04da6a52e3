/**
 * Query results as CSV (RFC 4180: comma-separated, CRLF line ends, fields
 * with a comma, quote or line break quoted, quotes doubled), safe to open in
 * a spreadsheet: a text cell starting with `=`, `+`, `-`, `@`, TAB or CR —
 * which Excel, LibreOffice and Google Sheets may run as a formula — gets a
 * leading `'` (the OWASP "CSV injection" advice). That applies to the header
 * too, since column names come from the query. Numbers and booleans are not
 * text and are written as they are (`-5` stays a number); null is an empty
 * cell; lists and objects are written as JSON text.
 */
import type { Json } from '@duckdb/node-api';

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

export function csvCell(value: Json | undefined): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  let text = typeof value === 'string' ? value : JSON.stringify(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A header row of `columns`, then one line per row; every line ends with CRLF. */
export function toCsv(columns: readonly string[], rows: readonly (readonly Json[])[]): string {
  const lines = [columns.map(csvCell).join(',')];
  for (const row of rows) lines.push(row.map(csvCell).join(','));
  return lines.join('\r\n') + '\r\n';
}
