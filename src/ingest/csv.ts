/**
 * CSV splitting shared by the long and wide decoders (csv-parse, sync API).
 */
import { parse } from 'csv-parse/sync';
import { errorText, rejection } from './rejection.js';
import type { DecodeResult } from './types.js';

export interface CsvRow {
  /** Cells, trimmed. A short row simply has fewer cells. */
  cells: string[];
  /** The row's source text without line breaks around it. */
  raw: string;
}

/**
 * Splits CSV text into rows (the header is row 0). Blank lines are skipped,
 * rows may have any number of cells, a UTF-8 BOM is dropped. Throws the
 * parser's error on malformed quoting: the parser cannot reliably find the
 * next row after an unclosed quote, so the caller rejects the whole payload.
 */
export function splitCsv(text: string, delimiter: string): CsvRow[] {
  // With `raw: true` csv-parse yields {record, raw} objects; its typings do not express that.
  const parsed = parse(text, {
    delimiter,
    raw: true,
    bom: true,
    trim: true,
    skip_empty_lines: true,
    relax_column_count: true,
  }) as unknown as { record: string[]; raw: string | undefined }[];
  const rows: CsvRow[] = new Array<CsvRow>(parsed.length);
  for (let i = 0; i < parsed.length; i++) {
    const p = parsed[i]!;
    rows[i] = { cells: p.record, raw: (p.raw ?? '').trim() };
  }
  return rows;
}

/**
 * `splitCsv`, turning a parse failure into one INVALID_CSV rejection of the
 * whole payload (returns undefined then).
 */
export function splitCsvOrReject(
  text: string,
  delimiter: string,
  out: DecodeResult,
): CsvRow[] | undefined {
  try {
    return splitCsv(text, delimiter);
  } catch (err) {
    out.rejections.push(
      rejection('INVALID_CSV', `CSV could not be parsed: ${errorText(err)}`, text),
    );
    return undefined;
  }
}
