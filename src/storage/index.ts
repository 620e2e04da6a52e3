/**
 * Storage adapters. Only `cli`, `runtime` and `main` pick a concrete adapter;
 * everything else depends on the interfaces in `core/store.ts`.
 */
export {
  DuckDbHotStore,
  DUCKDB_HOT_STORE_DDL,
  DUCKDB_SCHEMA_VERSION,
  type DuckDbHotStoreOptions,
} from './duckdb-hot-store.js';
export {
  PostgresHotStore,
  POSTGRES_HOT_STORE_MIGRATIONS,
  type HotStoreMigration,
  type PostgresHotStoreOptions,
} from './postgres-hot-store.js';
export {
  MAX_PAGE_LIMIT,
  checkLimit,
  checkOptionalTime,
  decodeDeadLetterCursor,
  decodeReadingCursor,
  encodeDeadLetterCursor,
  encodeReadingCursor,
  type ReadingCursor,
} from './query-args.js';
export { createObjectStore } from './object-store.js';
export { LocalObjectStore, type LocalObjectStoreOptions } from './local-object-store.js';
export { S3ObjectStore, type S3ObjectStoreOptions } from './s3-object-store.js';
export { assertValidKey, assertValidPrefix, compareKeys, isValidKey } from './object-store-key.js';
export {
  DuckDbMetaStore,
  MAX_ALERT_LIMIT,
  META_MIGRATIONS,
  PostgresMetaStore,
  openMetaStore,
  type DuckDbMetaStoreOptions,
  type MetaDialect,
  type MetaMigration,
  type PostgresMetaStoreOptions,
} from './meta/index.js';
