/**
 * Metadata-store adapters (alerts, their history, the notification outbox,
 * workflow run history) and the factory that picks one from the `meta`
 * config section. Only `cli`, `runtime` and `main` pick one; everything else
 * depends on the `AlertStore` / `WorkflowStore` contracts in `core/`.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { MetaConfig } from '../../config/schema.js';
import type { MetaStore } from '../../core/meta.js';
import { DuckDbMetaStore } from './duckdb-meta-store.js';
import { PostgresMetaStore } from './postgres-meta-store.js';

export { DuckDbMetaStore, type DuckDbMetaStoreOptions } from './duckdb-meta-store.js';
export { PostgresMetaStore, type PostgresMetaStoreOptions } from './postgres-meta-store.js';
export {
  MAX_ALERT_LIMIT,
  META_MIGRATIONS,
  type MetaDialect,
  type MetaMigration,
} from './meta-sql.js';

/**
 * Builds the configured metadata store (one per process: alerting and
 * workflows share it) without touching the disk or the
 * network (`open` does, and throws CANOPY_META_UNAVAILABLE). The DuckDB file
 * defaults to `<dataDir>/meta.duckdb`; a PostgreSQL password left unset falls
 * back to libpq's `PGPASSWORD`, which the `pg` driver reads.
 */
export function openMetaStore(config: MetaConfig, dataDir: string, logger: Logger): MetaStore {
  if (config.kind === 'duckdb') {
    return new DuckDbMetaStore({
      path: path.resolve(config.path ?? path.join(dataDir, 'meta.duckdb')),
      logger,
    });
  }
  const pg = config.postgres;
  return new PostgresMetaStore({
    connectionString: pg.url,
    host: pg.host,
    port: pg.port,
    user: pg.user,
    password: pg.password,
    database: pg.database,
    schema: pg.schema,
    logger,
  });
}
