/**
 * What both metadata-store adapters share: the versioned schema (migrations),
 * the column lists, the mapping of result rows back to the core types, and
 * the argument checks, so that DuckDB and PostgreSQL store and answer alike.
 *
 * Times are BIGINT epoch milliseconds in both engines: they round-trip to
 * the same numbers with no time-zone or precision conversion. JSON columns
 * (labels, notified channels, payload, subject state) are VARCHAR in DuckDB
 * and json/jsonb in PostgreSQL.
 */
import type {
  Alert,
  AlertEvent,
  AlertEventKind,
  AlertSeverity,
  AlertState,
  NotificationPayload,
  OutboxEntry,
  OutboxStatus,
  SubjectState,
} from '../../core/alerts.js';
import { CanopyError } from '../../core/errors.js';

/** What a migration may need to know about the engine it writes DDL for. */
export interface MetaDialect {
  readonly kind: 'duckdb' | 'postgres';
  /** The (schema-qualified, quoted) name of a table of the metadata store. */
  table(name: string): string;
}

/**
 * One step of the metadata schema. Migrations run at `open`, in version
 * order, each version once; all pending ones run in one transaction with the
 * rows that record them, so a failed open leaves the schema as it was. A
 * later feature (e.g. workflow run history) appends its own migration to
 * `META_MIGRATIONS` with the next version; released migrations never change.
 */
export interface MetaMigration {
  /** 1, 2, 3, …: contiguous and increasing. */
  readonly version: number;
  readonly description: string;
  statements(dialect: MetaDialect): string[];
}

/** Records the applied migrations; the schema version is its highest `version`. */
export const SCHEMA_VERSION_TABLE = 'meta_schema_version';

/**
 * DuckDB tables carry no PRIMARY KEY or UNIQUE constraint on rows that are
 * later updated or replaced (alerts, outbox, subject states): DuckDB's ART
 * index can report a spurious duplicate key when a row is deleted and
 * re-inserted, or updated in place, within one transaction. The adapter keeps
 * those keys unique by writing them only as delete-then-insert (alerts,
 * subject states) or insert-where-absent (outbox). `alert_events` is
 * insert-only, so it keeps its primary key and a repeated event id fails the
 * change set in both engines.
 *
 * `seq` orders events and outbox entries that share a timestamp by insertion.
 */
const V1_ALERTS: MetaMigration = {
  version: 1,
  description: 'alerts, alert events, notification outbox, evaluator subject states',
  statements: (d) => {
    const pg = d.kind === 'postgres';
    const text = pg ? 'text' : 'VARCHAR';
    const double = pg ? 'double precision' : 'DOUBLE';
    const json = pg ? 'jsonb' : 'VARCHAR';
    // `json` keeps the payload's text as written (jsonb reorders keys), so a
    // retry sends the same bytes as the first attempt.
    const payloadJson = pg ? 'json' : 'VARCHAR';
    const key = (cols: string): string => (pg ? `, PRIMARY KEY (${cols})` : '');
    const seq = (name: string): string =>
      pg
        ? 'seq bigint GENERATED ALWAYS AS IDENTITY'
        : `seq BIGINT NOT NULL DEFAULT nextval('${name}')`;
    const severity = `severity ${text} NOT NULL CHECK (severity IN ('warning', 'critical'))`;
    const stateCheck = (col: string, nullable: boolean): string =>
      `${col} ${text}${nullable ? '' : ' NOT NULL'} CHECK (${col} IN ('open', 'escalated', 'acknowledged', 'resolved'))`;
    return [
      ...(pg ? [] : ['CREATE SEQUENCE alert_events_seq', 'CREATE SEQUENCE alert_outbox_seq']),
      `CREATE TABLE ${d.table('alerts')} (
        id                ${text} NOT NULL,
        rule_id           ${text} NOT NULL,
        subject           ${text} NOT NULL,
        sensor_id         ${text},
        location          ${text},
        ${severity},
        ${stateCheck('state', false)},
        summary           ${text} NOT NULL,
        labels            ${json} NOT NULL,
        value             ${double},
        threshold         ${double},
        opened_at         BIGINT NOT NULL,
        updated_at        BIGINT NOT NULL,
        escalated_at      BIGINT,
        acknowledged_at   BIGINT,
        acknowledged_by   ${text},
        resolved_at       BIGINT,
        snoozed_until     BIGINT,
        tier              INTEGER NOT NULL,
        last_notified_at  BIGINT,
        notified_channels ${json} NOT NULL${key('id')}
      )`,
      `CREATE TABLE ${d.table('alert_events')} (
        id         ${text} NOT NULL PRIMARY KEY,
        alert_id   ${text} NOT NULL,
        occurred_at BIGINT NOT NULL,
        kind       ${text} NOT NULL,
        actor      ${text} NOT NULL,
        ${stateCheck('from_state', true)},
        ${stateCheck('to_state', false)},
        ${severity},
        note       ${text},
        value      ${double},
        ${seq('alert_events_seq')}
      )`,
      `CREATE TABLE ${d.table('alert_outbox')} (
        id              ${text} NOT NULL,
        alert_id        ${text} NOT NULL,
        event_id        ${text} NOT NULL,
        channel         ${text} NOT NULL,
        payload         ${payloadJson} NOT NULL,
        created_at      BIGINT NOT NULL,
        status          ${text} NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
        attempts        INTEGER NOT NULL,
        next_attempt_at BIGINT NOT NULL,
        delivered_at    BIGINT,
        last_error      ${text},
        ${seq('alert_outbox_seq')}${key('id')}
      )`,
      `CREATE TABLE ${d.table('alert_subject_states')} (
        rule_id ${text} NOT NULL,
        subject ${text} NOT NULL,
        state   ${json} NOT NULL${key('rule_id, subject')}
      )`,
      // DuckDB scans these small tables with zone maps; an ART index there
      // would only add write cost (and uses only point lookups).
      ...(pg
        ? [
            `CREATE INDEX alerts_opened_at ON ${d.table('alerts')} (opened_at)`,
            `CREATE INDEX alerts_active ON ${d.table('alerts')} (opened_at) WHERE state <> 'resolved'`,
            `CREATE INDEX alert_events_alert ON ${d.table('alert_events')} (alert_id)`,
            `CREATE INDEX alert_outbox_alert ON ${d.table('alert_outbox')} (alert_id)`,
            `CREATE INDEX alert_outbox_due ON ${d.table('alert_outbox')} (next_attempt_at) WHERE status = 'pending'`,
          ]
        : []),
    ];
  },
};

/**
 * Workflow run history. As in v1, DuckDB tables carry no keys (every one of
 * these rows is updated later): the adapter writes runs insert-where-absent
 * (which also keeps (workflow, slot) unique, inside the createRun
 * transaction) and tasks and attempts update-then-insert-where-absent.
 * PostgreSQL has the keys, and a partial unique index on (workflow, slot)
 * that makes two processes' createRun for one slot race safely.
 *
 * `position` keeps a run's tasks in declaration order. JSON columns (params,
 * output) always hold a JSON text, so a task output of JSON `null` is not
 * SQL NULL.
 */
const V2_WORKFLOWS: MetaMigration = {
  version: 2,
  description: 'workflow runs, task instances, task attempts, paused workflows',
  statements: (d) => {
    const pg = d.kind === 'postgres';
    const text = pg ? 'text' : 'VARCHAR';
    const json = pg ? 'jsonb' : 'VARCHAR';
    const bool = pg ? 'boolean' : 'BOOLEAN';
    const key = (cols: string): string => (pg ? `, PRIMARY KEY (${cols})` : '');
    const oneOf = (col: string, values: readonly string[], nullable = false): string =>
      `${col} ${text}${nullable ? '' : ' NOT NULL'} CHECK (${col} IN (${values.map((v) => `'${v}'`).join(', ')}))`;
    const unfinished = `state IN ('running', 'waiting')`;
    return [
      `CREATE TABLE ${d.table('workflow_runs')} (
        id               ${text} NOT NULL,
        workflow         ${text} NOT NULL,
        slot             BIGINT,
        ${oneOf('trigger', ['schedule', 'catch-up', 'manual', 'backfill'])},
        ${oneOf('state', ['running', 'waiting', 'succeeded', 'failed', 'cancelled'])},
        params           ${json} NOT NULL,
        created_at       BIGINT NOT NULL,
        finished_at      BIGINT,
        deadline_at      BIGINT,
        deadline_missed  ${bool} NOT NULL,
        error            ${text},
        owner            ${text},
        lease_expires_at BIGINT${key('id')}
      )`,
      `CREATE TABLE ${d.table('workflow_tasks')} (
        run_id          ${text} NOT NULL,
        task_id         ${text} NOT NULL,
        position        INTEGER NOT NULL,
        ${oneOf('state', ['pending', 'running', 'retrying', 'waiting', 'succeeded', 'failed', 'skipped'])},
        attempts        INTEGER NOT NULL,
        started_at      BIGINT,
        finished_at     BIGINT,
        next_attempt_at BIGINT,
        output          ${json} NOT NULL,
        error           ${text},
        callback_token  ${text}${key('run_id, task_id')}
      )`,
      `CREATE TABLE ${d.table('workflow_task_attempts')} (
        run_id      ${text} NOT NULL,
        task_id     ${text} NOT NULL,
        attempt     INTEGER NOT NULL,
        started_at  BIGINT NOT NULL,
        finished_at BIGINT,
        ${oneOf('outcome', ['succeeded', 'failed', 'timed-out', 'interrupted'], true)},
        error       ${text}${key('run_id, task_id, attempt')}
      )`,
      `CREATE TABLE ${d.table('workflow_paused')} (
        workflow ${text} NOT NULL${key('workflow')}
      )`,
      ...(pg
        ? [
            `CREATE UNIQUE INDEX workflow_runs_slot ON ${d.table('workflow_runs')} (workflow, slot) WHERE slot IS NOT NULL`,
            `CREATE INDEX workflow_runs_workflow_created ON ${d.table('workflow_runs')} (workflow, created_at)`,
            `CREATE INDEX workflow_runs_created ON ${d.table('workflow_runs')} (created_at)`,
            `CREATE INDEX workflow_runs_unfinished ON ${d.table('workflow_runs')} (created_at) WHERE ${unfinished}`,
            `CREATE INDEX workflow_runs_owner ON ${d.table('workflow_runs')} (owner) WHERE ${unfinished}`,
            `CREATE INDEX workflow_tasks_token ON ${d.table('workflow_tasks')} (callback_token) WHERE callback_token IS NOT NULL`,
          ]
        : []),
    ];
  },
};

/**
 * Credentials (core/auth.ts). Only hashes are stored. As in v1 and v2,
 * DuckDB tables whose rows are later updated (keys: revoked, last used;
 * users: password; devices: revoked, replaced) carry no keys, and the
 * adapter writes them insert-where-absent; sessions are only inserted and
 * deleted, so they keep their primary key in both engines. `scopes` and
 * `topics` hold JSON arrays as text.
 */
const V3_AUTH: MetaMigration = {
  version: 3,
  description: 'API keys, users, sessions, MQTT device credentials',
  statements: (d) => {
    const pg = d.kind === 'postgres';
    const text = pg ? 'text' : 'VARCHAR';
    const key = (cols: string): string => (pg ? `, PRIMARY KEY (${cols})` : '');
    return [
      `CREATE TABLE ${d.table('auth_api_keys')} (
        id           ${text} NOT NULL,
        name         ${text} NOT NULL,
        scopes       ${text} NOT NULL,
        hash         ${text} NOT NULL,
        created_at   BIGINT NOT NULL,
        expires_at   BIGINT,
        revoked_at   BIGINT,
        last_used_at BIGINT${key('id')}
      )`,
      `CREATE TABLE ${d.table('auth_users')} (
        username            ${text} NOT NULL,
        role                ${text} NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        password_hash       ${text} NOT NULL,
        created_at          BIGINT NOT NULL,
        password_changed_at BIGINT NOT NULL${key('username')}
      )`,
      `CREATE TABLE ${d.table('auth_sessions')} (
        id         ${text} NOT NULL PRIMARY KEY,
        username   ${text} NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL
      )`,
      `CREATE TABLE ${d.table('auth_devices')} (
        id            ${text} NOT NULL,
        password_hash ${text} NOT NULL,
        topics        ${text} NOT NULL,
        created_at    BIGINT NOT NULL,
        revoked_at    BIGINT${key('id')}
      )`,
      ...(pg
        ? [
            `CREATE INDEX auth_sessions_username ON ${d.table('auth_sessions')} (username)`,
            `CREATE INDEX auth_sessions_expires ON ${d.table('auth_sessions')} (expires_at)`,
          ]
        : []),
    ];
  },
};

/**
 * Named leases: a section of work that must not run twice at once, in one
 * process or across several on one PostgreSQL (one date's imputation
 * write-back), holds the lease named for it. A row is deleted when its
 * holder gives the lease up; an expired row is taken over in place.
 */
const V4_LEASES: MetaMigration = {
  version: 4,
  description: 'named leases',
  statements: (d) => {
    const pg = d.kind === 'postgres';
    const text = pg ? 'text' : 'VARCHAR';
    return [
      `CREATE TABLE ${d.table('leases')} (
        name       ${text} NOT NULL,
        owner      ${text} NOT NULL,
        expires_at BIGINT NOT NULL${pg ? ', PRIMARY KEY (name)' : ''}
      )`,
    ];
  },
};

/** Every migration of the metadata store, in order. Append only. */
export const META_MIGRATIONS: readonly MetaMigration[] = [
  V1_ALERTS,
  V2_WORKFLOWS,
  V3_AUTH,
  V4_LEASES,
];

/** Throws unless versions run 1, 2, 3, … (a programming error, caught by the first open in tests). */
export function checkMigrations(migrations: readonly MetaMigration[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new Error(`metadata migrations must be numbered 1, 2, 3, …; #${i + 1} is ${m.version}`);
    }
  });
}

/**
 * The migrations still to run on a store at `current`. Throws
 * CANOPY_META_UNAVAILABLE when the store is newer than this code.
 */
export function pendingMigrations(
  migrations: readonly MetaMigration[],
  current: number,
  where: string,
): MetaMigration[] {
  const known = migrations.length;
  if (current > known) {
    throw new CanopyError(
      'CANOPY_META_UNAVAILABLE',
      `the metadata store ${where} has schema version ${current}, written by a newer Canopy; this one knows up to ${known}`,
      { details: { storedVersion: current, knownVersion: known } },
    );
  }
  return migrations.filter((m) => m.version > current);
}

/** Largest `listAlerts` page. */
export const MAX_ALERT_LIMIT = 1_000;

/** Throws CANOPY_API_BAD_REQUEST unless `limit` is an integer in 1..`max`. */
export function checkAlertLimit(limit: unknown, max = MAX_ALERT_LIMIT): number {
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      `limit must be an integer from 1 to ${max}, got ${String(limit)}`,
    );
  }
  return limit;
}

/** A location filter without trailing `/`: `greenhouse/` means the same as `greenhouse`. */
export function locationPrefix(location: string): string {
  return location.replace(/\/+$/, '');
}

export const ALERT_COLUMNS =
  'id, rule_id, subject, sensor_id, location, severity, state, summary, labels, value, threshold, opened_at, updated_at, escalated_at, acknowledged_at, acknowledged_by, resolved_at, snoozed_until, tier, last_notified_at, notified_channels';
export const EVENT_COLUMNS =
  'id, alert_id, occurred_at, kind, actor, from_state, to_state, severity, note, value';
export const OUTBOX_COLUMNS =
  'id, alert_id, event_id, channel, payload, created_at, status, attempts, next_attempt_at, delivered_at, last_error';
export const SUBJECT_STATE_COLUMNS = 'rule_id, subject, state';

/** Alert fields in `ALERT_COLUMNS` order, JSON fields as text. */
export function alertValues(a: Alert): (string | number | null)[] {
  return [
    a.id,
    a.ruleId,
    a.subject,
    a.sensorId,
    a.location,
    a.severity,
    a.state,
    a.summary,
    JSON.stringify(a.labels),
    a.value,
    a.threshold,
    a.openedAt,
    a.updatedAt,
    a.escalatedAt,
    a.acknowledgedAt,
    a.acknowledgedBy,
    a.resolvedAt,
    a.snoozedUntil,
    a.tier,
    a.lastNotifiedAt,
    JSON.stringify(a.notifiedChannels),
  ];
}

export function eventValues(e: AlertEvent): (string | number | null)[] {
  return [
    e.id,
    e.alertId,
    e.at,
    e.kind,
    e.actor,
    e.fromState,
    e.toState,
    e.severity,
    e.note,
    e.value,
  ];
}

export function outboxValues(o: OutboxEntry): (string | number | null)[] {
  return [
    o.id,
    o.alertId,
    o.eventId,
    o.channel,
    JSON.stringify(o.payload),
    o.createdAt,
    o.status,
    o.attempts,
    o.nextAttemptAt,
    o.deliveredAt,
    o.lastError,
  ];
}

export function toAlert(row: readonly unknown[]): Alert {
  return {
    id: str(row[0]),
    ruleId: str(row[1]),
    subject: str(row[2]),
    sensorId: nullable(row[3], str),
    location: nullable(row[4], str),
    severity: str(row[5]) as AlertSeverity,
    state: str(row[6]) as AlertState,
    summary: str(row[7]),
    labels: json(row[8]) as Record<string, string>,
    value: nullable(row[9], num),
    threshold: nullable(row[10], num),
    openedAt: num(row[11]),
    updatedAt: num(row[12]),
    escalatedAt: nullable(row[13], num),
    acknowledgedAt: nullable(row[14], num),
    acknowledgedBy: nullable(row[15], str),
    resolvedAt: nullable(row[16], num),
    snoozedUntil: nullable(row[17], num),
    tier: num(row[18]),
    lastNotifiedAt: nullable(row[19], num),
    notifiedChannels: json(row[20]) as string[],
  };
}

export function toEvent(row: readonly unknown[]): AlertEvent {
  return {
    id: str(row[0]),
    alertId: str(row[1]),
    at: num(row[2]),
    kind: str(row[3]) as AlertEventKind,
    actor: str(row[4]),
    fromState: nullable(row[5], str) as AlertState | null,
    toState: str(row[6]) as AlertState,
    severity: str(row[7]) as AlertSeverity,
    note: nullable(row[8], str),
    value: nullable(row[9], num),
  };
}

export function toOutboxEntry(row: readonly unknown[]): OutboxEntry {
  return {
    id: str(row[0]),
    alertId: str(row[1]),
    eventId: str(row[2]),
    channel: str(row[3]),
    payload: json(row[4]) as NotificationPayload,
    createdAt: num(row[5]),
    status: str(row[6]) as OutboxStatus,
    attempts: num(row[7]),
    nextAttemptAt: num(row[8]),
    deliveredAt: nullable(row[9], num),
    lastError: nullable(row[10], str),
  };
}

export function toSubjectState(row: readonly unknown[]): SubjectState {
  return {
    ruleId: str(row[0]),
    subject: str(row[1]),
    state: json(row[2]) as Record<string, unknown>,
  };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Cell narrowing. A mismatch means the schema and this file disagree: a bug,
// not a condition callers can handle.
function mismatch(expected: string, v: unknown): Error {
  return new Error(`metadata store: expected ${expected}, got ${typeof v} ${String(v)}`);
}

export function str(v: unknown): string {
  if (typeof v !== 'string') throw mismatch('a string', v);
  return v;
}

/** Numbers arrive as number (DOUBLE, INTEGER), bigint (DuckDB BIGINT) or string (pg int8). */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  throw mismatch('a number', v);
}

export function nullable<T>(v: unknown, read: (v: unknown) => T): T | null {
  return v === null || v === undefined ? null : read(v);
}

/** DuckDB returns the JSON text; pg has already parsed json and jsonb. */
function json(v: unknown): unknown {
  return typeof v === 'string' ? JSON.parse(v) : v;
}
