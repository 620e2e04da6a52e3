/**
 * What both adapters share for workflow run history (the tables come from
 * migration v2 in meta-sql.ts): column lists, the values to bind for a run,
 * task instance or attempt, and the mapping of result rows back to the core
 * types, so that DuckDB and PostgreSQL store and answer alike.
 *
 * JSON columns (params, output) are read back as text in both engines
 * (`::text` in PostgreSQL) and parsed here: a jsonb string value would
 * otherwise arrive already parsed and be indistinguishable from JSON text.
 */
import type {
  AttemptOutcome,
  RunState,
  RunTrigger,
  TaskAttempt,
  TaskInstance,
  TaskState,
  WorkflowRun,
} from '../../core/workflows.js';
import { nullable, num, str } from './meta-sql.js';

/** Largest `listRuns` page. */
export const MAX_RUN_LIMIT = 1_000;

/**
 * The SQL predicate of a run not in a final state. PostgreSQL's partial
 * indexes use this exact text, so queries must too.
 */
export const UNFINISHED_RUN = `state IN ('running', 'waiting')`;

export const RUN_COLUMNS =
  'id, workflow, slot, trigger, state, params, created_at, finished_at, deadline_at, deadline_missed, error, owner, lease_expires_at';
export const TASK_COLUMNS =
  'run_id, task_id, state, attempts, started_at, finished_at, next_attempt_at, output, error, callback_token';
export const ATTEMPT_COLUMNS = 'run_id, task_id, attempt, started_at, finished_at, outcome, error';

/** `columns` for a SELECT: JSON columns as text in PostgreSQL (see the module comment). */
export function selectList(columns: string, kind: 'duckdb' | 'postgres', prefix = ''): string {
  return columns
    .split(', ')
    .map((c) => {
      const col = `${prefix}${c}`;
      return kind === 'postgres' && (c === 'params' || c === 'output') ? `${col}::text` : col;
    })
    .join(', ');
}

export type Cell = string | number | boolean | null;

/** Run fields in `RUN_COLUMNS` order, params as JSON text. */
export function runValues(r: WorkflowRun): Cell[] {
  return [
    r.id,
    r.workflow,
    r.slot,
    r.trigger,
    r.state,
    JSON.stringify(r.params),
    r.createdAt,
    r.finishedAt,
    r.deadlineAt,
    r.deadlineMissed,
    r.error,
    r.owner,
    r.leaseExpiresAt,
  ];
}

/** Task fields in `TASK_COLUMNS` order, output as JSON text (`undefined` stored as `null`). */
export function taskValues(t: TaskInstance): Cell[] {
  return [
    t.runId,
    t.taskId,
    t.state,
    t.attempts,
    t.startedAt,
    t.finishedAt,
    t.nextAttemptAt,
    JSON.stringify(t.output ?? null),
    t.error,
    t.callbackToken,
  ];
}

export function attemptValues(a: TaskAttempt): Cell[] {
  return [a.runId, a.taskId, a.attempt, a.startedAt, a.finishedAt, a.outcome, a.error];
}

export function toRun(row: readonly unknown[]): WorkflowRun {
  return {
    id: str(row[0]),
    workflow: str(row[1]),
    slot: nullable(row[2], num),
    trigger: str(row[3]) as RunTrigger,
    state: str(row[4]) as RunState,
    params: JSON.parse(str(row[5])) as Record<string, unknown>,
    createdAt: num(row[6]),
    finishedAt: nullable(row[7], num),
    deadlineAt: nullable(row[8], num),
    deadlineMissed: bool(row[9]),
    error: nullable(row[10], str),
    owner: nullable(row[11], str),
    leaseExpiresAt: nullable(row[12], num),
  };
}

export function toTask(row: readonly unknown[]): TaskInstance {
  return {
    runId: str(row[0]),
    taskId: str(row[1]),
    state: str(row[2]) as TaskState,
    attempts: num(row[3]),
    startedAt: nullable(row[4], num),
    finishedAt: nullable(row[5], num),
    nextAttemptAt: nullable(row[6], num),
    output: JSON.parse(str(row[7])) as unknown,
    error: nullable(row[8], str),
    callbackToken: nullable(row[9], str),
  };
}

export function toAttempt(row: readonly unknown[]): TaskAttempt {
  return {
    runId: str(row[0]),
    taskId: str(row[1]),
    attempt: num(row[2]),
    startedAt: num(row[3]),
    finishedAt: nullable(row[4], num),
    outcome: nullable(row[5], str) as AttemptOutcome | null,
    error: nullable(row[6], str),
  };
}

function bool(v: unknown): boolean {
  if (typeof v !== 'boolean') {
    throw new Error(`metadata store: expected a boolean, got ${typeof v} ${String(v)}`);
  }
  return v;
}
