/**
 * Test support: in-memory DuckDB tables built from JS rows, so each test can
 * compute its oracle from the very rows it inserted. Not used by the runtime.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export type Cell = string | number | boolean | null;
export type Row = Record<string, Cell>;

export async function memoryConnection(): Promise<DuckDBConnection> {
  const db = await DuckDBInstance.create(':memory:');
  return db.connect();
}

function literal(value: Cell): string {
  if (value === null) return 'NULL';
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  return String(value);
}

/**
 * Creates `table` with `columns` (name → SQL type) and inserts `rows` in
 * order. Literals are built here because the values are the test's own.
 */
export async function createTable(
  conn: DuckDBConnection,
  table: string,
  columns: Record<string, string>,
  rows: readonly Row[],
): Promise<void> {
  const names = Object.keys(columns);
  await conn.run(
    `CREATE OR REPLACE TABLE ${table} (${names.map((n) => `${n} ${columns[n]}`).join(', ')})`,
  );
  if (rows.length === 0) return;
  const values = rows
    .map((row) => `(${names.map((n) => `${literal(row[n] ?? null)}::${columns[n]}`).join(', ')})`)
    .join(', ');
  await conn.run(`INSERT INTO ${table} VALUES ${values}`);
}
