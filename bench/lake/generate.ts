/**
 * Builds the lake benchmark's bronze input (untimed setup) with DuckDB SQL
 * alone, so 10 M readings take seconds, not minutes of JavaScript.
 *
 * The files have exactly the columns and types `HotStore.exportReadings`
 * writes, under the key layout of the bronze export
 * (`bronze/readings/date=D/hour=HH/part-<20-digit seq>-<n>.parquet`), so the
 * silver job lists and reads them like real exports. Every value is a
 * function of the row number (DuckDB's `hash`), so a given size always gives
 * the same readings.
 *
 * Shape: SENSORS sensors (7 types, 12 locations) reporting every
 * INTERVAL_MS from START, so 10 M readings span about 6 days. About 2 % of
 * readings are anomalous (spikes for the z-score, out-of-range values,
 * device scores above 0.5), 0.5 % are null, and DUPLICATE_SHARE of the rows
 * are re-deliveries of an earlier `(sensor_id, event_time)` with a later
 * `ingest_time` and a corrected value, written as a second, later export
 * batch, so the dedup has work across files.
 */
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';

export const SENSORS = 100;
export const INTERVAL_MS = 5_000;
export const LOCATIONS = 12;
/** First event time of the generated lake (UTC midnight). */
export const START = '2026-11-01 00:00:00';
/** Share of rows that are re-deliveries of an earlier reading. */
export const DUPLICATE_SHARE = 0.01;

export interface GeneratedLake {
  /** Rows written to bronze (originals + duplicates). */
  readings: number;
  duplicates: number;
  dates: string[];
  files: number;
  bytes: number;
  ms: number;
}

// Per type: name, unit, typical value, noise scale. Index = sensor number % 7.
const TYPES: [string, string, number, number][] = [
  ['temperature', 'C', 21, 0.5],
  ['humidity', '%', 55, 2],
  ['pressure', 'hPa', 1013, 1.5],
  ['vibration', 'mm/s', 5, 0.4],
  ['soil_moisture', '%', 35, 1],
  ['light', 'lux', 20_000, 800],
  ['co2', 'ppm', 600, 25],
];

function pick(column: number): string {
  return `[${TYPES.map((t) => (typeof t[column] === 'string' ? `'${t[column]}'` : String(t[column]))).join(', ')}][s % 7 + 1]`;
}

/**
 * Writes the bronze lake of `readings` rows under `lakeRoot` (which must not
 * hold a bronze folder yet).
 */
export async function generateBronze(lakeRoot: string, readings: number): Promise<GeneratedLake> {
  const t0 = performance.now();
  const duplicates = Math.round(readings * DUPLICATE_SHARE);
  const originals = readings - duplicates;
  mkdirSync(path.join(lakeRoot, 'bronze'), { recursive: true });
  const db = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const conn = await db.connect();
  try {
    // One row per original reading: i walks the fleet time-step by time-step.
    // u1..u3 are uniforms in [0,1) from independent hashes; r picks the row's fate.
    await conn.run(`
      CREATE TEMP TABLE base AS
      SELECT i, s, step, r, u1, u2, u3,
             TIMESTAMP '${START}' + to_milliseconds(step * ${INTERVAL_MS} + s * 37) AS event_time
      FROM (
        SELECT i, i % ${SENSORS} AS s, i // ${SENSORS} AS step,
               hash(i * 5) % 1000 AS r,
               (hash(i * 5 + 1) % 1000000) / 1e6 AS u1,
               (hash(i * 5 + 2) % 1000000) / 1e6 AS u2,
               (hash(i * 5 + 3) % 1000000) / 1e6 AS u3
        FROM range(${originals}) t(i)
      )`);
    // The reading as the hot store held it. Typical value: the type's level,
    // a per-sensor offset, a daily swing and noise. r < 10: a spike of 8
    // noise scales (z-score); 10..14: beyond the physical range; 15..19:
    // device score 0.9; 20..24: a null value.
    const readingSelect = (seqExpr: string, ingestExpr: string, batchExpr: string): string => `
      SELECT 'sensor-' || lpad(s::VARCHAR, 3, '0') AS sensor_id,
             ${pick(0)} AS sensor_type,
             'site-' || lpad((s % ${LOCATIONS})::VARCHAR, 2, '0') AS location,
             event_time,
             CASE WHEN r BETWEEN 20 AND 24 THEN NULL
                  WHEN r BETWEEN 10 AND 14 THEN -1000.0 - u1
                  ELSE ${pick(2)} * (1 + (s % 5) * 0.01)
                       + ${pick(3)} * (2 * sin(step * 2 * pi() / ${86_400_000 / INTERVAL_MS}) + (u1 + u2 + u3 - 1.5) * 2)
                       + CASE WHEN r < 10 THEN ${pick(3)} * 8 ELSE 0 END
             END AS value,
             ${pick(1)} AS unit,
             CASE WHEN r BETWEEN 15 AND 19 THEN 0.9 ELSE round(u3 * 0.3, 3) END AS anomaly_score,
             ${ingestExpr} AS ingest_time,
             'mqtt' AS source,
             ${batchExpr} AS batch_id,
             ${seqExpr} AS seq,
             r < 20 AS is_anomaly,
             CASE WHEN r < 10 THEN ['zscore'] WHEN r < 15 THEN ['range']
                  WHEN r < 20 THEN ['device'] ELSE []::VARCHAR[] END AS anomaly_reasons,
             false AS imputed,
             strftime(event_time, '%Y-%m-%d') AS date,
             strftime(event_time, '%H') AS hour`;
    const tag = (seq: number): string => String(seq).padStart(20, '0');
    const copy = async (select: string, firstSeq: number): Promise<void> => {
      const target = path.join(lakeRoot, 'bronze', 'readings').replaceAll("'", "''");
      await conn.run(
        `COPY (${select}) TO '${target}'
         (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour), OVERWRITE_OR_IGNORE,
          FILENAME_PATTERN 'part-${tag(firstSeq)}-{i}')`,
      );
    };
    // Batch 1: every original, seq = i + 1, ingested 1–3 s after the event.
    await copy(
      readingSelect(
        'i + 1',
        'event_time + to_milliseconds(1000 + (hash(i * 5 + 4) % 2000)::BIGINT)',
        `'batch-' || lpad((i // 1000)::VARCHAR, 8, '0')`,
      ) + ' FROM base',
      1,
    );
    // Batch 2: re-deliveries of spread-out originals, an hour later, with a
    // slightly different value, so the dedup's choice shows in the results.
    await copy(
      readingSelect(
        `${originals} + d + 1`,
        'event_time + INTERVAL 1 HOUR',
        `'redelivery-' || lpad((d // 1000)::VARCHAR, 8, '0')`,
      ).replace(' AS value,', ' + 0.125 AS value,') +
        ` FROM (SELECT d, b.* FROM range(${duplicates}) t(d)
                JOIN base b ON b.i = (d * 7919 + 13) % ${originals})`,
      originals + 1,
    );
  } finally {
    conn.closeSync();
    db.closeSync();
  }
  const readingsDir = path.join(lakeRoot, 'bronze', 'readings');
  let files = 0;
  let bytes = 0;
  const dates: string[] = [];
  for (const dateDir of readdirSync(readingsDir).sort()) {
    dates.push(dateDir.slice('date='.length));
    for (const hourDir of readdirSync(path.join(readingsDir, dateDir))) {
      for (const entry of readdirSync(path.join(readingsDir, dateDir, hourDir), {
        withFileTypes: true,
      })) {
        files++;
        bytes += statSync(path.join(entry.parentPath, entry.name)).size;
      }
    }
  }
  return {
    readings,
    duplicates,
    dates,
    files,
    bytes,
    ms: Math.round(performance.now() - t0),
  };
}

/** Removes what the jobs or the peer wrote, keeping bronze. */
export function clearDerived(lakeRoot: string): void {
  for (const dir of readdirSync(lakeRoot)) {
    if (dir !== 'bronze') rmSync(path.join(lakeRoot, dir), { recursive: true, force: true });
  }
}
