export {
  runBronzeExport,
  BRONZE_READINGS_PREFIX,
  type BronzeExportOptions,
  type BronzeExportReport,
} from './bronze-export.js';
export {
  runSilverJob,
  dirtySilverDates,
  SILVER_READINGS_PREFIX,
  ANOMALIES_READINGS_PREFIX,
  SILVER_PIPELINE_VERSION,
  type SilverJobOptions,
  type SilverDateReport,
} from './silver-job.js';
export { runQualityJob } from './quality-job.js';
export * from './gold/index.js';
export {
  runGoldJob,
  dirtyGoldDates,
  type GoldJobOptions,
  type GoldJobReport,
  type GoldDateReport,
} from './gold-job.js';
export { runRetention, type RetentionDays, type RetentionReport } from './retention.js';
export { buildCatalog, type CatalogTable, type CatalogPartition } from './catalog.js';
export {
  runDeadLetterExport,
  DEAD_LETTER_PREFIX,
  type DeadLetterExportReport,
} from './deadletter-export.js';
