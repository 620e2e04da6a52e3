/**
 * `canopy jobs run JOB`: one batch job, run now against the configured data
 * folder and lake. `canopy query SQL`: SQL over the lake, which needs no
 * hot store and so works beside a running Canopy.
 */
import type { CanopyConfig } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import {
  buildCatalog,
  lakeCacheDir,
  type BronzeExportReport,
  type CatalogTable,
  type GoldJobReport,
  type QualityRun,
  type RetentionReport,
  type SilverDateReport,
} from '../lake/index.js';
import type { WarehouseLoadReport } from '../lake/warehouse-job.js';
import { createLogger } from '../observability/logger.js';
import { openStore } from '../runtime/app.js';
import { openLakeQueries, type QueryResult } from '../query/index.js';
import { createObjectStore } from '../storage/index.js';
import { checkJobDate, LakeJobs } from '../workflows/jobs.js';

export const JOBS = [
  'bronze-export',
  'silver',
  'gold',
  'quality',
  'retention',
  'warehouse-load',
] as const;

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
    /** The event date to work on (`YYYY-MM-DD`); see LakeJobs. bronze-export takes none. */
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
  checkJobDate(date);
  const logger = createLogger(config.log.level, true);
  const lake = createObjectStore(config.lake, config.dataDir);
  const jobs = new LakeJobs({ config, lake, clock: systemClock, logger });
  try {
    switch (job) {
      case 'retention':
        return {
          ok: true,
          report: await jobs.retention({ date, dryRun: options.dryRun ?? false }),
        };
      case 'gold':
        return { ok: true, report: await jobs.gold(date) };
      case 'quality': {
        const run = await jobs.quality(date);
        return { ok: run.success, report: run };
      }
      case 'silver':
        return { ok: true, report: await jobs.silver(date) };
      case 'warehouse-load':
        return {
          ok: true,
          report: await jobs.warehouseLoad({ date, full: options.full ?? false }),
        };
      case 'bronze-export': {
        const store = await openStore(config, logger);
        try {
          return { ok: true, report: await jobs.bronzeExport(store) };
        } finally {
          await store.close();
        }
      }
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
