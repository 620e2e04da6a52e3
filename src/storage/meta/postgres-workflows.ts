/**
 * The `WorkflowStore` half of `PostgresMetaStore`: one function per method,
 * over the store's pool (`PgAccess`).
 *
 * Several Canopy processes may share the schema. One run per (workflow,
 * slot) is the partial unique index `workflow_runs_slot`: createRun inserts
 * with ON CONFLICT DO NOTHING, so of two concurrent inserts the second waits
 * for the first to commit and then inserts nothing. Leases change by one
 * conditional UPDATE each, so a claim either sees the lease lapsed or not.
 */
import type pg from 'pg';
import type {
  RunDetail,
  RunFilter,
  TaskAttempt,
  TaskInstance,
  WorkflowRun,
} from '../../core/workflows.js';
import { checkAlertLimit } from './meta-sql.js';
import {
  ATTEMPT_COLUMNS,
  MAX_RUN_LIMIT,
  RUN_COLUMNS,
  TASK_COLUMNS,
  UNFINISHED_RUN,
  attemptValues,
  runValues,
  selectList,
  taskValues,
  toAttempt,
  toRun,
  toTask,
} from './workflow-sql.js';

/** What the functions here need from the store. */
export interface PgAccess {
  /** The schema-qualified, quoted name of a table. */
  t(name: string): string;
  /** Rows as arrays, in the order of the SELECT (or RETURNING) list. */
  rows(text: string, values?: unknown[]): Promise<unknown[][]>;
  /** One transaction on a pooled client. */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
}

// Casts in `*_COLUMNS` order: pg sends every parameter as text.
const RUN_CASTS = [
  'text',
  'text',
  'bigint',
  'text',
  'text',
  'jsonb',
  'bigint',
  'bigint',
  'bigint',
  'boolean',
  'text',
  'text',
  'bigint',
];
const TASK_CASTS = [
  'text',
  'text',
  'text',
  'integer',
  'bigint',
  'bigint',
  'bigint',
  'jsonb',
  'text',
  'text',
];
const ATTEMPT_CASTS = ['text', 'text', 'integer', 'bigint', 'bigint', 'text', 'text'];

const RUN_SELECT = selectList(RUN_COLUMNS, 'postgres');
const TASK_SELECT = selectList(TASK_COLUMNS, 'postgres');

function castPlaceholders(casts: readonly string[]): string {
  return casts.map((cast, i) => `$${i + 1}::${cast}`).join(', ');
}

/** `SET c = excluded.c` for every column after the key's `keyLength` columns. */
function updateFromExcluded(columns: string, keyLength: number): string {
  return columns
    .split(', ')
    .slice(keyLength)
    .map((c) => `${c} = excluded.${c}`)
    .join(', ');
}

/** The statements, built once per store (they name its schema). */
export interface WorkflowSql {
  insertRun: string;
  upsertRun: string;
  insertTask: string;
  upsertTask: string;
  upsertAttempt: string;
}

export function workflowSql(t: (name: string) => string): WorkflowSql {
  const runs = t('workflow_runs');
  const tasks = t('workflow_tasks');
  const attempts = t('workflow_task_attempts');
  const runValuesSql = castPlaceholders(RUN_CASTS);
  const taskValuesSql = castPlaceholders(TASK_CASTS);
  const position = `$${TASK_CASTS.length + 1}::integer`;
  return {
    // No conflict target: a duplicate id or (workflow, slot) both mean "exists".
    insertRun: `INSERT INTO ${runs} (${RUN_COLUMNS}) VALUES (${runValuesSql}) ON CONFLICT DO NOTHING`,
    upsertRun: `INSERT INTO ${runs} (${RUN_COLUMNS}) VALUES (${runValuesSql})
      ON CONFLICT (id) DO UPDATE SET ${updateFromExcluded(RUN_COLUMNS, 1)}`,
    insertTask: `INSERT INTO ${tasks} (${TASK_COLUMNS}, position) VALUES (${taskValuesSql}, ${position})`,
    // A task the run did not start with goes after the others; position never changes.
    upsertTask: `INSERT INTO ${tasks} (${TASK_COLUMNS}, position) VALUES (${taskValuesSql},
      (SELECT coalesce(max(position) + 1, 0) FROM ${tasks} WHERE run_id = $1::text))
      ON CONFLICT (run_id, task_id) DO UPDATE SET ${updateFromExcluded(TASK_COLUMNS, 2)}`,
    upsertAttempt: `INSERT INTO ${attempts} (${ATTEMPT_COLUMNS}) VALUES (${castPlaceholders(ATTEMPT_CASTS)})
      ON CONFLICT (run_id, task_id, attempt) DO UPDATE SET ${updateFromExcluded(ATTEMPT_COLUMNS, 3)}`,
  };
}

export function createRun(
  db: PgAccess,
  sql: WorkflowSql,
  run: WorkflowRun,
  tasks: readonly TaskInstance[],
): Promise<boolean> {
  return db.transaction(async (client) => {
    const inserted = await client.query(sql.insertRun, runValues(run));
    if (inserted.rowCount !== 1) return false;
    for (const [position, task] of tasks.entries()) {
      await client.query(sql.insertTask, [...taskValues(task), position]);
    }
    return true;
  });
}

export async function claimRun(
  db: PgAccess,
  runId: string,
  owner: string,
  leaseUntil: number,
  now: number,
): Promise<boolean> {
  const claimed = await db.rows(
    `UPDATE ${db.t('workflow_runs')} SET owner = $2, lease_expires_at = $3::bigint
     WHERE id = $1 AND (owner IS NULL OR owner = $2 OR lease_expires_at IS NULL OR lease_expires_at < $4::bigint)
     RETURNING id`,
    [runId, owner, leaseUntil, now],
  );
  return claimed.length > 0;
}

/** A concurrent insert of the same name waits on the key, then sees the winner's row. */
export async function acquireLease(
  db: PgAccess,
  name: string,
  owner: string,
  leaseUntil: number,
  now: number,
): Promise<boolean> {
  const leases = db.t('leases');
  const taken = await db.rows(
    `INSERT INTO ${leases} AS l (name, owner, expires_at) VALUES ($1, $2, $3::bigint)
     ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at
     WHERE l.owner = EXCLUDED.owner OR l.expires_at < $4::bigint
     RETURNING name`,
    [name, owner, leaseUntil, now],
  );
  return taken.length > 0;
}

export async function releaseLease(db: PgAccess, name: string, owner: string): Promise<void> {
  await db.rows(`DELETE FROM ${db.t('leases')} WHERE name = $1 AND owner = $2`, [name, owner]);
}

export async function renewLeases(db: PgAccess, owner: string, leaseUntil: number): Promise<void> {
  await db.rows(
    `UPDATE ${db.t('workflow_runs')} SET lease_expires_at = $2::bigint
     WHERE owner = $1 AND ${UNFINISHED_RUN}`,
    [owner, leaseUntil],
  );
}

export async function saveProgress(
  db: PgAccess,
  sql: WorkflowSql,
  run: WorkflowRun,
  tasks: readonly TaskInstance[],
  attempts: readonly TaskAttempt[],
): Promise<void> {
  await db.transaction(async (client) => {
    await client.query(sql.upsertRun, runValues(run));
    for (const task of tasks) await client.query(sql.upsertTask, taskValues(task));
    for (const attempt of attempts) await client.query(sql.upsertAttempt, attemptValues(attempt));
  });
}

/** One snapshot: a concurrent saveProgress is seen whole or not at all. */
export function getRun(db: PgAccess, runId: string): Promise<RunDetail | undefined> {
  return db.transaction(async (client) => {
    await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const select = (text: string) =>
      client.query<unknown[]>({ text, values: [runId], rowMode: 'array' });
    const runs = await select(`SELECT ${RUN_SELECT} FROM ${db.t('workflow_runs')} WHERE id = $1`);
    if (runs.rows[0] === undefined) return undefined;
    const tasks = await select(
      `SELECT ${TASK_SELECT} FROM ${db.t('workflow_tasks')} WHERE run_id = $1 ORDER BY position, task_id`,
    );
    const attempts = await select(
      `SELECT ${selectList(ATTEMPT_COLUMNS, 'postgres', 'a.')}
       FROM ${db.t('workflow_task_attempts')} a
       LEFT JOIN ${db.t('workflow_tasks')} t ON t.run_id = a.run_id AND t.task_id = a.task_id
       WHERE a.run_id = $1 ORDER BY t.position NULLS LAST, a.task_id, a.attempt`,
    );
    return {
      run: toRun(runs.rows[0]),
      tasks: tasks.rows.map(toTask),
      attempts: attempts.rows.map(toAttempt),
    };
  });
}

export async function listRuns(db: PgAccess, filter: RunFilter): Promise<WorkflowRun[]> {
  const limit = checkAlertLimit(filter.limit, MAX_RUN_LIMIT);
  const values: unknown[] = [];
  const p = (value: unknown, cast: string): string => {
    values.push(value);
    return `$${values.length}::${cast}`;
  };
  const where: string[] = [];
  if (filter.workflow !== undefined) where.push(`workflow = ${p(filter.workflow, 'text')}`);
  if (filter.state) where.push(`state = ANY(${p([...filter.state], 'text[]')})`);
  const whereSql = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  const rows = await db.rows(
    `SELECT ${RUN_SELECT} FROM ${db.t('workflow_runs')}${whereSql}
     ORDER BY created_at DESC, id DESC LIMIT ${p(limit, 'integer')}`,
    values,
  );
  return rows.map(toRun);
}

export async function unfinishedRuns(db: PgAccess): Promise<WorkflowRun[]> {
  const rows = await db.rows(
    `SELECT ${RUN_SELECT} FROM ${db.t('workflow_runs')} WHERE ${UNFINISHED_RUN} ORDER BY created_at, id`,
  );
  return rows.map(toRun);
}

export async function runForSlot(
  db: PgAccess,
  workflow: string,
  slot: number,
): Promise<WorkflowRun | undefined> {
  const rows = await db.rows(
    `SELECT ${RUN_SELECT} FROM ${db.t('workflow_runs')} WHERE workflow = $1 AND slot = $2 LIMIT 1`,
    [workflow, slot],
  );
  return rows[0] === undefined ? undefined : toRun(rows[0]);
}

export async function lastSlot(db: PgAccess, workflow: string): Promise<number | null> {
  const rows = await db.rows(`SELECT max(slot) FROM ${db.t('workflow_runs')} WHERE workflow = $1`, [
    workflow,
  ]);
  const v = rows[0]?.[0];
  return v === null || v === undefined ? null : Number(v);
}

export async function findByToken(db: PgAccess, token: string): Promise<TaskInstance | undefined> {
  const rows = await db.rows(
    `SELECT ${TASK_SELECT} FROM ${db.t('workflow_tasks')}
     WHERE callback_token = $1 AND state = 'waiting' ORDER BY run_id, task_id LIMIT 1`,
    [token],
  );
  return rows[0] === undefined ? undefined : toTask(rows[0]);
}

export async function setPaused(db: PgAccess, workflow: string, paused: boolean): Promise<void> {
  const table = db.t('workflow_paused');
  await db.rows(
    paused
      ? `INSERT INTO ${table} (workflow) VALUES ($1) ON CONFLICT DO NOTHING`
      : `DELETE FROM ${table} WHERE workflow = $1`,
    [workflow],
  );
}

export async function pausedWorkflows(db: PgAccess): Promise<Set<string>> {
  const rows = await db.rows(`SELECT workflow FROM ${db.t('workflow_paused')}`);
  return new Set(rows.map((row) => String(row[0])));
}

export function purgeRuns(db: PgAccess, before: number): Promise<number> {
  const runs = db.t('workflow_runs');
  const finishedBefore = `NOT (${UNFINISHED_RUN}) AND created_at < $1::bigint`;
  const doomed = `SELECT id FROM ${runs} WHERE ${finishedBefore}`;
  return db.transaction(async (client) => {
    await client.query(
      `DELETE FROM ${db.t('workflow_task_attempts')} WHERE run_id IN (${doomed})`,
      [before],
    );
    await client.query(`DELETE FROM ${db.t('workflow_tasks')} WHERE run_id IN (${doomed})`, [
      before,
    ]);
    const deleted = await client.query(`DELETE FROM ${runs} WHERE ${finishedBefore}`, [before]);
    return deleted.rowCount ?? 0;
  });
}
