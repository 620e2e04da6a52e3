/**
 * Reads a long CSV file (`timestamp,device_id,value,unit,anomaly_score`) row
 * by row, streaming, so a file of any length replays in constant memory.
 *
 * A header row is optional. When present, columns are found by name (in any
 * order; `sensor_id`, `event_time`/`ts` are accepted as aliases, and
 * `sensor_type`/`location` columns are carried over when present). Without
 * one, the five columns are taken in the order above.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { CanopyError } from '../core/errors.js';
import { LONG_CSV_COLUMNS, parseTimestamp, splitCsvLine, type SimReading } from './wire.js';

export interface ReplayRow {
  /** 1-based line number in the file. */
  line: number;
  /** Event time from the file, epoch ms. */
  time: number;
  reading: SimReading;
}

/** A row the simulator cannot turn into a reading. */
export interface BadRow {
  line: number;
  reason: string;
  text: string;
}

type Column =
  'timestamp' | 'device_id' | 'value' | 'unit' | 'anomaly_score' | 'sensor_type' | 'location';

const ALIASES: Readonly<Record<string, Column>> = {
  timestamp: 'timestamp',
  event_time: 'timestamp',
  ts: 'timestamp',
  device_id: 'device_id',
  sensor_id: 'device_id',
  value: 'value',
  unit: 'unit',
  anomaly_score: 'anomaly_score',
  sensor_type: 'sensor_type',
  location: 'location',
};

const MISSING_VALUES = new Set(['', 'null', 'nan', 'na', 'n/a', 'none']);

function headerMap(fields: string[]): Map<Column, number> | null {
  const map = new Map<Column, number>();
  fields.forEach((f, i) => {
    const col = ALIASES[f.trim().toLowerCase()];
    if (col !== undefined && !map.has(col)) map.set(col, i);
  });
  return map.has('timestamp') && map.has('device_id') && map.has('value') ? map : null;
}

const DEFAULT_MAP = new Map<Column, number>(LONG_CSV_COLUMNS.map((c, i) => [c, i]));

function toRow(fields: string[], columns: Map<Column, number>, line: number): ReplayRow | string {
  const get = (c: Column): string | undefined => {
    const i = columns.get(c);
    return i === undefined ? undefined : fields[i]?.trim();
  };
  const tsText = get('timestamp') ?? '';
  const time = parseTimestamp(tsText);
  if (time === null) return `unreadable timestamp "${tsText}"`;
  const sensorId = get('device_id') ?? '';
  if (sensorId === '') return 'missing device_id';
  const valueText = get('value') ?? '';
  let value: number | null = null;
  if (!MISSING_VALUES.has(valueText.toLowerCase())) {
    value = Number(valueText);
    if (!Number.isFinite(value)) return `value "${valueText}" is not a number`;
  }
  const reading: SimReading = {
    sensor_id: sensorId,
    value,
    timestamp: new Date(time).toISOString(),
  };
  const sensorType = get('sensor_type');
  if (sensorType !== undefined && sensorType !== '') reading.sensor_type = sensorType;
  const unit = get('unit');
  if (unit !== undefined && unit !== '') reading.unit = unit;
  const location = get('location');
  if (location !== undefined && location !== '') reading.location = location;
  const scoreText = get('anomaly_score');
  if (scoreText !== undefined && scoreText !== '') {
    const score = Number(scoreText);
    if (!Number.isFinite(score)) return `anomaly_score "${scoreText}" is not a number`;
    reading.anomaly_score = score;
  }
  // Re-order keys to the wire order of DESIGN §2 for readable output.
  const ordered: SimReading = {
    sensor_id: reading.sensor_id,
    ...(reading.sensor_type === undefined ? {} : { sensor_type: reading.sensor_type }),
    value: reading.value,
    ...(reading.unit === undefined ? {} : { unit: reading.unit }),
    timestamp: reading.timestamp,
    ...(reading.location === undefined ? {} : { location: reading.location }),
    ...(reading.anomaly_score === undefined ? {} : { anomaly_score: reading.anomaly_score }),
  };
  return { line, time, reading: ordered };
}

/**
 * Yields the rows of `path` in file order. Rows that cannot be read are
 * passed to `onBadRow` and skipped. Throws CANOPY_SOURCE_FILE_UNREADABLE if
 * the file cannot be opened or read.
 */
export async function* readLongCsv(
  path: string,
  onBadRow: (bad: BadRow) => void = () => undefined,
): AsyncGenerator<ReplayRow> {
  const input = createReadStream(path, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let columns: Map<Column, number> | null = null;
  let line = 0;
  try {
    for await (const raw of lines) {
      line++;
      const text = line === 1 ? raw.replace(/^\uFEFF/, '') : raw;
      if (text.trim() === '') continue;
      const fields = splitCsvLine(text);
      if (fields === null) {
        onBadRow({ line, reason: 'unbalanced quotes', text });
        continue;
      }
      if (columns === null) {
        columns = headerMap(fields);
        if (columns !== null) continue; // it was the header
        columns = DEFAULT_MAP;
      }
      const row = toRow(fields, columns, line);
      if (typeof row === 'string') onBadRow({ line, reason: row, text });
      else yield row;
    }
  } catch (err) {
    throw new CanopyError('CANOPY_SOURCE_FILE_UNREADABLE', `cannot read ${path}`, { cause: err });
  } finally {
    lines.close();
    input.destroy();
  }
}

/** The latest timestamp in the file, or null if it has no readable row. */
export async function latestTimestamp(path: string): Promise<number | null> {
  let latest: number | null = null;
  for await (const row of readLongCsv(path)) {
    if (latest === null || row.time > latest) latest = row.time;
  }
  return latest;
}
