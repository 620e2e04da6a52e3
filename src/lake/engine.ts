/**
 * What every lake job shares: a private in-memory DuckDB to transform
 * Parquet with (no extension may be downloaded here), and the date rule of
 * the partitions, and local files for the objects a job reads.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { CanopyError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';

/**
 * Bounds one lake engine. A transform over a day of silver needs more than
 * this at 10 M readings, so DuckDB spills the rest to `spillDir` instead of
 * growing the process by gigabytes (DuckDB's own default limit is 80 % of
 * RAM, and memory it gave back is not always returned to the system).
 */
export interface LakeEngineSettings {
  /** DuckDB `memory_limit` of one engine, in MB. */
  memoryLimitMB: number;
  /** Each engine spills into its own folder under this one, removed when it closes. */
  spillDir: string;
}

/** For callers without a config (tests, tools); the app passes `lake.engineMemoryMB`. */
export const DEFAULT_LAKE_ENGINE: LakeEngineSettings = {
  memoryLimitMB: 1024,
  spillDir: path.join(os.tmpdir(), 'canopy-lake-engine'),
};

/** The settings `lake.engineMemoryMB` and `dataDir` give. */
export function lakeEngineSettings(engineMemoryMB: number, dataDir: string): LakeEngineSettings {
  return { memoryLimitMB: engineMemoryMB, spillDir: path.join(dataDir, 'tmp', 'lake-engine') };
}

/** The same budget split among `engines` that run at once (at least 64 MB each). */
export function shareLakeEngine(settings: LakeEngineSettings, engines: number): LakeEngineSettings {
  return { ...settings, memoryLimitMB: Math.max(64, Math.floor(settings.memoryLimitMB / engines)) };
}

/** Runs `work` on a fresh in-memory DuckDB connection and closes it afterwards. */
export async function withLakeEngine<T>(
  work: (conn: DuckDBConnection) => Promise<T>,
  settings: LakeEngineSettings = DEFAULT_LAKE_ENGINE,
): Promise<T> {
  mkdirSync(settings.spillDir, { recursive: true });
  const spill = mkdtempSync(path.join(settings.spillDir, 'engine-'));
  try {
    const db = await DuckDBInstance.create(':memory:', {
      autoinstall_known_extensions: 'false',
      autoload_known_extensions: 'false',
      memory_limit: `${settings.memoryLimitMB}MB`,
      temp_directory: spill,
    });
    const conn = await db.connect();
    try {
      return await work(conn);
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  } finally {
    rmSync(spill, { recursive: true, force: true });
  }
}

/**
 * A local path holding the object: the lake's own file for a local lake,
 * else a download to `downloadRoot/<key>` (the key's layout kept, so the
 * path still ends with the key).
 */
export async function localCopy(
  lake: ObjectStore,
  key: string,
  downloadRoot: string,
): Promise<string> {
  const direct = lake.localPath(key);
  if (direct !== undefined) return direct;
  const file = path.join(downloadRoot, key);
  await lake.getToFile(key, file);
  return file;
}

const EVENT_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A partition date: `YYYY-MM-DD`, a real calendar day (UTC). */
export function isEventDate(date: string): boolean {
  if (!EVENT_DATE.test(date)) return false;
  const ms = Date.parse(`${date}T00:00:00Z`);
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 10) === date;
}

/**
 * The given dates, checked: each must be a calendar day the layer has a
 * partition for (`partitions` is keyed by date). Throws CANOPY_JOB_BAD_DATE.
 */
export function requireDates(
  dates: readonly string[],
  partitions: ReadonlyMap<string, unknown>,
  layer: string,
): string[] {
  for (const date of dates) {
    if (!isEventDate(date))
      throw new CanopyError('CANOPY_JOB_BAD_DATE', `not a calendar day as YYYY-MM-DD: ${date}`);
    if (!partitions.has(date))
      throw new CanopyError('CANOPY_JOB_BAD_DATE', `the lake has no ${layer} for ${date}`);
  }
  return [...new Set(dates)].sort();
}

/** The day before a partition date. */
export function previousEventDate(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}
