/**
 * The quality job: runs the built-in suites (or given ones) over the lake's
 * layers, read-only. A failed suite fails the run but never touches data; the
 * results list the failing rows. Only layers that have files are checked: a
 * fresh lake has no silver yet, and that is not a quality failure.
 */
import { CanopyError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import { withLakeEngine } from './engine.js';
import {
  bronzeReadingsSuite,
  runSuite,
  silverReadingsSuite,
  type Suite,
  type SuiteResult,
} from './quality/index.js';
import { canopyLakeViews } from './views.js';

/** Lake prefix each suite table reads. */
const TABLE_PREFIXES: Record<string, string> = {
  bronze_readings: 'bronze/readings/',
  silver_readings: 'silver/readings/',
};

export async function runQualityJob(options: {
  lake: ObjectStore;
  logger: Logger;
  suites?: readonly Suite[];
}): Promise<SuiteResult[]> {
  const { lake, logger } = options;
  const root = lake.kind === 'local' ? lake.location : undefined;
  if (root === undefined) {
    throw new CanopyError(
      'CANOPY_QUERY_UNAVAILABLE',
      `quality suites over the S3 lake ${lake.location} need the local Parquet cache, not built yet`,
    );
  }
  const views = canopyLakeViews(root);
  const present = new Set<string>();
  for (const [table, prefix] of Object.entries(TABLE_PREFIXES)) {
    if ((await lake.list(prefix)).some((o) => o.key.endsWith('.parquet'))) present.add(table);
  }
  const suites = (options.suites ?? [bronzeReadingsSuite(), silverReadingsSuite()]).filter((s) =>
    present.has(s.table),
  );

  return await withLakeEngine(async (conn) => {
    for (const table of present) await conn.run(`CREATE VIEW ${table} AS ${views[table]}`);
    const results: SuiteResult[] = [];
    for (const suite of suites) {
      const result = await runSuite(conn, suite);
      const failed = result.results.filter((r) => !r.success).map((r) => r.expectation);
      if (result.success) logger.info({ suite: suite.name }, 'quality suite passed');
      else logger.warn({ suite: suite.name, failed }, 'quality suite failed');
      results.push(result);
    }
    return results;
  });
}
