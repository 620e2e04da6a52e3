/**
 * The silver job: rebuilds the silver and anomalies partitions of every
 * event date whose bronze input changed, from the whole of that input.
 *
 * Change detection needs no clock and no extra database: each silver
 * partition keeps a manifest (`silver/readings/date=D/_manifest.json`) of
 * the objects it was built from — keys and etags of the bronze of date D and
 * of D − 1, whose values seed the z-score history, and of the imputed values
 * of D (`imputations/date=D/`). A date is dirty when that set differs from
 * what the lake holds now: new files (late data, a new imputation run),
 * rewritten files, or no silver yet. The manifest is written last, so a run that dies
 * half-way leaves the date dirty and the next run redoes it; every output is
 * a whole-object replace, so a rerun never duplicates.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import { BRONZE_READINGS_PREFIX } from './bronze-export.js';
import {
  localCopy,
  previousEventDate,
  requireDates,
  withLakeEngine,
  type LakeEngineSettings,
} from './engine.js';
import {
  buildSilverPartition,
  type SilverRanges,
  type SilverZscoreOptions,
} from './silver/index.js';

export const SILVER_READINGS_PREFIX = 'silver/readings/';
export const ANOMALIES_READINGS_PREFIX = 'anomalies/readings/';
/** Bumped when the silver rules change, so lineage says which rules made a row. */
export const SILVER_PIPELINE_VERSION = 'silver-2';
/** Imputed values by event date, written by the imputation workflow (src/imputation). */
export const IMPUTATIONS_PREFIX = 'imputations/';

export interface SilverJobOptions {
  lake: ObjectStore;
  workDir: string;
  ranges: SilverRanges;
  zscore: SilverZscoreOptions;
  deviceScoreThreshold: number;
  clock: Clock;
  logger: Logger;
  /** Bounds the job's DuckDB; default DEFAULT_LAKE_ENGINE. */
  engine?: LakeEngineSettings;
  /**
   * Rebuild exactly these dates, changed or not, instead of the dirty ones.
   * Throws CANOPY_JOB_BAD_DATE for a date with no bronze.
   */
  dates?: readonly string[];
}

export interface SilverDateReport {
  date: string;
  rows: number;
  anomalies: number;
  duplicatesDropped: number;
  missing: number;
  imputed: number;
}

interface Manifest {
  pipeline_version: string;
  built_at: string;
  rows: number;
  /** Key → etag of every input object (bronze, imputations). */
  inputs: Record<string, string>;
}

const DATE_IN_KEY = /(?:^|\/)date=(\d{4}-\d{2}-\d{2})\//;

function dateOf(key: string): string | undefined {
  return DATE_IN_KEY.exec(key)?.[1];
}

function manifestKey(date: string): string {
  return `${SILVER_READINGS_PREFIX}date=${date}/_manifest.json`;
}

function sameInputs(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Local files of the objects, and the folder they sit in by key (for lineage). */
async function localFiles(
  lake: ObjectStore,
  objects: readonly ObjectInfo[],
  downloadRoot: string,
): Promise<{ files: string[]; root: string }> {
  const files: string[] = [];
  for (const o of objects) files.push(await localCopy(lake, o.key, downloadRoot));
  const [first, firstFile] = [objects[0], files[0]];
  const root =
    first && firstFile ? firstFile.slice(0, firstFile.length - first.key.length) : downloadRoot;
  return { files, root };
}

/** The dates whose input differs from their silver manifest. */
export async function dirtySilverDates(lake: ObjectStore): Promise<string[]> {
  const byDate = await bronzeByDate(lake);
  const imputations = await imputationsByDate(lake);
  const dirty: string[] = [];
  for (const date of [...byDate.keys()].sort()) {
    const inputs = inputKeys(inputsFor(byDate, imputations, date));
    const manifest = await readManifest(lake, date);
    if (
      !manifest ||
      manifest.pipeline_version !== SILVER_PIPELINE_VERSION ||
      !sameInputs(manifest.inputs, inputs)
    )
      dirty.push(date);
  }
  return dirty;
}

async function bronzeByDate(lake: ObjectStore): Promise<Map<string, ObjectInfo[]>> {
  return parquetByDate(lake, BRONZE_READINGS_PREFIX);
}

async function imputationsByDate(lake: ObjectStore): Promise<Map<string, ObjectInfo[]>> {
  return parquetByDate(lake, IMPUTATIONS_PREFIX);
}

async function parquetByDate(
  lake: ObjectStore,
  prefix: string,
): Promise<Map<string, ObjectInfo[]>> {
  const byDate = new Map<string, ObjectInfo[]>();
  for (const object of await lake.list(prefix)) {
    const date = dateOf(object.key);
    if (!date || !object.key.endsWith('.parquet')) continue;
    const list = byDate.get(date) ?? [];
    list.push(object);
    byDate.set(date, list);
  }
  return byDate;
}

interface SilverInputs {
  bronze: ObjectInfo[];
  imputations: ObjectInfo[];
}

function inputsFor(
  bronze: Map<string, ObjectInfo[]>,
  imputations: Map<string, ObjectInfo[]>,
  date: string,
): SilverInputs {
  return {
    bronze: [...(bronze.get(previousEventDate(date)) ?? []), ...(bronze.get(date) ?? [])],
    imputations: imputations.get(date) ?? [],
  };
}

function inputKeys(inputs: SilverInputs): Record<string, string> {
  return Object.fromEntries([...inputs.bronze, ...inputs.imputations].map((o) => [o.key, o.etag]));
}

async function readManifest(lake: ObjectStore, date: string): Promise<Manifest | undefined> {
  if (!(await lake.head(manifestKey(date)))) return undefined;
  return JSON.parse((await lake.get(manifestKey(date))).toString('utf8')) as Manifest;
}

export async function runSilverJob(options: SilverJobOptions): Promise<SilverDateReport[]> {
  const { lake, logger } = options;
  const byDate = await bronzeByDate(lake);
  const imputations = await imputationsByDate(lake);
  const dirty = new Set(
    options.dates ? requireDates(options.dates, byDate, 'bronze') : await dirtySilverDates(lake),
  );
  const reports: SilverDateReport[] = [];
  if (dirty.size === 0) return reports;

  mkdirSync(options.workDir, { recursive: true });
  const work = mkdtempSync(path.join(options.workDir, 'silver-'));
  try {
    await withLakeEngine(async (conn) => {
      for (const date of [...dirty].sort()) {
        const inputs = inputsFor(byDate, imputations, date);
        const cache = path.join(work, 'cache');
        const { files, root } = await localFiles(lake, inputs.bronze, cache);
        const imputationFiles = (await localFiles(lake, inputs.imputations, cache)).files;
        const outDir = path.join(work, date);
        const processingTime = options.clock.now();
        const built = await buildSilverPartition({
          conn,
          bronzeFiles: files,
          date,
          ranges: options.ranges,
          zscore: options.zscore,
          deviceScoreThreshold: options.deviceScoreThreshold,
          pipelineVersion: SILVER_PIPELINE_VERSION,
          processingTime,
          outDir,
          lineageRoot: root,
          imputationFiles,
        });
        await lake.putFile(
          `${ANOMALIES_READINGS_PREFIX}date=${date}/part-0.parquet`,
          built.anomaliesFile,
        );
        await lake.putFile(
          `${SILVER_READINGS_PREFIX}date=${date}/part-0.parquet`,
          built.silverFile,
        );
        const manifest: Manifest = {
          pipeline_version: SILVER_PIPELINE_VERSION,
          built_at: new Date(processingTime).toISOString(),
          rows: built.rows,
          inputs: inputKeys(inputs),
        };
        await lake.put(manifestKey(date), JSON.stringify(manifest, null, 2));
        const report = {
          date,
          rows: built.rows,
          anomalies: built.anomalies,
          duplicatesDropped: built.duplicatesDropped,
          missing: built.missing,
          imputed: built.imputed,
        };
        logger.info(report, 'silver partition built');
        reports.push(report);
      }
    }, options.engine);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return reports;
}
