/**
 * Workflows are defined in TypeScript: a name, an optional schedule and
 * deadline, and tasks forming a DAG. Three kinds of task:
 *
 * - a plain task runs a function; its JSON-serialisable result is its output;
 * - a choice runs `choose` and returns the name of one of its `branches`;
 *   the first tasks of every other branch are skipped, and so is everything
 *   downstream of a skipped task;
 * - a wait-for-callback task calls `start(ctx, token)` and then waits until
 *   an external process completes the token (`POST
 *   /api/workflows/callbacks/:token`, or `WorkflowRunner.completeCallback`);
 *   the token and the wait survive a restart.
 *
 * Tasks whose dependencies are all done run in parallel (bounded by the
 * runner). A task whose dependency failed is skipped, and the run fails.
 */
import type { Logger } from '../observability/logger.js';

export type CatchUpPolicy = 'once' | 'all' | 'skip';

export interface WorkflowSchedule {
  /** Five-field cron (or six with seconds), as croner reads it. */
  cron: string;
  /** IANA time zone the cron is read in; default UTC. */
  timezone?: string;
  /**
   * Slots missed while Canopy was down: `once` runs the latest missed slot,
   * `all` runs every missed slot (oldest first, at most `maxCatchUp`), `skip`
   * runs none. Default `once`.
   */
  catchUp?: CatchUpPolicy;
  /** Cap for `catchUp: all`; default 100. */
  maxCatchUp?: number;
}

export interface TaskContext {
  workflow: string;
  runId: string;
  /** The run's schedule slot (epoch ms), or null for a manual run without one. */
  slot: number | null;
  params: Readonly<Record<string, unknown>>;
  /** Outputs of the tasks this one depends on (directly or not) that succeeded. */
  outputs: Readonly<Record<string, unknown>>;
  /** 1-based attempt number. */
  attempt: number;
  /** Aborted when the task times out or the runner stops. */
  signal: AbortSignal;
  logger: Logger;
}

interface TaskCommon {
  /** Unique within the workflow: lower-case letters, digits, `-`, `_`. */
  id: string;
  description?: string;
  dependsOn?: readonly string[];
  /** Further attempts after a failure; default 0. */
  retries?: number;
  /** Delay before retry n is `retryBackoffMs × 2^(n−1)`; default 1 000. */
  retryBackoffMs?: number;
  /**
   * An attempt that runs longer fails as `timed-out` (the signal is aborted).
   * For a wait-for-callback task: how long to wait for the callback.
   */
  timeoutMs?: number;
}

export interface RunTaskDefinition extends TaskCommon {
  kind?: 'task';
  run(ctx: TaskContext): Promise<unknown>;
}

export interface ChoiceTaskDefinition extends TaskCommon {
  kind: 'choice';
  /** Returns a key of `branches`. */
  choose(ctx: TaskContext): string | Promise<string>;
  /**
   * Branch name → ids of the tasks that start that branch; each must depend on
   * this choice.
   */
  branches: Readonly<Record<string, readonly string[]>>;
}

export interface CallbackTaskDefinition extends TaskCommon {
  kind: 'wait-for-callback';
  /**
   * Hands the token to whoever will complete it (a worker, a person); the task
   * then waits. The callback's JSON becomes the task's output, or its error
   * fails the attempt.
   */
  start(ctx: TaskContext, token: string): Promise<void>;
}

export type TaskDefinition = RunTaskDefinition | ChoiceTaskDefinition | CallbackTaskDefinition;

export interface WorkflowDefinition {
  /** Unique: lower-case letters, digits, `-`, `_`. */
  name: string;
  description: string;
  schedule?: WorkflowSchedule;
  /**
   * A run must be finished this long after its slot (or, without a slot, after
   * it was created); a miss raises the `deadline-missed` pipeline alert.
   */
  deadlineMs?: number;
  /** The run's parameters from its slot (e.g. the date before the slot, in the schedule's zone). */
  params?(slot: number | null): Record<string, unknown>;
  tasks: readonly TaskDefinition[];
}
