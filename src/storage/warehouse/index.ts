/**
 * Warehouse adapters (DuckDB file, PostgreSQL) and the factory that picks one
 * from the `warehouse` config section. Only `cli` and `runtime` pick one;
 * the load job depends on the `Warehouse` contract in `core/warehouse.ts`.
 */
import path from 'node:path';
import type { Warehouse } from '../../core/warehouse.js';
import type { WarehouseConfig } from '../../config/schema.js';
import { DuckDbWarehouse } from './duckdb-warehouse.js';
import { PostgresWarehouse } from './postgres-warehouse.js';

export { DuckDbWarehouse, type DuckDbWarehouseOptions } from './duckdb-warehouse.js';
export { PostgresWarehouse, type PostgresWarehouseOptions } from './postgres-warehouse.js';

/**
 * Builds the configured warehouse without touching the disk or the network
 * (`open` does). The DuckDB file defaults to `<dataDir>/warehouse.duckdb`;
 * a PostgreSQL password left unset falls back to libpq's `PGPASSWORD`, which
 * the `pg` driver reads.
 */
export function createWarehouse(config: WarehouseConfig, dataDir: string): Warehouse {
  if (config.kind === 'duckdb') {
    return new DuckDbWarehouse({
      path: path.resolve(config.path ?? path.join(dataDir, 'warehouse.duckdb')),
    });
  }
  const pgConfig = config.postgres;
  return new PostgresWarehouse({
    connectionString: pgConfig.url,
    host: pgConfig.host,
    port: pgConfig.port,
    user: pgConfig.user,
    password: pgConfig.password,
    database: pgConfig.database,
    schema: pgConfig.schema,
  });
}
