/**
 * Runs a quality suite as SQL against a DuckDB connection.
 *
 * Contracts:
 * - Read-only: every statement is a SELECT (or DESCRIBE); a failed suite
 *   never deletes or changes data.
 * - Never throws for a data problem: a missing table or column, a type
 *   mismatch or any other DuckDB error becomes a failed expectation with an
 *   `error` message, and the remaining expectations still run.
 * - SQL safety: identifiers were validated by the suite schema and are
 *   double-quoted here; values are bound as `$n` parameters.
 * - Row-level ("map") expectations follow Great Expectations: rows outside
 *   the expectation's domain (nulls, for most of them) are not evaluated;
 *   `unexpected_percent` is relative to the evaluated rows; success is
 *   `passing fraction >= mostly`, and an expectation with no evaluated rows
 *   succeeds (nothing contradicts it).
 */
import type { DuckDBConnection, DuckDBValue } from '@duckdb/node-api';
import type { Expectation, ExpectationName, Suite } from './suite.js';
import { IDENTIFIER } from './suite.js';

export interface RunSuiteOptions {
  /** Failing rows listed per expectation; default 20. 0 lists none. */
  maxFailingRows?: number;
  /** Injected "now" (epoch ms) for `started_at` / `finished_at`; default Date.now. */
  now?: () => number;
}

/** What an expectation measured. Which keys appear depends on the expectation. */
export interface ObservedValue {
  /** Rows in the table. */
  element_count?: number;
  /** Rows the expectation judged (its domain: e.g. non-null values). */
  evaluated_count?: number;
  /** Nulls in the column (single-column expectations). */
  missing_count?: number;
  unexpected_count?: number;
  /** unexpected_count ÷ evaluated_count × 100; 0 when nothing was evaluated. */
  unexpected_percent?: number;
  null_fraction?: number;
  row_count?: number;
  other_row_count?: number;
  /** row_count ÷ other_row_count; 1 when both are empty, null when only the other is. */
  ratio?: number | null;
  observed_type?: string | null;
}

export interface ExpectationResult {
  expectation: ExpectationName;
  column?: string;
  columns?: string[];
  success: boolean;
  severity: 'error' | 'warning';
  description?: string;
  observed: ObservedValue;
  /** Up to `maxFailingRows` offending rows, as JSON-safe objects (BIGINT and timestamps as strings). */
  failing_rows: Record<string, unknown>[];
  /** The measuring statement, `$n` placeholders bound to `params`. */
  sql: string;
  params: DuckDBValue[];
  /** Set when the expectation could not be evaluated (missing table or column, type error, …). */
  error?: string;
}

export interface SuiteResult {
  suite: string;
  table: string;
  /** False when any error-severity expectation failed; failed warnings do not count. */
  success: boolean;
  started_at: string;
  finished_at: string;
  results: ExpectationResult[];
}

const DEFAULT_MAX_FAILING_ROWS = 20;
/** Marker columns added to the scanned rows; stripped before rows are returned. */
const IN_DOMAIN = '__canopy_in_domain';
const UNEXPECTED = '__canopy_unexpected';

/** Quotes one identifier. Re-checks the pattern so that a hand-built Suite cannot bypass the schema. */
export function quoteIdent(name: string): string {
  if (!IDENTIFIER.test(name)) throw new Error(`unsafe SQL identifier ${JSON.stringify(name)}`);
  return `"${name}"`;
}

/** Quotes a possibly qualified table name (`schema.table`). */
export function quoteTable(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}

class Params {
  readonly values: DuckDBValue[] = [];
  add(value: DuckDBValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** A row-level expectation as two boolean SQL expressions over the table's rows. */
interface MapPlan {
  kind: 'map';
  /** Rows that are judged at all. */
  domain: string;
  /** Among domain rows, those that break the expectation; may use window functions. */
  unexpected: string;
  /** Column whose nulls are reported as `missing_count`, if any. */
  missingColumn?: string;
  params: Params;
}

function rangeViolation(col: string, params: Params, min?: number, max?: number): string {
  const parts: string[] = [];
  if (min !== undefined) parts.push(`${col} < ${params.add(min)}`);
  if (max !== undefined) parts.push(`${col} > ${params.add(max)}`);
  return parts.length ? `(${parts.join(' OR ')})` : 'false';
}

function mapPlan(e: Expectation): MapPlan | undefined {
  const params = new Params();
  switch (e.expectation) {
    case 'expect_column_values_to_not_be_null': {
      const col = quoteIdent(e.column);
      return { kind: 'map', domain: 'true', unexpected: `${col} IS NULL`, params };
    }
    case 'expect_column_null_fraction_to_be_at_most': {
      // Judged on the fraction, not per row; the null rows are the ones worth listing.
      const col = quoteIdent(e.column);
      return {
        kind: 'map',
        domain: 'true',
        unexpected: `${col} IS NULL`,
        missingColumn: col,
        params,
      };
    }
    case 'expect_column_values_to_be_between': {
      const col = quoteIdent(e.column);
      return {
        kind: 'map',
        domain: `${col} IS NOT NULL`,
        unexpected: rangeViolation(col, params, e.min, e.max),
        missingColumn: col,
        params,
      };
    }
    case 'expect_column_values_to_be_between_per_group': {
      const col = quoteIdent(e.column);
      const group = quoteIdent(e.group_column);
      const groups = Object.entries(e.ranges);
      const groupList = groups.map(([g]) => params.add(g)).join(', ');
      const arms = groups.map(
        ([g, r]) =>
          `(${group} = ${params.add(g)} AND ${rangeViolation(col, params, r.min, r.max)})`,
      );
      return {
        kind: 'map',
        domain: `${col} IS NOT NULL AND ${group} IN (${groupList})`,
        unexpected: arms.join(' OR '),
        missingColumn: col,
        params,
      };
    }
    case 'expect_column_values_to_be_in_set': {
      const col = quoteIdent(e.column);
      const list = e.value_set.map((v) => params.add(v)).join(', ');
      return {
        kind: 'map',
        domain: `${col} IS NOT NULL`,
        unexpected: `NOT (${col} IN (${list}))`,
        missingColumn: col,
        params,
      };
    }
    case 'expect_column_values_to_be_unique': {
      // As GE: every row whose value occurs more than once is unexpected, the first one too.
      const col = quoteIdent(e.column);
      return {
        kind: 'map',
        domain: `${col} IS NOT NULL`,
        unexpected: `count(*) OVER (PARTITION BY ${col}) > 1`,
        missingColumn: col,
        params,
      };
    }
    case 'expect_compound_columns_to_be_unique': {
      // GE's default ignore_row_if: a row is skipped only when all of its columns are null.
      const cols = e.columns.map(quoteIdent);
      return {
        kind: 'map',
        domain: `NOT (${cols.map((c) => `${c} IS NULL`).join(' AND ')})`,
        unexpected: `count(*) OVER (PARTITION BY ${cols.join(', ')}) > 1`,
        params,
      };
    }
    default:
      return undefined;
  }
}

function toNumber(value: unknown): number {
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'number') return value;
  return 0;
}

function errorMessage(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

function baseResult(e: Expectation): ExpectationResult {
  const result: ExpectationResult = {
    expectation: e.expectation,
    success: false,
    severity: e.severity,
    observed: {},
    failing_rows: [],
    sql: '',
    params: [],
  };
  if ('column' in e) result.column = e.column;
  if ('columns' in e) result.columns = [...e.columns];
  if (e.description !== undefined) result.description = e.description;
  return result;
}

async function runMap(
  conn: DuckDBConnection,
  table: string,
  e: Expectation,
  plan: MapPlan,
  result: ExpectationResult,
  maxFailingRows: number,
): Promise<void> {
  const source =
    `WITH scanned AS (SELECT *, (${plan.domain}) AS ${IN_DOMAIN}, ` +
    `coalesce((${plan.unexpected}), false) AS ${UNEXPECTED} FROM ${table})`;
  const missing = plan.missingColumn
    ? `, count(*) FILTER (WHERE ${plan.missingColumn} IS NULL) AS missing_count`
    : '';
  result.sql =
    `${source} SELECT count(*) AS element_count, ` +
    `count(*) FILTER (WHERE ${IN_DOMAIN}) AS evaluated_count, ` +
    `count(*) FILTER (WHERE ${IN_DOMAIN} AND ${UNEXPECTED}) AS unexpected_count${missing} FROM scanned`;
  result.params = plan.params.values;
  const row = (await conn.runAndReadAll(result.sql, result.params)).getRowObjects()[0] ?? {};
  const element = toNumber(row.element_count);
  const evaluated = toNumber(row.evaluated_count);
  const unexpected = toNumber(row.unexpected_count);
  const observed: ObservedValue = {
    element_count: element,
    evaluated_count: evaluated,
    unexpected_count: unexpected,
    unexpected_percent: evaluated === 0 ? 0 : (unexpected / evaluated) * 100,
  };
  if (plan.missingColumn) observed.missing_count = toNumber(row.missing_count);
  if (e.expectation === 'expect_column_null_fraction_to_be_at_most') {
    const fraction = element === 0 ? 0 : unexpected / element;
    observed.null_fraction = fraction;
    result.success = fraction <= e.max_null_fraction;
  } else {
    const mostly = 'mostly' in e ? e.mostly : 1;
    // Integer comparison (passing >= mostly × evaluated) avoids a float ratio landing just below `mostly`.
    result.success = evaluated === 0 || evaluated - unexpected >= mostly * evaluated - 1e-9;
  }
  result.observed = observed;
  if (!result.success && unexpected > 0 && maxFailingRows > 0) {
    const rows = await conn.runAndReadAll(
      `${source} SELECT * EXCLUDE (${IN_DOMAIN}, ${UNEXPECTED}) FROM scanned ` +
        `WHERE ${IN_DOMAIN} AND ${UNEXPECTED} LIMIT ${Math.floor(maxFailingRows)}`,
      result.params,
    );
    result.failing_rows = rows.getRowObjectsJson();
  }
}

function withinBounds(value: number, min?: number, max?: number): boolean {
  return (min === undefined || value >= min) && (max === undefined || value <= max);
}

async function runTableLevel(
  conn: DuckDBConnection,
  table: string,
  e: Expectation,
  result: ExpectationResult,
): Promise<void> {
  switch (e.expectation) {
    case 'expect_table_row_count_to_be_between': {
      result.sql = `SELECT count(*) AS row_count FROM ${table}`;
      const row = (await conn.runAndReadAll(result.sql)).getRowObjects()[0] ?? {};
      const count = toNumber(row.row_count);
      result.observed = { row_count: count };
      result.success = withinBounds(count, e.min, e.max);
      return;
    }
    case 'expect_table_row_count_ratio_to_be_between': {
      result.sql =
        `SELECT (SELECT count(*) FROM ${table}) AS row_count, ` +
        `(SELECT count(*) FROM ${quoteTable(e.other_table)}) AS other_row_count`;
      const row = (await conn.runAndReadAll(result.sql)).getRowObjects()[0] ?? {};
      const count = toNumber(row.row_count);
      const other = toNumber(row.other_row_count);
      // Two empty tables agree (ratio 1), so a fresh lake passes; rows against an empty table cannot.
      const ratio = other === 0 ? (count === 0 ? 1 : null) : count / other;
      result.observed = { row_count: count, other_row_count: other, ratio };
      result.success = ratio !== null && withinBounds(ratio, e.min_ratio, e.max_ratio);
      if (ratio === null) result.error = `${e.other_table} is empty; the ratio is undefined`;
      return;
    }
    case 'expect_column_values_to_be_of_type': {
      // DESCRIBE reports the declared type even for an empty table, which typeof() cannot.
      result.sql = `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${table})`;
      const rows = (await conn.runAndReadAll(result.sql)).getRowObjects();
      const found = rows.find((r) => r.column_name === e.column);
      if (!found) {
        result.observed = { observed_type: null };
        result.error = `column ${e.column} not found in ${table}`;
        return;
      }
      const observedType = String(found.column_type);
      result.observed = { observed_type: observedType };
      result.success = normalizeType(observedType) === normalizeType(e.type);
      return;
    }
    default:
      result.error = `expectation ${e.expectation} has no runner`;
  }
}

function normalizeType(type: string): string {
  return type.toUpperCase().replace(/\s+/g, '');
}

/** Runs one expectation; never throws. */
export async function runExpectation(
  conn: DuckDBConnection,
  tableName: string,
  e: Expectation,
  maxFailingRows = DEFAULT_MAX_FAILING_ROWS,
): Promise<ExpectationResult> {
  const result = baseResult(e);
  try {
    const table = quoteTable(tableName);
    const plan = mapPlan(e);
    if (plan) await runMap(conn, table, e, plan, result, maxFailingRows);
    else await runTableLevel(conn, table, e, result);
  } catch (cause) {
    result.success = false;
    result.error = errorMessage(cause);
  }
  return result;
}

/**
 * Runs every expectation of `suite` in order, one statement at a time on
 * `conn` (a DuckDB connection must not run statements concurrently).
 */
export async function runSuite(
  conn: DuckDBConnection,
  suite: Suite,
  options: RunSuiteOptions = {},
): Promise<SuiteResult> {
  const now = options.now ?? Date.now;
  const maxFailingRows = Math.max(0, options.maxFailingRows ?? DEFAULT_MAX_FAILING_ROWS);
  const startedAt = new Date(now()).toISOString();
  const results: ExpectationResult[] = [];
  for (const e of suite.expectations) {
    results.push(await runExpectation(conn, suite.table, e, maxFailingRows));
  }
  return {
    suite: suite.name,
    table: suite.table,
    success: results.every((r) => r.success || r.severity === 'warning'),
    started_at: startedAt,
    finished_at: new Date(now()).toISOString(),
    results,
  };
}
