/**
 * The views SQL over history sees, over the lake layout of DESIGN §2.
 *
 * Each view reads every file of its layer through a recursive glob, with Hive
 * partition columns (`date`, `hour`) and `union_by_name`, so files written by
 * an older pipeline version with fewer columns still read. Globs are expanded
 * when a query binds, so new files of an existing view show up without a
 * refresh; a view whose layer has no file yet is skipped by the sandbox until
 * `refresh` finds files for it.
 */
import path from 'node:path';

/** A string as a single-quoted SQL literal. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/**
 * Partition columns of each layer folder, typed explicitly: DuckDB infers a
 * Hive value's type from the paths a query happens to see, so `hour=06`
 * alone would read as text and `hour=11` as a number.
 */
const PARTITION_TYPES: Record<string, string | undefined> = {
  'bronze/readings': "{'date': DATE, 'hour': INTEGER}",
  'silver/readings': "{'date': DATE}",
  'anomalies/readings': "{'date': DATE}",
  'gold/sensor_5min': "{'date': DATE}",
  'gold/location_hourly': "{'date': DATE}",
  'gold/daily_summary': "{'date': DATE}",
  'gold/device_summary': undefined,
  imputations: "{'date': DATE}",
};

/**
 * `SELECT *` over Parquet files of one layer folder (`source` is a SQL string
 * or list of paths), with that folder's partition columns and types.
 */
export function parquetScan(source: string, folder: string): string {
  const types = PARTITION_TYPES[folder];
  const hive =
    types === undefined
      ? 'hive_partitioning = false'
      : `hive_partitioning = true, hive_types = ${types}`;
  return `SELECT * FROM read_parquet(${source}, ${hive}, union_by_name = true)`;
}

function parquet(lakeRoot: string, folder: string): string {
  return parquetScan(sqlString(path.join(lakeRoot, folder, '**', '*.parquet')), folder);
}

/** View name → SELECT, for a lake rooted at the absolute folder `lakeRoot`. */
export function canopyLakeViews(lakeRoot: string): Record<string, string> {
  const deadLetterGlob = path.join(lakeRoot, 'deadletter', '**', '*.jsonl');
  return {
    /** Cleaned history: the view most questions start from. */
    readings: parquet(lakeRoot, 'silver/readings'),
    bronze_readings: parquet(lakeRoot, 'bronze/readings'),
    silver_readings: parquet(lakeRoot, 'silver/readings'),
    anomalies: parquet(lakeRoot, 'anomalies/readings'),
    gold_sensor_5min: parquet(lakeRoot, 'gold/sensor_5min'),
    gold_location_hourly: parquet(lakeRoot, 'gold/location_hourly'),
    gold_daily_summary: parquet(lakeRoot, 'gold/daily_summary'),
    gold_device_summary: parquet(lakeRoot, 'gold/device_summary'),
    /** Values the imputation workflow predicted, one file per date and run. */
    imputations: parquet(lakeRoot, 'imputations'),
    dead_letters: `SELECT * FROM read_json(${sqlString(deadLetterGlob)}, format = 'newline_delimited', hive_partitioning = true, hive_types = {'date': DATE}, union_by_name = true)`,
  };
}
