/**
 * What every lake job shares: a private in-memory DuckDB to transform
 * Parquet with (no extension may be downloaded here), and the date rule of
 * the partitions.
 */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

/** Runs `work` on a fresh in-memory DuckDB connection and closes it afterwards. */
export async function withLakeEngine<T>(work: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
  const db = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const conn = await db.connect();
  try {
    return await work(conn);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

const EVENT_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A partition date: `YYYY-MM-DD`, a real calendar day (UTC). */
export function isEventDate(date: string): boolean {
  if (!EVENT_DATE.test(date)) return false;
  const ms = Date.parse(`${date}T00:00:00Z`);
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 10) === date;
}

/** The day before a partition date. */
export function previousEventDate(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}
