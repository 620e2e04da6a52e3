export {
  SILVER_COLUMNS,
  buildSilverPartition,
  type BuildSilverOptions,
  type SilverPartitionReport,
  type SilverRange,
  type SilverRanges,
  type SilverZscoreOptions,
} from './silver-transform.js';
