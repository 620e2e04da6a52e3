/**
 * What the imputation workflow reads from and writes to the lake.
 *
 * Reads go through an in-memory DuckDB over local copies of the partitions
 * (the lake jobs' way), not through the SQL sandbox: training reads weeks of
 * readings, more than a sandboxed query returns.
 *
 * Layout:
 * - `imputations/date=D/<run id>.parquet`: the values one run imputed for
 *   event date D (columns below). Silver joins them (src/lake/silver) and
 *   lists them in its manifest, so writing one marks D dirty.
 * - `imputations/_runs/<run id>/input.json` and `predictions.json`: the
 *   prediction step's input and output, in the lake so any instance that
 *   takes the run over can read them. Not data files (no view reads them);
 *   deleted when the run's write-back is done.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import { timestampValue, type DuckDBConnection } from '@duckdb/node-api';
import type { ObjectStore } from '../core/object-store.js';
import { localCopy, withLakeEngine } from '../lake/engine.js';
import { IMPUTATIONS_PREFIX, SILVER_READINGS_PREFIX } from '../lake/index.js';

export const IMPUTATION_RUNS_PREFIX = `${IMPUTATIONS_PREFIX}_runs/`;

/** Columns of an imputation file, in order. */
export const IMPUTATION_COLUMNS = [
  'sensor_id',
  'event_time',
  'value',
  'uncertainty',
  'model',
  'model_version',
  'run_id',
  'imputed_at',
] as const;

export function imputationKey(date: string, runId: string): string {
  return `${IMPUTATIONS_PREFIX}date=${date}/${runId}.parquet`;
}

export function runStagingKey(runId: string, name: 'input' | 'predictions'): string {
  return `${IMPUTATION_RUNS_PREFIX}${runId}/${name}.json`;
}

/** A stored reading with no value that no imputation has filled yet. */
export interface MissingReading {
  sensorId: string;
  location: string | null;
  /** Epoch ms. */
  eventTime: number;
}

/** One reading of a location's history, as imputation sees it. */
export interface HistoryReading {
  sensorId: string;
  eventTime: number;
  /** Null when missing, and for imputed values (models learn from measured values only). */
  value: number | null;
}

/** A value to write back. */
export interface ImputedRow {
  sensorId: string;
  eventTime: number;
  value: number;
  uncertainty: number | null;
  model: string;
  modelVersion: string;
}

/** `YYYY-MM-DD` of the days from `first` to `last`, inclusive. */
export function datesBetween(first: string, last: string): string[] {
  const dates: string[] = [];
  for (let ms = Date.parse(`${first}T00:00:00Z`); ms <= Date.parse(`${last}T00:00:00Z`);) {
    dates.push(new Date(ms).toISOString().slice(0, 10));
    ms += 86_400_000;
  }
  return dates;
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

async function parquetKeys(lake: ObjectStore, prefixes: readonly string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const prefix of prefixes) {
    for (const o of await lake.list(prefix)) if (o.key.endsWith('.parquet')) keys.push(o.key);
  }
  return keys.sort();
}

/**
 * Runs `work` with a DuckDB connection and local copies of `keys` (the
 * lake's own files for a local lake, downloads into a temp folder under
 * `workDir` for S3, removed afterwards). `files(keys)` is the SQL list of the
 * local paths of some of those keys, for `read_parquet`.
 */
async function withFiles<T>(
  lake: ObjectStore,
  workDir: string,
  keys: readonly string[],
  work: (conn: DuckDBConnection, files: (keys: readonly string[]) => string) => Promise<T>,
): Promise<T> {
  mkdirSync(workDir, { recursive: true });
  const downloads = mkdtempSync(path.join(workDir, 'imputation-'));
  try {
    const local = new Map<string, string>();
    for (const key of keys) local.set(key, await localCopy(lake, key, downloads));
    const files = (subset: readonly string[]) =>
      `[${subset.map((k) => literal(local.get(k)!)).join(', ')}]`;
    return await withLakeEngine((conn) => work(conn, files));
  } finally {
    rmSync(downloads, { recursive: true, force: true });
  }
}

function silverPrefixes(dates: readonly string[]): string[] {
  return dates.map((d) => `${SILVER_READINGS_PREFIX}date=${d}/`);
}

/**
 * The readings of `date` in silver whose value is null and not imputed, less
 * those an imputation file of the date already holds (a run that wrote its
 * values but died before silver was rebuilt must not be imputed again).
 * Sorted by sensor and time.
 */
export async function findMissing(
  lake: ObjectStore,
  workDir: string,
  date: string,
): Promise<MissingReading[]> {
  const silver = await parquetKeys(lake, silverPrefixes([date]));
  if (silver.length === 0) return [];
  const imputed = await parquetKeys(lake, [`${IMPUTATIONS_PREFIX}date=${date}/`]);
  return withFiles(lake, workDir, [...silver, ...imputed], async (conn, files) => {
    const already =
      imputed.length === 0
        ? ''
        : `ANTI JOIN read_parquet(${files(imputed)}) i USING (sensor_id, event_time)`;
    const reader = await conn.runAndReadAll(
      `SELECT s.sensor_id, s.location, epoch_ms(s.event_time)
         FROM read_parquet(${files(silver)}) s ${already}
        WHERE s.value IS NULL AND NOT s.imputed
        ORDER BY s.sensor_id, s.event_time`,
    );
    return reader.getRows().map(([sensorId, location, ms]) => ({
      sensorId: String(sensorId),
      location: location === null ? null : String(location),
      eventTime: Number(ms),
    }));
  });
}

/**
 * Silver readings of the sensors, event dates `from`..`to` inclusive, sorted
 * by sensor and time; imputed values read as null.
 */
export async function readHistory(
  lake: ObjectStore,
  workDir: string,
  sensorIds: readonly string[],
  from: string,
  to: string,
): Promise<HistoryReading[]> {
  const keys = await parquetKeys(lake, silverPrefixes(datesBetween(from, to)));
  if (keys.length === 0 || sensorIds.length === 0) return [];
  return withFiles(lake, workDir, keys, async (conn, files) => {
    const reader = await conn.runAndReadAll(
      `SELECT sensor_id, epoch_ms(event_time), CASE WHEN imputed THEN NULL ELSE value END
         FROM read_parquet(${files(keys)})
        WHERE sensor_id IN (${sensorIds.map(literal).join(', ')})
        ORDER BY sensor_id, event_time`,
    );
    return reader.getRows().map(([sensorId, ms, value]) => ({
      sensorId: String(sensorId),
      eventTime: Number(ms),
      value: value === null ? null : Number(value),
    }));
  });
}

/** Keys `sensor\u0000epochMs` of the values imputation files of `date` hold, except run `exceptRun`'s. */
export async function imputedKeys(
  lake: ObjectStore,
  workDir: string,
  date: string,
  exceptRun: string,
): Promise<Set<string>> {
  const own = imputationKey(date, exceptRun);
  const keys = (await parquetKeys(lake, [`${IMPUTATIONS_PREFIX}date=${date}/`])).filter(
    (k) => k !== own,
  );
  if (keys.length === 0) return new Set();
  return withFiles(lake, workDir, keys, async (conn, files) => {
    const reader = await conn.runAndReadAll(
      `SELECT DISTINCT sensor_id, epoch_ms(event_time) FROM read_parquet(${files(keys)})`,
    );
    return new Set(reader.getRows().map(([s, ms]) => `${String(s)}\u0000${Number(ms)}`));
  });
}

/**
 * Writes one run's values for one date as `imputations/date=D/<run>.parquet`
 * (one whole-object put: readers see all of it or none). Writing the same
 * run again replaces the object, so a retried write-back never duplicates.
 */
export async function writeImputations(
  lake: ObjectStore,
  workDir: string,
  date: string,
  runId: string,
  rows: readonly ImputedRow[],
  imputedAt: number,
): Promise<string> {
  mkdirSync(workDir, { recursive: true });
  const dir = mkdtempSync(path.join(workDir, 'imputation-write-'));
  const file = path.join(dir, 'values.parquet');
  try {
    await withLakeEngine(async (conn) => {
      await conn.run(
        `CREATE TABLE v (sensor_id VARCHAR NOT NULL, event_time TIMESTAMP NOT NULL,
           value DOUBLE NOT NULL, uncertainty DOUBLE, model VARCHAR NOT NULL,
           model_version VARCHAR NOT NULL, run_id VARCHAR NOT NULL, imputed_at TIMESTAMP NOT NULL)`,
      );
      const appender = await conn.createAppender('v');
      for (const r of rows) {
        appender.appendVarchar(r.sensorId);
        appender.appendTimestamp(timestampValue(BigInt(r.eventTime) * 1000n));
        appender.appendDouble(r.value);
        if (r.uncertainty === null) appender.appendNull();
        else appender.appendDouble(r.uncertainty);
        appender.appendVarchar(r.model);
        appender.appendVarchar(r.modelVersion);
        appender.appendVarchar(runId);
        appender.appendTimestamp(timestampValue(BigInt(imputedAt) * 1000n));
        appender.endRow();
      }
      appender.closeSync();
      await conn.run(
        `COPY (SELECT ${IMPUTATION_COLUMNS.join(', ')} FROM v ORDER BY sensor_id, event_time)
           TO ${literal(file)} (FORMAT parquet, COMPRESSION zstd)`,
      );
    });
    const key = imputationKey(date, runId);
    await lake.putFile(key, file);
    return key;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
