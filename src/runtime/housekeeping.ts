/**
 * Housekeeping on an interval: export new hot-store rows to bronze and new
 * dead letters to `deadletter/`, compact closed bronze hours, then purge the hot window (readings and dead
 * letters), idempotency receipts and resolved alerts past their retention. The purge only ever
 * deletes readings and dead letters at or below their export watermarks, so a
 * failed export simply means nothing new is purged.
 * A tick that finds the previous one still running is skipped. Each step's
 * outcome goes to `onStep`, which feeds the alert rules on failed jobs.
 */
import path from 'node:path';
import type { AlertStore } from '../core/alerts.js';
import type { Clock } from '../core/clock.js';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { CanopyConfig } from '../config/schema.js';
import { runBronzeCompaction, runBronzeExport, runDeadLetterExport } from '../lake/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/**
 * A bronze hour is compacted once it ended this long ago: readings arrive up
 * to a few minutes late in the normal case, and later ones are merged by a
 * later pass anyway.
 */
const BRONZE_HOUR_CLOSED_AFTER_MS = 3_600_000;

export type HousekeepingStep = 'export' | 'compact' | 'purge';

export interface Housekeeping {
  /** One export-and-purge pass; resolves when done (never rejects: failures are logged and counted). */
  runOnce(): Promise<void>;
  /** Stops the interval and waits for a running pass. */
  stop(): Promise<void>;
}

export function startHousekeeping(deps: {
  config: CanopyConfig;
  store: HotStore;
  lake: ObjectStore;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** Resolved alerts older than `config.alerting.retentionDays` are purged with the hot window. */
  alerts?: Pick<AlertStore, 'purgeResolved'>;
  onStep?: (step: HousekeepingStep, error: unknown) => void;
}): Housekeeping {
  const { config, store, lake, clock, metrics } = deps;
  const logger = deps.logger.child({ component: 'housekeeping' });
  let running: Promise<void> | undefined;
  const failed = (step: HousekeepingStep, err: unknown, message: string): void => {
    metrics.housekeepingFailures.inc({ step });
    logger.error({ err }, message);
    deps.onStep?.(step, err);
  };

  const pass = async (): Promise<void> => {
    try {
      const report = await runBronzeExport({
        store,
        lake,
        workDir: path.join(config.dataDir, 'tmp'),
        logger,
      });
      metrics.bronzeExportedRows.inc(report.rows);
      await runDeadLetterExport({ store, lake, logger });
      deps.onStep?.('export', undefined);
    } catch (err) {
      failed('export', err, 'bronze export failed; nothing new will be purged until it succeeds');
    }
    try {
      const compacted = await runBronzeCompaction({
        lake,
        workDir: path.join(config.dataDir, 'tmp'),
        clock,
        logger,
        closedAfterMs: BRONZE_HOUR_CLOSED_AFTER_MS,
      });
      metrics.bronzeCompactedFiles.inc(compacted.filesMerged);
      deps.onStep?.('compact', undefined);
    } catch (err) {
      failed('compact', err, 'bronze compaction failed; the small files stay until the next pass');
    }
    try {
      const now = clock.now();
      metrics.purgedRows.inc(
        await store.purge(now - config.store.retentionHours * 3_600_000, {
          receiptsBefore: now - config.store.receiptRetentionDays * 86_400_000,
        }),
      );
      await deps.alerts?.purgeResolved(now - config.alerting.retentionDays * 86_400_000);
      deps.onStep?.('purge', undefined);
    } catch (err) {
      failed('purge', err, 'purge of the hot store or of resolved alerts failed');
    }
  };
  const runOnce = (): Promise<void> => {
    running ??= pass().finally(() => (running = undefined));
    return running;
  };
  const timer = setInterval(() => void runOnce(), config.lake.exportIntervalMs);
  timer.unref();
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
