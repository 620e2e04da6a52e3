/**
 * Naming what the sandbox refuses.
 *
 * These helpers only build messages. Whether a statement may run is decided
 * by DuckDB's own parser and binder in `sandbox.ts` (statement count,
 * `json_serialize_sql`, the prepared statement's type); a keyword scan is too
 * easy to fool to be a gate, but it is good enough to tell the caller what
 * they wrote.
 */

/**
 * The first SQL keyword of `sql`, upper-cased, after whitespace, comments
 * (`-- …`, `/* … *\/`) and opening parentheses; `''` when there is none.
 */
export function leadingKeyword(sql: string): string {
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i];
    if (ch === undefined) break;
    if (/\s/.test(ch) || ch === '(') {
      i += 1;
    } else if (sql.startsWith('--', i)) {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end + 1;
    } else if (sql.startsWith('/*', i)) {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? sql.length : end + 2;
    } else {
      break;
    }
  }
  const match = /^[A-Za-z_]+/.exec(sql.slice(i));
  return match ? match[0].toUpperCase() : '';
}

const READ_ONLY = 'queries are read-only';

/** Why each kind of non-SELECT statement is refused, by its leading keyword. */
const REASONS: Readonly<Record<string, string>> = {
  COPY: READ_ONLY,
  INSERT: READ_ONLY,
  UPDATE: READ_ONLY,
  DELETE: READ_ONLY,
  MERGE: READ_ONLY,
  TRUNCATE: READ_ONLY,
  UPSERT: READ_ONLY,
  EXPORT: READ_ONLY,
  IMPORT: READ_ONLY,
  CREATE: `${READ_ONLY} and cannot change the catalog`,
  DROP: `${READ_ONLY} and cannot change the catalog`,
  ALTER: `${READ_ONLY} and cannot change the catalog`,
  COMMENT: `${READ_ONLY} and cannot change the catalog`,
  ATTACH: 'queries may only read the lake views, not other databases',
  DETACH: 'queries may only read the lake views, not other databases',
  USE: 'queries may only read the lake views, not other databases',
  SET: 'the sandbox configuration is locked',
  RESET: 'the sandbox configuration is locked',
  PRAGMA: 'the sandbox configuration is locked (use DESCRIBE or SHOW TABLES to inspect views)',
  INSTALL: 'extensions cannot be installed or loaded',
  LOAD: 'extensions cannot be installed or loaded',
  FORCE: 'extensions cannot be installed or loaded',
  CALL: 'only a SELECT may run',
  EXPLAIN: 'only a SELECT may run',
  PREPARE: 'only a SELECT may run',
  EXECUTE: 'only a SELECT may run',
  DEALLOCATE: 'only a SELECT may run',
  BEGIN: 'each query runs on its own; transaction control is not available',
  START: 'each query runs on its own; transaction control is not available',
  COMMIT: 'each query runs on its own; transaction control is not available',
  END: 'each query runs on its own; transaction control is not available',
  ROLLBACK: 'each query runs on its own; transaction control is not available',
  ABORT: 'each query runs on its own; transaction control is not available',
  CHECKPOINT: 'maintenance statements are not available',
  VACUUM: 'maintenance statements are not available',
  ANALYZE: 'maintenance statements are not available',
};

/**
 * The refusal message for a statement that DuckDB parsed as something other
 * than a SELECT. `keyword` is `leadingKeyword(sql)`.
 */
export function describeRefusedStatement(keyword: string): string {
  if (keyword === 'WITH') {
    return `a WITH statement that is not a SELECT (INSERT, UPDATE, DELETE, …) is not allowed: ${READ_ONLY}`;
  }
  const reason = REASONS[keyword];
  if (reason !== undefined) return `${keyword} is not allowed: ${reason}`;
  const what = keyword === '' ? 'this statement' : keyword;
  return `${what} is not allowed: only one read-only SELECT statement may run`;
}

/** The refusal message for `count` statements (any count but one). */
export function describeStatementCount(count: number, sql: string): string {
  const base = `only one SELECT statement is allowed; got ${count} statements`;
  // DuckDB expands a PIVOT without an IN list into CREATE TYPE + SELECT, so
  // a single PIVOT reaches the count check as two statements.
  return /\bpivot\b/i.test(sql)
    ? `${base} (a PIVOT without an IN (…) list of values counts as two: list the values)`
    : base;
}
