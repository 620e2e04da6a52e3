/**
 * Wide CSV: one row per time, one column per measure (the UCI air-quality
 * file). Each row becomes one long-form reading per measure column, with
 * sensor id `${deviceId}.${column}`.
 *
 * Problems with the mapping itself (a mapped column not in the header, a
 * column name that cannot be part of a sensor id) reject the whole payload
 * once as INVALID_CSV rather than every cell of the file. A row whose
 * timestamp is missing or malformed is rejected once, for all its measures.
 * Cells equal to the missing-value sentinel (compared as numbers, so `-200`
 * and `-200.0` match) or empty are null readings; other non-numeric cells
 * are left as text for validation to reject as INVALID_VALUE, cell by cell.
 */
import type { Candidate } from '../core/ingest.js';
import { splitCsvOrReject } from './csv.js';
import { parseDecimal } from './numbers.js';
import { rejection, show, tooManyReadings } from './rejection.js';
import { isValidSensorId, SENSOR_ID_ALPHABET } from './sensor-id.js';
import { parseWideTimestamp } from './wide-timestamp.js';
import type { DecodeResult, IngestLimits, WideCsvMapping } from './types.js';

/** One measure column, resolved against the header. */
interface MeasureColumn {
  index: number;
  sensorId: string;
  sensorType: string;
  unit: string | null;
}

/** The fields of one wide cell as a wire-form reading, for validation. */
interface WideCellRecord {
  sensor_id: string;
  sensor_type: string;
  unit: string | null;
  location: string | null;
  timestamp: string | number;
  value: number | string | null | undefined;
}

export function decodeWideCsv(
  text: string,
  mapping: WideCsvMapping,
  limits: IngestLimits,
  out: DecodeResult,
): void {
  const rows = splitCsvOrReject(text, mapping.delimiter ?? ',', out);
  if (rows === undefined) return;
  const header = rows[0];
  if (header === undefined) return;
  const names = header.cells;
  const ts = mapping.timestamp;
  const dateCol = names.indexOf(ts.column);
  const timeCol = ts.timeColumn === undefined ? -1 : names.indexOf(ts.timeColumn);
  const problems: string[] = [];
  if (dateCol < 0) problems.push(`timestamp column ${show(ts.column)} is not in the header`);
  if (ts.timeColumn !== undefined && timeCol < 0) {
    problems.push(`time column ${show(ts.timeColumn)} is not in the header`);
  }
  const measures = resolveMeasures(mapping, names, dateCol, timeCol, problems);
  if (problems.length > 0) {
    out.rejections.push(
      rejection('INVALID_CSV', `wide CSV does not fit its mapping: ${problems.join('; ')}`, text),
    );
    return;
  }
  const readingCount = (rows.length - 1) * measures.length;
  if (readingCount > limits.maxReadingsPerPayload) {
    out.rejections.push(tooManyReadings(text, readingCount, limits.maxReadingsPerPayload));
    return;
  }

  const offset = ts.utcOffsetMinutes ?? 0;
  const missing = mapping.missingValue;
  const location = mapping.location ?? null;
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r]!;
    const cells = row.cells;
    const index = r - 1;
    const dateCell = cells[dateCol];
    const timeCell = timeCol < 0 ? undefined : cells[timeCol];
    if (
      dateCell === undefined ||
      dateCell === '' ||
      timeCell === '' ||
      (timeCol >= 0 && timeCell === undefined)
    ) {
      out.rejections.push(
        rejection(
          'MISSING_TIMESTAMP',
          `row ${index + 1} has no ${describeTimestamp(mapping)}`,
          row.raw,
          index,
        ),
      );
      continue;
    }
    const eventTime = parseWideTimestamp(dateCell, timeCell, ts.format, offset);
    if (Number.isNaN(eventTime)) {
      const shown = timeCell === undefined ? show(dateCell) : `${show(dateCell)} ${show(timeCell)}`;
      out.rejections.push(
        rejection(
          'INVALID_TIMESTAMP',
          `row ${index + 1}: ${shown} is not a valid ${ts.format} timestamp (${describeTimestamp(mapping)})`,
          row.raw,
          index,
        ),
      );
      continue;
    }
    const timestamp = wireTimestamp(eventTime);
    for (const m of measures) {
      const cell = cells[m.index];
      let value: number | string | null | undefined;
      if (cell === undefined) {
        value = undefined; // short row: MISSING_VALUE
      } else if (cell === '') {
        value = null;
      } else {
        const n = parseDecimal(cell);
        value = Number.isNaN(n) ? cell : n === missing ? null : n;
      }
      const record: WideCellRecord = {
        sensor_id: m.sensorId,
        sensor_type: m.sensorType,
        unit: m.unit,
        location,
        timestamp,
        value,
      };
      const candidate: Candidate = { record, index, raw: row.raw };
      out.candidates.push(candidate);
    }
  }
}

/** The measure columns of the mapping, in header order when the mapping lists none. */
function resolveMeasures(
  mapping: WideCsvMapping,
  names: string[],
  dateCol: number,
  timeCol: number,
  problems: string[],
): MeasureColumn[] {
  const measures: MeasureColumn[] = [];
  const add = (
    index: number,
    column: string,
    sensorType: string | undefined,
    unit: string | undefined,
  ): void => {
    const sensorId = `${mapping.deviceId}.${column}`;
    if (!isValidSensorId(sensorId)) {
      problems.push(
        `sensor id ${show(sensorId)} of column ${show(column)} has characters outside ${SENSOR_ID_ALPHABET}`,
      );
      return;
    }
    measures.push({
      index,
      sensorId,
      sensorType: sensorType ?? column.toLowerCase(),
      unit: unit ?? null,
    });
  };
  if (mapping.columns === undefined) {
    for (let i = 0; i < names.length; i++) {
      // A column without a name (e.g. from a trailing delimiter) cannot be a measure.
      if (i !== dateCol && i !== timeCol && names[i] !== '')
        add(i, names[i]!, undefined, undefined);
    }
  } else {
    for (const [column, spec] of Object.entries(mapping.columns)) {
      const i = names.indexOf(column);
      if (i < 0) problems.push(`mapped column ${show(column)} is not in the header`);
      else add(i, column, spec.sensorType, spec.unit);
    }
  }
  if (measures.length === 0 && problems.length === 0) problems.push('no measure columns');
  return measures;
}

function describeTimestamp(mapping: WideCsvMapping): string {
  const ts = mapping.timestamp;
  return ts.timeColumn === undefined ? `${ts.column} cell` : `${ts.column}/${ts.timeColumn} cells`;
}

/**
 * The timestamp handed to validation: epoch ms when validation cannot mistake
 * it for epoch seconds (|ms| >= 1e11, i.e. after March 1973), an ISO string
 * otherwise.
 */
function wireTimestamp(ms: number): string | number {
  return ms >= 1e11 || ms <= -1e11 ? ms : new Date(ms).toISOString();
}
