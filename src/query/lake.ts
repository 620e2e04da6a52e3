/**
 * The sandbox over Canopy's own lake. Only a local lake can be queried for
 * now: DuckDB's S3 support (httpfs) cannot be assumed, and the local cache of
 * S3 Parquet objects is part of the lakehouse work still to come.
 */
import { mkdirSync } from 'node:fs';
import type { ObjectStore } from '../core/object-store.js';
import { CanopyError } from '../core/errors.js';
import type { Logger } from '../observability/logger.js';
import { QuerySandbox, type QueryResult } from './sandbox.js';
import { canopyLakeViews } from '../lake/views.js';

export interface LakeQueries {
  /** Runs one read-only SELECT over the lake's current files. */
  run(sql: string): Promise<QueryResult>;
  close(): Promise<void>;
}

export async function openLakeQueries(lake: ObjectStore, logger: Logger): Promise<LakeQueries> {
  if (lake.kind !== 'local') {
    return {
      run: () =>
        Promise.reject(
          new CanopyError(
            'CANOPY_QUERY_UNAVAILABLE',
            `SQL over the S3 lake ${lake.location} is not available yet`,
          ),
        ),
      close: () => Promise.resolve(),
    };
  }
  mkdirSync(lake.location, { recursive: true });
  const views = canopyLakeViews(lake.location);
  const sandbox = await QuerySandbox.create({ lakeRoot: lake.location, views, logger });
  return {
    async run(sql) {
      // Jobs add files and whole layers over time: pick them up before each query.
      await sandbox.refresh(views);
      return sandbox.run(sql);
    },
    close: () => sandbox.close(),
  };
}
