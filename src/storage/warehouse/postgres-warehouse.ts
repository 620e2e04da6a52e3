/**
 * The PostgreSQL warehouse (`warehouse.kind: postgres`): the same tables as
 * the DuckDB one, in their own schema (default `canopy`).
 *
 * Bulk insert sends each column as one array parameter and unnests them in an
 * INSERT … SELECT FROM unnest($1::text[], $2::timestamptz[], …) per batch:
 * one statement and one round-trip per batch, a parameter count that does not
 * grow with the batch (multi-row VALUES hits the 65 535-parameter limit), the
 * same plan for every batch, and no extra dependency. COPY FROM STDIN
 * (pg-copy-streams) would be faster still for millions of rows; a day of
 * gold is tens of thousands, where the difference is a few milliseconds.
 *
 * Concurrency: each load takes a transaction-scoped advisory lock on its
 * window, so two loaders of the same window run one after the other instead
 * of failing on each other's keys; the DDL at open takes one too.
 */
import type pg from 'pg';
import { CanopyError } from '../../core/errors.js';
import {
  DIM_SENSORS_LEDGER_KEY,
  DIM_SENSORS_TABLE,
  WAREHOUSE_SCHEMA_VERSION,
  windowKey,
  type SensorMergeReport,
  type Warehouse,
  type WarehouseColumnType,
  type WarehouseRow,
  type WarehouseTableSpec,
  type WindowLoad,
} from '../../core/warehouse.js';
import {
  LEDGER_TABLE,
  META_TABLE,
  checkSensorRows,
  checkWindowLoad,
  deleteWindowSql,
  dimChangesSql,
  dimUpsertSql,
  errorMessage,
  ledgerUpsertSql,
  loadFailed,
  quoteIdent,
  schemaDdl,
  type Dialect,
} from './sql.js';
import {
  describePostgresTarget,
  inPostgresTransaction,
  openPostgresPool,
  postgresPoolConfig,
  type PostgresConnectionOptions,
} from '../postgres.js';

export interface PostgresWarehouseOptions extends PostgresConnectionOptions {
  /** Rows per INSERT statement. */
  batchRows?: number;
  /** Epoch ms for the ledger's `loaded_at`; the system clock by default. */
  now?: () => number;
}

const TYPE_NAMES: Record<WarehouseColumnType, string> = {
  text: 'text',
  bigint: 'bigint',
  double: 'double precision',
  timestamp: 'timestamptz',
  date: 'date',
};

/** Element type of the array parameter that carries a column. */
const ARRAY_TYPES: Record<WarehouseColumnType, string> = {
  text: 'text[]',
  bigint: 'bigint[]',
  double: 'float8[]',
  timestamp: 'timestamptz[]',
  date: 'date[]',
};

export class PostgresWarehouse implements Warehouse {
  readonly kind = 'postgres' as const;
  readonly location: string;
  private readonly schema: string;
  private readonly dialect: Dialect;
  private readonly batchRows: number;
  private readonly now: () => number;
  private readonly poolConfig: pg.PoolConfig;
  private pool: pg.Pool | undefined;

  constructor(options: PostgresWarehouseOptions) {
    this.poolConfig = postgresPoolConfig('warehouse', options, 2);
    this.schema = options.schema;
    this.batchRows = options.batchRows ?? 5_000;
    this.now = options.now ?? Date.now;
    this.location = `${describePostgresTarget(options)} (schema ${options.schema})`;
    const schema = quoteIdent(options.schema);
    this.dialect = {
      // An expression index rather than UNIQUE NULLS NOT DISTINCT, which needs PostgreSQL 15.
      nullableGrain: 'unique-index-coalesced',
      table: (name) => `${schema}.${quoteIdent(name)}`,
      columnType: (type) => TYPE_NAMES[type],
      // The window deletes filter on the time column, which the grain key
      // does not lead with; without an index each delete scans the table.
      extraIndexes: (spec: WarehouseTableSpec) =>
        spec.scope.kind === 'day'
          ? [
              `CREATE INDEX IF NOT EXISTS ${quoteIdent(`${spec.name}_window`)} ON ${schema}.${quoteIdent(spec.name)} (${quoteIdent(spec.scope.column)})`,
            ]
          : [],
    };
  }

  async open(): Promise<void> {
    if (this.pool) return;
    // A lost connection fails the query that uses it next, which reports it.
    const pool = openPostgresPool(this.poolConfig, () => undefined);
    this.pool = pool;
    try {
      await this.transaction(`ddl:${this.schema}`, async (client) => {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.schema)}`);
        for (const statement of schemaDdl(this.dialect)) await client.query(statement);
        const { rows } = await client.query<{ value: string }>(
          `SELECT value FROM ${this.dialect.table(META_TABLE)} WHERE key = 'schema_version'`,
        );
        const stored = rows[0] === undefined ? undefined : Number(rows[0].value);
        if (stored !== undefined && stored > WAREHOUSE_SCHEMA_VERSION) {
          throw new CanopyError(
            'CANOPY_WAREHOUSE_UNAVAILABLE',
            `the warehouse ${this.location} has schema version ${stored}; this Canopy knows up to ${WAREHOUSE_SCHEMA_VERSION}`,
          );
        }
        await client.query(
          `INSERT INTO ${this.dialect.table(META_TABLE)} VALUES ('schema_version', $1)
           ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
          [String(WAREHOUSE_SCHEMA_VERSION)],
        );
      });
    } catch (cause) {
      await this.close();
      if (cause instanceof CanopyError) throw cause;
      throw new CanopyError(
        'CANOPY_WAREHOUSE_UNAVAILABLE',
        `cannot open the PostgreSQL warehouse ${this.location}: ${errorMessage(cause)}`,
        { cause },
      );
    }
  }

  private connectedPool(): pg.Pool {
    if (!this.pool)
      throw new CanopyError('CANOPY_WAREHOUSE_UNAVAILABLE', 'the warehouse is not open');
    return this.pool;
  }

  /**
   * Runs `work` in one transaction holding the advisory lock of `lockName`
   * (scoped to this schema), rolled back on any failure.
   */
  private transaction<T>(
    lockName: string,
    work: (client: pg.PoolClient) => Promise<T>,
  ): Promise<T> {
    return inPostgresTransaction(this.connectedPool(), async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
        `canopy-warehouse:${this.schema}:${lockName}`,
      ]);
      return work(client);
    });
  }

  async ledger(): Promise<Map<string, string>> {
    const { rows } = await this.connectedPool().query<{ window_key: string; fingerprint: string }>(
      `SELECT window_key, fingerprint FROM ${this.dialect.table(LEDGER_TABLE)}`,
    );
    return new Map(rows.map((r) => [r.window_key, r.fingerprint]));
  }

  private async insertRows(
    client: pg.PoolClient,
    table: string,
    spec: WarehouseTableSpec,
    rows: readonly WarehouseRow[],
  ): Promise<void> {
    const names = spec.columns.map((c) => quoteIdent(c.name)).join(', ');
    const arrays = spec.columns.map((c, i) => `$${i + 1}::${ARRAY_TYPES[c.type]}`).join(', ');
    const sql = `INSERT INTO ${table} (${names}) SELECT * FROM unnest(${arrays})`;
    for (let from = 0; from < rows.length; from += this.batchRows) {
      const batch = rows.slice(from, from + this.batchRows);
      const params = spec.columns.map((column) =>
        batch.map((row) => {
          const v = row[column.name] ?? null;
          // Epoch ms travels as ISO text, which timestamptz parses exactly.
          return column.type === 'timestamp' && v !== null ? new Date(v).toISOString() : v;
        }),
      );
      await client.query(sql, params);
    }
  }

  private async recordLedger(
    client: pg.PoolClient,
    key: string,
    fingerprint: string,
    counts: Record<string, number>,
  ): Promise<void> {
    await client.query(ledgerUpsertSql(this.dialect), [
      key,
      fingerprint,
      JSON.stringify(counts),
      new Date(this.now()).toISOString(),
    ]);
  }

  async replaceWindow(load: WindowLoad): Promise<void> {
    const tables = checkWindowLoad(load);
    const key = windowKey(load.window);
    try {
      await this.transaction(key, async (client) => {
        const counts: Record<string, number> = {};
        for (const spec of tables) {
          const rows = load.rows[spec.name as keyof WindowLoad['rows']]!;
          const del = deleteWindowSql(this.dialect, spec, load.window);
          await client.query(del.sql, del.params);
          await this.insertRows(client, this.dialect.table(spec.name), spec, rows);
          counts[spec.name] = rows.length;
        }
        await this.recordLedger(client, key, load.fingerprint, counts);
      });
    } catch (err) {
      throw loadFailed(key, err);
    }
  }

  async mergeSensors(
    rows: readonly WarehouseRow[],
    fingerprint: string,
  ): Promise<SensorMergeReport> {
    checkSensorRows(rows);
    const staging = `pg_temp.${quoteIdent('dim_sensors_staging')}`;
    try {
      return await this.transaction(DIM_SENSORS_LEDGER_KEY, async (client) => {
        await client.query(
          `CREATE TEMP TABLE ${quoteIdent('dim_sensors_staging')} (LIKE ${this.dialect.table(DIM_SENSORS_TABLE.name)}) ON COMMIT DROP`,
        );
        await this.insertRows(client, staging, DIM_SENSORS_TABLE, rows);
        const changes = await client.query<{ inserted: string; updated: string }>(
          dimChangesSql(this.dialect, staging),
        );
        await client.query(dimUpsertSql(this.dialect, staging));
        await this.recordLedger(client, DIM_SENSORS_LEDGER_KEY, fingerprint, {
          [DIM_SENSORS_TABLE.name]: rows.length,
        });
        return {
          staged: rows.length,
          inserted: Number(changes.rows[0]!.inserted),
          updated: Number(changes.rows[0]!.updated),
        };
      });
    } catch (err) {
      throw loadFailed(DIM_SENSORS_TABLE.name, err);
    }
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }
}
