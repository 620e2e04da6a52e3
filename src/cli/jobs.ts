/**
 * `canopy jobs run JOB`: one batch job, run now against the configured data
 * folder and lake. `canopy query SQL`: SQL over the lake, which needs no
 * hot store and so works beside a running Canopy.
 */
import path from 'node:path';
import type { CanopyConfig } from '../config/schema.js';
import { runBronzeExport, type BronzeExportReport } from '../lake/index.js';
import { createLogger } from '../observability/logger.js';
import { openStore } from '../runtime/app.js';
import { openLakeQueries, type QueryResult } from '../query/index.js';
import { createObjectStore } from '../storage/index.js';

export async function runJob(
  config: CanopyConfig,
  job: 'bronze-export',
): Promise<BronzeExportReport> {
  const logger = createLogger(config.log.level, true).child({ job });
  const store = await openStore(config, logger);
  const lake = createObjectStore(config.lake, config.dataDir);
  try {
    return await runBronzeExport({
      store,
      lake,
      workDir: path.join(config.dataDir, 'tmp'),
      logger,
    });
  } finally {
    lake.close();
    await store.close();
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
