/**
 * The PostgreSQL metadata store (`meta.kind: postgres`): the same tables as
 * the DuckDB one, in their own schema (default `canopy_meta`, created if
 * missing), so several Canopy processes can share alert state and workflow
 * run history. The workflow queries live in postgres-workflows.ts.
 *
 * Here the tables carry primary keys: alerts and subject states upsert with
 * ON CONFLICT … DO UPDATE, outbox entries insert with ON CONFLICT DO NOTHING.
 * Migrations at `open` run under a transaction-scoped advisory lock, so two
 * processes starting together migrate one after the other.
 */
import type pg from 'pg';
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
import type {
  RunDetail,
  RunFilter,
  TaskAttempt,
  TaskInstance,
  WorkflowRun,
} from '../../core/workflows.js';
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
import * as auth from './postgres-auth.js';
import * as workflows from './postgres-workflows.js';
import {
  describePostgresTarget,
  inPostgresTransaction,
  openPostgresPool,
  postgresPoolConfig,
  type PostgresConnectionOptions,
} from '../postgres.js';

export interface PostgresMetaStoreOptions extends PostgresConnectionOptions {
  logger?: Logger;
  /** The schema's migrations; tests pass a longer list to stand in for a newer Canopy. */
  migrations?: readonly MetaMigration[];
}

// Casts in `*_COLUMNS` order: pg sends every parameter as text.
const ALERT_CASTS = [
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'jsonb',
  'float8',
  'float8',
  'bigint',
  'bigint',
  'bigint',
  'bigint',
  'text',
  'bigint',
  'bigint',
  'integer',
  'bigint',
  'jsonb',
];
const EVENT_CASTS = [
  'text',
  'text',
  'bigint',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'float8',
];
const OUTBOX_CASTS = [
  'text',
  'text',
  'text',
  'text',
  'json',
  'bigint',
  'text',
  'integer',
  'bigint',
  'bigint',
  'text',
];

function castPlaceholders(casts: readonly string[]): string {
  return casts.map((cast, i) => `$${i + 1}::${cast}`).join(', ');
}

export class PostgresMetaStore implements MetaStore {
  private readonly schema: string;
  private readonly where: string;
  private readonly poolConfig: pg.PoolConfig;
  private readonly log: Logger;
  private readonly migrations: readonly MetaMigration[];
  private readonly dialect: MetaDialect;
  private pool: pg.Pool | undefined;
  private opening: Promise<void> | undefined;
  private readonly sql: {
    upsertAlert: string;
    insertEvent: string;
    insertOutbox: string;
    upsertSubjectState: string;
    t: (name: string) => string;
  };
  private readonly workflowSql: workflows.WorkflowSql;
  /** What postgres-workflows.ts queries through. */
  private readonly access: workflows.PgAccess = {
    t: (name) => this.sql.t(name),
    rows: (text, values) => this.rows(text, values),
    transaction: (work) => this.transaction(work),
  };

  /** Throws CANOPY_CONFIG_INVALID for a schema name that is not a plain identifier. */
  constructor(options: PostgresMetaStoreOptions) {
    this.poolConfig = postgresPoolConfig('meta', options, 4);
    this.schema = options.schema;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ adapter: 'postgres' });
    this.migrations = options.migrations ?? META_MIGRATIONS;
    checkMigrations(this.migrations);
    this.where = `${describePostgresTarget(options)} (schema ${options.schema})`;
    const t = (name: string): string => `"${this.schema}"."${name}"`;
    this.dialect = { kind: 'postgres', table: t };
    const alertSet = ALERT_COLUMNS.split(', ')
      .filter((c) => c !== 'id')
      .map((c) => `${c} = excluded.${c}`)
      .join(', ');
    this.sql = {
      t,
      upsertAlert: `INSERT INTO ${t('alerts')} (${ALERT_COLUMNS}) VALUES (${castPlaceholders(ALERT_CASTS)})
        ON CONFLICT (id) DO UPDATE SET ${alertSet}`,
      insertEvent: `INSERT INTO ${t('alert_events')} (${EVENT_COLUMNS}) VALUES (${castPlaceholders(EVENT_CASTS)})`,
      insertOutbox: `INSERT INTO ${t('alert_outbox')} (${OUTBOX_COLUMNS}) VALUES (${castPlaceholders(OUTBOX_CASTS)})
        ON CONFLICT (id) DO NOTHING`,
      upsertSubjectState: `INSERT INTO ${t('alert_subject_states')} (${SUBJECT_STATE_COLUMNS}) VALUES ($1, $2, $3::jsonb)
        ON CONFLICT (rule_id, subject) DO UPDATE SET state = excluded.state`,
    };
    this.workflowSql = workflows.workflowSql(t);
  }

  /**
   * Connects, creates the schema if missing and brings it up to date.
   * Idempotent; a failed attempt may be retried. Throws
   * CANOPY_META_UNAVAILABLE (server unreachable or refusing, schema newer
   * than this code) with the cause; the message never holds the password.
   */
  open(): Promise<void> {
    if (this.pool) return Promise.resolve();
    this.opening ??= this.openNow().finally(() => {
      this.opening = undefined;
    });
    return this.opening;
  }

  private async openNow(): Promise<void> {
    const pool = openPostgresPool(this.poolConfig, (err, when) =>
      this.log.warn({ err, when }, 'PostgreSQL connection lost'),
    );
    try {
      await inPostgresTransaction(pool, async (client) => {
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
          `canopy-meta:${this.schema}`,
        ]);
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
        const versions = this.sql.t(SCHEMA_VERSION_TABLE);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${versions} (version integer NOT NULL PRIMARY KEY, description text NOT NULL)`,
        );
        const { rows } = await client.query<{ v: number }>(
          `SELECT coalesce(max(version), 0)::integer AS v FROM ${versions}`,
        );
        for (const m of pendingMigrations(this.migrations, rows[0]?.v ?? 0, this.where)) {
          for (const statement of m.statements(this.dialect)) await client.query(statement);
          await client.query(`INSERT INTO ${versions} VALUES ($1, $2)`, [m.version, m.description]);
          this.log.info({ version: m.version }, `metadata schema migrated: ${m.description}`);
        }
      });
    } catch (cause) {
      await pool.end().catch(() => undefined);
      if (cause instanceof CanopyError) throw cause;
      throw new CanopyError(
        'CANOPY_META_UNAVAILABLE',
        `cannot open the PostgreSQL metadata store ${this.where}: ${errorMessage(cause)}`,
        { cause },
      );
    }
    this.pool = pool;
    this.log.info({ target: this.where }, 'metadata store opened');
  }

  async close(): Promise<void> {
    if (this.opening) await this.opening.catch(() => undefined);
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }

  private connectedPool(): pg.Pool {
    if (!this.pool) {
      throw new CanopyError(
        'CANOPY_META_UNAVAILABLE',
        `the metadata store ${this.where} is not open`,
      );
    }
    return this.pool;
  }

  /** One transaction on a pooled client; a lost connection becomes CANOPY_META_UNAVAILABLE. */
  private async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const pool = this.connectedPool();
    try {
      return await inPostgresTransaction(pool, work);
    } catch (cause) {
      throw unreachable(cause, this.where);
    }
  }

  /** Rows as arrays, in the order of the SELECT list. */
  private async rows(text: string, values: unknown[] = []): Promise<unknown[][]> {
    const pool = this.connectedPool();
    try {
      return (await pool.query<unknown[]>({ text, values, rowMode: 'array' })).rows;
    } catch (cause) {
      throw unreachable(cause, this.where);
    }
  }

  async apply(changes: AlertChanges): Promise<void> {
    await this.transaction(async (client) => {
      for (const alert of changes.alerts) {
        await client.query(this.sql.upsertAlert, alertValues(alert));
      }
      for (const event of changes.events) {
        await client.query(this.sql.insertEvent, eventValues(event));
      }
      for (const entry of changes.outbox) {
        await client.query(this.sql.insertOutbox, outboxValues(entry));
      }
      // Clears first: a pair both cleared and saved in one step ends saved.
      for (const cleared of changes.clearedSubjectStates) {
        await client.query(
          `DELETE FROM ${this.sql.t('alert_subject_states')} WHERE rule_id = $1 AND subject = $2`,
          [cleared.ruleId, cleared.subject],
        );
      }
      for (const s of changes.subjectStates) {
        await client.query(this.sql.upsertSubjectState, [
          s.ruleId,
          s.subject,
          JSON.stringify(s.state),
        ]);
      }
    });
  }

  async activeAlerts(): Promise<Alert[]> {
    const rows = await this.rows(
      `SELECT ${ALERT_COLUMNS} FROM ${this.sql.t('alerts')} WHERE state <> 'resolved' ORDER BY opened_at, id`,
    );
    return rows.map(toAlert);
  }

  async listAlerts(filter: AlertFilter): Promise<Alert[]> {
    const limit = checkAlertLimit(filter.limit);
    const values: unknown[] = [];
    const p = (value: unknown, cast: string): string => {
      values.push(value);
      return `$${values.length}::${cast}`;
    };
    const where: string[] = [];
    if (filter.state) where.push(`state = ANY(${p([...filter.state], 'text[]')})`);
    if (filter.severity) where.push(`severity = ANY(${p([...filter.severity], 'text[]')})`);
    if (filter.ruleId !== undefined) where.push(`rule_id = ${p(filter.ruleId, 'text')}`);
    if (filter.sensorId !== undefined) where.push(`sensor_id = ${p(filter.sensorId, 'text')}`);
    if (filter.location !== undefined) {
      const prefix = p(locationPrefix(filter.location), 'text');
      // starts_with, not LIKE: `_` and `%` in a location are plain characters.
      where.push(`(location = ${prefix} OR starts_with(location, ${prefix} || '/'))`);
    }
    if (filter.to !== undefined) where.push(`opened_at < ${p(filter.to, 'bigint')}`);
    if (filter.from !== undefined) {
      where.push(`(resolved_at IS NULL OR resolved_at >= ${p(filter.from, 'bigint')})`);
    }
    const whereSql = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
    const rows = await this.rows(
      `SELECT ${ALERT_COLUMNS} FROM ${this.sql.t('alerts')}${whereSql}
       ORDER BY opened_at DESC, id DESC LIMIT ${p(limit, 'integer')}`,
      values,
    );
    return rows.map(toAlert);
  }

  async getAlert(id: string): Promise<Alert | undefined> {
    const rows = await this.rows(
      `SELECT ${ALERT_COLUMNS} FROM ${this.sql.t('alerts')} WHERE id = $1`,
      [id],
    );
    return rows[0] === undefined ? undefined : toAlert(rows[0]);
  }

  async alertEvents(alertId: string): Promise<AlertEvent[]> {
    const rows = await this.rows(
      `SELECT ${EVENT_COLUMNS} FROM ${this.sql.t('alert_events')} WHERE alert_id = $1 ORDER BY occurred_at, seq`,
      [alertId],
    );
    return rows.map(toEvent);
  }

  async alertNotifications(alertId: string): Promise<OutboxEntry[]> {
    const rows = await this.rows(
      `SELECT ${OUTBOX_COLUMNS} FROM ${this.sql.t('alert_outbox')} WHERE alert_id = $1 ORDER BY created_at, seq`,
      [alertId],
    );
    return rows.map(toOutboxEntry);
  }

  async dueNotifications(now: number, limit: number): Promise<OutboxEntry[]> {
    const rows = await this.rows(
      `SELECT ${OUTBOX_COLUMNS} FROM ${this.sql.t('alert_outbox')}
       WHERE status = 'pending' AND next_attempt_at <= $1::bigint
       ORDER BY created_at, seq LIMIT $2::bigint`,
      [now, checkAlertLimit(limit, Number.MAX_SAFE_INTEGER)],
    );
    return rows.map(toOutboxEntry);
  }

  async nextDueAt(): Promise<number | null> {
    const rows = await this.rows(
      `SELECT min(next_attempt_at) FROM ${this.sql.t('alert_outbox')} WHERE status = 'pending'`,
    );
    const v = rows[0]?.[0];
    return v === null || v === undefined ? null : Number(v);
  }

  /**
   * Only a pending entry changes: an unknown id, or one already delivered or
   * given up (a late report from a duplicate send), is left as it is.
   */
  async recordDelivery(id: string, outcome: DeliveryOutcome): Promise<void> {
    const [text, values] = this.deliveryUpdate(id, outcome);
    await this.rows(text, values);
  }

  /** One UPDATE per record, in order, in one transaction (see recordDelivery). */
  async recordDeliveries(records: readonly DeliveryRecord[]): Promise<void> {
    if (records.length === 0) return;
    if (records.length === 1) return this.recordDelivery(records[0]!.id, records[0]!.outcome);
    await this.transaction(async (client) => {
      for (const { id, outcome } of records) {
        const [text, values] = this.deliveryUpdate(id, outcome);
        await client.query(text, values);
      }
    });
  }

  private deliveryUpdate(id: string, outcome: DeliveryOutcome): [string, unknown[]] {
    const t = this.sql.t('alert_outbox');
    if (outcome.ok) {
      return [
        `UPDATE ${t} SET status = 'delivered', attempts = attempts + 1, delivered_at = $2::bigint
         WHERE id = $1 AND status = 'pending'`,
        [id, outcome.at],
      ];
    }
    if (outcome.nextAttemptAt === null) {
      return [
        `UPDATE ${t} SET status = 'failed', attempts = attempts + 1, last_error = $2
         WHERE id = $1 AND status = 'pending'`,
        [id, outcome.error],
      ];
    }
    return [
      `UPDATE ${t} SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3::bigint
       WHERE id = $1 AND status = 'pending'`,
      [id, outcome.error, outcome.nextAttemptAt],
    ];
  }

  async outboxStats(): Promise<OutboxStats> {
    const rows = await this.rows(
      `SELECT count(*) FILTER (WHERE status = 'pending'),
              count(*) FILTER (WHERE status = 'failed'),
              min(created_at) FILTER (WHERE status = 'pending')
       FROM ${this.sql.t('alert_outbox')}`,
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
      `SELECT ${SUBJECT_STATE_COLUMNS} FROM ${this.sql.t('alert_subject_states')} ORDER BY rule_id, subject`,
    );
    return rows.map(toSubjectState);
  }

  async purgeResolved(before: number): Promise<number> {
    const alerts = this.sql.t('alerts');
    const resolved = `SELECT id FROM ${alerts} WHERE state = 'resolved' AND resolved_at < $1::bigint`;
    return this.transaction(async (client) => {
      await client.query(
        `DELETE FROM ${this.sql.t('alert_events')} WHERE alert_id IN (${resolved})`,
        [before],
      );
      await client.query(
        `DELETE FROM ${this.sql.t('alert_outbox')} WHERE status <> 'pending' AND alert_id IN (${resolved})`,
        [before],
      );
      const result = await client.query(
        `DELETE FROM ${alerts} WHERE state = 'resolved' AND resolved_at < $1::bigint`,
        [before],
      );
      return result.rowCount ?? 0;
    });
  }

  createRun(run: WorkflowRun, tasks: readonly TaskInstance[]): Promise<boolean> {
    return workflows.createRun(this.access, this.workflowSql, run, tasks);
  }

  claimRun(runId: string, owner: string, leaseUntil: number, now: number): Promise<boolean> {
    return workflows.claimRun(this.access, runId, owner, leaseUntil, now);
  }

  acquireLease(name: string, owner: string, leaseUntil: number, now: number): Promise<boolean> {
    return workflows.acquireLease(this.access, name, owner, leaseUntil, now);
  }

  releaseLease(name: string, owner: string): Promise<void> {
    return workflows.releaseLease(this.access, name, owner);
  }

  renewLeases(owner: string, leaseUntil: number): Promise<void> {
    return workflows.renewLeases(this.access, owner, leaseUntil);
  }

  saveProgress(
    run: WorkflowRun,
    tasks: readonly TaskInstance[],
    attempts: readonly TaskAttempt[],
  ): Promise<void> {
    return workflows.saveProgress(this.access, this.workflowSql, run, tasks, attempts);
  }

  getRun(runId: string): Promise<RunDetail | undefined> {
    return workflows.getRun(this.access, runId);
  }

  listRuns(filter: RunFilter): Promise<WorkflowRun[]> {
    return workflows.listRuns(this.access, filter);
  }

  unfinishedRuns(): Promise<WorkflowRun[]> {
    return workflows.unfinishedRuns(this.access);
  }

  runForSlot(workflow: string, slot: number): Promise<WorkflowRun | undefined> {
    return workflows.runForSlot(this.access, workflow, slot);
  }

  lastSlot(workflow: string): Promise<number | null> {
    return workflows.lastSlot(this.access, workflow);
  }

  findByToken(token: string): Promise<TaskInstance | undefined> {
    return workflows.findByToken(this.access, token);
  }

  setPaused(workflow: string, paused: boolean): Promise<void> {
    return workflows.setPaused(this.access, workflow, paused);
  }

  pausedWorkflows(): Promise<Set<string>> {
    return workflows.pausedWorkflows(this.access);
  }

  purgeRuns(before: number): Promise<number> {
    return workflows.purgeRuns(this.access, before);
  }

  createApiKey(key: ApiKey): Promise<boolean> {
    return auth.createApiKey(this.access, key);
  }

  getApiKey(id: string): Promise<ApiKey | undefined> {
    return auth.getApiKey(this.access, id);
  }

  listApiKeys(): Promise<ApiKey[]> {
    return auth.listApiKeys(this.access);
  }

  revokeApiKey(id: string, at: number): Promise<boolean> {
    return auth.revokeApiKey(this.access, id, at);
  }

  touchApiKey(id: string, at: number): Promise<void> {
    return auth.touchApiKey(this.access, id, at);
  }

  createUser(user: User): Promise<boolean> {
    return auth.createUser(this.access, user);
  }

  getUser(username: string): Promise<User | undefined> {
    return auth.getUser(this.access, username);
  }

  listUsers(): Promise<User[]> {
    return auth.listUsers(this.access);
  }

  setPassword(username: string, passwordHash: string, at: number): Promise<boolean> {
    return auth.setPassword(this.access, username, passwordHash, at);
  }

  removeUser(username: string): Promise<boolean> {
    return auth.removeUser(this.access, username);
  }

  createSession(session: Session): Promise<void> {
    return auth.createSession(this.access, session);
  }

  getSession(id: string): Promise<Session | undefined> {
    return auth.getSession(this.access, id);
  }

  deleteSession(id: string): Promise<boolean> {
    return auth.deleteSession(this.access, id);
  }

  purgeSessions(before: number): Promise<number> {
    return auth.purgeSessions(this.access, before);
  }

  createDevice(device: Device): Promise<boolean> {
    return auth.createDevice(this.access, device);
  }

  getDevice(id: string): Promise<Device | undefined> {
    return auth.getDevice(this.access, id);
  }

  listDevices(): Promise<Device[]> {
    return auth.listDevices(this.access);
  }

  revokeDevice(id: string, at: number): Promise<boolean> {
    return auth.revokeDevice(this.access, id, at);
  }
}

/**
 * A failed query: connection-level failures become CANOPY_META_UNAVAILABLE
 * (the caller may retry later); anything else is passed on unchanged.
 */
function unreachable(cause: unknown, where: string): unknown {
  const code = (cause as { code?: unknown } | null)?.code;
  const connection = typeof code === 'string' && (/^(08|57P)/.test(code) || /^E[A-Z]+$/.test(code));
  if (!connection) return cause;
  return new CanopyError(
    'CANOPY_META_UNAVAILABLE',
    `the PostgreSQL metadata store ${where} is unreachable: ${errorMessage(cause)}`,
    { cause },
  );
}
