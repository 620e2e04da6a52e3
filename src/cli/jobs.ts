/** `canopy jobs run JOB`: one batch job, run now against the configured data folder and lake. */
import path from 'node:path';
import type { CanopyConfig } from '../config/schema.js';
import { runBronzeExport, type BronzeExportReport } from '../lake/index.js';
import { createLogger } from '../observability/logger.js';
import { openStore } from '../runtime/app.js';
import { createObjectStore } from '../storage/index.js';

export async function runJob(
  config: CanopyConfig,
  job: 'bronze-export',
): Promise<BronzeExportReport> {
  const logger = createLogger(config.log.level, true).child({ job });
  const store = await openStore(config, logger);
  try {
    const lake = createObjectStore(config.lake, config.dataDir);
    return await runBronzeExport({
      store,
      lake,
      workDir: path.join(config.dataDir, 'tmp'),
      logger,
    });
  } finally {
    await store.close();
  }
}
