/**
 * Silver transform for one event date (DESIGN.md §2): bronze Parquet in,
 * `silver.parquet` + `anomalies.parquet` out. Pure: it reads only the files
 * it is given, takes the processing time as an argument and writes only into
 * `outDir`; uploading and cataloguing are the caller's job.
 *
 * Contracts:
 *  - Dedup: one row per `(sensor_id, event_time)`; the latest `ingest_time`
 *    wins, ties broken by the highest `seq`, then by the file name, so the
 *    choice never depends on read order.
 *  - A null value is kept (a missing reading): it is excluded from the
 *    z-score history and never flagged by the range or z-score rules.
 *  - Flags are recomputed here rather than trusted from bronze, because the
 *    stream saw rows in arrival order while silver sees the full, deduplicated
 *    event-time sequence (late rows included). The definitions are those of
 *    src/stream/checks.ts, so for in-order data both agree: z against the
 *    previous `window` non-null values of the sensor, sample deviation,
 *    at least `minHistory` of them, deviation 0 never fires; inclusive range
 *    bounds, per-sensor range before per-type range; device score strictly
 *    above the threshold.
 *  - The previous date's rows are read only as z-score history so the first
 *    readings after midnight are judged like any other.
 *  - Imputed values (`imputations/date=D/*.parquet`, written by the
 *    imputation workflow) fill the rows whose value is null, or which the hot
 *    store already filled (`imputed`), after the flags are computed: a
 *    prediction never enters the z-score history and is never flagged. Such
 *    rows carry `imputed = true`, the model (`name@version`) and its
 *    uncertainty. When two files predict the same key, the earliest file name
 *    wins (the workflow never writes a key twice; this keeps the result
 *    deterministic regardless).
 *  - Output is sorted by (sensor_id, event_time) and written single-threaded,
 *    so the same inputs and processing time give byte-identical files. The
 *    transform before the write uses the connection's threads.
 */
import { renameSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { BIGINT, DOUBLE, VARCHAR, type DuckDBConnection } from '@duckdb/node-api';
import { CanopyError } from '../../core/errors.js';
import { isEventDate } from '../engine.js';

export interface SilverRange {
  min: number;
  max: number;
}

export interface SilverRanges {
  /** Physical range per sensor type (e.g. the built-in types plus config). */
  byType: Record<string, SilverRange>;
  /** Per-sensor override; wins over the type's range as a whole. */
  bySensor: Record<string, SilverRange>;
}

export interface SilverZscoreOptions {
  /** Number of previous non-null values the z-score is measured against. */
  window: number;
  /** Non-null values needed before the rule can fire. */
  minHistory: number;
  /** Fires when |z| is strictly greater than this. */
  threshold: number;
}

export interface BuildSilverOptions {
  /** An open DuckDB connection the caller owns (an in-memory database is enough). */
  conn: DuckDBConnection;
  /**
   * Local paths of every bronze file of `date` and of the previous date
   * (history for the z-score across midnight), laid out as
   * `…/date=YYYY-MM-DD/hour=HH/*.parquet`.
   */
  bronzeFiles: string[];
  /** Event date to build, `YYYY-MM-DD` (UTC). */
  date: string;
  ranges: SilverRanges;
  zscore: SilverZscoreOptions;
  /** Device anomaly when `anomaly_score` is strictly above this. */
  deviceScoreThreshold: number;
  /** Written into every row as lineage. */
  pipelineVersion: string;
  /** Epoch milliseconds, written as `processing_time`; injected for reproducibility. */
  processingTime: number;
  /** Folder that receives `silver.parquet` and `anomalies.parquet` (created if needed). */
  outDir: string;
  /**
   * When the bronze files sit under this folder in the lake's key layout
   * (the local lake's root, or a download cache), `source_file` records the
   * lake key (the path relative to it) instead of the local path.
   */
  lineageRoot?: string;
  /** Local paths of the date's imputation files (`imputations/date=D/*.parquet`); none by default. */
  imputationFiles?: string[];
}

export interface SilverPartitionReport {
  silverFile: string;
  anomaliesFile: string;
  /** Rows in `silver.parquet` (rows of `date` after dedup). */
  rows: number;
  /** Rows in `anomalies.parquet`. */
  anomalies: number;
  /** Rows of `date` removed by the dedup. */
  duplicatesDropped: number;
  /** Rows of `date` whose value is still null (after dedup and imputation). */
  missing: number;
  /** Rows of `date` filled by an imputation file. */
  imputed: number;
}

/** The silver columns, in file order: the hot-store columns, then lineage. */
export const SILVER_COLUMNS = [
  'sensor_id',
  'sensor_type',
  'location',
  'event_time',
  'value',
  'unit',
  'anomaly_score',
  'ingest_time',
  'source',
  'batch_id',
  'seq',
  'is_anomaly',
  'anomaly_reasons',
  'imputed',
  'imputation_model',
  'imputation_uncertainty',
  'source_file',
  'processing_time',
  'pipeline_version',
] as const;

// Temp objects live on the caller's connection; the prefix keeps them apart
// from the caller's own and they are dropped before returning.
const BRONZE = '__silver_bronze';
const HISTORY = '__silver_history';
const SENSOR_RANGES = '__silver_sensor_ranges';
const TYPE_RANGES = '__silver_type_ranges';
const RESULT = '__silver_result';
const IMPUTATIONS = '__silver_imputations';

function invalid(message: string): CanopyError {
  return new CanopyError('CANOPY_CONFIG_INVALID', `silver transform: ${message}`);
}

function validate(options: BuildSilverOptions): void {
  const { date, zscore } = options;
  if (!isEventDate(date)) {
    throw invalid(`date must be YYYY-MM-DD, got ${JSON.stringify(date)}`);
  }
  // The window size is spliced into the frame clause (DuckDB does not bind
  // parameters there), so it must be a plain positive integer.
  if (!Number.isSafeInteger(zscore.window) || zscore.window < 2) {
    throw invalid(`zscore.window must be an integer >= 2, got ${zscore.window}`);
  }
  if (!Number.isSafeInteger(zscore.minHistory) || zscore.minHistory < 2) {
    throw invalid(`zscore.minHistory must be an integer >= 2, got ${zscore.minHistory}`);
  }
  if (!Number.isFinite(zscore.threshold) || !Number.isFinite(options.deviceScoreThreshold)) {
    throw invalid('thresholds must be finite numbers');
  }
  if (!Number.isSafeInteger(options.processingTime)) {
    throw invalid(`processingTime must be integer epoch milliseconds`);
  }
  for (const [kind, table] of Object.entries(options.ranges)) {
    for (const [key, r] of Object.entries(table as Record<string, SilverRange>)) {
      if (!Number.isFinite(r.min) || !Number.isFinite(r.max) || r.min > r.max) {
        throw invalid(`range ${kind}.${key} must have finite min <= max`);
      }
    }
  }
}

/** Single-quoted SQL string literal; for file paths, which COPY cannot bind. */
function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** The first row of `sql`, every column as a number. */
async function scalars(conn: DuckDBConnection, sql: string): Promise<number[]> {
  const row = (await conn.runAndReadAll(sql)).getRows()[0] ?? [];
  return row.map((v) => Number(v ?? 0));
}

export async function buildSilverPartition(
  options: BuildSilverOptions,
): Promise<SilverPartitionReport> {
  validate(options);
  const { conn, date, zscore } = options;
  mkdirSync(options.outDir, { recursive: true });
  const silverFile = path.join(options.outDir, 'silver.parquet');
  const anomaliesFile = path.join(options.outDir, 'anomalies.parquet');

  try {
    const day = `DATE ${literal(date)}`;
    await loadBronze(conn, options.bronzeFiles, options.lineageRoot, day);
    await loadRanges(conn, options.ranges);
    await loadImputations(conn, options.imputationFiles ?? [], day);

    // Dedup in two steps, because ranking every row in a window partitioned
    // by (sensor_id, event_time) means sorting the whole table, wide rows
    // and all: find the keys that occur more than once (a hash aggregate),
    // rank only those rows, and drop the losers by row id. Same winner as
    // ranking everything. A key never spans two dates, so each date's rows
    // are deduplicated on their own.
    // History: a window frame over the non-null rows only, so nulls never
    // enter a sensor's history and "the previous N values" means N non-null
    // ones. No frame reaches further back than a sensor's last N non-null
    // values of the previous date, so only those enter the window (a top-N
    // aggregate, not a sort of the whole day). The wide CTEs are NOT
    // MATERIALIZED: rescanning the temp table and redoing the narrow anti
    // join costs less than copying every column of every row once more.
    await conn.run(
      `CREATE OR REPLACE TEMP TABLE ${RESULT} AS
       WITH ${dedupCtes('day', BRONZE)},
       ${dedupCtes('prior', HISTORY)},
       history AS (
         SELECT sensor_id, event_time,
                count(value)        OVER w AS n_prev,
                avg(value)          OVER w AS mean_prev,
                stddev_samp(value)  OVER w AS sd_prev
         FROM (SELECT sensor_id, unnest(tail, recursive := true)
               FROM (SELECT sensor_id,
                            arg_max({'event_time': event_time, 'value': value}, event_time,
                                    ${zscore.window}) AS tail
                     FROM prior_deduped WHERE value IS NOT NULL
                     GROUP BY sensor_id)
               UNION ALL
               SELECT sensor_id, event_time, value FROM day_deduped WHERE value IS NOT NULL)
         WINDOW w AS (PARTITION BY sensor_id ORDER BY event_time
                      ROWS BETWEEN ${zscore.window} PRECEDING AND 1 PRECEDING)
       ),
       flagged AS (
         SELECT d.*,
                d.value IS NOT NULL AND coalesce(rs.min, rt.min) IS NOT NULL AND
                  (d.value < coalesce(rs.min, rt.min) OR d.value > coalesce(rs.max, rt.max))
                  AS f_range,
                d.value IS NOT NULL AND h.n_prev >= $1 AND h.sd_prev > 0 AND
                  abs((d.value - h.mean_prev) / h.sd_prev) > $2 AS f_zscore,
                coalesce(d.anomaly_score > $3, false) AS f_device
         FROM day_deduped d
         LEFT JOIN history h USING (sensor_id, event_time)
         LEFT JOIN ${SENSOR_RANGES} rs ON rs.sensor_id = d.sensor_id
         LEFT JOIN ${TYPE_RANGES} rt ON rt.sensor_type = d.sensor_type
       )
       SELECT sensor_id, sensor_type, location, event_time,
              CASE WHEN i.value IS NOT NULL AND (f.value IS NULL OR f.imputed)
                   THEN i.value ELSE f.value END AS value,
              unit, anomaly_score, ingest_time, source, batch_id, seq,
              (f_range OR f_zscore OR f_device) AS is_anomaly,
              list_concat(
                CASE WHEN f_range THEN ['range'] ELSE []::VARCHAR[] END,
                CASE WHEN f_zscore THEN ['zscore'] ELSE []::VARCHAR[] END,
                CASE WHEN f_device THEN ['device'] ELSE []::VARCHAR[] END
              ) AS anomaly_reasons,
              f.imputed OR (f.value IS NULL AND i.value IS NOT NULL) AS imputed,
              CASE WHEN f.value IS NULL OR f.imputed THEN i.model END AS imputation_model,
              CASE WHEN f.value IS NULL OR f.imputed THEN i.uncertainty END
                AS imputation_uncertainty,
              source_file,
              epoch_ms($4) AS processing_time,
              $5::VARCHAR AS pipeline_version
       FROM flagged f
       LEFT JOIN ${IMPUTATIONS} i USING (sensor_id, event_time)
       ORDER BY sensor_id, event_time`,
      [
        BigInt(zscore.minHistory),
        zscore.threshold,
        options.deviceScoreThreshold,
        BigInt(options.processingTime),
        options.pipelineVersion,
      ],
      [BIGINT, DOUBLE, DOUBLE, BIGINT, VARCHAR],
    );

    const [rows = 0, anomalies = 0, missing = 0, imputed = 0] = await scalars(
      conn,
      `SELECT count(*), count(*) FILTER (WHERE is_anomaly), count(*) FILTER (WHERE value IS NULL),
              count(*) FILTER (WHERE imputation_model IS NOT NULL)
       FROM ${RESULT}`,
    );
    const [rawRows = 0] = await scalars(conn, `SELECT count(*) FROM ${BRONZE}`);

    // RESULT was filled in (sensor_id, event_time) order, a total order
    // after the dedup; DuckDB keeps a table's insertion order
    // (preserve_insertion_order, on by default) and a plain scan or filter
    // of one table returns rows in that order, so the files come out sorted
    // without sorting again on the one write thread.
    const columns = SILVER_COLUMNS.join(', ');
    await singleThreaded(conn, async () => {
      await writeParquet(conn, `SELECT ${columns} FROM ${RESULT}`, silverFile);
      await writeParquet(conn, `SELECT ${columns} FROM ${RESULT} WHERE is_anomaly`, anomaliesFile);
    });
    return {
      silverFile,
      anomaliesFile,
      rows,
      anomalies,
      duplicatesDropped: rawRows - rows,
      missing,
      imputed,
    };
  } finally {
    for (const table of [RESULT, BRONZE, HISTORY, SENSOR_RANGES, TYPE_RANGES, IMPUTATIONS]) {
      await conn.run(`DROP TABLE IF EXISTS temp.${table}`);
    }
  }
}

/**
 * CTEs `<name>_deduped`: the rows of `table`, one per (sensor_id,
 * event_time), the latest ingest_time winning, then the highest seq, then
 * the file name. `table` must have those columns.
 */
function dedupCtes(name: string, table: string): string {
  return `${name}_rows AS NOT MATERIALIZED (SELECT rowid AS row_id, * FROM ${table}),
       ${name}_repeated AS (
         SELECT sensor_id, event_time FROM ${table}
         GROUP BY sensor_id, event_time HAVING count(*) > 1
       ),
       ${name}_losers AS (
         SELECT row_id FROM ${name}_rows SEMI JOIN ${name}_repeated USING (sensor_id, event_time)
         QUALIFY row_number() OVER (
           PARTITION BY sensor_id, event_time
           ORDER BY ingest_time DESC, seq DESC, source_file DESC) > 1
       ),
       ${name}_deduped AS NOT MATERIALIZED (
         SELECT * EXCLUDE (row_id) FROM ${name}_rows ANTI JOIN ${name}_losers USING (row_id)
       )`;
}

/**
 * Runs `body` on one DuckDB thread: parallel Parquet writers may cut row
 * groups differently from run to run, so one thread makes the bytes a
 * function of the rows alone. Everything before the write may run in
 * parallel: it builds a table whose rows and row order do not depend on the
 * schedule (dedup, window frames and the final sort all have a total order;
 * counts are exact). The setting is the caller's, so it is restored.
 */
async function singleThreaded(conn: DuckDBConnection, body: () => Promise<void>): Promise<void> {
  const threadsBefore = (await scalars(conn, "SELECT current_setting('threads')"))[0]!;
  await conn.run('SET threads = 1');
  try {
    await body();
  } finally {
    await conn.run(`SET threads = ${threadsBefore}`);
  }
}

/**
 * Loads the bronze rows of `date` into a typed temp table, and the narrow
 * columns the dedup and the z-score need of the previous date's rows into a
 * second one (history is never written, so its other columns are never
 * decoded). Declaring the schema here, rather than trusting each file's,
 * gives the same column types whether the list is empty, has one file or
 * many, and casts files written by older exporters consistently. Rows of
 * other dates are not read (Parquet statistics skip them).
 */
async function loadBronze(
  conn: DuckDBConnection,
  files: readonly string[],
  lineageRoot: string | undefined,
  day: string,
): Promise<void> {
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE ${BRONZE} (
       sensor_id       VARCHAR   NOT NULL,
       sensor_type     VARCHAR,
       location        VARCHAR,
       event_time      TIMESTAMP NOT NULL,
       value           DOUBLE,
       unit            VARCHAR,
       anomaly_score   DOUBLE,
       ingest_time     TIMESTAMP NOT NULL,
       source          VARCHAR   NOT NULL,
       batch_id        VARCHAR   NOT NULL,
       seq             BIGINT    NOT NULL,
       imputed         BOOLEAN   NOT NULL,
       source_file     VARCHAR   NOT NULL
     )`,
  );
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE ${HISTORY} (
       sensor_id       VARCHAR   NOT NULL,
       event_time      TIMESTAMP NOT NULL,
       value           DOUBLE,
       ingest_time     TIMESTAMP NOT NULL,
       seq             BIGINT    NOT NULL,
       source_file     VARCHAR   NOT NULL
     )`,
  );
  if (files.length === 0) return;
  // Sorted so the scan order, and with it everything downstream, does not
  // depend on the order the caller listed the files in. `date`/`hour` come
  // from the path (hive partitioning) and are not silver columns: the event
  // date is taken from event_time, which is what bronze partitions on.
  const list = [...files].sort().map(literal).join(', ');
  const root = lineageRoot === undefined ? undefined : lineageRoot.replace(/\/*$/, '/');
  const sourceFile =
    root === undefined
      ? 'filename'
      : `CASE WHEN starts_with(filename, ${literal(root)}) THEN substr(filename, ${root.length + 1}) ELSE filename END`;
  const bronze = `read_parquet([${list}], hive_partitioning = true, filename = true,
                               hive_types = {'date': DATE, 'hour': INTEGER})`;
  await conn.run(
    `INSERT INTO ${BRONZE}
     SELECT sensor_id, sensor_type, location, event_time, value, unit, anomaly_score,
            ingest_time, source, batch_id, seq, imputed, ${sourceFile}
     FROM ${bronze}
     WHERE event_time >= ${day} AND event_time < ${day} + INTERVAL 1 DAY`,
  );
  await conn.run(
    `INSERT INTO ${HISTORY}
     SELECT sensor_id, event_time, value, ingest_time, seq, ${sourceFile}
     FROM ${bronze}
     WHERE event_time >= ${day} - INTERVAL 1 DAY AND event_time < ${day}`,
  );
}

/**
 * The date's imputed values, one per (sensor_id, event_time): the row of the
 * earliest file name wins (see the module contract).
 */
async function loadImputations(
  conn: DuckDBConnection,
  files: readonly string[],
  day: string,
): Promise<void> {
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE ${IMPUTATIONS} (
       sensor_id   VARCHAR   NOT NULL,
       event_time  TIMESTAMP NOT NULL,
       value       DOUBLE    NOT NULL,
       uncertainty DOUBLE,
       model       VARCHAR   NOT NULL
     )`,
  );
  if (files.length === 0) return;
  const list = [...files].sort().map(literal).join(', ');
  await conn.run(
    `INSERT INTO ${IMPUTATIONS}
     SELECT sensor_id, event_time, value, uncertainty, model || '@' || model_version
     FROM read_parquet([${list}], filename = true, hive_partitioning = false)
     WHERE event_time >= ${day} AND event_time < ${day} + INTERVAL 1 DAY
     QUALIFY row_number() OVER (PARTITION BY sensor_id, event_time ORDER BY filename) = 1`,
  );
}

async function loadRanges(conn: DuckDBConnection, ranges: SilverRanges): Promise<void> {
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE ${SENSOR_RANGES} (sensor_id VARCHAR PRIMARY KEY, min DOUBLE, max DOUBLE)`,
  );
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE ${TYPE_RANGES} (sensor_type VARCHAR PRIMARY KEY, min DOUBLE, max DOUBLE)`,
  );
  for (const [table, entries] of [
    [SENSOR_RANGES, Object.entries(ranges.bySensor)],
    [TYPE_RANGES, Object.entries(ranges.byType)],
  ] as const) {
    for (const [key, r] of entries) {
      await conn.run(
        `INSERT INTO ${table} VALUES ($1, $2, $3)`,
        [key, r.min, r.max],
        [VARCHAR, DOUBLE, DOUBLE],
      );
    }
  }
}

/** Writes to a temp name and renames, so a crash never leaves a half-written file under the final name. */
async function writeParquet(conn: DuckDBConnection, query: string, file: string): Promise<void> {
  const tmp = `${file}.tmp`;
  rmSync(tmp, { force: true });
  await conn.run(
    `COPY (${query}) TO ${literal(tmp)} (FORMAT parquet, COMPRESSION zstd, PRESERVE_ORDER true)`,
  );
  renameSync(tmp, file);
}
