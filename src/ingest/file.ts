/**
 * Files as payloads: the format a file name implies, and the split of a file
 * into payloads small enough for the per-payload limits. Shared by
 * `canopy ingest FILE` and the landing-folder source, so both cut a file the
 * same way.
 *
 * `chunkFile` is deterministic (same text and format, same chunks): the
 * landing-folder source derives each chunk's idempotency key from the file's
 * hash and the chunk's index, and a file re-read after a crash must give the
 * same chunks under the same keys.
 */
import type { PayloadFormat } from '../core/ingest.js';
import { AIR_QUALITY_UCI_MAPPING } from './air-quality.js';
import type { WideCsvMapping } from './types.js';

/** Records per chunk: well inside the default payload limits, large enough for few commits. */
export const FILE_CHUNK_RECORDS = 5_000;

/** Wide-CSV mappings every Canopy knows by name, beside those under `ingest.wideCsv`. */
export const BUILT_IN_WIDE_CSV_MAPPINGS: Readonly<Record<string, WideCsvMapping>> = Object.freeze({
  'air-quality-uci': AIR_QUALITY_UCI_MAPPING,
});

/** `.csv` → csv, `.ndjson`/`.jsonl` → ndjson, `.json` → json; undefined for any other name. */
export function formatFromFileName(name: string): PayloadFormat | undefined {
  const dot = name.lastIndexOf('.');
  const ext = dot === -1 ? '' : name.slice(dot).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.ndjson' || ext === '.jsonl') return 'ndjson';
  if (ext === '.json') return 'json';
  return undefined;
}

/**
 * Splits a file into payloads of at most FILE_CHUNK_RECORDS records; CSV
 * chunks repeat the header, blank lines are dropped. A JSON file that is not
 * an array (or not valid JSON) is one payload, so the decoder reports it.
 */
export function chunkFile(text: string, format: PayloadFormat): string[] {
  if (format === 'json') {
    const parsed: unknown = (() => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        return undefined; // let the decoder report INVALID_JSON with the raw text
      }
    })();
    if (!Array.isArray(parsed)) return [text];
    const chunks: string[] = [];
    try {
      for (let i = 0; i < parsed.length; i += FILE_CHUNK_RECORDS)
        chunks.push(JSON.stringify(parsed.slice(i, i + FILE_CHUNK_RECORDS)));
    } catch {
      // Nested deeper than JSON.stringify renders: one payload, and the decoder reports it.
      return [text];
    }
    return chunks;
  }
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  const header = format === 'csv' || format === 'csv-wide' ? lines.shift() : undefined;
  const chunks: string[] = [];
  for (let i = 0; i < lines.length; i += FILE_CHUNK_RECORDS) {
    const body = lines.slice(i, i + FILE_CHUNK_RECORDS);
    chunks.push((header === undefined ? body : [header, ...body]).join('\n'));
  }
  return chunks;
}
