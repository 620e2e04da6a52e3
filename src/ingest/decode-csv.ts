/**
 * Long CSV: one reading per row, as landed by devices and the S3 data-lake
 * reference system: `timestamp,device_id,value,unit,anomaly_score`.
 * Also accepted: `sensor_id`, `sensor_type`, `location`, and the timestamp
 * aliases `event_time`, `ts`; any order, header names case-insensitive,
 * extra columns ignored. Required: a timestamp column, `device_id` or
 * `sensor_id`, and `value`.
 *
 * Cells are handed to validation as text (it accepts decimal strings), so a
 * non-numeric value cell is INVALID_VALUE for that row only. An empty value
 * cell is null (known missing); an empty optional cell is absent. The index
 * of a row is its position among data rows, counting from 0 after the header.
 */
import type { Candidate } from '../core/ingest.js';
import { splitCsvOrReject } from './csv.js';
import { rejection, tooManyReadings } from './rejection.js';
import type { DecodeResult, IngestLimits } from './types.js';

/** Timestamp column names, in order of preference. */
export const CSV_TIMESTAMP_COLUMNS = ['timestamp', 'event_time', 'ts'] as const;
/** Sensor id column names, in order of preference. */
export const CSV_SENSOR_ID_COLUMNS = ['sensor_id', 'device_id'] as const;

/** Record fields validation reads, always present so every record has one shape. */
interface LongCsvRecord {
  sensor_id: string | undefined;
  device_id: string | undefined;
  timestamp: string | undefined;
  value: string | null | undefined;
  unit: string | undefined;
  sensor_type: string | undefined;
  location: string | undefined;
  anomaly_score: string | undefined;
}

export function decodeLongCsv(text: string, limits: IngestLimits, out: DecodeResult): void {
  const rows = splitCsvOrReject(text, ',', out);
  if (rows === undefined) return;
  const header = rows[0];
  if (header === undefined) return;
  const names = header.cells.map((c) => c.toLowerCase());
  const col = (name: string): number => names.indexOf(name);
  const tsCol = firstPresent(names, CSV_TIMESTAMP_COLUMNS);
  const sensorIdCol = col('sensor_id');
  const deviceIdCol = col('device_id');
  const valueCol = col('value');
  const missing: string[] = [];
  if (tsCol < 0) missing.push('timestamp');
  if (sensorIdCol < 0 && deviceIdCol < 0) missing.push('device_id (or sensor_id)');
  if (valueCol < 0) missing.push('value');
  if (missing.length > 0) {
    out.rejections.push(
      rejection(
        'INVALID_CSV',
        `CSV header ${JSON.stringify(header.raw)} lacks required column(s): ${missing.join(', ')}`,
        text,
      ),
    );
    return;
  }
  const dataRows = rows.length - 1;
  if (dataRows > limits.maxReadingsPerPayload) {
    out.rejections.push(tooManyReadings(text, dataRows, limits.maxReadingsPerPayload));
    return;
  }
  const unitCol = col('unit');
  const typeCol = col('sensor_type');
  const locationCol = col('location');
  const scoreCol = col('anomaly_score');
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r]!;
    const cells = row.cells;
    const valueCell = cells[valueCol];
    const record: LongCsvRecord = {
      sensor_id: optionalCell(cells, sensorIdCol),
      device_id: optionalCell(cells, deviceIdCol),
      timestamp: optionalCell(cells, tsCol),
      // A short row has no value cell at all (MISSING_VALUE); an empty cell is a known-missing value.
      value: valueCell === undefined ? undefined : valueCell === '' ? null : valueCell,
      unit: optionalCell(cells, unitCol),
      sensor_type: optionalCell(cells, typeCol),
      location: optionalCell(cells, locationCol),
      anomaly_score: optionalCell(cells, scoreCol),
    };
    const candidate: Candidate = { record, index: r - 1, raw: row.raw };
    out.candidates.push(candidate);
  }
}

/** The cell at `i`, or undefined when the column is absent, the row is short or the cell is empty. */
function optionalCell(cells: string[], i: number): string | undefined {
  if (i < 0) return undefined;
  const c = cells[i];
  return c === undefined || c === '' ? undefined : c;
}

function firstPresent(names: string[], wanted: readonly string[]): number {
  for (const w of wanted) {
    const i = names.indexOf(w);
    if (i >= 0) return i;
  }
  return -1;
}
