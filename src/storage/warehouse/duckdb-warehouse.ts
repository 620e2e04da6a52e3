/**
 * The default warehouse: a DuckDB file of its own (`<dataDir>/warehouse.duckdb`).
 *
 * Not the hot-store file: a running Canopy holds `canopy.duckdb` open, and a
 * DuckDB file can be open in one process only, so `canopy jobs run
 * warehouse-load` (a second process) could not load into it, and BI tools
 * could not read it while Canopy runs. A separate file also keeps analytical
 * reads and bulk loads off the ingest commit path, and can be copied or
 * attached read-only as a whole.
 *
 * Bulk insert binds each column as one DuckDB LIST parameter and unnests the
 * lists in a single INSERT … SELECT per batch: one statement and one
 * round-trip per batch, no per-row parsing, inside the load's transaction
 * (the appender is not used because its flushes are not part of it).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  BIGINT,
  DOUBLE,
  DuckDBInstance,
  LIST,
  VARCHAR,
  listValue,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { CanopyError } from '../../core/errors.js';
import { SerialQueue } from '../../core/serial-queue.js';
import {
  DIM_SENSORS_LEDGER_KEY,
  DIM_SENSORS_TABLE,
  WAREHOUSE_SCHEMA_VERSION,
  windowKey,
  type SensorMergeReport,
  type Warehouse,
  type WarehouseColumn,
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

export interface DuckDbWarehouseOptions {
  /** The warehouse file (created with its folder if missing). */
  path: string;
  /** Rows per INSERT statement. */
  batchRows?: number;
  /** Epoch ms for the ledger's `loaded_at`; the system clock by default. */
  now?: () => number;
}

const TYPE_NAMES: Record<WarehouseColumnType, string> = {
  text: 'VARCHAR',
  bigint: 'BIGINT',
  double: 'DOUBLE',
  timestamp: 'TIMESTAMPTZ',
  date: 'DATE',
};

const DIALECT: Dialect = {
  table: (name) => quoteIdent(name),
  columnType: (type) => TYPE_NAMES[type],
  // DuckDB prunes the window deletes with its zone maps; an ART index would
  // only slow the inserts.
  extraIndexes: () => [],
  // DuckDB has no NULLS NOT DISTINCT, and its unique expression indexes
  // reject a delete-then-reinsert of the same key in one transaction right
  // after the file is reopened (seen on 1.5.6), which is exactly a window
  // replace. So location_hourly's nullable grain is a plain UNIQUE
  // constraint; gold's GROUP BY already makes the null groups unique.
  nullableGrain: 'unique-constraint',
};

/** How a column travels as a LIST parameter, and the SQL that turns an element back into the column's type. */
function binding(column: WarehouseColumn): {
  type: DuckDBType;
  value: (v: string | number) => DuckDBValue;
  sql: (element: string) => string;
} {
  switch (column.type) {
    case 'text':
      return { type: VARCHAR, value: (v) => v, sql: (e) => e };
    case 'double':
      return { type: DOUBLE, value: (v) => v, sql: (e) => e };
    case 'bigint':
      return { type: BIGINT, value: (v) => BigInt(v), sql: (e) => e };
    // Epoch ms → TIMESTAMP → TIMESTAMPTZ; the session time zone is UTC, so the cast keeps the instant.
    case 'timestamp':
      return {
        type: BIGINT,
        value: (v) => BigInt(v),
        sql: (e) => `CAST(epoch_ms(${e}) AS TIMESTAMPTZ)`,
      };
    case 'date':
      return { type: VARCHAR, value: (v) => v, sql: (e) => `CAST(${e} AS DATE)` };
  }
}

export class DuckDbWarehouse implements Warehouse {
  readonly kind = 'duckdb' as const;
  readonly location: string;
  private readonly batchRows: number;
  private readonly now: () => number;
  private instance: DuckDBInstance | undefined;
  private conn: DuckDBConnection | undefined;
  /** One connection, one operation at a time: a transaction must not interleave with another call. */
  private readonly queue = new SerialQueue();

  constructor(options: DuckDbWarehouseOptions) {
    this.location = options.path;
    this.batchRows = options.batchRows ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  async open(): Promise<void> {
    if (this.conn) return;
    try {
      mkdirSync(path.dirname(this.location), { recursive: true });
      this.instance = await DuckDBInstance.create(this.location, {
        autoinstall_known_extensions: 'false',
        autoload_known_extensions: 'false',
      });
      this.conn = await this.instance.connect();
      await this.conn.run("SET TimeZone = 'UTC'");
      await this.transaction(async (conn) => {
        for (const statement of schemaDdl(DIALECT)) await conn.run(statement);
        await this.recordSchemaVersion(conn);
      });
    } catch (cause) {
      await this.close();
      if (cause instanceof CanopyError) throw cause;
      const locked = /could not set lock/i.test(errorMessage(cause));
      throw new CanopyError(
        'CANOPY_WAREHOUSE_UNAVAILABLE',
        locked
          ? `the warehouse file ${this.location} is locked by another process (a BI tool or another load?): ${errorMessage(cause)}`
          : `cannot open the warehouse file ${this.location}: ${errorMessage(cause)}`,
        { cause },
      );
    }
  }

  private async recordSchemaVersion(conn: DuckDBConnection): Promise<void> {
    const rows = (
      await conn.runAndReadAll(
        `SELECT value FROM ${DIALECT.table(META_TABLE)} WHERE key = 'schema_version'`,
      )
    ).getRows();
    const stored = rows[0] === undefined ? undefined : Number(rows[0][0]);
    if (stored !== undefined && stored > WAREHOUSE_SCHEMA_VERSION) {
      throw new CanopyError(
        'CANOPY_WAREHOUSE_UNAVAILABLE',
        `the warehouse ${this.location} has schema version ${stored}; this Canopy knows up to ${WAREHOUSE_SCHEMA_VERSION}`,
      );
    }
    await conn.run(
      `INSERT INTO ${DIALECT.table(META_TABLE)} VALUES ('schema_version', $1)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
      [String(WAREHOUSE_SCHEMA_VERSION)],
    );
  }

  private connection(): DuckDBConnection {
    if (!this.conn) {
      throw new CanopyError('CANOPY_WAREHOUSE_UNAVAILABLE', 'the warehouse is not open');
    }
    return this.conn;
  }

  /** Runs `work` in one transaction on the connection, rolled back on any failure. */
  private transaction<T>(work: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      const conn = this.connection();
      await conn.run('BEGIN TRANSACTION');
      try {
        const result = await work(conn);
        await conn.run('COMMIT');
        return result;
      } catch (err) {
        // A failed statement already aborted DuckDB's transaction; ROLLBACK
        // ends it either way (and fails only if none is active).
        await conn.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async ledger(): Promise<Map<string, string>> {
    const reader = await this.queue.run(() =>
      this.connection().runAndReadAll(
        `SELECT window_key, fingerprint FROM ${DIALECT.table(LEDGER_TABLE)}`,
      ),
    );
    return new Map(
      reader.getRows().map(([key, fingerprint]) => [String(key), String(fingerprint)]),
    );
  }

  private async insertRows(
    conn: DuckDBConnection,
    table: string,
    spec: WarehouseTableSpec,
    rows: readonly WarehouseRow[],
  ): Promise<void> {
    const bindings = spec.columns.map(binding);
    const names = spec.columns.map((c) => quoteIdent(c.name));
    const unnest = spec.columns.map((_, i) => `unnest($${i + 1}) AS c${i}`).join(', ');
    const select = bindings.map((b, i) => b.sql(`c${i}`)).join(', ');
    const sql = `INSERT INTO ${table} (${names.join(', ')}) SELECT ${select} FROM (SELECT ${unnest})`;
    const types = bindings.map((b) => LIST(b.type));
    for (let from = 0; from < rows.length; from += this.batchRows) {
      const batch = rows.slice(from, from + this.batchRows);
      const values = spec.columns.map((column, i) =>
        listValue(
          batch.map((row) => {
            const v = row[column.name];
            return v === null || v === undefined ? null : bindings[i]!.value(v);
          }),
        ),
      );
      await conn.run(sql, values, types);
    }
  }

  private async recordLedger(
    conn: DuckDBConnection,
    key: string,
    fingerprint: string,
    counts: Record<string, number>,
  ): Promise<void> {
    await conn.run(ledgerUpsertSql(DIALECT), [
      key,
      fingerprint,
      JSON.stringify(counts),
      new Date(this.now()).toISOString(),
    ]);
  }

  async replaceWindow(load: WindowLoad): Promise<void> {
    const tables = checkWindowLoad(load);
    try {
      await this.transaction(async (conn) => {
        const counts: Record<string, number> = {};
        for (const spec of tables) {
          const rows = load.rows[spec.name as keyof WindowLoad['rows']]!;
          const del = deleteWindowSql(DIALECT, spec, load.window);
          await conn.run(del.sql, del.params);
          await this.insertRows(conn, DIALECT.table(spec.name), spec, rows);
          counts[spec.name] = rows.length;
        }
        await this.recordLedger(conn, windowKey(load.window), load.fingerprint, counts);
      });
    } catch (err) {
      throw loadFailed(windowKey(load.window), err);
    }
  }

  async mergeSensors(
    rows: readonly WarehouseRow[],
    fingerprint: string,
  ): Promise<SensorMergeReport> {
    checkSensorRows(rows);
    const staging = quoteIdent('dim_sensors_staging');
    try {
      return await this.transaction(async (conn) => {
        await conn.run(
          `CREATE OR REPLACE TEMP TABLE ${staging} AS SELECT * FROM ${DIALECT.table(DIM_SENSORS_TABLE.name)} LIMIT 0`,
        );
        await this.insertRows(conn, staging, DIM_SENSORS_TABLE, rows);
        const [inserted, updated] = (
          await conn.runAndReadAll(dimChangesSql(DIALECT, staging))
        ).getRows()[0]!;
        await conn.run(dimUpsertSql(DIALECT, staging));
        await conn.run(`DROP TABLE ${staging}`);
        await this.recordLedger(conn, DIM_SENSORS_LEDGER_KEY, fingerprint, {
          [DIM_SENSORS_TABLE.name]: rows.length,
        });
        return { staged: rows.length, inserted: Number(inserted), updated: Number(updated) };
      });
    } catch (err) {
      throw loadFailed(DIM_SENSORS_TABLE.name, err);
    }
  }

  async close(): Promise<void> {
    await this.queue.drain();
    this.conn?.closeSync();
    this.instance?.closeSync();
    this.conn = undefined;
    this.instance = undefined;
  }
}
