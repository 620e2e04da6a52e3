/**
 * Housekeeping: export new hot-store rows to bronze and new dead letters to
 * `deadletter/`, compact closed bronze hours, then purge the hot window
 * (readings and dead letters), idempotency receipts, resolved alerts and
 * finished workflow runs past their retention. The purge only ever deletes
 * readings and dead letters at or below their export watermarks, so a failed
 * export simply means nothing new is purged.
 *
 * Each step can run on its own (`step`), which is how the `housekeeping`
 * workflow runs them every minute; `runOnce` runs all three. Without the
 * workflows, a timer runs `runOnce` every `lake.exportIntervalMs`. A pass
 * that finds the previous one still running waits for it instead of
 * overlapping. Every step's outcome goes to `onStep` (failed-job alerts) and
 * its failures to `canopy_housekeeping_failures_total{step}`.
 */
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { CanopyConfig } from '../config/schema.js';
import {
  runBronzeCompaction,
  runBronzeExport,
  runDeadLetterExport,
  type LakeEngineSettings,
} from '../lake/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * A bronze hour is compacted once it ended this long ago: readings arrive up
 * to a few minutes late in the normal case, and later ones are merged by a
 * later pass anyway.
 */
const BRONZE_HOUR_CLOSED_AFTER_MS = 3_600_000;

export type HousekeepingStep = 'export' | 'compact' | 'purge';
export const HOUSEKEEPING_STEPS: readonly HousekeepingStep[] = ['export', 'compact', 'purge'];

export interface Housekeeping {
  /** Every step in order; resolves when done (never rejects: failures are logged and counted). */
  runOnce(): Promise<void>;
  /** One step; rejects with its error after counting and logging it. */
  step(step: HousekeepingStep): Promise<void>;
  /** Stops the timer and waits for a running step. */
  stop(): Promise<void>;
}

/** What else is purged with the hot window: each deletes what is older than the time it is given. */
export interface RetentionPurge {
  /** e.g. resolved alerts, finished workflow runs. */
  name: string;
  olderThanMs: number;
  purge(before: number): Promise<number>;
}

const FAILURE_MESSAGES: Record<HousekeepingStep, string> = {
  export: 'bronze export failed; nothing new will be purged until it succeeds',
  compact: 'bronze compaction failed; the small files stay until the next pass',
  purge: 'purge of the hot store or of the metadata past retention failed',
};

export function startHousekeeping(deps: {
  config: CanopyConfig;
  store: HotStore;
  lake: ObjectStore;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** The process's lake engine settings and memory budget, shared with the lake jobs. */
  lakeEngine: LakeEngineSettings;
  /** Purged with the hot window. */
  retention?: readonly RetentionPurge[];
  onStep?: (step: HousekeepingStep, error: unknown) => void;
  /** Run `runOnce` on `lake.exportIntervalMs` (when no workflow schedules the steps). */
  timer: boolean;
}): Housekeeping {
  const { config, store, lake, clock, metrics } = deps;
  const logger = deps.logger.child({ component: 'housekeeping' });
  const workDir = path.join(config.dataDir, 'tmp');
  // Steps never overlap: each waits for the one before it.
  let tail: Promise<void> = Promise.resolve();

  const work: Record<HousekeepingStep, () => Promise<void>> = {
    async export() {
      const report = await runBronzeExport({ store, lake, workDir, logger });
      metrics.bronzeExportedRows.inc(report.rows);
      await runDeadLetterExport({ store, lake, logger });
    },
    async compact() {
      const compacted = await runBronzeCompaction({
        lake,
        workDir,
        clock,
        logger,
        closedAfterMs: BRONZE_HOUR_CLOSED_AFTER_MS,
        engine: deps.lakeEngine,
      });
      metrics.bronzeCompactedFiles.inc(compacted.filesMerged);
    },
    async purge() {
      const now = clock.now();
      metrics.purgedRows.inc(
        await store.purge(now - config.store.retentionHours * 3_600_000, {
          receiptsBefore: now - config.store.receiptRetentionDays * 86_400_000,
          mqttReceiptsBefore: now - config.store.mqttReceiptRetentionHours * 3_600_000,
        }),
      );
      for (const extra of deps.retention ?? []) {
        const purged = await extra.purge(now - extra.olderThanMs);
        if (purged > 0) logger.info({ purged, what: extra.name }, 'purged past retention');
      }
    },
  };

  const step = (name: HousekeepingStep): Promise<void> => {
    const result = tail.then(async () => {
      try {
        await work[name]();
        deps.onStep?.(name, undefined);
      } catch (err) {
        metrics.housekeepingFailures.inc({ step: name });
        logger.error({ err }, FAILURE_MESSAGES[name]);
        deps.onStep?.(name, err);
        throw err;
      }
    });
    tail = result.catch(() => undefined);
    return result;
  };
  const runOnce = async (): Promise<void> => {
    for (const name of HOUSEKEEPING_STEPS) await step(name).catch(() => undefined);
  };
  const timer = deps.timer
    ? setInterval(() => void runOnce(), config.lake.exportIntervalMs)
    : undefined;
  timer?.unref();
  return {
    runOnce,
    step,
    async stop() {
      clearInterval(timer);
      await tail;
    },
  };
}
