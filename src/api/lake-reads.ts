/**
 * The dashboard's own reads of the lake, through the same read-only SQL
 * sandbox as `POST /api/query` (so the same limits: one query at a time,
 * 10 s, 10 000 rows). Every value put into SQL here is a number the server
 * computed or a string quoted by `sqlString`; nothing from a request is
 * spliced in raw.
 *
 * A view whose layer has no file yet does not exist in the sandbox; the
 * readers check `views()` first and treat a missing layer as empty.
 */
import type { Json } from '@duckdb/node-api';
import { sqlString, type LakeQueries, type QueryResult } from '../query/index.js';

/** Most rows one sandbox query returns (`QuerySandbox` default). */
export const LAKE_MAX_ROWS = 10_000;

export class LakeReader {
  /** Views seen to exist: a layer, once it has files, keeps them, so these are not asked again. */
  private readonly known = new Set<string>();

  constructor(private readonly queries: Pick<LakeQueries, 'run'>) {}

  /** Whether each of `names` is a view now (its layer has at least one file). */
  async has(...names: string[]): Promise<boolean[]> {
    if (names.some((name) => !this.known.has(name))) {
      const result = await this.queries.run(
        'SELECT view_name FROM duckdb_views() WHERE NOT internal',
      );
      for (const row of result.rows) this.known.add(jsonText(row[0]));
    }
    return names.map((name) => this.known.has(name));
  }

  /** Runs a query the server wrote; its rows must fit in one result (callers bound them). */
  async run(sql: string): Promise<QueryResult> {
    const result = await this.queries.run(sql);
    if (result.truncated)
      throw new Error(`a dashboard lake query returned more than ${LAKE_MAX_ROWS} rows: ${sql}`);
    return result;
  }
}

/** An epoch-ms instant as a TIMESTAMP expression (the lake's `event_time` is a UTC TIMESTAMP). */
export function sqlTime(ms: number): string {
  return `epoch_ms(${Math.trunc(ms)}::BIGINT)`;
}

/** The UTC date of an instant as a DATE literal (to prune `date=` partitions). */
export function sqlDate(ms: number): string {
  return `DATE '${new Date(ms).toISOString().slice(0, 10)}'`;
}

/** `(…)` of quoted strings for `IN`; never empty (callers skip empty lists). */
export function sqlList(values: readonly string[]): string {
  return `(${values.map(sqlString).join(', ')})`;
}

/**
 * `date` partition bounds and event-time bounds for `[from, to)`, as one
 * WHERE fragment: the partition bounds let DuckDB skip whole files. With
 * `hourly` (bronze, partitioned by `date` and `hour`) hours are bounded too,
 * so an hour's range reads one or two of a day's files.
 */
export function timeRange(column: string, from: number, to: number, hourly = false): string {
  const [first, last] = [sqlDate(from), sqlDate(to - 1)];
  const hours = hourly
    ? ` AND (date > ${first} OR hour >= ${new Date(from).getUTCHours()}) AND (date < ${last} OR hour <= ${new Date(to - 1).getUTCHours()})`
    : '';
  return `date BETWEEN ${first} AND ${last}${hours} AND ${column} >= ${sqlTime(from)} AND ${column} < ${sqlTime(to)}`;
}

export function jsonNumber(value: Json | undefined): number | null {
  if (value === null || value === undefined) return null;
  const n = typeof value === 'number' ? value : Number(jsonText(value));
  return Number.isFinite(n) ? n : null;
}

/** A result cell as text: strings as they are, anything else as JSON. */
export function jsonText(value: Json | undefined): string {
  return typeof value === 'string' ? value : JSON.stringify(value ?? null);
}

export function jsonString(value: Json | undefined): string | null {
  return value === null || value === undefined ? null : jsonText(value);
}
