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
 * Memory that lake engines take their limits from, so that engines running
 * at once (a silver job beside a bronze compaction, gold's engines side by
 * side) share one budget instead of adding up: an engine whose limit does
 * not fit waits until enough is given back. Grants are first come, first
 * served, so a large request is not starved by small ones.
 */
export class LakeMemoryBudget {
  private availableMB: number;
  private readonly waiting: { mb: number; grant: () => void }[] = [];

  constructor(readonly totalMB: number) {
    this.availableMB = totalMB;
  }

  /**
   * Whether `take(mb)` would be granted at once. Checked and followed by
   * `take` (or `withLakeEngine`) without an `await` between, nothing can
   * come between the two.
   */
  fitsNow(mb: number): boolean {
    return this.waiting.length === 0 && this.availableMB >= Math.min(mb, this.totalMB);
  }

  /** Takes `mb` (at most the whole budget), waiting for it; resolves to the release. */
  async take(mb: number): Promise<() => void> {
    const want = Math.min(mb, this.totalMB);
    if (!this.fitsNow(want)) {
      await new Promise<void>((grant) => this.waiting.push({ mb: want, grant }));
    } else {
      this.availableMB -= want;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.availableMB += want;
      this.grantWaiting();
    };
  }

  private grantWaiting(): void {
    for (let next = this.waiting[0]; next !== undefined; next = this.waiting[0]) {
      if (next.mb > this.availableMB) return;
      this.waiting.shift();
      this.availableMB -= next.mb;
      next.grant();
    }
  }
}

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
  /** The process's budget the engine's limit is taken from while it runs. */
  budget: LakeMemoryBudget;
}

/** For callers without a config (tests, tools); the app passes `lake.engineMemoryMB`. */
export const DEFAULT_LAKE_ENGINE: LakeEngineSettings = {
  memoryLimitMB: 1024,
  spillDir: path.join(os.tmpdir(), 'canopy-lake-engine'),
  budget: new LakeMemoryBudget(1024),
};

/**
 * The settings `lake.engineMemoryMB` and `dataDir` give, with a budget of
 * that size: make them once per process and hand the same object to every
 * lake job, so their engines share it.
 */
export function lakeEngineSettings(engineMemoryMB: number, dataDir: string): LakeEngineSettings {
  return {
    memoryLimitMB: engineMemoryMB,
    spillDir: path.join(dataDir, 'tmp', 'lake-engine'),
    budget: new LakeMemoryBudget(engineMemoryMB),
  };
}

/** The same budget split among `engines` that run at once (at least 64 MB each). */
export function shareLakeEngine(settings: LakeEngineSettings, engines: number): LakeEngineSettings {
  return { ...settings, memoryLimitMB: Math.max(64, Math.floor(settings.memoryLimitMB / engines)) };
}

/**
 * Runs `work` on a fresh in-memory DuckDB connection and closes it
 * afterwards, once the engine's limit fits in its budget. `work` must not
 * open another engine on the same budget: it would wait for itself.
 */
export async function withLakeEngine<T>(
  work: (conn: DuckDBConnection) => Promise<T>,
  settings: LakeEngineSettings = DEFAULT_LAKE_ENGINE,
): Promise<T> {
  const release = await settings.budget.take(settings.memoryLimitMB);
  let spill: string | undefined;
  try {
    mkdirSync(settings.spillDir, { recursive: true });
    spill = mkdtempSync(path.join(settings.spillDir, 'engine-'));
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
    if (spill !== undefined) rmSync(spill, { recursive: true, force: true });
    release();
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
