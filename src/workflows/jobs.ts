/**
 * The platform's batch jobs over one lake, as `canopy jobs run` and the
 * platform workflows call them: silver, gold, quality, warehouse load,
 * retention and bronze export. Each is idempotent (rerunning a date gives the
 * same result), which is what makes retries and backfills safe.
 *
 * `date` (YYYY-MM-DD) narrows a job to one event date: silver and gold
 * rebuild it, quality checks its partitions only, warehouse-load reloads it,
 * and retention ages the lake as of that day. Without it, silver and gold
 * take every date whose input changed.
 */
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import { ManualClock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { CanopyConfig } from '../config/schema.js';
import {
  isEventDate,
  lakeCacheDir,
  lakeEngineSettings,
  QualityHistory,
  runBronzeExport,
  runGoldJob,
  runQualityJob,
  runRetention,
  runSilverJob,
  type BronzeExportReport,
  type GoldJobReport,
  type LakeEngineSettings,
  type QualityRun,
  type RetentionReport,
  type SilverDateReport,
} from '../lake/index.js';
import { runWarehouseLoad, type WarehouseLoadReport } from '../lake/warehouse-job.js';
import type { Logger } from '../observability/logger.js';
import { SensorRegistry } from '../runtime/registry.js';
import { createWarehouse } from '../storage/warehouse/index.js';

/** Health of sensors with no configured interval assumes one reading a minute (the conservatory's polling). */
const DEFAULT_INTERVAL_MS = 60_000;

/** Throws CANOPY_JOB_BAD_DATE unless `date` is absent or a calendar day. */
export function checkJobDate(date: string | undefined): void {
  if (date !== undefined && !isEventDate(date))
    throw new CanopyError(
      'CANOPY_JOB_BAD_DATE',
      `--date must be a calendar day as YYYY-MM-DD, got ${JSON.stringify(date)}`,
    );
}

export class LakeJobs {
  private readonly workDir: string;
  private readonly engine: LakeEngineSettings;
  private readonly registry: SensorRegistry;
  /**
   * Gold jobs one at a time: each rebuilds the all-time device summary from
   * the silver it sees, so two at once (a backfill) could let the one that
   * saw less silver write last. In order, the last one sees every silver
   * date whose own gold ran before it.
   */
  private readonly goldQueue = new SerialQueue();
  /** Warehouse loads one at a time: a DuckDB warehouse file opens once per process. */
  private readonly warehouseQueue = new SerialQueue();

  constructor(
    private readonly o: {
      config: CanopyConfig;
      lake: ObjectStore;
      clock: Clock;
      logger: Logger;
      /** Default: `lake.engineMemoryMB` with a budget of its own. */
      engine?: LakeEngineSettings;
    },
  ) {
    this.workDir = path.join(o.config.dataDir, 'tmp');
    this.engine = o.engine ?? lakeEngineSettings(o.config.lake.engineMemoryMB, o.config.dataDir);
    this.registry = new SensorRegistry(o.config.sensors, o.config.sensorTypes);
  }

  private log(job: string): Logger {
    return this.o.logger.child({ job });
  }

  silver(date?: string): Promise<SilverDateReport[]> {
    checkJobDate(date);
    const { stream } = this.o.config;
    return runSilverJob({
      lake: this.o.lake,
      workDir: this.workDir,
      ranges: this.registry.ranges(),
      zscore: {
        window: stream.zscoreWindow,
        minHistory: stream.zscoreMinHistory,
        threshold: stream.zscoreThreshold,
      },
      deviceScoreThreshold: stream.deviceScoreThreshold,
      clock: this.o.clock,
      logger: this.log('silver'),
      engine: this.engine,
      dates: date === undefined ? undefined : [date],
    });
  }

  gold(date?: string): Promise<GoldJobReport> {
    checkJobDate(date);
    return this.goldQueue.run(() =>
      runGoldJob({
        lake: this.o.lake,
        workDir: this.workDir,
        sensorIntervals: this.registry.intervals(),
        defaultIntervalMs: DEFAULT_INTERVAL_MS,
        logger: this.log('gold'),
        engine: this.engine,
        dates: date === undefined ? undefined : [date],
      }),
    );
  }

  /** Runs the suites and records the run in the lake's quality history. */
  async quality(date?: string): Promise<QualityRun> {
    checkJobDate(date);
    const startedAt = this.o.clock.now();
    const results = await runQualityJob({
      lake: this.o.lake,
      logger: this.log('quality'),
      engine: this.engine,
      cacheDir: lakeCacheDir(this.o.config.lake.cacheDir, this.o.config.dataDir),
      date,
    });
    return new QualityHistory(this.o.lake, this.o.clock).record(results, startedAt);
  }

  warehouseLoad(options: { date?: string; full?: boolean }): Promise<WarehouseLoadReport> {
    checkJobDate(options.date);
    return this.warehouseQueue.run(() => this.loadWarehouse(options));
  }

  private async loadWarehouse(options: {
    date?: string;
    full?: boolean;
  }): Promise<WarehouseLoadReport> {
    const warehouse = createWarehouse(this.o.config.warehouse, this.o.config.dataDir);
    await warehouse.open();
    try {
      return await runWarehouseLoad({
        lake: this.o.lake,
        warehouse,
        workDir: this.workDir,
        configuredSensors: this.registry.configRecords(),
        typeDefaults: this.registry.typeDefaults(),
        date: options.date,
        full: options.full ?? false,
        logger: this.log('warehouse-load'),
        engine: this.engine,
      });
    } finally {
      await warehouse.close();
    }
  }

  /** Ages the lake as of `date` (its start, UTC), or as of now. */
  retention(options: { date?: string; dryRun?: boolean }): Promise<RetentionReport> {
    checkJobDate(options.date);
    return runRetention({
      lake: this.o.lake,
      days: this.o.config.lake.retentionDays,
      clock: options.date === undefined ? this.o.clock : new ManualClock(Date.parse(options.date)),
      logger: this.log('retention'),
      dryRun: options.dryRun ?? false,
    });
  }

  bronzeExport(store: HotStore): Promise<BronzeExportReport> {
    return runBronzeExport({
      store,
      lake: this.o.lake,
      workDir: this.workDir,
      logger: this.log('bronze-export'),
    });
  }
}
