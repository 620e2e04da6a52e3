/**
 * Small helpers for the DuckDB metadata store's SQL: transactions, bound
 * parameters and their types, epoch-ms binding.
 */
import { BIGINT, type DuckDBConnection, type DuckDBType, type DuckDBValue } from '@duckdb/node-api';

/** Runs `work` in one transaction on `conn`, rolled back on any failure. */
export async function inTransaction<T>(conn: DuckDBConnection, work: () => Promise<T>): Promise<T> {
  await conn.run('BEGIN TRANSACTION');
  try {
    const result = await work();
    await conn.run('COMMIT');
    return result;
  } catch (err) {
    // A failed statement already aborted DuckDB's transaction; ROLLBACK ends
    // it either way (and fails only if none is active).
    await conn.run('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Bound parameters for a WHERE clause; values never enter the SQL text. */
export class Params {
  readonly values: DuckDBValue[] = [];
  readonly types: DuckDBType[] = [];

  add(value: DuckDBValue, type: DuckDBType): string {
    this.values.push(value);
    this.types.push(type);
    return `$${this.values.length}`;
  }
}

export function placeholders(n: number): string {
  return Array.from({ length: n }, (_, i) => `$${i + 1}`).join(', ');
}

/** Values with their types; epoch-ms and other BIGINT cells as bigint, as DuckDB binds them. */
export function bind(
  values: readonly (string | number | boolean | null)[],
  types: readonly DuckDBType[],
): [DuckDBValue[], DuckDBType[]] {
  return [
    values.map((v, i) => (types[i] === BIGINT && typeof v === 'number' ? ms(v) : v)),
    [...types],
  ];
}

/**
 * Epoch ms as a BIGINT parameter. Times are whole milliseconds by contract;
 * a fraction throws (RangeError) rather than being stored altered.
 */
export function ms(epochMs: number): bigint {
  return BigInt(epochMs);
}
