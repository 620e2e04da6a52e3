/**
 * What the DuckDB and PostgreSQL warehouses share: the DDL generated from the
 * table definitions in `core/warehouse.ts`, the window delete, the dimension
 * upsert, and the checks a load must pass before any SQL runs. The SQL here is
 * the common subset of both engines; each adapter adds only its bulk insert.
 */
import { CanopyError } from '../../core/errors.js';
import {
  DAY_MS,
  DIM_SENSORS_TABLE,
  WAREHOUSE_TABLES,
  dayStartMs,
  windowKey,
  windowTables,
  type WarehouseColumnType,
  type WarehouseRow,
  type WarehouseTableSpec,
  type WarehouseWindow,
  type WindowLoad,
} from '../../core/warehouse.js';

export interface Dialect {
  /** Qualified, quoted name of a table of the warehouse. */
  table(name: string): string;
  columnType(type: WarehouseColumnType): string;
  /** Extra DDL after the tables (e.g. PostgreSQL's indexes for the window deletes). */
  extraIndexes(spec: WarehouseTableSpec): string[];
  /**
   * How a grain with nullable columns is declared: a unique index over the
   * columns with NULL folded to '' (a null is a group of its own), or a plain
   * UNIQUE constraint, which standard SQL does not enforce among rows with a
   * null in the key.
   */
  nullableGrain: 'unique-index-coalesced' | 'unique-constraint';
}

export const LEDGER_TABLE = 'warehouse_loads';
export const META_TABLE = 'warehouse_meta';

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function keyIsNullable(spec: WarehouseTableSpec): boolean {
  return spec.key.some((k) => spec.columns.find((c) => c.name === k)?.nullable !== false);
}

/** Idempotent DDL for every table, its grain key, the ledger and the meta table. */
export function schemaDdl(dialect: Dialect): string[] {
  const statements: string[] = [];
  for (const spec of WAREHOUSE_TABLES) {
    const columns = spec.columns.map(
      (c) => `${quoteIdent(c.name)} ${dialect.columnType(c.type)}${c.nullable ? '' : ' NOT NULL'}`,
    );
    const key = spec.key.map(quoteIdent).join(', ');
    if (!keyIsNullable(spec)) columns.push(`PRIMARY KEY (${key})`);
    else if (dialect.nullableGrain === 'unique-constraint') columns.push(`UNIQUE (${key})`);
    statements.push(
      `CREATE TABLE IF NOT EXISTS ${dialect.table(spec.name)} (\n  ${columns.join(',\n  ')}\n)`,
    );
    if (keyIsNullable(spec) && dialect.nullableGrain === 'unique-index-coalesced') {
      const parts = spec.key.map((k) => {
        const column = spec.columns.find((c) => c.name === k)!;
        return column.nullable ? `coalesce(${quoteIdent(k)}, '')` : quoteIdent(k);
      });
      statements.push(
        `CREATE UNIQUE INDEX IF NOT EXISTS ${quoteIdent(`${spec.name}_grain`)} ON ${dialect.table(spec.name)} (${parts.join(', ')})`,
      );
    }
    statements.push(...dialect.extraIndexes(spec));
  }
  statements.push(
    `CREATE TABLE IF NOT EXISTS ${dialect.table(LEDGER_TABLE)} (
  window_key  ${dialect.columnType('text')} PRIMARY KEY,
  fingerprint ${dialect.columnType('text')} NOT NULL,
  row_counts  ${dialect.columnType('text')} NOT NULL,
  loaded_at   ${dialect.columnType('timestamp')} NOT NULL
)`,
    `CREATE TABLE IF NOT EXISTS ${dialect.table(META_TABLE)} (
  key   ${dialect.columnType('text')} PRIMARY KEY,
  value ${dialect.columnType('text')} NOT NULL
)`,
  );
  return statements;
}

/**
 * The DELETE of one table's window with its parameters: a day window is a
 * half-open UTC day on the table's time column (`$1`, `$2` as ISO text) or
 * the day itself on a date column (`$1`); `all` empties the table.
 */
export function deleteWindowSql(
  dialect: Dialect,
  spec: WarehouseTableSpec,
  window: WarehouseWindow,
): { sql: string; params: string[] } {
  const table = dialect.table(spec.name);
  const scope = spec.scope;
  if (window.kind === 'all' || scope.kind === 'all')
    return { sql: `DELETE FROM ${table}`, params: [] };
  const column = spec.columns.find((c) => c.name === scope.column)!;
  const name = quoteIdent(column.name);
  if (column.type === 'date') {
    return { sql: `DELETE FROM ${table} WHERE ${name} = CAST($1 AS DATE)`, params: [window.date] };
  }
  const start = dayStartMs(window.date);
  return {
    sql: `DELETE FROM ${table} WHERE ${name} >= CAST($1 AS TIMESTAMPTZ) AND ${name} < CAST($2 AS TIMESTAMPTZ)`,
    params: [new Date(start).toISOString(), new Date(start + DAY_MS).toISOString()],
  };
}

/** Records a window's fingerprint in the ledger (one row per window key), in the load's transaction. */
export function ledgerUpsertSql(dialect: Dialect): string {
  return `INSERT INTO ${dialect.table(LEDGER_TABLE)} (window_key, fingerprint, row_counts, loaded_at)
VALUES ($1, $2, $3, CAST($4 AS TIMESTAMPTZ))
ON CONFLICT (window_key) DO UPDATE SET
  fingerprint = excluded.fingerprint, row_counts = excluded.row_counts, loaded_at = excluded.loaded_at`;
}

const DIM_VALUE_COLUMNS = DIM_SENSORS_TABLE.columns
  .map((c) => c.name)
  .filter((n) => n !== 'sensor_id');

/**
 * Counts what the merge of `staging` into `dim_sensors` will insert and
 * update; run in the merge's transaction, before it.
 */
export function dimChangesSql(dialect: Dialect, staging: string): string {
  const changed = DIM_VALUE_COLUMNS.map(
    (c) => `d.${quoteIdent(c)} IS DISTINCT FROM s.${quoteIdent(c)}`,
  ).join(' OR ');
  return `SELECT count(*) FILTER (WHERE d.sensor_id IS NULL) AS inserted,
       count(*) FILTER (WHERE d.sensor_id IS NOT NULL AND (${changed})) AS updated
FROM ${staging} s LEFT JOIN ${dialect.table(DIM_SENSORS_TABLE.name)} d ON d.sensor_id = s.sensor_id`;
}

/**
 * The merge: new ids inserted, changed rows updated (an unchanged row is not
 * rewritten), rows of sensors absent from the staging table kept. INSERT …
 * ON CONFLICT DO UPDATE rather than MERGE: both engines have it, and on
 * PostgreSQL it needs no version 15.
 */
export function dimUpsertSql(dialect: Dialect, staging: string): string {
  const table = dialect.table(DIM_SENSORS_TABLE.name);
  const names = DIM_SENSORS_TABLE.columns.map((c) => quoteIdent(c.name));
  const set = DIM_VALUE_COLUMNS.map((c) => `${quoteIdent(c)} = excluded.${quoteIdent(c)}`);
  const changed = DIM_VALUE_COLUMNS.map(
    (c) => `${table}.${quoteIdent(c)} IS DISTINCT FROM excluded.${quoteIdent(c)}`,
  );
  return `INSERT INTO ${table} (${names.join(', ')})
SELECT ${names.join(', ')} FROM ${staging}
ON CONFLICT (sensor_id) DO UPDATE SET ${set.join(', ')}
WHERE ${changed.join(' OR ')}`;
}

function refuse(message: string): CanopyError {
  return new CanopyError('CANOPY_WAREHOUSE_LOAD_FAILED', `warehouse load refused: ${message}`);
}

/** Checks a row has every column with a value of the column's kind; returns the first problem. */
function rowProblem(spec: WarehouseTableSpec, row: WarehouseRow): string | undefined {
  for (const column of spec.columns) {
    const value = row[column.name];
    if (value === undefined) return `column ${column.name} is missing`;
    if (value === null) {
      if (!column.nullable) return `column ${column.name} is null`;
      continue;
    }
    const ok =
      column.type === 'text' || column.type === 'date'
        ? typeof value === 'string'
        : column.type === 'double'
          ? typeof value === 'number'
          : Number.isSafeInteger(value);
    if (!ok) return `column ${column.name} has ${JSON.stringify(value)}, not a ${column.type}`;
  }
  return undefined;
}

/** Whether a row's window column lies inside a day window. */
function inDay(spec: WarehouseTableSpec, row: WarehouseRow, date: string): boolean {
  if (spec.scope.kind !== 'day') return true;
  const value = row[spec.scope.column];
  if (typeof value === 'string') return value === date;
  const start = dayStartMs(date);
  return typeof value === 'number' && value >= start && value < start + DAY_MS;
}

/**
 * Refuses (CANOPY_WAREHOUSE_LOAD_FAILED, before any SQL) a load that breaks
 * the `WindowLoad` contract: a bad date, a missing or foreign table, a row
 * with a missing or mistyped column, a row outside the window (which the
 * next replace of its own window would not delete, leaving a duplicate).
 */
export function checkWindowLoad(load: WindowLoad): WarehouseTableSpec[] {
  if (load.window.kind === 'day') {
    try {
      dayStartMs(load.window.date);
    } catch (err) {
      throw refuse((err as Error).message);
    }
  }
  const tables = windowTables(load.window);
  const names = new Set(tables.map((t) => t.name));
  for (const name of Object.keys(load.rows)) {
    if (!names.has(name))
      throw refuse(`table ${name} is not part of window ${windowKey(load.window)}`);
  }
  for (const spec of tables) {
    const rows = load.rows[spec.name as keyof WindowLoad['rows']];
    if (rows === undefined)
      throw refuse(`no rows given for ${spec.name} (an empty array empties it)`);
    for (const row of rows) {
      const problem = rowProblem(spec, row);
      if (problem) throw refuse(`${spec.name}: ${problem}`);
      if (load.window.kind === 'day' && !inDay(spec, row, load.window.date)) {
        throw refuse(`${spec.name}: a row lies outside ${windowKey(load.window)}`);
      }
    }
  }
  return tables;
}

/** Refuses a dimension load with a bad row or a sensor id given twice. */
export function checkSensorRows(rows: readonly WarehouseRow[]): void {
  const seen = new Set<string>();
  for (const row of rows) {
    const problem = rowProblem(DIM_SENSORS_TABLE, row);
    if (problem) throw refuse(`dim_sensors: ${problem}`);
    const id = row.sensor_id as string;
    if (seen.has(id)) throw refuse(`dim_sensors: sensor ${id} is given twice`);
    seen.add(id);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wraps an engine failure inside a load; a CanopyError (a refusal) passes through. */
export function loadFailed(what: string, cause: unknown): CanopyError {
  if (cause instanceof CanopyError) return cause;
  return new CanopyError(
    'CANOPY_WAREHOUSE_LOAD_FAILED',
    `warehouse load of ${what} failed and was rolled back: ${errorMessage(cause)}`,
    { cause },
  );
}
