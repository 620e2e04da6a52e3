/**
 * Small helpers for the DuckDB metadata store's SQL: transactions, bound
 * parameters and their types, epoch-ms binding, cached prepared statements.
 */
import {
  BIGINT,
  type DuckDBConnection,
  type DuckDBMaterializedResult,
  type DuckDBPreparedStatement,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';

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

export function placeholders(n: number, from = 1): string {
  return Array.from({ length: n }, (_, i) => `$${from + i}`).join(', ');
}

/** `($1, …, $w), ($w+1, …, $2w), …`: `rows` tuples of `width` parameters, for a multi-row VALUES. */
export function rowPlaceholders(rows: number, width: number): string {
  return Array.from({ length: rows }, (_, r) => `(${placeholders(width, r * width + 1)})`).join(
    ', ',
  );
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

/** Several rows of `bind`, flattened for a multi-row VALUES (see rowPlaceholders). */
export function bindRows(
  rows: readonly (readonly (string | number | boolean | null)[])[],
  types: readonly DuckDBType[],
): [DuckDBValue[], DuckDBType[]] {
  const values: DuckDBValue[] = [];
  const allTypes: DuckDBType[] = [];
  for (const row of rows) {
    const [v, t] = bind(row, types);
    values.push(...v);
    allTypes.push(...t);
  }
  return [values, allTypes];
}

/**
 * Epoch ms as a BIGINT parameter. Times are whole milliseconds by contract;
 * a fraction throws (RangeError) rather than being stored altered.
 */
export function ms(epochMs: number): bigint {
  return BigInt(epochMs);
}

/**
 * Prepared statements of one connection, by SQL text. A parameterized
 * `conn.run` extracts, prepares and runs: three round trips through the
 * libuv pool (shared with the hot store and file I/O) and the event loop,
 * which under ingest load cost more than the statement itself. A cached
 * statement binds synchronously and runs in one.
 *
 * Only statements with parameters are cached: DuckDB plans a statement
 * without any once, against the table statistics of that moment (a cached
 * `SELECT min(x) FROM t WHERE status = 'pending'` prepared on an empty table
 * kept answering NULL), while one with parameters is planned again with
 * their values when it runs. A statement without parameters runs unprepared,
 * which is one round trip anyway.
 *
 * Not safe for concurrent use: the caller runs one statement at a time (the
 * metadata store's SerialQueue). Nothing is evicted: the caller keeps the
 * set of SQL texts bounded (multi-row statements are cut into chunks of a
 * bounded row count), and the connection destroys its statements when it
 * closes.
 */
export class PreparedStatements {
  readonly #conn: DuckDBConnection;
  readonly #cache = new Map<string, DuckDBPreparedStatement>();

  constructor(conn: DuckDBConnection) {
    this.#conn = conn;
  }

  async run(
    sql: string,
    values: DuckDBValue[],
    types: DuckDBType[],
  ): Promise<DuckDBMaterializedResult> {
    if (values.length === 0) return this.#conn.run(sql);
    const statement = await this.#statement(sql);
    statement.bind(values, types);
    return statement.run();
  }

  async rows(
    sql: string,
    values: DuckDBValue[] = [],
    types: DuckDBType[] = [],
  ): Promise<DuckDBValue[][]> {
    if (values.length === 0) return (await this.#conn.runAndReadAll(sql)).getRows();
    const statement = await this.#statement(sql);
    statement.bind(values, types);
    return (await statement.runAndReadAll()).getRows();
  }

  async #statement(sql: string): Promise<DuckDBPreparedStatement> {
    let statement = this.#cache.get(sql);
    if (statement === undefined) {
      statement = await this.#conn.prepare(sql);
      this.#cache.set(sql, statement);
    }
    return statement;
  }
}
