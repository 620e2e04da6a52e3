/**
 * The warehouse contract: where the gold tables and the `dim_sensors`
 * dimension are loaded for BI tools (a DuckDB file by default, PostgreSQL by
 * configuration). Every adapter passes the one conformance suite in
 * `src/storage/warehouse/warehouse.conformance.ts`.
 *
 * The table definitions live here, not in an adapter, because the load job,
 * both adapters and the tests must agree on them column for column.
 *
 * Loading is idempotent by construction: a load replaces a whole *window*
 * (one event date of the per-date gold tables, or the whole all-time device
 * summary) by deleting the window's rows and inserting the new ones in ONE
 * transaction, which also records the window's source fingerprint in a
 * ledger kept in the warehouse itself. Replaying a load gives the same rows;
 * a failed load leaves the window's previous rows and ledger entry intact.
 */

export type WarehouseColumnType = 'text' | 'bigint' | 'double' | 'timestamp' | 'date';

export interface WarehouseColumn {
  readonly name: string;
  /** `timestamp` is stored as timestamptz (UTC); `bigint` as a 64-bit integer. */
  readonly type: WarehouseColumnType;
  readonly nullable: boolean;
}

/** How a table is replaced: per event date on `column`, or whole. */
export type WindowScope =
  { readonly kind: 'day'; readonly column: string } | { readonly kind: 'all' };

export interface WarehouseTableSpec {
  readonly name: string;
  readonly columns: readonly WarehouseColumn[];
  /**
   * The grain: one row per value of these columns. Declared as the primary
   * key when every key column is NOT NULL, otherwise as a unique index over
   * the columns with NULL folded to '' (a null location or sensor type is a
   * group of its own in gold, and a primary key cannot hold a null).
   */
  readonly key: readonly string[];
  readonly scope: WindowScope;
}

const col = (name: string, type: WarehouseColumnType, nullable = true): WarehouseColumn => ({
  name,
  type,
  nullable,
});

/** The gold tables, in the column order of the gold Parquet files (`GOLD_COLUMNS`). */
export const GOLD_WAREHOUSE_TABLES = [
  {
    name: 'gold_sensor_5min',
    columns: [
      col('sensor_id', 'text', false),
      col('window_start', 'timestamp', false),
      col('sensor_type', 'text'),
      col('location', 'text'),
      col('reading_count', 'bigint', false),
      col('value_count', 'bigint', false),
      col('anomaly_count', 'bigint', false),
      col('avg', 'double'),
      col('min', 'double'),
      col('max', 'double'),
      col('stddev', 'double'),
      col('p50', 'double'),
      col('p95', 'double'),
      col('p99', 'double'),
      col('expected_count', 'double', false),
      col('health_pct', 'double', false),
    ],
    key: ['sensor_id', 'window_start'],
    scope: { kind: 'day', column: 'window_start' },
  },
  {
    name: 'gold_location_hourly',
    columns: [
      col('location', 'text'),
      col('hour_start', 'timestamp', false),
      col('sensor_type', 'text'),
      col('sensor_count', 'bigint', false),
      col('reading_count', 'bigint', false),
      col('value_count', 'bigint', false),
      col('anomaly_count', 'bigint', false),
      col('avg', 'double'),
      col('min', 'double'),
      col('max', 'double'),
    ],
    key: ['location', 'hour_start', 'sensor_type'],
    scope: { kind: 'day', column: 'hour_start' },
  },
  {
    name: 'gold_daily_summary',
    columns: [
      col('sensor_id', 'text', false),
      col('date', 'date', false),
      col('sensor_type', 'text'),
      col('location', 'text'),
      col('reading_count', 'bigint', false),
      col('avg', 'double'),
      col('min', 'double'),
      col('max', 'double'),
      col('anomaly_count', 'bigint', false),
      col('missing_count', 'bigint', false),
      col('imputed_count', 'bigint', false),
    ],
    key: ['sensor_id', 'date'],
    scope: { kind: 'day', column: 'date' },
  },
  {
    name: 'gold_device_summary',
    columns: [
      col('sensor_id', 'text', false),
      col('sensor_type', 'text'),
      col('location', 'text'),
      col('first_event_time', 'timestamp', false),
      col('last_event_time', 'timestamp', false),
      col('total_readings', 'bigint', false),
      col('avg', 'double'),
      col('min', 'double'),
      col('max', 'double'),
      col('anomaly_count', 'bigint', false),
      col('anomaly_pct', 'double', false),
    ],
    key: ['sensor_id'],
    scope: { kind: 'all' },
  },
] as const satisfies readonly WarehouseTableSpec[];

export type GoldWarehouseTable = (typeof GOLD_WAREHOUSE_TABLES)[number]['name'];

/**
 * The sensor dimension. `origin` is `config` for sensors in the config file,
 * `discovered` for sensors known only from their data; `first_seen` and
 * `last_seen` are the first and last event times in gold (null for a
 * configured sensor with no data yet).
 */
export const DIM_SENSORS_TABLE = {
  name: 'dim_sensors',
  columns: [
    col('sensor_id', 'text', false),
    col('sensor_type', 'text'),
    col('unit', 'text'),
    col('location', 'text'),
    col('interval_ms', 'bigint'),
    col('origin', 'text', false),
    col('first_seen', 'timestamp'),
    col('last_seen', 'timestamp'),
  ],
  key: ['sensor_id'],
  scope: { kind: 'all' },
} as const satisfies WarehouseTableSpec;

/** Every table the warehouse holds for users. */
export const WAREHOUSE_TABLES: readonly WarehouseTableSpec[] = [
  ...GOLD_WAREHOUSE_TABLES,
  DIM_SENSORS_TABLE,
];

/** Bumped when a table definition changes; an adapter refuses a warehouse of a newer version. */
export const WAREHOUSE_SCHEMA_VERSION = 1;

/**
 * A cell: `text` → string, `bigint` → a safe integer, `double` → number,
 * `timestamp` → epoch milliseconds (UTC), `date` → `YYYY-MM-DD`; null for SQL NULL.
 */
export type WarehouseValue = string | number | null;
/** One row, keyed by column name; every column of the table must be present. */
export type WarehouseRow = Readonly<Record<string, WarehouseValue>>;

/** What one load replaces: the rows of one event date, or the all-time tables. */
export type WarehouseWindow =
  { readonly kind: 'day'; readonly date: string } | { readonly kind: 'all' };

/** Ledger key of a window: `date=2026-11-20`, or `all`. */
export function windowKey(window: WarehouseWindow): string {
  return window.kind === 'day' ? `date=${window.date}` : 'all';
}

/** Ledger key under which the dimension's source fingerprint is kept. */
export const DIM_SENSORS_LEDGER_KEY = 'dim_sensors';

/** The gold tables a window replaces: the per-date tables for a day, the all-time ones for `all`. */
export function windowTables(window: WarehouseWindow): WarehouseTableSpec[] {
  return GOLD_WAREHOUSE_TABLES.filter((t) => t.scope.kind === window.kind);
}

export interface WindowLoad {
  window: WarehouseWindow;
  /**
   * Rows per table of the window. Every table `windowTables(window)` names
   * must be present (an empty array empties the table's window); every row
   * must lie inside the window.
   */
  rows: Readonly<Partial<Record<GoldWarehouseTable, readonly WarehouseRow[]>>>;
  /** What the rows were built from (e.g. a hash of gold object etags); kept in the ledger. */
  fingerprint: string;
}

export interface SensorMergeReport {
  /** Rows staged (= sensors given). */
  staged: number;
  inserted: number;
  /** Existing rows whose fields changed. */
  updated: number;
}

export interface Warehouse {
  readonly kind: 'duckdb' | 'postgres';
  /** For logs and reports: a file path or `postgres://host:port/db (schema s)`, never a password. */
  readonly location: string;

  /**
   * Connects, creates missing tables and indexes (idempotent DDL) and records
   * the schema version. Throws CANOPY_WAREHOUSE_UNAVAILABLE when the engine
   * cannot be reached or opened, or holds a newer schema version.
   */
  open(): Promise<void>;
  /** Ledger: window key (or `DIM_SENSORS_LEDGER_KEY`) → fingerprint of what was last loaded. */
  ledger(): Promise<Map<string, string>>;
  /**
   * In one transaction: deletes the rows of `load.window` from each of its
   * tables, inserts `load.rows`, and records the fingerprint. All or nothing:
   * on any failure the window keeps its previous rows and ledger entry, and
   * CANOPY_WAREHOUSE_LOAD_FAILED is thrown (safe to retry). A load that breaks
   * the contract of `WindowLoad` is refused before anything is touched.
   */
  replaceWindow(load: WindowLoad): Promise<void>;
  /**
   * In one transaction: stages `rows` (one per sensor id, `DIM_SENSORS_TABLE`
   * columns) in a staging table, upserts them into `dim_sensors` (new ids
   * inserted, changed rows updated, rows of sensors not given kept), and
   * records `fingerprint` under `DIM_SENSORS_LEDGER_KEY`. All or nothing, like
   * `replaceWindow`.
   */
  mergeSensors(rows: readonly WarehouseRow[], fingerprint: string): Promise<SensorMergeReport>;
  /** Releases the connection or file. The warehouse must not be used afterwards. */
  close(): Promise<void>;
}

const DAY = /^\d{4}-\d{2}-\d{2}$/;

/** Start of a day window, epoch ms (UTC); throws on a malformed date. */
export function dayStartMs(date: string): number {
  const ms = DAY.test(date) ? Date.parse(`${date}T00:00:00Z`) : NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== date) {
    throw new RangeError(`not a YYYY-MM-DD calendar day: ${JSON.stringify(date)}`);
  }
  return ms;
}

export const DAY_MS = 86_400_000;
