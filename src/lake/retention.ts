/**
 * Retention per layer: deletes whole event-date partitions older than the
 * layer's limit. Dates come from the `date=YYYY-MM-DD` part of the key, so
 * a late reading's old partition ages with its event date, not its arrival;
 * quality run results age by the date they ran.
 * The hot store is never touched here: its purge only removes rows that are
 * already in bronze.
 */
import type { Clock } from '../core/clock.js';
import type { ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import { isEventDate } from './engine.js';

/** Days each layer keeps, by key prefix. */
export interface RetentionDays {
  bronze: number;
  silver: number;
  anomalies: number;
  gold: number;
  deadletter: number;
  quality: number;
}

const LAYER_PREFIXES: Record<keyof RetentionDays, readonly string[]> = {
  bronze: ['bronze/'],
  silver: ['silver/'],
  anomalies: ['anomalies/'],
  // Gold manifests age with the gold partitions they describe.
  gold: ['gold/'],
  deadletter: ['deadletter/'],
  // Quality runs are partitioned by the date they ran, not by an event date.
  quality: ['quality/'],
};

const DATE_IN_KEY = /(?:^|\/)date=(\d{4}-\d{2}-\d{2})(?:\/|\.json$)/;

export interface RetentionReport {
  dryRun: boolean;
  /** Per layer: the cutoff date (partitions before it go) and the keys removed (or that would be). */
  layers: Record<string, { before: string; keys: string[] }>;
}

export async function runRetention(options: {
  lake: ObjectStore;
  days: RetentionDays;
  clock: Clock;
  logger: Logger;
  dryRun?: boolean;
}): Promise<RetentionReport> {
  const dryRun = options.dryRun ?? false;
  const report: RetentionReport = { dryRun, layers: {} };
  for (const layer of Object.keys(LAYER_PREFIXES) as (keyof RetentionDays)[]) {
    const before = new Date(options.clock.now() - options.days[layer] * 86_400_000)
      .toISOString()
      .slice(0, 10);
    const keys: string[] = [];
    for (const prefix of LAYER_PREFIXES[layer]) {
      for (const object of await options.lake.list(prefix)) {
        const date = DATE_IN_KEY.exec(object.key)?.[1];
        if (date !== undefined && isEventDate(date) && date < before) keys.push(object.key);
      }
    }
    if (!dryRun && keys.length > 0) await options.lake.delete(keys);
    if (keys.length > 0)
      options.logger.info({ layer, before, objects: keys.length, dryRun }, 'retention');
    report.layers[layer] = { before, keys };
  }
  return report;
}
