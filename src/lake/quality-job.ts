/**
 * The quality job: runs the built-in suites (or given ones) over the lake's
 * layers, read-only. A failed suite fails the run but never touches data; the
 * results list the failing rows. Only layers that have files are checked: a
 * fresh lake has no silver yet, and that is not a quality failure. An S3 lake
 * is read through its local Parquet cache (`cache.ts`).
 */
import path from 'node:path';
import type { ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import { openLakeMirror } from './cache.js';
import { withLakeEngine, type LakeEngineSettings } from './engine.js';
import {
  bronzeReadingsSuite,
  runSuite,
  silverReadingsSuite,
  type Suite,
  type SuiteResult,
} from './quality/index.js';
import { parquetScan, sqlString } from './views.js';

/** Lake folder each suite table reads. */
const TABLE_FOLDERS: Record<string, string> = {
  bronze_readings: 'bronze/readings',
  silver_readings: 'silver/readings',
};

export async function runQualityJob(options: {
  lake: ObjectStore;
  logger: Logger;
  /** The local Parquet cache of an S3 lake (required for one; unused for a local lake). */
  cacheDir?: string;
  suites?: readonly Suite[];
  /** Check only this event date's partitions (`YYYY-MM-DD`); default: every date. */
  date?: string;
  /** Bounds the job's DuckDB; default DEFAULT_LAKE_ENGINE. */
  engine?: LakeEngineSettings;
}): Promise<SuiteResult[]> {
  const { lake, logger, date } = options;
  const mirror = await openLakeMirror(lake, { cacheDir: options.cacheDir, logger });
  const partition = date === undefined ? '' : `date=${date}/`;
  const prefixes = Object.fromEntries(
    Object.entries(TABLE_FOLDERS).map(([table, folder]) => [table, `${folder}/${partition}`]),
  );
  const view = (table: string): string =>
    parquetScan(
      sqlString(path.join(mirror.root, prefixes[table]!, '**', '*.parquet')),
      TABLE_FOLDERS[table]!,
    );
  return mirror.read(Object.values(prefixes), async (objects) => {
    const present = new Set(
      Object.entries(prefixes)
        .filter(([, prefix]) =>
          objects.some((o) => o.key.startsWith(prefix) && o.key.endsWith('.parquet')),
        )
        .map(([table]) => table),
    );
    const suites = (options.suites ?? [bronzeReadingsSuite(), silverReadingsSuite()]).filter((s) =>
      present.has(s.table),
    );
    return await withLakeEngine(async (conn) => {
      for (const table of present) await conn.run(`CREATE VIEW ${table} AS ${view(table)}`);
      const results: SuiteResult[] = [];
      for (const suite of suites) {
        const result = await runSuite(conn, suite);
        const failed = result.results.filter((r) => !r.success).map((r) => r.expectation);
        if (result.success) logger.info({ suite: suite.name }, 'quality suite passed');
        else logger.warn({ suite: suite.name, failed }, 'quality suite failed');
        results.push(result);
      }
      return results;
    }, options.engine);
  });
}
