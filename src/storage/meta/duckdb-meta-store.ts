/**
 * The default metadata store: alerts, their events, the notification outbox,
 * the evaluator's subject states and workflow run history in one DuckDB file
 * of their own (`<dataDir>/meta.duckdb`), written by this process only. The
 * workflow queries live in duckdb-workflows.ts; this class queues them.
 *
 * Not the hot-store file: metadata is small, row-at-a-time and updated in
 * place, and keeping it apart keeps those transactions off the ingest commit
 * path and lets the file be inspected or copied on its own.
 *
 * Concurrency: one connection and one promise chain (`SerialQueue`), so an
 * `apply` transaction never interleaves with another call. Durability: a
 * DuckDB COMMIT writes and fsyncs its WAL before it returns, so a resolved
 * `apply` survives a crash.
 */
import path from 'node:path';
import {
  BIGINT,
  DOUBLE,
  DuckDBInstance,
  INTEGER,
  LIST,
  VARCHAR,
  listValue,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { pino, type Logger } from 'pino';
import type {
  Alert,
  AlertChanges,
  AlertEvent,
  AlertFilter,
  DeliveryOutcome,
  DeliveryRecord,
  OutboxEntry,
  OutboxStats,
  SubjectState,
} from '../../core/alerts.js';
import type { ApiKey, Device, Session, User } from '../../core/auth.js';
import { CanopyError } from '../../core/errors.js';
import type { MetaStore } from '../../core/meta.js';
import { SerialQueue } from '../../core/serial-queue.js';
import type {
  RunDetail,
  RunFilter,
  TaskAttempt,
  TaskInstance,
  WorkflowRun,
} from '../../core/workflows.js';
import {
  Params,
  PreparedStatements,
  bindRows,
  inTransaction,
  ms,
  placeholders,
  rowPlaceholders,
} from './duckdb-sql.js';
import * as auth from './duckdb-auth.js';
import * as workflows from './duckdb-workflows.js';
import {
  ALERT_COLUMNS,
  EVENT_COLUMNS,
  META_MIGRATIONS,
  OUTBOX_COLUMNS,
  SCHEMA_VERSION_TABLE,
  SUBJECT_STATE_COLUMNS,
  alertValues,
  checkAlertLimit,
  checkMigrations,
  errorMessage,
  eventValues,
  locationPrefix,
  outboxValues,
  pendingMigrations,
  toAlert,
  toEvent,
  toOutboxEntry,
  toSubjectState,
  type MetaDialect,
  type MetaMigration,
} from './meta-sql.js';
import { claimDuckDbFile, offlineDuckDbOptions, type DuckDbFileClaim } from '../duckdb-file.js';

export interface DuckDbMetaStoreOptions {
  /** Database file (its folder is created if missing), or `:memory:`. */
  path: string;
  logger?: Logger;
  /** The schema's migrations; tests pass a longer list to stand in for a newer Canopy. */
  migrations?: readonly MetaMigration[];
}

const DIALECT: MetaDialect = { kind: 'duckdb', table: (name) => name };

// Parameter types in the column order of meta-sql's `*_COLUMNS`.
const ALERT_TYPES: readonly DuckDBType[] = [
  VARCHAR, // id
  VARCHAR, // rule_id
  VARCHAR, // subject
  VARCHAR, // sensor_id
  VARCHAR, // location
  VARCHAR, // severity
  VARCHAR, // state
  VARCHAR, // summary
  VARCHAR, // labels
  DOUBLE, // value
  DOUBLE, // threshold
  BIGINT, // opened_at
  BIGINT, // updated_at
  BIGINT, // escalated_at
  BIGINT, // acknowledged_at
  VARCHAR, // acknowledged_by
  BIGINT, // resolved_at
  BIGINT, // snoozed_until
  INTEGER, // tier
  BIGINT, // last_notified_at
  VARCHAR, // notified_channels
];
const EVENT_TYPES: readonly DuckDBType[] = [
  VARCHAR, // id
  VARCHAR, // alert_id
  BIGINT, // at
  VARCHAR, // kind
  VARCHAR, // actor
  VARCHAR, // from_state
  VARCHAR, // to_state
  VARCHAR, // severity
  VARCHAR, // note
  DOUBLE, // value
];
const OUTBOX_TYPES: readonly DuckDBType[] = [
  VARCHAR, // id
  VARCHAR, // alert_id
  VARCHAR, // event_id
  VARCHAR, // channel
  VARCHAR, // payload
  BIGINT, // created_at
  VARCHAR, // status
  INTEGER, // attempts
  BIGINT, // next_attempt_at
  BIGINT, // delivered_at
  VARCHAR, // last_error
];

const RESOLVED_BEFORE = `state = 'resolved' AND resolved_at < $1`;

export class DuckDbMetaStore implements MetaStore {
  private readonly dbPath: string;
  private readonly log: Logger;
  private readonly migrations: readonly MetaMigration[];
  private instance: DuckDBInstance | undefined;
  private conn: DuckDBConnection | undefined;
  /** The hot-path statements (apply, the outbox's reads and delivery records), prepared once. */
  private statements: PreparedStatements | undefined;
  private opening: Promise<void> | undefined;
  /** This process's claim on the database file, while the store holds it. */
  private file: DuckDbFileClaim | undefined;
  /** One connection, one operation at a time: a transaction must not interleave with another call. */
  private readonly queue = new SerialQueue();

  constructor(options: DuckDbMetaStoreOptions) {
    this.dbPath = options.path === ':memory:' ? ':memory:' : path.resolve(options.path);
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ adapter: 'duckdb' });
    this.migrations = options.migrations ?? META_MIGRATIONS;
    checkMigrations(this.migrations);
  }

  /**
   * Opens the file and brings its schema up to date. Idempotent; concurrent
   * calls share one attempt, and a failed attempt may be retried. Throws
   * CANOPY_META_UNAVAILABLE (file locked by another process or already open
   * in this one, bad path, schema newer than this code) with the cause.
   */
  open(): Promise<void> {
    if (this.conn) return Promise.resolve();
    this.opening ??= this.openNow().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async openNow(): Promise<void> {
    this.file = claimDuckDbFile(this.dbPath, (problem, cause) =>
      problem === 'folder'
        ? unavailable(
            `cannot create the folder of the metadata database ${this.dbPath}: ${errorMessage(cause)}`,
            cause,
          )
        : unavailable(
            `the metadata database ${this.dbPath} is already open in this process; open it once and share the store`,
          ),
    );
    try {
      this.instance = await DuckDBInstance.create(this.dbPath, {
        ...offlineDuckDbOptions(this.file.extensionDir),
      });
      this.conn = await this.instance.connect();
      await this.migrate(this.conn);
      this.statements = new PreparedStatements(this.conn);
    } catch (cause) {
      this.shutDown();
      if (cause instanceof CanopyError) throw cause;
      const msg = errorMessage(cause);
      throw unavailable(
        /could not set lock/i.test(msg)
          ? `the metadata database ${this.dbPath} is locked by another process: another Canopy may be running with the same data folder (${msg})`
          : `cannot open the metadata database ${this.dbPath}: ${msg}`,
        cause,
      );
    }
    this.log.info({ path: this.dbPath }, 'metadata store opened');
  }

  private async migrate(conn: DuckDBConnection): Promise<void> {
    await inTransaction(conn, async () => {
      await conn.run(
        `CREATE TABLE IF NOT EXISTS ${SCHEMA_VERSION_TABLE} (version INTEGER NOT NULL, description VARCHAR NOT NULL)`,
      );
      const row = (
        await conn.runAndReadAll(`SELECT coalesce(max(version), 0) FROM ${SCHEMA_VERSION_TABLE}`)
      ).getRows()[0];
      const current = Number(row?.[0] ?? 0);
      for (const m of pendingMigrations(this.migrations, current, this.dbPath)) {
        for (const statement of m.statements(DIALECT)) await conn.run(statement);
        await conn.run(
          `INSERT INTO ${SCHEMA_VERSION_TABLE} VALUES ($1, $2)`,
          [m.version, m.description],
          [INTEGER, VARCHAR],
        );
        this.log.info({ version: m.version }, `metadata schema migrated: ${m.description}`);
      }
    });
  }

  /** Waits for queued work, checkpoints and releases the file. Idempotent. */
  async close(): Promise<void> {
    if (this.opening) await this.opening.catch(() => undefined);
    await this.queue.drain();
    if (this.conn) {
      try {
        await this.conn.run('CHECKPOINT');
      } catch (err) {
        // Not fatal: the WAL holds every committed change and is replayed at open.
        this.log.warn({ err }, 'checkpoint at close failed');
      }
    }
    this.shutDown();
  }

  private shutDown(): void {
    // The connection first: the database (and its file lock) is released only
    // once nothing refers to it.
    try {
      this.conn?.closeSync();
      this.instance?.closeSync();
    } catch (err) {
      this.log.warn({ err }, 'closing the metadata database failed');
    }
    this.conn = undefined;
    this.statements = undefined;
    this.instance = undefined;
    this.file?.release();
    this.file = undefined;
  }

  /** Queues `work` on the connection; rejects with CANOPY_META_UNAVAILABLE unless open. */
  private use<T>(
    work: (conn: DuckDBConnection, statements: PreparedStatements) => Promise<T>,
  ): Promise<T> {
    return this.queue.run(() => {
      if (!this.conn || !this.statements) {
        throw unavailable(`the metadata store ${this.dbPath} is not open`);
      }
      return work(this.conn, this.statements);
    });
  }

  private rows(sql: string, values: DuckDBValue[] = [], types: DuckDBType[] = []) {
    return this.use(async (conn) => (await conn.runAndReadAll(sql, values, types)).getRows());
  }

  /**
   * A handful of statements whatever the size of the set: per table, one
   * multi-row statement per chunk of ROWS_PER_STATEMENT rows, each from the
   * prepared-statement cache. The result equals applying the rows one at a
   * time in order: a repeated alert id ends as its last version, a repeated
   * outbox id as its first, a repeated subject state as its last save.
   */
  apply(changes: AlertChanges): Promise<void> {
    return this.use((conn, statements) =>
      inTransaction(conn, async () => {
        // Replace = delete + insert, see the DDL in meta-sql.ts for why no key.
        const alerts = lastById(changes.alerts);
        await chunked(alerts, async (rows) => {
          await statements.run(
            `DELETE FROM alerts WHERE id IN (${placeholders(rows.length)})`,
            rows.map((a) => a.id),
            rows.map(() => VARCHAR),
          );
          await statements.run(
            `INSERT INTO alerts (${ALERT_COLUMNS}) VALUES ${rowPlaceholders(rows.length, ALERT_TYPES.length)}`,
            ...bindRows(rows.map(alertValues), ALERT_TYPES),
          );
        });
        // Events keep their primary key: a repeated id fails the set, within it too.
        await chunked(changes.events, (rows) =>
          statements.run(
            `INSERT INTO alert_events (${EVENT_COLUMNS}) VALUES ${rowPlaceholders(rows.length, EVENT_TYPES.length)}`,
            ...bindRows(rows.map(eventValues), EVENT_TYPES),
          ),
        );
        await chunked(firstById(changes.outbox), (rows) =>
          statements.run(
            `INSERT INTO alert_outbox (${OUTBOX_COLUMNS})
             SELECT * FROM (VALUES ${rowPlaceholders(rows.length, OUTBOX_TYPES.length)}) AS v(${OUTBOX_COLUMNS})
             WHERE NOT EXISTS (SELECT 1 FROM alert_outbox o WHERE o.id = v.id)`,
            ...bindRows(rows.map(outboxValues), OUTBOX_TYPES),
          ),
        );
        // Clears first: a pair both cleared and saved in one step ends saved.
        const saved = lastBySubject(changes.subjectStates);
        const touched = [
          ...new Map(
            [...changes.clearedSubjectStates, ...saved].map((s) => [subjectKey(s), s]),
          ).values(),
        ];
        await chunked(touched, (rows) =>
          statements.run(
            `DELETE FROM alert_subject_states USING (VALUES ${rowPlaceholders(rows.length, 2)}) AS v(rule_id, subject)
             WHERE alert_subject_states.rule_id = v.rule_id AND alert_subject_states.subject = v.subject`,
            rows.flatMap((s) => [s.ruleId, s.subject]),
            rows.flatMap(() => [VARCHAR, VARCHAR]),
          ),
        );
        await chunked(saved, (rows) =>
          statements.run(
            `INSERT INTO alert_subject_states (${SUBJECT_STATE_COLUMNS}) VALUES ${rowPlaceholders(rows.length, 3)}`,
            rows.flatMap((s) => [s.ruleId, s.subject, JSON.stringify(s.state)]),
            rows.flatMap(() => [VARCHAR, VARCHAR, VARCHAR]),
          ),
        );
      }),
    );
  }

  async activeAlerts(): Promise<Alert[]> {
    const rows = await this.rows(
      `SELECT ${ALERT_COLUMNS} FROM alerts WHERE state <> 'resolved' ORDER BY opened_at, id`,
    );
    return rows.map(toAlert);
  }

  async listAlerts(filter: AlertFilter): Promise<Alert[]> {
    const limit = checkAlertLimit(filter.limit);
    const q = new Params();
    const where: string[] = [];
    if (filter.state) {
      where.push(`list_contains(${q.add(listValue([...filter.state]), LIST(VARCHAR))}, state)`);
    }
    if (filter.severity) {
      where.push(
        `list_contains(${q.add(listValue([...filter.severity]), LIST(VARCHAR))}, severity)`,
      );
    }
    if (filter.ruleId !== undefined) where.push(`rule_id = ${q.add(filter.ruleId, VARCHAR)}`);
    if (filter.sensorId !== undefined) {
      where.push(`sensor_id = ${q.add(filter.sensorId, VARCHAR)}`);
    }
    if (filter.location !== undefined) {
      const p = q.add(locationPrefix(filter.location), VARCHAR);
      // starts_with, not LIKE: `_` and `%` in a location are plain characters.
      where.push(`(location = ${p} OR starts_with(location, ${p} || '/'))`);
    }
    if (filter.to !== undefined) where.push(`opened_at < ${q.add(ms(filter.to), BIGINT)}`);
    if (filter.from !== undefined) {
      where.push(`(resolved_at IS NULL OR resolved_at >= ${q.add(ms(filter.from), BIGINT)})`);
    }
    const whereSql = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
    const rows = await this.rows(
      `SELECT ${ALERT_COLUMNS} FROM alerts${whereSql} ORDER BY opened_at DESC, id DESC LIMIT ${q.add(BigInt(limit), BIGINT)}`,
      q.values,
      q.types,
    );
    return rows.map(toAlert);
  }

  async getAlert(id: string): Promise<Alert | undefined> {
    const rows = await this.rows(
      `SELECT ${ALERT_COLUMNS} FROM alerts WHERE id = $1`,
      [id],
      [VARCHAR],
    );
    return rows[0] === undefined ? undefined : toAlert(rows[0]);
  }

  async alertEvents(alertId: string): Promise<AlertEvent[]> {
    const rows = await this.rows(
      `SELECT ${EVENT_COLUMNS} FROM alert_events WHERE alert_id = $1 ORDER BY occurred_at, seq`,
      [alertId],
      [VARCHAR],
    );
    return rows.map(toEvent);
  }

  async alertNotifications(alertId: string): Promise<OutboxEntry[]> {
    const rows = await this.rows(
      `SELECT ${OUTBOX_COLUMNS} FROM alert_outbox WHERE alert_id = $1 ORDER BY created_at, seq`,
      [alertId],
      [VARCHAR],
    );
    return rows.map(toOutboxEntry);
  }

  async dueNotifications(now: number, limit: number): Promise<OutboxEntry[]> {
    const max = BigInt(checkAlertLimit(limit, Number.MAX_SAFE_INTEGER));
    const rows = await this.use((_conn, statements) =>
      statements.rows(
        `SELECT ${OUTBOX_COLUMNS} FROM alert_outbox
         WHERE status = 'pending' AND next_attempt_at <= $1
         ORDER BY created_at, seq LIMIT $2`,
        [ms(now), max],
        [BIGINT, BIGINT],
      ),
    );
    return rows.map(toOutboxEntry);
  }

  async nextDueAt(): Promise<number | null> {
    const rows = await this.use((_conn, statements) =>
      statements.rows(`SELECT min(next_attempt_at) FROM alert_outbox WHERE status = 'pending'`),
    );
    const v = rows[0]?.[0];
    return v === null || v === undefined ? null : Number(v);
  }

  recordDelivery(id: string, outcome: DeliveryOutcome): Promise<void> {
    return this.recordDeliveries([{ id, outcome }]);
  }

  /**
   * One statement per record, in order; several share one transaction (one
   * WAL sync). Only a pending entry changes: an unknown id, or one already
   * delivered or given up (a late report from a duplicate send), is left as
   * it is.
   */
  recordDeliveries(records: readonly DeliveryRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return this.use(async (conn, statements) => {
      const write = async (): Promise<void> => {
        for (const { id, outcome } of records) await recordOne(statements, id, outcome);
      };
      if (records.length === 1) await write();
      else await inTransaction(conn, write);
    });
  }

  async outboxStats(): Promise<OutboxStats> {
    const rows = await this.rows(
      `SELECT count(*) FILTER (WHERE status = 'pending'),
              count(*) FILTER (WHERE status = 'failed'),
              min(created_at) FILTER (WHERE status = 'pending')
       FROM alert_outbox`,
    );
    const [pending, failed, oldest] = rows[0] ?? [];
    return {
      pending: Number(pending ?? 0),
      failed: Number(failed ?? 0),
      oldestPendingAt: oldest === null || oldest === undefined ? null : Number(oldest),
    };
  }

  async subjectStates(): Promise<SubjectState[]> {
    const rows = await this.rows(
      `SELECT ${SUBJECT_STATE_COLUMNS} FROM alert_subject_states ORDER BY rule_id, subject`,
    );
    return rows.map(toSubjectState);
  }

  purgeResolved(before: number): Promise<number> {
    return this.use((conn) =>
      inTransaction(conn, async () => {
        const params = [ms(before)];
        const types = [BIGINT];
        await conn.run(
          `DELETE FROM alert_events WHERE alert_id IN (SELECT id FROM alerts WHERE ${RESOLVED_BEFORE})`,
          params,
          types,
        );
        await conn.run(
          `DELETE FROM alert_outbox WHERE status <> 'pending'
           AND alert_id IN (SELECT id FROM alerts WHERE ${RESOLVED_BEFORE})`,
          params,
          types,
        );
        const deleted = await conn.run(
          `DELETE FROM alerts WHERE ${RESOLVED_BEFORE}`,
          params,
          types,
        );
        return Number(deleted.rowsChanged);
      }),
    );
  }

  createRun(run: WorkflowRun, tasks: readonly TaskInstance[]): Promise<boolean> {
    return this.use((conn) => workflows.createRun(conn, run, tasks));
  }

  claimRun(runId: string, owner: string, leaseUntil: number, now: number): Promise<boolean> {
    return this.use((conn) => workflows.claimRun(conn, runId, owner, leaseUntil, now));
  }

  acquireLease(name: string, owner: string, leaseUntil: number, now: number): Promise<boolean> {
    return this.use((conn) => workflows.acquireLease(conn, name, owner, leaseUntil, now));
  }

  releaseLease(name: string, owner: string): Promise<void> {
    return this.use((conn) => workflows.releaseLease(conn, name, owner));
  }

  renewLeases(owner: string, leaseUntil: number): Promise<void> {
    return this.use((conn) => workflows.renewLeases(conn, owner, leaseUntil));
  }

  saveProgress(
    run: WorkflowRun,
    tasks: readonly TaskInstance[],
    attempts: readonly TaskAttempt[],
  ): Promise<void> {
    return this.use((conn) => workflows.saveProgress(conn, run, tasks, attempts));
  }

  getRun(runId: string): Promise<RunDetail | undefined> {
    return this.use((conn) => workflows.getRun(conn, runId));
  }

  listRuns(filter: RunFilter): Promise<WorkflowRun[]> {
    return this.use((conn) => workflows.listRuns(conn, filter));
  }

  unfinishedRuns(): Promise<WorkflowRun[]> {
    return this.use((conn) => workflows.unfinishedRuns(conn));
  }

  runForSlot(workflow: string, slot: number): Promise<WorkflowRun | undefined> {
    return this.use((conn) => workflows.runForSlot(conn, workflow, slot));
  }

  lastSlot(workflow: string): Promise<number | null> {
    return this.use((conn) => workflows.lastSlot(conn, workflow));
  }

  findByToken(token: string): Promise<TaskInstance | undefined> {
    return this.use((conn) => workflows.findByToken(conn, token));
  }

  setPaused(workflow: string, paused: boolean): Promise<void> {
    return this.use((conn) => workflows.setPaused(conn, workflow, paused));
  }

  pausedWorkflows(): Promise<Set<string>> {
    return this.use((conn) => workflows.pausedWorkflows(conn));
  }

  purgeRuns(before: number): Promise<number> {
    return this.use((conn) => workflows.purgeRuns(conn, before));
  }

  createApiKey(key: ApiKey): Promise<boolean> {
    return this.use((conn) => auth.createApiKey(conn, key));
  }

  getApiKey(id: string): Promise<ApiKey | undefined> {
    return this.use((conn) => auth.getApiKey(conn, id));
  }

  listApiKeys(): Promise<ApiKey[]> {
    return this.use((conn) => auth.listApiKeys(conn));
  }

  revokeApiKey(id: string, at: number): Promise<boolean> {
    return this.use((conn) => auth.revokeApiKey(conn, id, at));
  }

  touchApiKey(id: string, at: number): Promise<void> {
    return this.use((conn) => auth.touchApiKey(conn, id, at));
  }

  createUser(user: User): Promise<boolean> {
    return this.use((conn) => auth.createUser(conn, user));
  }

  getUser(username: string): Promise<User | undefined> {
    return this.use((conn) => auth.getUser(conn, username));
  }

  listUsers(): Promise<User[]> {
    return this.use((conn) => auth.listUsers(conn));
  }

  setPassword(username: string, passwordHash: string, at: number): Promise<boolean> {
    return this.use((conn) => auth.setPassword(conn, username, passwordHash, at));
  }

  removeUser(username: string): Promise<boolean> {
    return this.use((conn) => auth.removeUser(conn, username));
  }

  createSession(session: Session): Promise<void> {
    return this.use((conn) => auth.createSession(conn, session));
  }

  getSession(id: string): Promise<Session | undefined> {
    return this.use((conn) => auth.getSession(conn, id));
  }

  deleteSession(id: string): Promise<boolean> {
    return this.use((conn) => auth.deleteSession(conn, id));
  }

  purgeSessions(before: number): Promise<number> {
    return this.use((conn) => auth.purgeSessions(conn, before));
  }

  createDevice(device: Device): Promise<boolean> {
    return this.use((conn) => auth.createDevice(conn, device));
  }

  getDevice(id: string): Promise<Device | undefined> {
    return this.use((conn) => auth.getDevice(conn, id));
  }

  listDevices(): Promise<Device[]> {
    return this.use((conn) => auth.listDevices(conn));
  }

  revokeDevice(id: string, at: number): Promise<boolean> {
    return this.use((conn) => auth.revokeDevice(conn, id, at));
  }
}

async function recordOne(
  statements: PreparedStatements,
  id: string,
  outcome: DeliveryOutcome,
): Promise<void> {
  if (outcome.ok) {
    await statements.run(
      `UPDATE alert_outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $2
       WHERE id = $1 AND status = 'pending'`,
      [id, ms(outcome.at)],
      [VARCHAR, BIGINT],
    );
  } else if (outcome.nextAttemptAt === null) {
    await statements.run(
      `UPDATE alert_outbox SET status = 'failed', attempts = attempts + 1, last_error = $2
       WHERE id = $1 AND status = 'pending'`,
      [id, outcome.error],
      [VARCHAR, VARCHAR],
    );
  } else {
    await statements.run(
      `UPDATE alert_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
       WHERE id = $1 AND status = 'pending'`,
      [id, outcome.error, ms(outcome.nextAttemptAt)],
      [VARCHAR, VARCHAR, BIGINT],
    );
  }
}

/** Rows per multi-row statement: bounds the SQL text and the number of distinct cached statements. */
const ROWS_PER_STATEMENT = 100;

async function chunked<T>(
  rows: readonly T[],
  write: (chunk: T[]) => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    await write(rows.slice(i, i + ROWS_PER_STATEMENT));
  }
}

function lastById<T extends { id: string }>(rows: readonly T[]): T[] {
  return [...new Map(rows.map((r) => [r.id, r])).values()];
}

/** First occurrence of each id, in the order of first occurrences. */
function firstById<T extends { id: string }>(rows: readonly T[]): T[] {
  const byId = new Map<string, T>();
  for (const r of rows) if (!byId.has(r.id)) byId.set(r.id, r);
  return [...byId.values()];
}

function subjectKey(s: { ruleId: string; subject: string }): string {
  return `${s.ruleId}\u0000${s.subject}`;
}

function lastBySubject(rows: readonly SubjectState[]): SubjectState[] {
  return [...new Map(rows.map((r) => [subjectKey(r), r])).values()];
}

function unavailable(message: string, cause?: unknown): CanopyError {
  return new CanopyError('CANOPY_META_UNAVAILABLE', message, { cause });
}
