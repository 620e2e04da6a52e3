/**
 * The workflow contract: runs, task instances, attempts, and the store that
 * keeps them (the metadata store: DuckDB by default, PostgreSQL by config).
 * Every adapter passes the one conformance suite in
 * `src/storage/meta/workflow-store.conformance.ts`.
 *
 * Times are epoch milliseconds (UTC).
 */

/**
 * `running` while some task can make progress, `waiting` while every
 * unfinished task waits for a callback; `succeeded` / `failed` are final, as
 * is `cancelled` (a run stopped by hand).
 */
export type RunState = 'running' | 'waiting' | 'succeeded' | 'failed' | 'cancelled';
export const RUN_STATES: readonly RunState[] = [
  'running',
  'waiting',
  'succeeded',
  'failed',
  'cancelled',
];
export const FINAL_RUN_STATES: readonly RunState[] = ['succeeded', 'failed', 'cancelled'];

/**
 * `pending` (dependencies not done) → `running` → `succeeded` | `failed`;
 * a failed attempt with retries left goes to `retrying` until
 * `nextAttemptAt`; a wait-for-callback task is `waiting` until its token is
 * completed; `skipped` when a choice took another branch or an upstream task
 * failed.
 */
export type TaskState =
  'pending' | 'running' | 'retrying' | 'waiting' | 'succeeded' | 'failed' | 'skipped';

/** Why a run exists. */
export type RunTrigger = 'schedule' | 'catch-up' | 'manual' | 'backfill';

export interface WorkflowRun {
  /** UUID. */
  id: string;
  workflow: string;
  /**
   * The schedule slot the run is for (epoch ms), or null for a manual run
   * without one. At most one run exists per (workflow, slot).
   */
  slot: number | null;
  trigger: RunTrigger;
  state: RunState;
  /** JSON parameters the tasks see (e.g. `{ "date": "2026-11-28" }`). */
  params: Record<string, unknown>;
  createdAt: number;
  finishedAt: number | null;
  /** When the run must be finished by, or null without a deadline. */
  deadlineAt: number | null;
  deadlineMissed: boolean;
  /** The first failing task's error, for a failed run. */
  error: string | null;
  /** The Canopy instance driving the run, and until when its lease holds. */
  owner: string | null;
  leaseExpiresAt: number | null;
}

export interface TaskInstance {
  runId: string;
  taskId: string;
  state: TaskState;
  /** Attempts started so far. */
  attempts: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** For `retrying`: when the next attempt may start. */
  nextAttemptAt: number | null;
  /** JSON output of the last successful attempt (a choice's: the branch taken). */
  output: unknown;
  error: string | null;
  /** For a wait-for-callback task: the token an external process completes it with. */
  callbackToken: string | null;
}

export type AttemptOutcome = 'succeeded' | 'failed' | 'timed-out' | 'interrupted';

export interface TaskAttempt {
  runId: string;
  taskId: string;
  /** 1-based. */
  attempt: number;
  startedAt: number;
  finishedAt: number | null;
  /** Null while the attempt runs. */
  outcome: AttemptOutcome | null;
  error: string | null;
}

export interface RunDetail {
  run: WorkflowRun;
  /** In the workflow's declaration order. */
  tasks: TaskInstance[];
  /** Ordered by task, then attempt. */
  attempts: TaskAttempt[];
}

export interface RunFilter {
  workflow?: string;
  state?: readonly RunState[];
  /** Newest `createdAt` first; 1..1000. */
  limit: number;
}

export interface WorkflowStore {
  /**
   * Creates the run with its task instances, atomically, unless a run for
   * the same (workflow, slot) exists (slot not null): then nothing is
   * written and it returns false. With several Canopy processes on one
   * PostgreSQL, exactly one of them creates a slot's run.
   */
  createRun(run: WorkflowRun, tasks: readonly TaskInstance[]): Promise<boolean>;
  /**
   * Takes the run for `owner` until `leaseUntil` if it is unowned, already
   * owned by `owner`, or its lease expired before `now`; returns whether it did.
   * A crashed owner's runs are taken over this way once their lease lapses.
   */
  claimRun(runId: string, owner: string, leaseUntil: number, now: number): Promise<boolean>;
  /** Extends every unfinished run `owner` holds to `leaseUntil`. */
  renewLeases(owner: string, leaseUntil: number): Promise<void>;
  /**
   * Takes the lease `name` for `owner` until `leaseUntil` if nobody holds
   * it, `owner` already does, or its holder's lease ended before `now`;
   * returns whether it did. With several Canopy processes on one PostgreSQL,
   * at most one holds a name at a time.
   */
  acquireLease(name: string, owner: string, leaseUntil: number, now: number): Promise<boolean>;
  /** Gives up the lease `name` if `owner` holds it; otherwise does nothing. */
  releaseLease(name: string, owner: string): Promise<void>;
  /**
   * Writes the run row, and the given task instances and attempts
   * (upserted by key), in one transaction.
   */
  saveProgress(
    run: WorkflowRun,
    tasks: readonly TaskInstance[],
    attempts: readonly TaskAttempt[],
  ): Promise<void>;
  getRun(runId: string): Promise<RunDetail | undefined>;
  listRuns(filter: RunFilter): Promise<WorkflowRun[]>;
  /** Runs not in a final state, oldest first. */
  unfinishedRuns(): Promise<WorkflowRun[]>;
  /** The latest slot any run of the workflow has, or null. */
  lastSlot(workflow: string): Promise<number | null>;
  /** The run of the workflow for this slot, if one exists. */
  runForSlot(workflow: string, slot: number): Promise<WorkflowRun | undefined>;
  /** The task waiting on this callback token, if any. */
  findByToken(token: string): Promise<TaskInstance | undefined>;
  setPaused(workflow: string, paused: boolean): Promise<void>;
  pausedWorkflows(): Promise<Set<string>>;
  /** Deletes finished runs created before `before`, with their tasks and attempts. */
  purgeRuns(before: number): Promise<number>;
}
