export {
  GOLD_COLUMNS,
  GOLD_WINDOW_MS,
  buildDeviceSummary,
  buildGoldPartition,
  type BuildDeviceSummaryOptions,
  type BuildGoldOptions,
  type GoldFileReport,
  type GoldPartitionReport,
} from './gold-aggregates.js';
