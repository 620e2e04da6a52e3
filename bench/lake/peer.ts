/**
 * The lake benchmark's peer: the bronze → silver → gold work written as
 * plain DuckDB SQL, the way someone would write it by hand without Canopy —
 * one in-memory database with DuckDB's default settings, `read_parquet`
 * over every bronze file at once, window functions for dedup and the
 * z-score, `GROUP BY` for gold, `COPY … PARTITION_BY (date)` to Parquet.
 *
 * It produces the same tables as the silver and gold jobs (silver, anomalies,
 * sensor_5min, location_hourly, daily_summary, device_summary) with the same
 * definitions (DESIGN §2), so bench/lake/verify.ts can check that both sides
 * agree. It skips what a one-off script does not need: manifests, change
 * detection, byte-identical output, crash-safe renames.
 */
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import type { SilverRanges, SilverZscoreOptions } from '../../src/lake/silver/index.js';

export interface PeerOptions {
  lakeRoot: string;
  /** Folder the peer writes its tables to (one sub-folder per table). */
  outDir: string;
  ranges: SilverRanges;
  zscore: SilverZscoreOptions;
  deviceScoreThreshold: number;
  sensorIntervals: Record<string, number>;
  defaultIntervalMs: number;
  processingTime: number;
  pipelineVersion: string;
}

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** An inline table of (key, number, number) rows, usable after JOIN. */
function valuesTable(rows: [string, number, number][], alias: string, columns: string): string {
  if (rows.length === 0)
    return `(SELECT NULL::VARCHAR, NULL::DOUBLE, NULL::DOUBLE WHERE false) AS ${alias}(${columns})`;
  const values = rows.map(([k, a, b]) => `(${literal(k)}, ${a}::DOUBLE, ${b}::DOUBLE)`);
  return `(VALUES ${values.join(', ')}) AS ${alias}(${columns})`;
}

export async function runPeer(o: PeerOptions): Promise<void> {
  const db = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const conn = await db.connect();
  const out = (table: string): string => literal(path.join(o.outDir, table));
  const root = path.resolve(o.lakeRoot) + '/';
  const { window, minHistory, threshold } = o.zscore;
  const byType = valuesTable(
    Object.entries(o.ranges.byType).map(([k, r]) => [k, r.min, r.max]),
    'rt',
    'sensor_type, min, max',
  );
  const bySensor = valuesTable(
    Object.entries(o.ranges.bySensor).map(([k, r]) => [k, r.min, r.max]),
    'rs',
    'sensor_id, min, max',
  );
  const intervals = valuesTable(
    Object.entries(o.sensorIntervals).map(([k, ms]) => [k, ms, 0]),
    'i',
    'sensor_id, interval_ms, unused',
  );
  try {
    await conn.run(`
      CREATE TEMP TABLE silver AS
      WITH bronze AS (
        SELECT * EXCLUDE (filename), substr(filename, ${root.length + 1}) AS source_file
        FROM read_parquet(${literal(path.join(root, 'bronze/readings/*/*/*.parquet'))},
                          filename = true, hive_partitioning = false)
      ),
      deduped AS (
        SELECT * FROM bronze
        QUALIFY row_number() OVER (PARTITION BY sensor_id, event_time
                                   ORDER BY ingest_time DESC, seq DESC, source_file DESC) = 1
      ),
      history AS (
        SELECT sensor_id, event_time,
               count(value) OVER w AS n_prev, avg(value) OVER w AS mean_prev,
               stddev_samp(value) OVER w AS sd_prev
        FROM deduped WHERE value IS NOT NULL
        WINDOW w AS (PARTITION BY sensor_id ORDER BY event_time
                     ROWS BETWEEN ${window} PRECEDING AND 1 PRECEDING)
      ),
      flagged AS (
        SELECT d.*,
               d.value IS NOT NULL AND coalesce(rs.min, rt.min) IS NOT NULL AND
                 (d.value < coalesce(rs.min, rt.min) OR d.value > coalesce(rs.max, rt.max)) AS f_range,
               d.value IS NOT NULL AND h.n_prev >= ${minHistory} AND h.sd_prev > 0 AND
                 abs((d.value - h.mean_prev) / h.sd_prev) > ${threshold} AS f_zscore,
               coalesce(d.anomaly_score > ${o.deviceScoreThreshold}, false) AS f_device
        FROM deduped d
        LEFT JOIN history h USING (sensor_id, event_time)
        LEFT JOIN ${bySensor} ON rs.sensor_id = d.sensor_id
        LEFT JOIN ${byType} ON rt.sensor_type = d.sensor_type
      )
      SELECT sensor_id, sensor_type, location, event_time, value, unit, anomaly_score,
             ingest_time, source, batch_id, seq,
             f_range OR f_zscore OR f_device AS is_anomaly,
             list_concat(CASE WHEN f_range THEN ['range'] ELSE []::VARCHAR[] END,
                         CASE WHEN f_zscore THEN ['zscore'] ELSE []::VARCHAR[] END,
                         CASE WHEN f_device THEN ['device'] ELSE []::VARCHAR[] END) AS anomaly_reasons,
             imputed, source_file,
             epoch_ms(${o.processingTime}) AS processing_time,
             ${literal(o.pipelineVersion)} AS pipeline_version,
             CAST(event_time AS DATE) AS date
      FROM flagged`);
    await conn.run(
      `COPY (SELECT * FROM silver ORDER BY sensor_id, event_time) TO ${out('silver')}
       (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))`,
    );
    await conn.run(
      `COPY (SELECT * FROM silver WHERE is_anomaly ORDER BY sensor_id, event_time) TO ${out('anomalies')}
       (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))`,
    );
    const defaultMs = `${o.defaultIntervalMs}::DOUBLE`;
    await conn.run(
      `COPY (
         SELECT s.sensor_id, time_bucket(INTERVAL 5 MINUTE, s.event_time) AS window_start,
                arg_max(s.sensor_type, s.event_time) AS sensor_type,
                arg_max(s.location, s.event_time) AS location,
                count(*) AS reading_count, count(s.value) AS value_count,
                count(*) FILTER (WHERE s.is_anomaly) AS anomaly_count,
                avg(s.value) AS avg, min(s.value) AS min, max(s.value) AS max,
                stddev_samp(s.value) AS stddev,
                quantile_cont(s.value, 0.5) AS p50, quantile_cont(s.value, 0.95) AS p95,
                quantile_cont(s.value, 0.99) AS p99,
                300000 / coalesce(any_value(i.interval_ms), ${defaultMs}) AS expected_count,
                least(100.0, count(s.value) FILTER (WHERE NOT s.is_anomaly)
                             / (300000 / coalesce(any_value(i.interval_ms), ${defaultMs})) * 100) AS health_pct,
                any_value(s.date) AS date
         FROM silver s LEFT JOIN ${intervals} ON i.sensor_id = s.sensor_id
         GROUP BY s.sensor_id, window_start
         ORDER BY sensor_id, window_start
       ) TO ${out('sensor_5min')} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))`,
    );
    await conn.run(
      `COPY (
         SELECT location, date_trunc('hour', event_time) AS hour_start, sensor_type,
                count(DISTINCT sensor_id) AS sensor_count, count(*) AS reading_count,
                count(value) AS value_count, count(*) FILTER (WHERE is_anomaly) AS anomaly_count,
                avg(value) AS avg, min(value) AS min, max(value) AS max,
                any_value(date) AS date
         FROM silver GROUP BY location, hour_start, sensor_type
         ORDER BY location NULLS LAST, hour_start, sensor_type NULLS LAST
       ) TO ${out('location_hourly')} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))`,
    );
    await conn.run(
      `COPY (
         SELECT sensor_id, date, arg_max(sensor_type, event_time) AS sensor_type,
                arg_max(location, event_time) AS location, count(*) AS reading_count,
                avg(value) AS avg, min(value) AS min, max(value) AS max,
                count(*) FILTER (WHERE is_anomaly) AS anomaly_count,
                count(*) FILTER (WHERE value IS NULL) AS missing_count,
                count(*) FILTER (WHERE imputed) AS imputed_count
         FROM silver GROUP BY sensor_id, date ORDER BY sensor_id
       ) TO ${out('daily_summary')} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date))`,
    );
    await conn.run(
      `COPY (
         SELECT sensor_id, arg_max(sensor_type, event_time) AS sensor_type,
                arg_max(location, event_time) AS location,
                min(event_time) AS first_event_time, max(event_time) AS last_event_time,
                count(*) AS total_readings, avg(value) AS avg, min(value) AS min, max(value) AS max,
                count(*) FILTER (WHERE is_anomaly) AS anomaly_count,
                count(*) FILTER (WHERE is_anomaly) * 100.0 / count(*) AS anomaly_pct
         FROM silver GROUP BY sensor_id ORDER BY sensor_id
       ) TO ${literal(path.join(o.outDir, 'device_summary.parquet'))} (FORMAT parquet, COMPRESSION zstd)`,
    );
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
