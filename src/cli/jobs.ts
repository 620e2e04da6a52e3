/**
 * `canopy jobs run JOB`: one batch job, run now against the configured data
 * folder and lake. `canopy query SQL`: SQL over the lake, which needs no
 * hot store and so works beside a running Canopy.
 */
import path from 'node:path';
import type { CanopyConfig } from '../config/schema.js';
import { ManualClock, systemClock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import {
  buildCatalog,
  isEventDate,
  lakeCacheDir,
  QualityHistory,
  runBronzeExport,
  runGoldJob,
  runQualityJob,
  runRetention,
  runSilverJob,
  type BronzeExportReport,
  type CatalogTable,
  type GoldJobReport,
  type QualityRun,
  type RetentionReport,
  type SilverDateReport,
} from '../lake/index.js';
import { SensorRegistry } from '../runtime/registry.js';
import { createLogger } from '../observability/logger.js';
import { openStore } from '../runtime/app.js';
import { openLakeQueries, type QueryResult } from '../query/index.js';
import { createObjectStore } from '../storage/index.js';
import { runWarehouseLoad, type WarehouseLoadReport } from '../lake/warehouse-job.js';
import { createWarehouse } from '../storage/warehouse/index.js';

export const JOBS = [
  'bronze-export',
  'silver',
  'gold',
  'quality',
  'retention',
  'warehouse-load',
] as const;

/** Health of sensors with no configured interval assumes one reading a minute (the conservatory's polling). */
const DEFAULT_INTERVAL_MS = 60_000;
export type JobName = (typeof JOBS)[number];

export interface JobOutcome {
  /** False when the job ran but found a problem (a failed quality suite). */
  ok: boolean;
  report:
    | BronzeExportReport
    | SilverDateReport[]
    | GoldJobReport
    | QualityRun
    | RetentionReport
    | WarehouseLoadReport;
}

export async function runJob(
  config: CanopyConfig,
  job: JobName,
  options: {
    dryRun?: boolean;
    /**
     * The event date to work on (`YYYY-MM-DD`): silver and gold rebuild it,
     * quality checks its partitions only, warehouse-load reloads it, and
     * retention ages the lake as of that day. bronze-export takes none.
     */
    date?: string | undefined;
    full?: boolean;
  } = {},
): Promise<JobOutcome> {
  const { date } = options;
  if (date !== undefined && job === 'bronze-export')
    throw new CanopyError(
      'CANOPY_JOB_BAD_DATE',
      'bronze-export takes no --date: it exports every committed row past the watermark',
    );
  if (date !== undefined && !isEventDate(date))
    throw new CanopyError(
      'CANOPY_JOB_BAD_DATE',
      `--date must be a calendar day as YYYY-MM-DD, got ${JSON.stringify(date)}`,
    );
  const logger = createLogger(config.log.level, true).child({ job });
  const lake = createObjectStore(config.lake, config.dataDir);
  const workDir = path.join(config.dataDir, 'tmp');
  try {
    if (job === 'retention') {
      const report = await runRetention({
        lake,
        days: config.lake.retentionDays,
        clock: date === undefined ? systemClock : new ManualClock(Date.parse(date)),
        logger,
        dryRun: options.dryRun ?? false,
      });
      return { ok: true, report };
    }
    if (job === 'gold') {
      const registry = new SensorRegistry(config.sensors, config.sensorTypes);
      const report = await runGoldJob({
        lake,
        workDir,
        sensorIntervals: registry.intervals(),
        defaultIntervalMs: DEFAULT_INTERVAL_MS,
        logger,
        dates: date === undefined ? undefined : [date],
      });
      return { ok: true, report };
    }
    if (job === 'quality') {
      const startedAt = systemClock.now();
      const results = await runQualityJob({
        lake,
        logger,
        cacheDir: lakeCacheDir(config.lake.cacheDir, config.dataDir),
        date,
      });
      const run = await new QualityHistory(lake, systemClock).record(results, startedAt);
      return { ok: run.success, report: run };
    }
    if (job === 'silver') {
      const report = await runSilverJob({
        lake,
        workDir,
        ranges: new SensorRegistry(config.sensors, config.sensorTypes).ranges(),
        zscore: {
          window: config.stream.zscoreWindow,
          minHistory: config.stream.zscoreMinHistory,
          threshold: config.stream.zscoreThreshold,
        },
        deviceScoreThreshold: config.stream.deviceScoreThreshold,
        clock: systemClock,
        logger,
        dates: date === undefined ? undefined : [date],
      });
      return { ok: true, report };
    }
    if (job === 'warehouse-load') {
      const warehouse = createWarehouse(config.warehouse, config.dataDir);
      await warehouse.open();
      try {
        const registry = new SensorRegistry(config.sensors, config.sensorTypes);
        const report = await runWarehouseLoad({
          lake,
          warehouse,
          workDir,
          configuredSensors: registry.configRecords(),
          typeDefaults: registry.typeDefaults(),
          date: options.date,
          full: options.full ?? false,
          logger,
        });
        return { ok: true, report };
      } finally {
        await warehouse.close();
      }
    }
    const store = await openStore(config, logger);
    try {
      return { ok: true, report: await runBronzeExport({ store, lake, workDir, logger }) };
    } finally {
      await store.close();
    }
  } finally {
    lake.close();
  }
}

export async function queryLake(config: CanopyConfig, sql: string): Promise<QueryResult> {
  const logger = createLogger(config.log.level, true);
  const lake = createObjectStore(config.lake, config.dataDir);
  const queries = await openLakeQueries(lake, logger, {
    cacheDir: lakeCacheDir(config.lake.cacheDir, config.dataDir),
  });
  try {
    return await queries.run(sql);
  } finally {
    await queries.close();
    lake.close();
  }
}

export async function lakeCatalog(config: CanopyConfig): Promise<CatalogTable[]> {
  const lake = createObjectStore(config.lake, config.dataDir);
  try {
    return await buildCatalog(lake, {
      cacheDir: lakeCacheDir(config.lake.cacheDir, config.dataDir),
    });
  } finally {
    lake.close();
  }
}
