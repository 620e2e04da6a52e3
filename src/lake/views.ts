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

function parquet(lakeRoot: string, folder: string): string {
  const glob = path.join(lakeRoot, folder, '**', '*.parquet');
  return `SELECT * FROM read_parquet(${sqlString(glob)}, hive_partitioning = true, union_by_name = true)`;
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
    dead_letters: `SELECT * FROM read_json(${sqlString(deadLetterGlob)}, format = 'newline_delimited', hive_partitioning = true, union_by_name = true)`,
  };
}
