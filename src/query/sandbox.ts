/**
 * SQL over history for untrusted callers (`canopy query`, `POST /api/query`).
 *
 * Each sandbox owns a private in-memory DuckDB instance, separate from the
 * hot store, holding nothing but views over the Parquet lake. Two independent
 * layers keep a query inside its bounds:
 *
 * 1. Statement checks, before anything runs: DuckDB's parser must find exactly
 *    one statement, `json_serialize_sql` (which serializes SELECT statements
 *    only, without binding them) must accept it, and the prepared statement's
 *    type must be SELECT with no parameters. Writes, COPY, ATTACH/DETACH,
 *    SET/RESET/PRAGMA, INSTALL/LOAD, EXPORT, CALL, EXPLAIN and transaction
 *    control are refused here, with CANOPY_QUERY_REFUSED naming the statement.
 * 2. Engine settings, locked before the first view exists (verified on
 *    DuckDB 1.5.6, pinned by `sandbox.test.ts`):
 *    - `allowed_directories = [lakeRoot]` then `enable_external_access = false`:
 *      every file a query opens (`read_csv`, `read_text`, `glob`, `read_parquet`,
 *      COPY, ATTACH, EXPORT, …) must lie under lakeRoot. DuckDB resolves `..`
 *      and symbolic links before the check, so `<lake>/../../etc/passwd` and a
 *      link inside the lake that points outside it are refused; a sibling
 *      folder sharing the prefix (`<lake>-other`) is refused too. It also turns
 *      off extension loading and network paths. DuckDB adds `temp_directory`
 *      to the allowed list, so that is a private folder of this sandbox.
 *      Note that the lake itself stays writable to COPY as far as DuckDB is
 *      concerned: layer 1 is what keeps queries read-only.
 *    - `autoinstall_known_extensions = false`, `autoload_known_extensions =
 *      false`, `allow_community_extensions = false`, `extension_directory` in
 *      the sandbox's temp folder: no query can make DuckDB fetch or load code.
 *      Parquet, JSON and ICU are built in.
 *    - `lock_configuration = true`: no statement can change any setting
 *      afterwards, including the ones above (DuckDB also refuses to change
 *      `allowed_directories` once external access is off).
 *    - `memory_limit`, `threads`, `max_temp_directory_size`: bound what one
 *      query takes from the process; larger sorts and joins spill to the
 *      temp folder up to that size, then fail.
 *    - `TimeZone = 'UTC'`, so `date_trunc` on TIMESTAMPTZ agrees with the
 *      lake's UTC partitions.
 *    `allowed_directories` cannot be given when the instance is created (the C
 *    API refuses it), so the settings are applied by SQL right after creation,
 *    before any view; views are created under the lock, which is also how
 *    `refresh` works.
 *
 * Limits: each `run` has `timeoutMs`, counted from the call (time waiting in
 * the queue counts), after which the query is interrupted and the call
 * rejects with CANOPY_QUERY_TIMEOUT; the sandbox stays usable. At most
 * `maxRows` rows are returned, read chunk by chunk from a streaming result
 * (never more than maxRows + 1 rows are converted), and `truncated` says
 * whether more existed.
 *
 * Concurrency: one connection, one queue; `run` and `refresh` execute one at
 * a time in call order. DuckDB already parallelises a single query over
 * `threads`, a second connection would only split the same memory limit, and
 * a running query holds a libuv pool thread that the rest of the process
 * (hot store, file I/O) needs. Callers that expect many users should bound
 * their own request rate; the timeout bounds every caller's wait.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  DuckDBInstance,
  StatementType,
  VARCHAR,
  type DuckDBConnection,
  type DuckDBExtractedStatements,
  type DuckDBResult,
  type Json,
} from '@duckdb/node-api';
import { pino, type Logger } from 'pino';
import { CanopyError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import { jsonSafeConverter } from './convert.js';
import { describeRefusedStatement, describeStatementCount, leadingKeyword } from './statement.js';
import { sqlString } from '../lake/views.js';

export interface QuerySandboxOptions {
  /** Absolute folder holding the Parquet lake; the only folder queries may read. */
  lakeRoot: string;
  /**
   * View name (a plain identifier) → one SELECT over files under lakeRoot, e.g.
   * `SELECT * FROM read_parquet('<lakeRoot>/silver/readings/**\/*.parquet',
   * hive_partitioning = true, union_by_name = true)`. See `canopyLakeViews`.
   * Views are created in name order and may not refer to one another.
   */
  views: Record<string, string>;
  /** Per-query time limit, counted from the `run` call. Default 10 000. */
  timeoutMs?: number;
  /** Most rows a result returns; more sets `truncated`. Default 10 000. */
  maxRows?: number;
  /** DuckDB `memory_limit` of the sandbox instance. Default `'512MB'`. */
  memoryLimit?: string;
  /** DuckDB `threads`. Default: the machine's parallelism, at most 4. */
  threads?: number;
  /** DuckDB `max_temp_directory_size`: how much a query may spill to disk. Default `'1GB'`. */
  maxTempSize?: string;
  logger?: Logger;
}

export interface QueryColumn {
  name: string;
  /** DuckDB's type name, e.g. `VARCHAR`, `TIMESTAMP WITH TIME ZONE`, `DECIMAL(18,3)`. */
  type: string;
}

export interface QueryResult {
  columns: QueryColumn[];
  /** One array per row, in column order; values are JSON-safe (see `convert.ts`). */
  rows: Json[][];
  /** `rows.length`. */
  rowCount: number;
  /** True when the query had more than `maxRows` rows and only the first maxRows came back. */
  truncated: boolean;
  /** Time from the `run` call to the result, queue wait included. */
  elapsedMs: number;
}

export interface SkippedView {
  name: string;
  /** DuckDB's reason, e.g. `IO Error: No files found that match the pattern "…"`. */
  reason: string;
}

export interface ViewReport {
  /** Views that exist now, sorted. */
  created: string[];
  /** Views that could not be created (most often: no file matches yet), sorted by name. */
  skipped: SkippedView[];
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_ROWS = 10_000;
const DEFAULT_MEMORY_LIMIT = '512MB';
const DEFAULT_MAX_TEMP_SIZE = '1GB';
/** How often an expired query is interrupted again (see `execute`). */
const REINTERRUPT_MS = 25;
const VIEW_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

type State = 'open' | 'closing' | 'closed';

/** Set while a query runs, so that the timer and `close` can stop it. */
interface Running {
  timedOut: boolean;
  closing: boolean;
}

export class QuerySandbox {
  private readonly queue = new SerialQueue();
  private state: State = 'open';
  private closingPromise: Promise<void> | undefined;
  private definitions: Record<string, string> = {};
  private available: string[] = [];
  private skipped: SkippedView[] = [];
  private running: Running | undefined;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly conn: DuckDBConnection,
    private readonly tempDir: string,
    private readonly timeoutMs: number,
    private readonly maxRows: number,
    private readonly log: Logger,
  ) {}

  /**
   * Starts a locked-down instance and creates the views. A view that cannot
   * be created (no file matches its glob yet, a bad definition) is skipped and
   * reported by `skippedViews()`; it never fails the others.
   * Throws CANOPY_CONFIG_INVALID for bad options or when DuckDB refuses them
   * (e.g. an unparsable memory limit).
   */
  static async create(options: QuerySandboxOptions): Promise<QuerySandbox> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
    const threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism()));
    const problems: string[] = [];
    if (!path.isAbsolute(options.lakeRoot)) problems.push('lakeRoot must be an absolute path');
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
      problems.push('timeoutMs must be a positive integer');
    if (!Number.isInteger(maxRows) || maxRows <= 0)
      problems.push('maxRows must be a positive integer');
    if (!Number.isInteger(threads) || threads <= 0)
      problems.push('threads must be a positive integer');
    problems.push(...viewNameProblems(options.views));
    if (problems.length > 0) {
      throw new CanopyError(
        'CANOPY_CONFIG_INVALID',
        `Invalid SQL sandbox options: ${problems.join('; ')}`,
        { details: problems },
      );
    }
    const log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'query-sandbox' });
    const lakeRoot = path.normalize(options.lakeRoot);

    const tempDir = await mkdtemp(path.join(tmpdir(), 'canopy-query-'));
    let instance: DuckDBInstance | undefined;
    let conn: DuckDBConnection | undefined;
    try {
      instance = await DuckDBInstance.create(':memory:', {
        autoinstall_known_extensions: 'false',
        autoload_known_extensions: 'false',
        allow_community_extensions: 'false',
        extension_directory: path.join(tempDir, 'extensions'),
        temp_directory: path.join(tempDir, 'spill'),
        max_temp_directory_size: options.maxTempSize ?? DEFAULT_MAX_TEMP_SIZE,
        memory_limit: options.memoryLimit ?? DEFAULT_MEMORY_LIMIT,
        threads: String(threads),
      });
      conn = await instance.connect();
      await lockDown(conn, lakeRoot);
    } catch (cause) {
      conn?.closeSync();
      instance?.closeSync();
      await rm(tempDir, { recursive: true, force: true });
      throw new CanopyError(
        'CANOPY_CONFIG_INVALID',
        `Cannot start the SQL sandbox: ${errorMessage(cause)}`,
        { cause },
      );
    }
    const sandbox = new QuerySandbox(instance, conn, tempDir, timeoutMs, maxRows, log);
    try {
      await sandbox.refresh(options.views);
    } catch (err) {
      await sandbox.close();
      throw err;
    }
    return sandbox;
  }

  /** Names of the views queries can use now, sorted. */
  views(): string[] {
    return [...this.available];
  }

  /** Views that were asked for but do not exist, with DuckDB's reason. */
  skippedViews(): SkippedView[] {
    return this.skipped.map((v) => ({ ...v }));
  }

  /**
   * Re-creates the views (with `views`, the new set replaces the old one;
   * without, the current definitions are re-read). Call it when the lake gains
   * a layer that had no file before, or when a layer's columns change. Queued
   * with queries, so no query sees a half-done refresh. Never throws for a
   * single view: failures are reported in the result and by `skippedViews()`.
   * Throws CANOPY_CONFIG_INVALID for a view name that is not an identifier,
   * CANOPY_QUERY_CLOSED after `close`.
   */
  refresh(views?: Record<string, string>): Promise<ViewReport> {
    if (this.state !== 'open') return Promise.reject(closedError());
    const next = views ?? this.definitions;
    const problems = viewNameProblems(next);
    if (problems.length > 0) {
      return Promise.reject(
        new CanopyError(
          'CANOPY_CONFIG_INVALID',
          `Invalid SQL sandbox views: ${problems.join('; ')}`,
          {
            details: problems,
          },
        ),
      );
    }
    return this.queue.run(() => this.refreshNow({ ...next }));
  }

  private async refreshNow(next: Record<string, string>): Promise<ViewReport> {
    if (this.state !== 'open') throw closedError();
    const created: string[] = [];
    const skipped: SkippedView[] = [];
    for (const name of Object.keys(this.definitions)) {
      if (!(name in next)) await this.conn.run(`DROP VIEW IF EXISTS ${quoteIdent(name)}`);
    }
    for (const [name, sql] of Object.entries(next).sort(([a], [b]) => a.localeCompare(b))) {
      try {
        // The definitions are trusted configuration, but a typo (or a quote in
        // a path) must not turn into a second statement.
        await this.parseSingleSelect(sql);
        await this.conn.run(`CREATE OR REPLACE VIEW ${quoteIdent(name)} AS\n${sql}\n`);
        created.push(name);
      } catch (err) {
        await this.conn.run(`DROP VIEW IF EXISTS ${quoteIdent(name)}`);
        skipped.push({ name, reason: firstLine(errorMessage(err)) });
      }
    }
    this.definitions = next;
    this.available = created;
    this.skipped = skipped;
    if (skipped.length > 0) this.log.info({ skipped }, 'some SQL views are not available');
    return { created: [...created], skipped: skipped.map((v) => ({ ...v })) };
  }

  /**
   * Runs one read-only SELECT. Rejects with CANOPY_QUERY_REFUSED (not one
   * SELECT, or a file outside the lake), CANOPY_QUERY_FAILED (DuckDB could not
   * run it; DuckDB's message included), CANOPY_QUERY_TIMEOUT (over the time
   * limit), CANOPY_QUERY_CLOSED (closed or closing). A rejected call leaves
   * the sandbox usable; retrying a refused or failed query gives the same answer.
   */
  run(sql: string): Promise<QueryResult> {
    if (this.state !== 'open') return Promise.reject(closedError());
    const calledAt = performance.now();
    return this.queue.run(() => this.execute(sql, calledAt));
  }

  private async execute(sql: string, calledAt: number): Promise<QueryResult> {
    if (this.state !== 'open') throw closedError();
    const remaining = this.timeoutMs - (performance.now() - calledAt);
    if (remaining <= 0) throw this.timeoutError(performance.now() - calledAt);
    const running: Running = { timedOut: false, closing: false };
    this.running = running;
    // DuckDB drops an interrupt that arrives while no statement is executing
    // (between two of our calls, or before a call reaches its worker thread),
    // so once the deadline passes the query is interrupted again until it
    // stops. Both timers are cleared before the next queued task starts, so
    // no interrupt can reach another caller's query.
    let repeat: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => {
      running.timedOut = true;
      this.conn.interrupt();
      repeat = setInterval(() => this.conn.interrupt(), REINTERRUPT_MS);
    }, remaining);
    try {
      return await this.executeChecked(sql, calledAt, running);
    } catch (err) {
      if (running.closing) throw closedError();
      if (running.timedOut) throw this.timeoutError(performance.now() - calledAt, err);
      if (err instanceof CanopyError) throw err;
      throw this.mapEngineError(err);
    } finally {
      clearTimeout(deadline);
      clearInterval(repeat);
      this.running = undefined;
    }
  }

  private async executeChecked(
    sql: string,
    calledAt: number,
    running: Running,
  ): Promise<QueryResult> {
    const stopIfExpired = (): void => {
      if (running.timedOut || running.closing) throw new Error('stopped');
    };
    const extracted = await this.parseSingleSelect(sql);
    stopIfExpired();
    // Binding happens here: view globs expand and file access is checked.
    const prepared = await extracted.prepare(0);
    if (prepared.statementType !== StatementType.SELECT) {
      const kind = StatementType[prepared.statementType] ?? 'this statement';
      throw refused(`${kind} is not allowed: only one read-only SELECT statement may run`);
    }
    if (prepared.parameterCount > 0) {
      throw refused('query parameters ($1, ?) are not supported: write the values into the SQL');
    }
    stopIfExpired();
    const result = await prepared.stream();
    const columns = readColumns(result);
    const rows: Json[][] = [];
    const wanted = this.maxRows + 1;
    while (rows.length < wanted) {
      stopIfExpired();
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      // Convert only what is kept: a chunk holds up to 2048 rows.
      const take = Math.min(chunk.rowCount, wanted - rows.length);
      for (let i = 0; i < take; i += 1) rows.push(chunk.convertRowValues(i, jsonSafeConverter));
    }
    // The rest of a truncated result is dropped with the result object; the
    // connection's next query closes DuckDB's side of it.
    const truncated = rows.length > this.maxRows;
    if (truncated) rows.length = this.maxRows;
    return {
      columns,
      rows,
      rowCount: rows.length,
      truncated,
      elapsedMs: Math.round((performance.now() - calledAt) * 1000) / 1000,
    };
  }

  /**
   * Parses `sql` (nothing is bound or executed) and returns it when it is
   * exactly one SELECT. Throws CANOPY_QUERY_REFUSED naming what else it is,
   * or CANOPY_QUERY_FAILED for a syntax error.
   */
  private async parseSingleSelect(sql: string): Promise<DuckDBExtractedStatements> {
    if (sql.trim() === '') throw refused('the query is empty: send one SELECT statement');
    let extracted: DuckDBExtractedStatements;
    try {
      extracted = await this.conn.extractStatements(sql);
    } catch (err) {
      const message = errorMessage(err);
      // The node binding reports "no statement" (only comments or `;`) as a
      // bare native-callback error; a real syntax error names the parser.
      if (!/Parser Error/i.test(message)) {
        throw refused('the query has no SQL statement: send one SELECT statement');
      }
      throw new CanopyError(
        'CANOPY_QUERY_FAILED',
        `the query failed: ${message.replace(/^Failed to extract statements: /, '')}`,
        { cause: err },
      );
    }
    if (extracted.count !== 1) throw refused(describeStatementCount(extracted.count, sql));
    // json_serialize_sql serializes SELECT statements only, and only parses:
    // a write cannot reach the binder (where, e.g., INSERT INTO a view would
    // fail with a catalog error instead of a refusal).
    const reader = await this.conn.runAndReadAll(
      'SELECT json_serialize_sql($1::VARCHAR)',
      [sql],
      [VARCHAR],
    );
    const serialized = reader.getRowsJson()[0]?.[0];
    const parsed: unknown = typeof serialized === 'string' ? JSON.parse(serialized) : undefined;
    const isSelect =
      typeof parsed === 'object' &&
      parsed !== null &&
      (parsed as { error?: unknown }).error === false;
    if (!isSelect) throw refused(describeRefusedStatement(leadingKeyword(sql)));
    return extracted;
  }

  private mapEngineError(err: unknown): CanopyError {
    const message = errorMessage(err);
    if (/file system operations are disabled by configuration/i.test(message)) {
      const target = /Cannot access (?:file|directory) "([^"]*)"/.exec(message)?.[1];
      return new CanopyError(
        'CANOPY_QUERY_REFUSED',
        target === undefined
          ? `file access outside the lake is not allowed (${firstLine(message)})`
          : `file access outside the lake is not allowed: "${target}"`,
        { cause: err },
      );
    }
    if (/configuration has been locked/i.test(message)) {
      return new CanopyError(
        'CANOPY_QUERY_REFUSED',
        'changing settings is not allowed: the sandbox configuration is locked',
        { cause: err },
      );
    }
    if (/^Permission Error/i.test(message)) {
      return new CanopyError(
        'CANOPY_QUERY_REFUSED',
        `the sandbox does not allow this: ${firstLine(message)}`,
        { cause: err },
      );
    }
    const missing = /Table with name (\S+) does not exist/i.exec(message)?.[1];
    const skipped = this.skipped.find((v) => v.name.toLowerCase() === missing?.toLowerCase());
    if (skipped !== undefined) {
      return new CanopyError(
        'CANOPY_QUERY_FAILED',
        `the query failed: view ${skipped.name} is not available yet (${skipped.reason}); it appears once the lake has data for it`,
        { cause: err },
      );
    }
    return new CanopyError('CANOPY_QUERY_FAILED', `the query failed: ${message}`, { cause: err });
  }

  private timeoutError(elapsedMs: number, cause?: unknown): CanopyError {
    return new CanopyError(
      'CANOPY_QUERY_TIMEOUT',
      `the query was stopped at the sandbox time limit of ${this.timeoutMs} ms (${Math.round(elapsedMs)} ms since the call, waiting for earlier queries included); narrow it, e.g. with a time range or a LIMIT`,
      cause === undefined ? {} : { cause },
    );
  }

  /**
   * Stops the running query, refuses queued and new ones with
   * CANOPY_QUERY_CLOSED, then releases DuckDB and the temp folder. Idempotent.
   */
  close(): Promise<void> {
    this.closingPromise ??= this.closeNow();
    return this.closingPromise;
  }

  private async closeNow(): Promise<void> {
    this.state = 'closing';
    // Interrupted repeatedly for the reason given in `execute`; queued tasks
    // see the state and refuse without touching DuckDB.
    const stopRunning = (): void => {
      if (this.running) {
        this.running.closing = true;
        this.conn.interrupt();
      }
    };
    stopRunning();
    const repeat = setInterval(stopRunning, REINTERRUPT_MS);
    try {
      await this.queue.drain();
    } finally {
      clearInterval(repeat);
    }
    try {
      this.conn.closeSync();
      this.instance.closeSync();
    } catch (err) {
      this.log.warn({ err }, 'closing the SQL sandbox instance failed');
    }
    await rm(this.tempDir, { recursive: true, force: true });
    this.state = 'closed';
  }
}

/**
 * Applies the sandbox settings (see the module comment) and checks that they
 * took: a sandbox that is not locked must not start.
 */
async function lockDown(conn: DuckDBConnection, lakeRoot: string): Promise<void> {
  // ICU is built in but, with autoloading off, must be loaded before
  // TimeZone can be set.
  await conn.run('LOAD icu');
  await conn.run(`SET TimeZone = 'UTC'`);
  await conn.run(`SET allowed_directories = [${sqlString(lakeRoot)}]`);
  await conn.run('SET enable_external_access = false');
  await conn.run('SET lock_configuration = true');
  const reader = await conn.runAndReadAll(
    `SELECT current_setting('enable_external_access'), current_setting('lock_configuration'),
            current_setting('autoload_known_extensions'), current_setting('autoinstall_known_extensions')`,
  );
  const settings = reader.getRowsJson()[0] ?? [];
  const expected = [false, true, false, false];
  if (expected.some((value, i) => settings[i] !== value)) {
    throw new Error(
      `the sandbox settings did not take: enable_external_access, lock_configuration, autoload, autoinstall = ${JSON.stringify(settings)}`,
    );
  }
}

function readColumns(result: DuckDBResult): QueryColumn[] {
  const columns: QueryColumn[] = [];
  for (let i = 0; i < result.columnCount; i += 1) {
    columns.push({ name: result.columnName(i), type: result.columnType(i).toString() });
  }
  return columns;
}

function viewNameProblems(views: Record<string, string>): string[] {
  return Object.keys(views)
    .filter((name) => !VIEW_NAME.test(name))
    .map(
      (name) => `view name ${JSON.stringify(name)} is not an identifier ([A-Za-z_][A-Za-z0-9_]*)`,
    );
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function refused(message: string): CanopyError {
  return new CanopyError('CANOPY_QUERY_REFUSED', message);
}

function closedError(): CanopyError {
  return new CanopyError('CANOPY_QUERY_CLOSED', 'the SQL sandbox is closed');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function firstLine(text: string): string {
  return text.split('\n', 1)[0] ?? text;
}
