/**
 * `canopy jobs run JOB`: one batch job, run now against the configured data
 * folder and lake. `canopy query SQL`: SQL over the lake, which needs no
 * hot store and so works beside a running Canopy.
 */
import path from 'node:path';
import type { CanopyConfig } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import {
  buildCatalog,
  runBronzeExport,
  runGoldJob,
  runQualityJob,
  runRetention,
  runSilverJob,
  type BronzeExportReport,
  type CatalogTable,
  type GoldJobReport,
  type RetentionReport,
  type SilverDateReport,
} from '../lake/index.js';
import type { SuiteResult } from '../lake/quality/index.js';
import { SensorRegistry } from '../runtime/registry.js';
import { createLogger } from '../observability/logger.js';
import { openStore } from '../runtime/app.js';
import { openLakeQueries, type QueryResult } from '../query/index.js';
import { createObjectStore } from '../storage/index.js';

export const JOBS = ['bronze-export', 'silver', 'gold', 'quality', 'retention'] as const;

/** Health of sensors with no configured interval assumes one reading a minute (the conservatory's polling). */
const DEFAULT_INTERVAL_MS = 60_000;
export type JobName = (typeof JOBS)[number];

export interface JobOutcome {
  /** False when the job ran but found a problem (a failed quality suite). */
  ok: boolean;
  report: BronzeExportReport | SilverDateReport[] | GoldJobReport | SuiteResult[] | RetentionReport;
}

export async function runJob(
  config: CanopyConfig,
  job: JobName,
  options: { dryRun?: boolean } = {},
): Promise<JobOutcome> {
  const logger = createLogger(config.log.level, true).child({ job });
  const lake = createObjectStore(config.lake, config.dataDir);
  const workDir = path.join(config.dataDir, 'tmp');
  try {
    if (job === 'retention') {
      const report = await runRetention({
        lake,
        days: config.lake.retentionDays,
        clock: systemClock,
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
      });
      return { ok: true, report };
    }
    if (job === 'quality') {
      const results = await runQualityJob({ lake, logger });
      return { ok: results.every((r) => r.success), report: results };
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
      });
      return { ok: true, report };
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
  const queries = await openLakeQueries(lake, logger);
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
    return await buildCatalog(lake);
  } finally {
    lake.close();
  }
}
