/**
 * What the simulator sends, and the long CSV form it writes and replays.
 *
 * Long CSV (DESIGN §2, the event-driven lake's file form):
 * `timestamp,device_id,value,unit,anomaly_score`, one reading per row, a
 * header row first. An empty `value` is a known-missing value.
 */

/**
 * One reading in wire form (snake_case, DESIGN §2). Fleet readings carry
 * every field; replayed rows only what their file had.
 */
export interface SimReading {
  sensor_id: string;
  sensor_type?: string;
  value: number | null;
  unit?: string;
  timestamp: string;
  location?: string;
  anomaly_score?: number;
}

export const LONG_CSV_COLUMNS = [
  'timestamp',
  'device_id',
  'value',
  'unit',
  'anomaly_score',
] as const;
export const LONG_CSV_HEADER = LONG_CSV_COLUMNS.join(',');

function csvField(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One long-CSV row, without a line ending. */
export function toLongCsvRow(r: SimReading): string {
  return [
    r.timestamp,
    r.sensor_id,
    r.value === null ? '' : String(r.value),
    r.unit ?? '',
    r.anomaly_score === undefined ? '' : String(r.anomaly_score),
  ]
    .map(csvField)
    .join(',');
}

/** A whole long-CSV document: header, rows, trailing newline. */
export function toLongCsv(readings: readonly SimReading[]): string {
  let out = LONG_CSV_HEADER + '\n';
  for (const r of readings) out += toLongCsvRow(r) + '\n';
  return out;
}

/**
 * Splits one CSV line into fields (RFC 4180 quoting, no line breaks inside
 * quotes: the simulator's rows never hold one). Returns null when a quote is
 * left open.
 */
export function splitCsvLine(line: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let text = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q === -1) return null;
        text += line.slice(i, q);
        if (line[q + 1] === '"') {
          text += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      fields.push(text);
      if (i >= line.length) return fields;
      if (line[i] !== ',') return null;
      i++;
    } else {
      const comma = line.indexOf(',', i);
      if (comma === -1) {
        fields.push(line.slice(i));
        return fields;
      }
      fields.push(line.slice(i, comma));
      i = comma + 1;
    }
  }
}

/**
 * Parses a timestamp as the ingest contract does: ISO 8601, or epoch seconds
 * (below 1e11) or milliseconds. Returns epoch ms, or null if unreadable.
 */
export function parseTimestamp(text: string): number | null {
  const s = text.trim();
  if (s === '') return null;
  if (/^-?\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    return Math.abs(n) < 1e11 ? Math.round(n * 1000) : Math.round(n);
  }
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? null : ms;
}
