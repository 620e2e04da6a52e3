/**
 * The gold job: rebuilds the gold tables of every event date whose silver
 * partition changed, then the all-time device summary if anything did.
 *
 * Dates are independent, so they are built side by side, one engine (and
 * one DuckDB thread) per core.
 *
 * Like silver, change detection is a manifest: `gold/_manifests/date=D.json`
 * records the etag of the silver file each date was built from. Outputs are
 * whole-object replaces and the manifest is written last, so a crashed run
 * is redone and a rerun never duplicates.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import {
  localCopy,
  requireDates,
  shareLakeEngine,
  withLakeEngine,
  DEFAULT_LAKE_ENGINE,
  type LakeEngineSettings,
} from './engine.js';
import { buildDeviceSummary, buildGoldPartition } from './gold/index.js';
import { SILVER_READINGS_PREFIX } from './silver-job.js';

export interface GoldJobOptions {
  lake: ObjectStore;
  workDir: string;
  /** Expected interval per sensor id, ms (for `health_pct`). */
  sensorIntervals: Record<string, number>;
  defaultIntervalMs: number;
  logger: Logger;
  /** Bounds the job's DuckDB; default DEFAULT_LAKE_ENGINE. */
  engine?: LakeEngineSettings;
  /**
   * Rebuild exactly these dates, changed or not, instead of the dirty ones.
   * Throws CANOPY_JOB_BAD_DATE for a date with no silver.
   */
  dates?: readonly string[];
}

export interface GoldDateReport {
  date: string;
  sensor5min: number;
  locationHourly: number;
  dailySummary: number;
}

export interface GoldJobReport {
  dates: GoldDateReport[];
  /** Devices in the rebuilt device summary; null when it was not rebuilt. */
  devices: number | null;
}

const SILVER_FILE = /^silver\/readings\/date=(\d{4}-\d{2}-\d{2})\/part-0\.parquet$/;

function manifestKey(date: string): string {
  return `gold/_manifests/date=${date}.json`;
}

/** Builds and uploads one date's gold tables, then its manifest (last, so a crash leaves it dirty). */
async function buildDate(
  options: GoldJobOptions,
  conn: DuckDBConnection,
  date: string,
  silverPaths: Map<string, string>,
  silver: Map<string, ObjectInfo>,
  work: string,
): Promise<GoldDateReport> {
  const { lake } = options;
  const built = await buildGoldPartition({
    conn,
    silverFiles: [silverPaths.get(date)!],
    date,
    sensorIntervals: options.sensorIntervals,
    defaultIntervalMs: options.defaultIntervalMs,
    outDir: path.join(work, date),
  });
  await lake.putFile(`gold/sensor_5min/date=${date}/part-0.parquet`, built.sensor5min.file);
  await lake.putFile(`gold/location_hourly/date=${date}/part-0.parquet`, built.locationHourly.file);
  await lake.putFile(`gold/daily_summary/date=${date}/part-0.parquet`, built.dailySummary.file);
  await lake.put(
    manifestKey(date),
    JSON.stringify({ silver_etag: silver.get(date)!.etag }, null, 2),
  );
  const report = {
    date,
    sensor5min: built.sensor5min.rows,
    locationHourly: built.locationHourly.rows,
    dailySummary: built.dailySummary.rows,
  };
  options.logger.info(report, 'gold partition built');
  return report;
}

async function silverFiles(lake: ObjectStore): Promise<Map<string, ObjectInfo>> {
  const silver = new Map<string, ObjectInfo>();
  for (const object of await lake.list(SILVER_READINGS_PREFIX)) {
    const date = SILVER_FILE.exec(object.key)?.[1];
    if (date) silver.set(date, object);
  }
  return silver;
}

/** Dates whose silver file differs from the one their gold was built from (or that have no gold yet). */
export async function dirtyGoldDates(lake: ObjectStore): Promise<string[]> {
  const dirty: string[] = [];
  for (const [date, object] of [...(await silverFiles(lake))].sort(([a], [b]) =>
    a < b ? -1 : 1,
  )) {
    const head = await lake.head(manifestKey(date));
    const manifest = head
      ? (JSON.parse((await lake.get(manifestKey(date))).toString('utf8')) as {
          silver_etag?: string;
        })
      : undefined;
    if (manifest?.silver_etag !== object.etag) dirty.push(date);
  }
  return dirty;
}

export async function runGoldJob(options: GoldJobOptions): Promise<GoldJobReport> {
  const { lake } = options;
  const engine = options.engine ?? DEFAULT_LAKE_ENGINE;
  const silver = await silverFiles(lake);
  const dirty = options.dates
    ? requireDates(options.dates, silver, 'silver')
    : await dirtyGoldDates(lake);
  const report: GoldJobReport = { dates: [], devices: null };
  if (dirty.length === 0) return report;

  mkdirSync(options.workDir, { recursive: true });
  const work = mkdtempSync(path.join(options.workDir, 'gold-'));
  const cache = path.join(work, 'cache');
  try {
    const silverPaths = new Map<string, string>();
    for (const [date, object] of silver)
      silverPaths.set(date, await localCopy(lake, object.key, cache));

    // Each date is built on one DuckDB thread (deterministic float sums and
    // Parquet bytes), so dates run side by side, one engine per core; the
    // files of a date do not depend on which engine built it.
    const built = new Map<string, GoldDateReport>();
    const queue = [...dirty];
    const buildDates = async (conn: DuckDBConnection): Promise<void> => {
      try {
        for (let date = queue.shift(); date !== undefined; date = queue.shift()) {
          built.set(date, await buildDate(options, conn, date, silverPaths, silver, work));
        }
      } catch (err) {
        queue.length = 0; // the run fails: the other engines stop after their current date
        throw err;
      }
    };
    const engines = Math.max(1, Math.min(dirty.length, availableParallelism()));
    const share = shareLakeEngine(engine, engines);
    const outcomes = await Promise.allSettled(
      Array.from({ length: engines }, () => withLakeEngine(buildDates, share)),
    );
    const failed = outcomes.find((o) => o.status === 'rejected');
    if (failed) throw failed.reason;
    for (const date of dirty) report.dates.push(built.get(date)!);

    report.devices = await withLakeEngine(async (conn) => {
      const devices = await buildDeviceSummary({
        conn,
        silverFiles: [...silverPaths.values()].sort(),
        outDir: path.join(work, 'devices'),
      });
      await lake.putFile('gold/device_summary/part-0.parquet', devices.file);
      return devices.rows;
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return report;
}
