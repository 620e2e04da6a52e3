/**
 * The `WorkflowStore` half of `DuckDbMetaStore`: one function per method,
 * each given the store's connection by the store's queue (so none
 * interleaves with another call, and a transaction here is the only one).
 *
 * The tables have no keys (see migration v2 in meta-sql.ts): runs are
 * inserted only where absent, which also enforces one run per (workflow,
 * slot); rows are upserted as an UPDATE by key followed, when it changed
 * nothing, by an INSERT.
 */
import {
  BIGINT,
  BOOLEAN,
  INTEGER,
  LIST,
  VARCHAR,
  listValue,
  type DuckDBConnection,
  type DuckDBType,
} from '@duckdb/node-api';
import type {
  RunDetail,
  RunFilter,
  TaskAttempt,
  TaskInstance,
  WorkflowRun,
} from '../../core/workflows.js';
import { Params, bind, inTransaction, ms, placeholders } from './duckdb-sql.js';
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
  type Cell,
} from './workflow-sql.js';

// Parameter types in the column order of workflow-sql's `*_COLUMNS`.
const RUN_TYPES: readonly DuckDBType[] = [
  VARCHAR, // id
  VARCHAR, // workflow
  BIGINT, // slot
  VARCHAR, // trigger
  VARCHAR, // state
  VARCHAR, // params
  BIGINT, // created_at
  BIGINT, // finished_at
  BIGINT, // deadline_at
  BOOLEAN, // deadline_missed
  VARCHAR, // error
  VARCHAR, // owner
  BIGINT, // lease_expires_at
];
const TASK_TYPES: readonly DuckDBType[] = [
  VARCHAR, // run_id
  VARCHAR, // task_id
  VARCHAR, // state
  INTEGER, // attempts
  BIGINT, // started_at
  BIGINT, // finished_at
  BIGINT, // next_attempt_at
  VARCHAR, // output
  VARCHAR, // error
  VARCHAR, // callback_token
];
const ATTEMPT_TYPES: readonly DuckDBType[] = [
  VARCHAR, // run_id
  VARCHAR, // task_id
  INTEGER, // attempt
  BIGINT, // started_at
  BIGINT, // finished_at
  VARCHAR, // outcome
  VARCHAR, // error
];

const RUN_SELECT = selectList(RUN_COLUMNS, 'duckdb');
const TASK_SELECT = selectList(TASK_COLUMNS, 'duckdb');
const FINISHED_BEFORE = `NOT (${UNFINISHED_RUN}) AND created_at < $1`;

/**
 * Inserts the run unless one with its id, or (slot not null) its workflow and
 * slot, exists; then its tasks in declaration order. One transaction.
 */
export function createRun(
  conn: DuckDBConnection,
  run: WorkflowRun,
  tasks: readonly TaskInstance[],
): Promise<boolean> {
  return inTransaction(conn, async () => {
    // $1 id, $2 workflow, $3 slot; `slot = NULL` matches nothing.
    const inserted = await conn.run(
      `INSERT INTO workflow_runs (${RUN_COLUMNS}) SELECT ${placeholders(RUN_TYPES.length)}
       WHERE NOT EXISTS (SELECT 1 FROM workflow_runs WHERE id = $1 OR (workflow = $2 AND slot = $3))`,
      ...bind(runValues(run), RUN_TYPES),
    );
    if (inserted.rowsChanged === 0) return false;
    for (const [position, task] of tasks.entries()) {
      await conn.run(
        `INSERT INTO workflow_tasks (${TASK_COLUMNS}, position) VALUES (${placeholders(TASK_TYPES.length + 1)})`,
        ...bind([...taskValues(task), position], [...TASK_TYPES, INTEGER]),
      );
    }
    return true;
  });
}

export async function claimRun(
  conn: DuckDBConnection,
  runId: string,
  owner: string,
  leaseUntil: number,
  now: number,
): Promise<boolean> {
  const claimed = await conn.run(
    `UPDATE workflow_runs SET owner = $2, lease_expires_at = $3
     WHERE id = $1 AND (owner IS NULL OR owner = $2 OR lease_expires_at IS NULL OR lease_expires_at < $4)`,
    [runId, owner, ms(leaseUntil), ms(now)],
    [VARCHAR, VARCHAR, BIGINT, BIGINT],
  );
  return claimed.rowsChanged > 0;
}

export async function renewLeases(
  conn: DuckDBConnection,
  owner: string,
  leaseUntil: number,
): Promise<void> {
  await conn.run(
    `UPDATE workflow_runs SET lease_expires_at = $2 WHERE owner = $1 AND ${UNFINISHED_RUN}`,
    [owner, ms(leaseUntil)],
    [VARCHAR, BIGINT],
  );
}

/**
 * Delete-then-insert in one transaction (the table keeps no key in DuckDB;
 * see meta-sql.ts); the store's queue makes the call atomic within the one
 * process that opens the file.
 */
export function acquireLease(
  conn: DuckDBConnection,
  name: string,
  owner: string,
  leaseUntil: number,
  now: number,
): Promise<boolean> {
  return inTransaction(conn, async () => {
    await conn.run(
      'DELETE FROM leases WHERE name = $1 AND (owner = $2 OR expires_at < $3)',
      [name, owner, ms(now)],
      [VARCHAR, VARCHAR, BIGINT],
    );
    const taken = await conn.run(
      `INSERT INTO leases SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM leases WHERE name = $1)`,
      [name, owner, ms(leaseUntil)],
      [VARCHAR, VARCHAR, BIGINT],
    );
    return taken.rowsChanged > 0;
  });
}

export async function releaseLease(
  conn: DuckDBConnection,
  name: string,
  owner: string,
): Promise<void> {
  await conn.run(
    'DELETE FROM leases WHERE name = $1 AND owner = $2',
    [name, owner],
    [VARCHAR, VARCHAR],
  );
}

export function saveProgress(
  conn: DuckDBConnection,
  run: WorkflowRun,
  tasks: readonly TaskInstance[],
  attempts: readonly TaskAttempt[],
): Promise<void> {
  return inTransaction(conn, async () => {
    await upsert(conn, 'workflow_runs', RUN_COLUMNS, 1, runValues(run), RUN_TYPES);
    for (const task of tasks) {
      // A task the run did not start with goes after the others.
      await upsert(conn, 'workflow_tasks', TASK_COLUMNS, 2, taskValues(task), TASK_TYPES, {
        column: 'position',
        value: '(SELECT coalesce(max(position) + 1, 0) FROM workflow_tasks WHERE run_id = $1)',
      });
    }
    for (const attempt of attempts) {
      await upsert(
        conn,
        'workflow_task_attempts',
        ATTEMPT_COLUMNS,
        3,
        attemptValues(attempt),
        ATTEMPT_TYPES,
      );
    }
  });
}

export async function getRun(
  conn: DuckDBConnection,
  runId: string,
): Promise<RunDetail | undefined> {
  const params = [runId];
  const types = [VARCHAR];
  const runs = (
    await conn.runAndReadAll(`SELECT ${RUN_SELECT} FROM workflow_runs WHERE id = $1`, params, types)
  ).getRows();
  if (runs[0] === undefined) return undefined;
  const tasks = await conn.runAndReadAll(
    `SELECT ${TASK_SELECT} FROM workflow_tasks WHERE run_id = $1 ORDER BY position, task_id`,
    params,
    types,
  );
  const attempts = await conn.runAndReadAll(
    `SELECT ${selectList(ATTEMPT_COLUMNS, 'duckdb', 'a.')}
     FROM workflow_task_attempts a
     LEFT JOIN workflow_tasks t ON t.run_id = a.run_id AND t.task_id = a.task_id
     WHERE a.run_id = $1 ORDER BY t.position NULLS LAST, a.task_id, a.attempt`,
    params,
    types,
  );
  return {
    run: toRun(runs[0]),
    tasks: tasks.getRows().map(toTask),
    attempts: attempts.getRows().map(toAttempt),
  };
}

export async function listRuns(conn: DuckDBConnection, filter: RunFilter): Promise<WorkflowRun[]> {
  const limit = checkAlertLimit(filter.limit, MAX_RUN_LIMIT);
  const q = new Params();
  const where: string[] = [];
  if (filter.workflow !== undefined) where.push(`workflow = ${q.add(filter.workflow, VARCHAR)}`);
  if (filter.state) {
    where.push(`list_contains(${q.add(listValue([...filter.state]), LIST(VARCHAR))}, state)`);
  }
  const whereSql = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  const rows = await conn.runAndReadAll(
    `SELECT ${RUN_SELECT} FROM workflow_runs${whereSql}
     ORDER BY created_at DESC, id DESC LIMIT ${q.add(BigInt(limit), BIGINT)}`,
    q.values,
    q.types,
  );
  return rows.getRows().map(toRun);
}

export async function unfinishedRuns(conn: DuckDBConnection): Promise<WorkflowRun[]> {
  const rows = await conn.runAndReadAll(
    `SELECT ${RUN_SELECT} FROM workflow_runs WHERE ${UNFINISHED_RUN} ORDER BY created_at, id`,
  );
  return rows.getRows().map(toRun);
}

export async function runForSlot(
  conn: DuckDBConnection,
  workflow: string,
  slot: number,
): Promise<WorkflowRun | undefined> {
  const rows = await conn.runAndReadAll(
    `SELECT ${RUN_SELECT} FROM workflow_runs WHERE workflow = $1 AND slot = $2 LIMIT 1`,
    [workflow, BigInt(slot)],
    [VARCHAR, BIGINT],
  );
  const row = rows.getRows()[0];
  return row === undefined ? undefined : toRun(row);
}

export async function lastSlot(conn: DuckDBConnection, workflow: string): Promise<number | null> {
  const rows = await conn.runAndReadAll(
    'SELECT max(slot) FROM workflow_runs WHERE workflow = $1',
    [workflow],
    [VARCHAR],
  );
  const v = rows.getRows()[0]?.[0];
  return v === null || v === undefined ? null : Number(v);
}

export async function findByToken(
  conn: DuckDBConnection,
  token: string,
): Promise<TaskInstance | undefined> {
  const rows = await conn.runAndReadAll(
    `SELECT ${TASK_SELECT} FROM workflow_tasks WHERE callback_token = $1 AND state = 'waiting'
     ORDER BY run_id, task_id LIMIT 1`,
    [token],
    [VARCHAR],
  );
  const row = rows.getRows()[0];
  return row === undefined ? undefined : toTask(row);
}

export async function setPaused(
  conn: DuckDBConnection,
  workflow: string,
  paused: boolean,
): Promise<void> {
  await conn.run(
    paused
      ? `INSERT INTO workflow_paused (workflow) SELECT $1
         WHERE NOT EXISTS (SELECT 1 FROM workflow_paused WHERE workflow = $1)`
      : 'DELETE FROM workflow_paused WHERE workflow = $1',
    [workflow],
    [VARCHAR],
  );
}

export async function pausedWorkflows(conn: DuckDBConnection): Promise<Set<string>> {
  const rows = await conn.runAndReadAll('SELECT workflow FROM workflow_paused');
  return new Set(rows.getRows().map((row) => String(row[0])));
}

export function purgeRuns(conn: DuckDBConnection, before: number): Promise<number> {
  return inTransaction(conn, async () => {
    const params = [ms(before)];
    const types = [BIGINT];
    const doomed = `SELECT id FROM workflow_runs WHERE ${FINISHED_BEFORE}`;
    await conn.run(`DELETE FROM workflow_task_attempts WHERE run_id IN (${doomed})`, params, types);
    await conn.run(`DELETE FROM workflow_tasks WHERE run_id IN (${doomed})`, params, types);
    const deleted = await conn.run(
      `DELETE FROM workflow_runs WHERE ${FINISHED_BEFORE}`,
      params,
      types,
    );
    return Number(deleted.rowsChanged);
  });
}

/**
 * Writes one row by its key (the first `keyLength` columns): UPDATE, and
 * INSERT when no row had the key. `extra` is a column only an insert sets,
 * with its SQL value (which may use the row's parameters).
 */
async function upsert(
  conn: DuckDBConnection,
  table: string,
  columns: string,
  keyLength: number,
  values: readonly Cell[],
  types: readonly DuckDBType[],
  extra?: { column: string; value: string },
): Promise<void> {
  const names = columns.split(', ');
  const key = names
    .slice(0, keyLength)
    .map((c, i) => `${c} = $${i + 1}`)
    .join(' AND ');
  const set = names
    .map((c, i) => `${c} = $${i + 1}`)
    .slice(keyLength)
    .join(', ');
  const updated = await conn.run(`UPDATE ${table} SET ${set} WHERE ${key}`, ...bind(values, types));
  if (updated.rowsChanged > 0) return;
  const insertColumns = extra ? `${columns}, ${extra.column}` : columns;
  const insertValues = extra
    ? `${placeholders(values.length)}, ${extra.value}`
    : placeholders(values.length);
  await conn.run(
    `INSERT INTO ${table} (${insertColumns}) VALUES (${insertValues})`,
    ...bind(values, types),
  );
}
