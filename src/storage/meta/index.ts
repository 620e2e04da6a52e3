/**
 * Metadata-store adapters (alerts, their history, the notification outbox)
 * and the factory that picks one from the `meta` config section. Only `cli`,
 * `runtime` and `main` pick one; everything else depends on the `AlertStore`
 * contract in `core/alerts.ts`.
 */
import path from 'node:path';
import type { Logger } from 'pino';
import type { AlertStore } from '../../core/alerts.js';
import type { MetaConfig } from '../../config/schema.js';
import { DuckDbAlertStore } from './duckdb-alert-store.js';
import { PostgresAlertStore } from './postgres-alert-store.js';

export { DuckDbAlertStore, type DuckDbAlertStoreOptions } from './duckdb-alert-store.js';
export { PostgresAlertStore, type PostgresAlertStoreOptions } from './postgres-alert-store.js';
export {
  MAX_ALERT_LIMIT,
  META_MIGRATIONS,
  type MetaDialect,
  type MetaMigration,
} from './meta-sql.js';

/**
 * Builds the configured metadata store without touching the disk or the
 * network (`open` does, and throws CANOPY_META_UNAVAILABLE). The DuckDB file
 * defaults to `<dataDir>/meta.duckdb`; a PostgreSQL password left unset falls
 * back to libpq's `PGPASSWORD`, which the `pg` driver reads.
 */
export function openAlertStore(config: MetaConfig, dataDir: string, logger: Logger): AlertStore {
  if (config.kind === 'duckdb') {
    return new DuckDbAlertStore({
      path: path.resolve(config.path ?? path.join(dataDir, 'meta.duckdb')),
      logger,
    });
  }
  const pg = config.postgres;
  return new PostgresAlertStore({
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
