/**
 * The gold job: rebuilds the gold tables of every event date whose silver
 * partition changed, then the all-time device summary if anything did.
 *
 * Like silver, change detection is a manifest: `gold/_manifests/date=D.json`
 * records the etag of the silver file each date was built from. Outputs are
 * whole-object replaces and the manifest is written last, so a crashed run
 * is redone and a rerun never duplicates.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import { withLakeEngine } from './engine.js';
import { buildDeviceSummary, buildGoldPartition } from './gold/index.js';
import { SILVER_READINGS_PREFIX } from './silver-job.js';

export interface GoldJobOptions {
  lake: ObjectStore;
  workDir: string;
  /** Expected interval per sensor id, ms (for `health_pct`). */
  sensorIntervals: Record<string, number>;
  defaultIntervalMs: number;
  logger: Logger;
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

/** Local path of an object, downloading it into `cacheRoot` when the lake is remote. */
async function localFile(
  lake: ObjectStore,
  object: ObjectInfo,
  cacheRoot: string,
): Promise<string> {
  const direct = lake.localPath(object.key);
  if (direct !== undefined) return direct;
  const file = path.join(cacheRoot, object.key);
  await lake.getToFile(object.key, file);
  return file;
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
  const { lake, logger } = options;
  const silver = await silverFiles(lake);
  const dirty = await dirtyGoldDates(lake);
  const report: GoldJobReport = { dates: [], devices: null };
  if (dirty.length === 0) return report;

  mkdirSync(options.workDir, { recursive: true });
  const work = mkdtempSync(path.join(options.workDir, 'gold-'));
  const cache = path.join(work, 'cache');
  try {
    await withLakeEngine(async (conn) => {
      const silverFiles = new Map<string, string>();
      for (const [date, object] of silver)
        silverFiles.set(date, await localFile(lake, object, cache));
      for (const date of dirty) {
        const outDir = path.join(work, date);
        const built = await buildGoldPartition({
          conn,
          silverFiles: [silverFiles.get(date)!],
          date,
          sensorIntervals: options.sensorIntervals,
          defaultIntervalMs: options.defaultIntervalMs,
          outDir,
        });
        await lake.putFile(`gold/sensor_5min/date=${date}/part-0.parquet`, built.sensor5min.file);
        await lake.putFile(
          `gold/location_hourly/date=${date}/part-0.parquet`,
          built.locationHourly.file,
        );
        await lake.putFile(
          `gold/daily_summary/date=${date}/part-0.parquet`,
          built.dailySummary.file,
        );
        await lake.put(
          manifestKey(date),
          JSON.stringify({ silver_etag: silver.get(date)!.etag }, null, 2),
        );
        const dateReport = {
          date,
          sensor5min: built.sensor5min.rows,
          locationHourly: built.locationHourly.rows,
          dailySummary: built.dailySummary.rows,
        };
        logger.info(dateReport, 'gold partition built');
        report.dates.push(dateReport);
      }
      const devices = await buildDeviceSummary({
        conn,
        silverFiles: [...silverFiles.values()].sort(),
        outDir: path.join(work, 'devices'),
      });
      await lake.putFile('gold/device_summary/part-0.parquet', devices.file);
      report.devices = devices.rows;
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return report;
}
