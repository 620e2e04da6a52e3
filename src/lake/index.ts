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
  IMPUTATIONS_PREFIX,
  type SilverJobOptions,
  type SilverDateReport,
} from './silver-job.js';
export { runQualityJob } from './quality-job.js';
export {
  QualityHistory,
  isQualityRunId,
  type QualityRun,
  type QualityRunSummary,
  type LatestSuiteResult,
} from './quality-history.js';
export * from './gold/index.js';
export {
  runGoldJob,
  dirtyGoldDates,
  type GoldJobOptions,
  type GoldJobReport,
  type GoldDateReport,
} from './gold-job.js';
export {
  runBronzeCompaction,
  type BronzeCompactionOptions,
  type BronzeCompactionReport,
} from './bronze-compaction.js';
export { runRetention, type RetentionDays, type RetentionReport } from './retention.js';
export { buildCatalog, type CatalogTable, type CatalogPartition } from './catalog.js';
export {
  lakeCacheDir,
  openLakeMirror,
  type LakeMirror,
  type MirroredObject,
  type SyncReport,
} from './cache.js';
export {
  runDeadLetterExport,
  DEAD_LETTER_PREFIX,
  type DeadLetterExportReport,
} from './deadletter-export.js';
export {
  runWarehouseLoad,
  sensorDimensionRows,
  type WarehouseLoadOptions,
  type WarehouseLoadReport,
  type WarehouseWindowReport,
} from './warehouse-job.js';
export { isEventDate, lakeEngineSettings, type LakeEngineSettings } from './engine.js';
