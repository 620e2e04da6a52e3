export { bigintToJson, jsonSafeConverter } from './convert.js';
export {
  QuerySandbox,
  type QueryColumn,
  type QueryResult,
  type QuerySandboxOptions,
  type SkippedView,
  type ViewReport,
} from './sandbox.js';
export { canopyLakeViews, sqlString } from '../lake/views.js';
export { openLakeQueries, type LakeQueries } from './lake.js';
