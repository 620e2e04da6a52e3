/**
 * The sandbox over Canopy's own lake. DuckDB reads local files only (its S3
 * support cannot be assumed), so the sandbox reads the lake's mirror: the
 * lake folder itself, or for an S3 lake the local Parquet cache of
 * `lake/cache.ts`, synced before each query (one LIST per view prefix when
 * nothing changed) and the only folder the sandbox may open.
 */
import type { ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import { QuerySandbox, type QueryResult } from './sandbox.js';
import { openLakeMirror } from '../lake/cache.js';
import { canopyLakeViews } from '../lake/views.js';

/** Lake prefixes the views of `canopyLakeViews` read. */
const VIEW_PREFIXES = [
  'bronze/readings/',
  'silver/readings/',
  'anomalies/readings/',
  'gold/',
  'deadletter/',
  'imputations/',
];

export interface LakeQueries {
  /** Runs one read-only SELECT over the lake's current files. */
  run(sql: string): Promise<QueryResult>;
  close(): Promise<void>;
}

/**
 * `cacheDir` is where an S3 lake's Parquet cache lives (required for one;
 * unused for a local lake). A failed sync (S3 unreachable) rejects `run` with
 * CANOPY_LAKE_IO_FAILED.
 */
export async function openLakeQueries(
  lake: ObjectStore,
  logger: Logger,
  options: { cacheDir?: string } = {},
): Promise<LakeQueries> {
  const mirror = await openLakeMirror(lake, { cacheDir: options.cacheDir, logger });
  const views = canopyLakeViews(mirror.root);
  const sandbox = await QuerySandbox.create({ lakeRoot: mirror.root, views, logger });
  return {
    run: (sql) =>
      mirror.readFiles(VIEW_PREFIXES, async () => {
        // Jobs add files and whole layers over time: pick them up before each query.
        await sandbox.refresh(views);
        return sandbox.run(sql);
      }),
    close: () => sandbox.close(),
  };
}
