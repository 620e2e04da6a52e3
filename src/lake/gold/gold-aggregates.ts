/**
 * Gold aggregates (DESIGN.md §2): silver Parquet in, gold Parquet out. Pure:
 * reads only the files it is given and writes only into `outDir`; uploading
 * and cataloguing are the caller's job.
 *
 * Contracts shared by every table:
 *  - A null `value` is a missing reading: it counts in `reading_count` (and
 *    `missing_count` where there is one) but never enters avg/min/max/stddev
 *    or the quantiles, which are null when a group has no non-null value.
 *  - Windows are UTC and start-inclusive: a reading at exactly 10:05:00.000
 *    belongs to the 10:05 window, and 10:04:59.999 to the 10:00 one.
 *  - `sensor_type` and `location` carried per sensor are those of the latest
 *    row (by `event_time`) that has one; a sensor's type and location come
 *    from the registry and rarely change, but when they do the newest wins,
 *    and because silver holds one row per `(sensor_id, event_time)` the
 *    choice is deterministic.
 *  - Output is sorted explicitly and written single-threaded with ZSTD, so
 *    the same silver files give byte-identical gold files.
 */
import { mkdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { DOUBLE, VARCHAR, type DuckDBConnection } from '@duckdb/node-api';
import { CanopyError } from '../../core/errors.js';
import { isEventDate } from '../engine.js';

export interface GoldFileReport {
  /** Local path of the written Parquet file. */
  file: string;
  /** Rows written. */
  rows: number;
}

export interface BuildGoldOptions {
  /** An open DuckDB connection the caller owns (an in-memory database is enough). */
  conn: DuckDBConnection;
  /**
   * Local paths of the silver files of `date`. Rows whose `event_time` falls
   * outside `date` are ignored, so a stray file cannot leak into the wrong
   * partition.
   */
  silverFiles: string[];
  /** Event date to build, `YYYY-MM-DD` (UTC). */
  date: string;
  /** Expected reporting interval in milliseconds, per sensor id. */
  sensorIntervals: Record<string, number>;
  /** Interval used for sensors missing from `sensorIntervals`. */
  defaultIntervalMs: number;
  /** Folder that receives the three gold files (created if needed). */
  outDir: string;
}

export interface GoldPartitionReport {
  sensor5min: GoldFileReport;
  locationHourly: GoldFileReport;
  dailySummary: GoldFileReport;
}

export interface BuildDeviceSummaryOptions {
  conn: DuckDBConnection;
  /** Local paths of every silver file, all dates. */
  silverFiles: string[];
  /** Folder that receives `device_summary.parquet` (created if needed). */
  outDir: string;
}

/** Length of a `sensor_5min` window. */
export const GOLD_WINDOW_MS = 300_000;

/** Column order of each gold file. */
export const GOLD_COLUMNS = {
  sensor_5min: [
    'sensor_id',
    'window_start',
    'sensor_type',
    'location',
    'reading_count',
    'value_count',
    'anomaly_count',
    'avg',
    'min',
    'max',
    'stddev',
    'p50',
    'p95',
    'p99',
    'expected_count',
    'health_pct',
  ],
  location_hourly: [
    'location',
    'hour_start',
    'sensor_type',
    'sensor_count',
    'reading_count',
    'value_count',
    'anomaly_count',
    'avg',
    'min',
    'max',
  ],
  daily_summary: [
    'sensor_id',
    'date',
    'sensor_type',
    'location',
    'reading_count',
    'avg',
    'min',
    'max',
    'anomaly_count',
    'missing_count',
    'imputed_count',
  ],
  device_summary: [
    'sensor_id',
    'sensor_type',
    'location',
    'first_event_time',
    'last_event_time',
    'total_readings',
    'avg',
    'min',
    'max',
    'anomaly_count',
    'anomaly_pct',
  ],
} as const;

// Temp objects live on the caller's connection; the prefix keeps them apart
// from the caller's own and they are dropped before returning.
const SILVER = '__gold_silver';
const INTERVALS = '__gold_intervals';

function invalid(message: string): CanopyError {
  return new CanopyError('CANOPY_CONFIG_INVALID', `gold aggregates: ${message}`);
}

function validInterval(ms: number): boolean {
  return Number.isFinite(ms) && ms > 0;
}

function validate(options: BuildGoldOptions): void {
  const { date } = options;
  if (!isEventDate(date)) {
    throw invalid(`date must be YYYY-MM-DD, got ${JSON.stringify(date)}`);
  }
  if (!validInterval(options.defaultIntervalMs)) {
    throw invalid(`defaultIntervalMs must be a positive number, got ${options.defaultIntervalMs}`);
  }
  for (const [sensor, ms] of Object.entries(options.sensorIntervals)) {
    if (!validInterval(ms)) {
      throw invalid(`sensorIntervals.${sensor} must be a positive number, got ${ms}`);
    }
  }
}

/** Single-quoted SQL string literal; for file paths and dates, which COPY cannot bind. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

async function scalar(conn: DuckDBConnection, sql: string): Promise<number> {
  const row = (await conn.runAndReadAll(sql)).getRows()[0];
  return Number(row?.[0] ?? 0);
}

/**
 * Runs `body` with one DuckDB thread (parallel Parquet writers may cut row
 * groups differently from run to run) and drops the temp tables afterwards.
 * The thread setting is the caller's, so it is restored.
 */
async function withDeterministicConn<T>(
  conn: DuckDBConnection,
  body: () => Promise<T>,
): Promise<T> {
  const threadsBefore = await scalar(conn, "SELECT current_setting('threads')");
  await conn.run('SET threads = 1');
  try {
    return await body();
  } finally {
    for (const table of [SILVER, INTERVALS]) {
      await conn.run(`DROP TABLE IF EXISTS temp.${table}`);
    }
    await conn.run(`SET threads = ${threadsBefore}`);
  }
}

/**
 * Loads the silver columns gold needs into a typed temp table, so an empty
 * file list still yields typed (empty) outputs. `where` restricts the rows
 * (e.g. to one event date).
 */
async function loadSilver(
  conn: DuckDBConnection,
  files: readonly string[],
  where = 'true',
): Promise<void> {
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE ${SILVER} (
       sensor_id   VARCHAR   NOT NULL,
       sensor_type VARCHAR,
       location    VARCHAR,
       event_time  TIMESTAMP NOT NULL,
       value       DOUBLE,
       is_anomaly  BOOLEAN   NOT NULL,
       imputed     BOOLEAN   NOT NULL
     )`,
  );
  if (files.length === 0) return;
  // Sorted so the scan order cannot depend on the caller's listing. Hive
  // partition columns from the path are not selected: the date is taken from
  // event_time, which is what silver partitions on.
  const list = [...files].sort().map(literal).join(', ');
  await conn.run(
    `INSERT INTO ${SILVER}
     SELECT sensor_id, sensor_type, location, event_time, value,
            coalesce(is_anomaly, false), coalesce(imputed, false)
     FROM read_parquet([${list}], hive_partitioning = false)
     WHERE ${where}`,
  );
}

/** Writes to a temp name and renames, so a crash never leaves a half-written file under the final name. */
async function writeParquet(
  conn: DuckDBConnection,
  query: string,
  file: string,
): Promise<GoldFileReport> {
  const tmp = `${file}.tmp`;
  rmSync(tmp, { force: true });
  await conn.run(
    `COPY (${query}) TO ${literal(tmp)} (FORMAT parquet, COMPRESSION zstd, PRESERVE_ORDER true)`,
  );
  renameSync(tmp, file);
  const rows = await scalar(conn, `SELECT count(*) FROM read_parquet(${literal(file)})`);
  return { file, rows };
}

/**
 * Builds `sensor_5min.parquet`, `location_hourly.parquet` and
 * `daily_summary.parquet` for one event date.
 *
 * `health_pct` = non-anomalous non-null readings ÷ (300 000 / interval ms)
 * × 100, capped at 100; `expected_count` is that denominator (fractional when
 * the interval does not divide five minutes).
 */
export async function buildGoldPartition(options: BuildGoldOptions): Promise<GoldPartitionReport> {
  validate(options);
  const { conn, date } = options;
  mkdirSync(options.outDir, { recursive: true });
  const day = `DATE ${literal(date)}`;
  // COPY cannot bind parameters; validate() has checked this is a finite
  // positive number, so its decimal text is a safe SQL literal.
  const defaultMs = `CAST(${String(options.defaultIntervalMs)} AS DOUBLE)`;

  return withDeterministicConn(conn, async () => {
    await loadSilver(
      conn,
      options.silverFiles,
      `event_time >= ${day} AND event_time < ${day} + INTERVAL 1 DAY`,
    );
    await conn.run(
      `CREATE OR REPLACE TEMP TABLE ${INTERVALS} (sensor_id VARCHAR PRIMARY KEY, interval_ms DOUBLE)`,
    );
    for (const [sensor, ms] of Object.entries(options.sensorIntervals)) {
      await conn.run(`INSERT INTO ${INTERVALS} VALUES ($1, $2)`, [sensor, ms], [VARCHAR, DOUBLE]);
    }

    const sensor5min = await writeParquet(
      conn,
      `WITH w AS (
         SELECT s.sensor_id,
                time_bucket(INTERVAL 5 MINUTE, s.event_time) AS window_start,
                arg_max(s.sensor_type, s.event_time) AS sensor_type,
                arg_max(s.location, s.event_time)    AS location,
                count(*)                             AS reading_count,
                count(s.value)                       AS value_count,
                count(*) FILTER (WHERE s.is_anomaly) AS anomaly_count,
                avg(s.value)                         AS avg,
                min(s.value)                         AS min,
                max(s.value)                         AS max,
                stddev_samp(s.value)                 AS stddev,
                quantile_cont(s.value, 0.5)          AS p50,
                quantile_cont(s.value, 0.95)         AS p95,
                quantile_cont(s.value, 0.99)         AS p99,
                count(s.value) FILTER (WHERE NOT s.is_anomaly) AS good_count
         FROM ${SILVER} s
         GROUP BY s.sensor_id, window_start
       )
       SELECT w.sensor_id, w.window_start, w.sensor_type, w.location,
              w.reading_count, w.value_count, w.anomaly_count,
              w.avg, w.min, w.max, w.stddev, w.p50, w.p95, w.p99,
              ${GOLD_WINDOW_MS} / coalesce(i.interval_ms, ${defaultMs}) AS expected_count,
              least(100.0,
                    w.good_count / (${GOLD_WINDOW_MS} / coalesce(i.interval_ms, ${defaultMs})) * 100)
                AS health_pct
       FROM w LEFT JOIN ${INTERVALS} i USING (sensor_id)
       ORDER BY w.sensor_id, w.window_start`,
      path.join(options.outDir, 'sensor_5min.parquet'),
    );

    // Long shape, one row per location × hour × sensor_type: sensor types are
    // open-ended (config and the registry add them), so a wide shape would
    // change its schema with the data and break readers and the catalogue.
    // Location-level totals are sums over a location-hour's rows (a sensor
    // has one type, so sensor_count sums too). A null location or type is a
    // group of its own rather than being dropped.
    const locationHourly = await writeParquet(
      conn,
      `SELECT location,
              date_trunc('hour', event_time) AS hour_start,
              sensor_type,
              count(DISTINCT sensor_id)      AS sensor_count,
              count(*)                       AS reading_count,
              count(value)                   AS value_count,
              count(*) FILTER (WHERE is_anomaly) AS anomaly_count,
              avg(value) AS avg, min(value) AS min, max(value) AS max
       FROM ${SILVER}
       GROUP BY location, hour_start, sensor_type
       ORDER BY location NULLS LAST, hour_start, sensor_type NULLS LAST`,
      path.join(options.outDir, 'location_hourly.parquet'),
    );

    const dailySummary = await writeParquet(
      conn,
      `SELECT sensor_id,
              ${day} AS date,
              arg_max(sensor_type, event_time) AS sensor_type,
              arg_max(location, event_time)    AS location,
              count(*)                         AS reading_count,
              avg(value) AS avg, min(value) AS min, max(value) AS max,
              count(*) FILTER (WHERE is_anomaly)     AS anomaly_count,
              count(*) FILTER (WHERE value IS NULL)  AS missing_count,
              count(*) FILTER (WHERE imputed)        AS imputed_count
       FROM ${SILVER}
       GROUP BY sensor_id
       ORDER BY sensor_id`,
      path.join(options.outDir, 'daily_summary.parquet'),
    );

    return { sensor5min, locationHourly, dailySummary };
  });
}

/**
 * Builds `device_summary.parquet`: one row per device (= `sensor_id`) over
 * every silver file given. `anomaly_pct` = anomalous rows ÷ all rows × 100,
 * nulls included in both (a device score can flag a reading with no value).
 */
export async function buildDeviceSummary(
  options: BuildDeviceSummaryOptions,
): Promise<GoldFileReport> {
  const { conn } = options;
  mkdirSync(options.outDir, { recursive: true });
  return withDeterministicConn(conn, async () => {
    await loadSilver(conn, options.silverFiles);
    return writeParquet(
      conn,
      `SELECT sensor_id,
              arg_max(sensor_type, event_time) AS sensor_type,
              arg_max(location, event_time)    AS location,
              min(event_time)                  AS first_event_time,
              max(event_time)                  AS last_event_time,
              count(*)                         AS total_readings,
              avg(value) AS avg, min(value) AS min, max(value) AS max,
              count(*) FILTER (WHERE is_anomaly) AS anomaly_count,
              count(*) FILTER (WHERE is_anomaly) * 100.0 / count(*) AS anomaly_pct
       FROM ${SILVER}
       GROUP BY sensor_id
       ORDER BY sensor_id`,
      path.join(options.outDir, 'device_summary.parquet'),
    );
  });
}
