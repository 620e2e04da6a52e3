export {
  runBronzeExport,
  BRONZE_READINGS_PREFIX,
  type BronzeExportOptions,
  type BronzeExportReport,
} from './bronze-export.js';
