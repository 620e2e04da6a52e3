/**
 * The workflow runner: creates a run for each due schedule slot, drives the
 * runs this instance owns through their task DAG, and records every state
 * change in the WorkflowStore before anything depends on it.
 *
 * Ownership. One run per slot is the store's `createRun` guarantee; who
 * drives a run is its lease. The creator owns a new run; every tick renews
 * the leases of the runs this instance holds, and takes over unfinished runs
 * whose owner's lease lapsed (a crashed instance) or that it owned before a
 * restart (same `instanceId`). Before a write, an instance whose lease lapsed
 * in its own clock re-claims the run; when that fails another instance took
 * it over, and this one forgets the run (its attempts are aborted, their
 * results dropped) without writing. A runner never starts a task of a run it
 * does not own.
 *
 * Serialisation. Every step that reads or changes run state (a tick, a
 * finished attempt, a callback, a trigger) runs on one SerialQueue, so steps
 * never interleave and ticks never overlap. Task functions run outside it. A
 * finished attempt or an arriving callback advances its run at once, without
 * waiting for the next tick; the tick starts retries that came due, times
 * out attempts and callback waits, creates slot runs and checks deadlines.
 * Timeouts are therefore seen at tick granularity (`tickMs`).
 *
 * Task semantics (the decisions the definition leaves open):
 * - A task whose dependency was skipped or failed is skipped, as is a task
 *   starting a branch the choice did not take. A task that depends on a
 *   choice without starting one of its branches runs whichever branch is taken.
 * - Failing fast: once a task failed for good no task starts (retries
 *   included); when no attempt is in flight any more, the unfinished tasks are
 *   skipped (an open callback wait is closed as `interrupted`) and the run
 *   fails with the first failed task's error.
 * - A run is `waiting` when no attempt is in flight, no retry is pending and
 *   some task waits for a callback (pending tasks then sit downstream of it).
 * - Retries: an attempt that failed or timed out is retried while such
 *   failures number at most `retries`, after `retryBackoffMs × 2^(n−1)` for
 *   the n-th. An `interrupted` attempt (its instance stopped or crashed) does
 *   not count: the task is retried at once on recovery, so a task that takes
 *   its process down with it would be retried on every restart.
 * - A wait-for-callback task's token is stored before `start` receives it, so
 *   a callback that arrives while `start` is still running is accepted. Each
 *   attempt has a new token; a waiting task keeps its token over a restart.
 * - Deadlines: scheduled and catch-up runs must finish by slot + `deadlineMs`;
 *   manual and backfill runs by creation + `deadlineMs`, so that re-running an
 *   old slot does not raise a stale deadline alert.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import {
  FINAL_RUN_STATES,
  type RunTrigger,
  type TaskAttempt,
  type TaskInstance,
  type TaskState,
  type WorkflowRun,
  type WorkflowStore,
} from '../core/workflows.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TaskContext, TaskDefinition, WorkflowDefinition } from './definition.js';
import { CURRENT_SLOT_GRACE_MS, dueSlots, isSlot, previousSlot, slotsBetween } from './schedule.js';
import { validateWorkflows } from './validate.js';

export interface DeadlineEvent {
  workflow: string;
  runId: string;
  /** True when the run passed its deadline unfinished; false when it succeeded in time. */
  missed: boolean;
  /** When the runner saw it (epoch ms). */
  at: number;
}

export interface WorkflowRunnerOptions {
  store: WorkflowStore;
  workflows: readonly WorkflowDefinition[];
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** Identifies this process among the instances sharing the store. */
  instanceId: string;
  /** How long a run stays owned without renewal; default 60 000. */
  leaseMs?: number;
  /** Attempts in flight at once per run; default 4. */
  maxParallelTasks?: number;
  /** Timer loop period; default 1 000. */
  tickMs?: number;
  onDeadline?: (event: DeadlineEvent) => void;
  /** Told of every run this instance finished (succeeded, failed or cancelled); must not throw. */
  onRunFinished?: (run: WorkflowRun) => void;
  /** Run ids; default UUIDs. */
  newId?: () => string;
  /** Callback tokens; default 32 random bytes, base64url. */
  newToken?: () => string;
}

export interface TriggerOptions {
  /** A slot of the workflow's schedule, not in the future. */
  slot?: number;
  /** Merged over the definition's `params(slot)`. */
  params?: Record<string, unknown>;
  trigger?: 'manual' | 'backfill';
}

export type CallbackResult = { output?: unknown } | { error: string };

/** Slots one backfill may span. */
export const MAX_BACKFILL_SLOTS = 1000;

const FINAL_TASK_STATES: readonly TaskState[] = ['succeeded', 'failed', 'skipped'];

/** What finished an attempt's function (a callback task's `start` only starts the wait). */
type AttemptResult =
  { kind: 'returned'; output: unknown } | { kind: 'started' } | { kind: 'threw'; error: string };

interface Execution {
  attempt: number;
  controller: AbortController;
}

/** A run this instance drives: its last stored state and its attempts in flight. */
interface DrivenRun {
  def: WorkflowDefinition;
  graph: Graph;
  run: WorkflowRun;
  tasks: Map<string, TaskInstance>;
  /** By `attemptKey`. */
  attempts: Map<string, TaskAttempt>;
  /** By task id; only attempts still open. */
  executing: Map<string, Execution>;
}

/** A definition's DAG, precomputed. */
interface Graph {
  byId: Map<string, TaskDefinition>;
  /** Dependencies before dependants. */
  topological: string[];
  /** Every task a task depends on, directly or not. */
  ancestors: Map<string, Set<string>>;
  /** `${choice}\0${task}` → the branch of `choice` that `task` starts. */
  branchOf: Map<string, string>;
}

interface Waiter {
  runId: string;
  accept: (run: WorkflowRun) => boolean;
  resolve: (run: WorkflowRun) => void;
  reject: (err: unknown) => void;
}

/** The planned next state of a run: written in one saveProgress. */
interface Plan {
  run: WorkflowRun;
  tasks: TaskInstance[];
  attempts: TaskAttempt[];
  /** Tasks whose attempt starts now. */
  starts: string[];
  /** Tasks whose attempt in flight was closed (timed out): abort them. */
  closed: string[];
}

/** Thrown inside the runner when another instance took a run over. */
class RunTakenOver extends Error {}

function attemptKey(taskId: string, attempt: number): string {
  return `${taskId}#${attempt}`;
}

function isFinalRun(run: WorkflowRun): boolean {
  return FINAL_RUN_STATES.includes(run.state);
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function buildGraph(def: WorkflowDefinition): Graph {
  const byId = new Map(def.tasks.map((t) => [t.id, t]));
  const topological: string[] = [];
  const seen = new Set<string>();
  const visit = (id: string): void => {
    if (seen.has(id)) return;
    seen.add(id);
    for (const dep of byId.get(id)?.dependsOn ?? []) visit(dep);
    topological.push(id);
  };
  for (const task of def.tasks) visit(task.id);
  const ancestors = new Map<string, Set<string>>();
  for (const id of topological) {
    const set = new Set<string>();
    for (const dep of byId.get(id)?.dependsOn ?? []) {
      set.add(dep);
      for (const a of ancestors.get(dep) ?? []) set.add(a);
    }
    ancestors.set(id, set);
  }
  const branchOf = new Map<string, string>();
  for (const task of def.tasks) {
    if (task.kind !== 'choice') continue;
    for (const [branch, starts] of Object.entries(task.branches)) {
      for (const start of starts) branchOf.set(`${task.id}\u0000${start}`, branch);
    }
  }
  return { byId, topological, ancestors, branchOf };
}

/** The value as the store will give it back, or an error for what JSON cannot hold. */
function asJson(value: unknown): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    const text = JSON.stringify(value ?? null);
    return { ok: true, value: text === undefined ? null : JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: `the output is not JSON: ${errorText(err)}` };
  }
}

export class WorkflowRunner {
  private readonly store: WorkflowStore;
  private readonly defs: readonly WorkflowDefinition[];
  private readonly byName: Map<string, { def: WorkflowDefinition; graph: Graph }>;
  private readonly clock: Clock;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly instanceId: string;
  private readonly leaseMs: number;
  private readonly maxParallelTasks: number;
  private readonly tickMs: number;
  private readonly onDeadline: ((event: DeadlineEvent) => void) | undefined;
  private readonly onRunFinished: ((run: WorkflowRun) => void) | undefined;
  private readonly newId: () => string;
  private readonly newToken: () => string;

  private readonly queue = new SerialQueue();
  private readonly driven = new Map<string, DrivenRun>();
  private readonly waiters = new Set<Waiter>();
  /** Task functions running (their result still to be recorded); `stop` waits for them. */
  private readonly inFlight = new Set<Promise<void>>();
  /** The latest slot known to have a run, per workflow: saves a store query per tick. */
  private readonly knownLastSlot = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private tickQueued = false;
  private stopping = false;

  /** Throws CANOPY_WORKFLOW_INVALID listing every problem of the definitions. */
  constructor(o: WorkflowRunnerOptions) {
    validateWorkflows(o.workflows);
    this.store = o.store;
    this.defs = o.workflows;
    this.byName = new Map(o.workflows.map((def) => [def.name, { def, graph: buildGraph(def) }]));
    this.clock = o.clock;
    this.metrics = o.metrics;
    this.logger = o.logger;
    this.instanceId = o.instanceId;
    this.leaseMs = o.leaseMs ?? 60_000;
    this.maxParallelTasks = o.maxParallelTasks ?? 4;
    this.tickMs = o.tickMs ?? 1_000;
    this.onDeadline = o.onDeadline;
    this.onRunFinished = o.onRunFinished;
    this.newId = o.newId ?? randomUUID;
    this.newToken = o.newToken ?? (() => randomBytes(32).toString('base64url'));
  }

  workflows(): readonly WorkflowDefinition[] {
    return this.defs;
  }

  /**
   * Recovery, then the timer loop (an unref'd interval): takes over the
   * unfinished runs this instance may drive (its own from before a restart,
   * and any whose lease lapsed), closing attempts left running as
   * `interrupted`. Throws what the store throws.
   */
  async start(): Promise<void> {
    await this.queue.run(() => this.claimRuns(this.clock.now(), true));
    this.timer = setInterval(() => this.requestTick(), this.tickMs);
    this.timer.unref();
    this.requestTick();
  }

  /**
   * One pass at `clock.now()`: renews leases, takes over runs whose lease
   * lapsed, creates the due slot runs, times out attempts and callback
   * waits, starts ready tasks and due retries, checks deadlines. Never
   * throws: a store failure is logged and the next tick tries again.
   */
  tick(): Promise<void> {
    return this.queue.run(() => this.tickNow());
  }

  /**
   * Creates a run now (manual by default) and starts its tasks; with a slot
   * that already has a run, returns that run instead. Throws
   * CANOPY_WORKFLOW_NOT_FOUND, CANOPY_WORKFLOW_BAD_REQUEST (a slot that is
   * not one of the schedule's or lies in the future, a paused workflow).
   */
  trigger(workflow: string, options: TriggerOptions = {}): Promise<WorkflowRun> {
    return this.queue.run(async () => {
      const { def } = this.definition(workflow);
      const now = this.clock.now();
      if (options.slot !== undefined) {
        if (def.schedule === undefined || !isSlot(def.schedule, options.slot)) {
          throw new CanopyError(
            'CANOPY_WORKFLOW_BAD_REQUEST',
            `${new Date(options.slot).toISOString()} is not a slot of workflow ${workflow}'s schedule`,
          );
        }
        if (options.slot > now) {
          throw new CanopyError(
            'CANOPY_WORKFLOW_BAD_REQUEST',
            `slot ${new Date(options.slot).toISOString()} of workflow ${workflow} is in the future`,
          );
        }
      }
      if ((await this.store.pausedWorkflows()).has(workflow)) {
        throw new CanopyError('CANOPY_WORKFLOW_BAD_REQUEST', `workflow ${workflow} is paused`);
      }
      const slot = options.slot ?? null;
      const created = await this.createRun(
        def,
        slot,
        options.trigger ?? 'manual',
        options.params ?? {},
      );
      if (created !== undefined) return created;
      const existing = await this.runForSlot(workflow, slot as number);
      if (existing === undefined) {
        throw new CanopyError(
          'CANOPY_WORKFLOW_NOT_FOUND',
          `workflow ${workflow} has a run for slot ${slot} that could not be found again`,
        );
      }
      return existing;
    });
  }

  /**
   * A run for every slot of the schedule in [from, to] (an existing run of a
   * slot is reused), at most `concurrency` of them unfinished at once.
   * Resolves with the final runs in slot order; a run waiting for a callback
   * keeps it waiting. Throws CANOPY_WORKFLOW_NOT_FOUND, or
   * CANOPY_WORKFLOW_BAD_REQUEST for a workflow without schedule, a range that
   * is reversed, holds no slot, more than MAX_BACKFILL_SLOTS or a future
   * slot, a concurrency below 1, or a paused workflow.
   */
  async backfill(
    workflow: string,
    from: number,
    to: number,
    concurrency: number,
  ): Promise<WorkflowRun[]> {
    const { def } = this.definition(workflow);
    const bad = (why: string) =>
      new CanopyError('CANOPY_WORKFLOW_BAD_REQUEST', `backfill of ${workflow}: ${why}`);
    if (def.schedule === undefined) throw bad('the workflow has no schedule');
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw bad('concurrency must be a whole number ≥ 1');
    }
    if (!(from <= to)) throw bad('the range is reversed');
    if (to > this.clock.now()) throw bad('the range reaches into the future');
    const slots = slotsBetween(def.schedule, from - 1, to);
    if (slots.length === 0) throw bad('the range holds no slot');
    if (slots.length > MAX_BACKFILL_SLOTS) {
      throw bad(`the range holds ${slots.length} slots, more than ${MAX_BACKFILL_SLOTS}`);
    }
    const results: WorkflowRun[] = new Array<WorkflowRun>(slots.length);
    const unfinished = new Map<number, Promise<void>>();
    for (const [index, slot] of slots.entries()) {
      while (unfinished.size >= concurrency) await Promise.race(unfinished.values());
      const run = await this.trigger(workflow, { slot, trigger: 'backfill' });
      const done = this.whenRun(run.id, isFinalRun).then((final) => {
        results[index] = final;
        unfinished.delete(index);
      });
      unfinished.set(index, done);
    }
    await Promise.all(unfinished.values());
    return results;
  }

  /**
   * Completes the wait of the task holding `token`: its output, or an error
   * that fails the attempt (retry rules apply; a retry waits on a new token).
   * Resolves once the result is stored. Throws
   * CANOPY_WORKFLOW_CALLBACK_UNKNOWN when no task waits on the token, and
   * CANOPY_META_UNAVAILABLE when another live instance drives the run (it
   * must reach that instance, or be retried once that instance's lease lapses)
   * or the store fails (nothing was recorded; retry).
   */
  completeCallback(token: string, result: CallbackResult): Promise<void> {
    return this.queue.run(async () => {
      let found = this.findWaiting(token);
      if (found === undefined) {
        const task = await this.store.findByToken(token);
        if (task === undefined || (task.state !== 'waiting' && task.state !== 'running')) {
          throw unknownCallback();
        }
        const detail = await this.store.getRun(task.runId);
        if (detail === undefined || isFinalRun(detail.run)) throw unknownCallback();
        if (!this.byName.has(detail.run.workflow)) throw unknownCallback();
        const claimed = await this.claim(detail.run.id, this.clock.now());
        found = claimed ? this.findWaiting(token) : undefined;
        if (!claimed) {
          throw new CanopyError(
            'CANOPY_META_UNAVAILABLE',
            `run ${detail.run.id} is driven by instance ${detail.run.owner ?? '?'}; send the callback there or retry later`,
          );
        }
        if (found === undefined) throw unknownCallback();
      }
      const { d, task } = found;
      const attemptResult: AttemptResult =
        'error' in result
          ? { kind: 'threw', error: result.error }
          : { kind: 'returned', output: result.output };
      const recorded = await this.recordResult(d, task.taskId, task.attempts, attemptResult, true);
      if (recorded) await this.advanceLogged(d);
    });
  }

  /** New slots of the workflow get no run until `resume`; runs under way go on. */
  async pause(workflow: string): Promise<void> {
    this.definition(workflow);
    await this.store.setPaused(workflow, true);
  }

  /** The next tick creates the slots missed while paused, per the catch-up policy. */
  async resume(workflow: string): Promise<void> {
    this.definition(workflow);
    await this.store.setPaused(workflow, false);
    this.knownLastSlot.delete(workflow);
    this.requestTick();
  }

  /**
   * Resolves when the run is final or waiting for a callback. A run another
   * instance drives is looked at on each tick. Throws
   * CANOPY_WORKFLOW_NOT_FOUND; rejects when the runner stops first.
   */
  settled(runId: string): Promise<WorkflowRun> {
    return this.whenRun(runId, (run) => run.state !== 'running');
  }

  /** Like `settled`, but past callback waits too: resolves when the run is final. */
  completed(runId: string): Promise<WorkflowRun> {
    return this.whenRun(runId, isFinalRun);
  }

  /**
   * Stops the loop and aborts the attempts in flight, waits for them and
   * records them: a result that still came is kept, an attempt that failed
   * is recorded `interrupted` (its task retried at once by whoever drives the
   * run next). Then releases the runs (no owner) so another instance can
   * take them over at once. Writes that fail are left to recovery.
   */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.queue.drain();
    for (const d of this.driven.values()) {
      for (const execution of d.executing.values()) {
        execution.controller.abort(new Error('the workflow runner is stopping'));
      }
    }
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    await this.queue.run(async () => {
      for (const d of this.driven.values()) {
        try {
          await this.store.saveProgress({ ...d.run, owner: null, leaseExpiresAt: null }, [], []);
        } catch (err) {
          this.logger.warn({ err, runId: d.run.id }, 'could not release a workflow run');
        }
      }
      this.driven.clear();
      this.setActiveGauge();
      for (const waiter of this.waiters) {
        waiter.reject(new Error('the workflow runner stopped'));
      }
      this.waiters.clear();
    });
  }

  private definition(workflow: string): { def: WorkflowDefinition; graph: Graph } {
    const entry = this.byName.get(workflow);
    if (entry === undefined) {
      throw new CanopyError('CANOPY_WORKFLOW_NOT_FOUND', `no workflow is named ${workflow}`);
    }
    return entry;
  }

  private requestTick(): void {
    if (this.tickQueued || this.stopping) return;
    this.tickQueued = true;
    void this.queue.run(() => {
      this.tickQueued = false;
      return this.tickNow();
    });
  }

  private async tickNow(): Promise<void> {
    if (this.stopping) return;
    const now = this.clock.now();
    await this.logged('renewing workflow leases', () => this.renewLeases(now));
    await this.logged('claiming workflow runs', () => this.claimRuns(now, false));
    await this.logged('creating scheduled workflow runs', () => this.createDueRuns(now));
    for (const d of [...this.driven.values()]) {
      await this.advanceLogged(d);
      await this.logged('checking a workflow deadline', () => this.checkDeadline(d));
    }
    await this.logged('reading awaited workflow runs', () => this.pollWaiters());
    this.setActiveGauge();
  }

  private async logged(what: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      this.logger.error({ err }, `${what} failed`);
    }
  }

  private async renewLeases(now: number): Promise<void> {
    if (this.driven.size === 0) return;
    const until = now + this.leaseMs;
    await this.store.renewLeases(this.instanceId, until);
    for (const d of this.driven.values()) d.run = { ...d.run, leaseExpiresAt: until };
  }

  /**
   * Forgets driven runs another instance took over, and takes over the
   * unfinished runs this instance may drive.
   */
  private async claimRuns(now: number, recovering: boolean): Promise<void> {
    for (const run of await this.store.unfinishedRuns()) {
      const d = this.driven.get(run.id);
      if (d !== undefined) {
        if (run.owner !== this.instanceId) this.forget(d, `taken over by ${run.owner ?? 'nobody'}`);
        continue;
      }
      if (!this.byName.has(run.workflow)) continue;
      const mine = run.owner === null || run.owner === this.instanceId;
      if (!mine && (run.leaseExpiresAt ?? 0) >= now) continue;
      try {
        if (await this.claim(run.id, now)) {
          const adopted = this.driven.get(run.id);
          if (adopted !== undefined) await this.advanceLogged(adopted);
        }
      } catch (err) {
        this.logger.error({ err, runId: run.id, recovering }, 'taking over a workflow run failed');
      }
    }
  }

  /**
   * Claims the run and loads it to drive: attempts left running are closed
   * as `interrupted` and their tasks retried at once; waiting tasks keep
   * their token. Returns whether this instance drives the run now.
   */
  private async claim(runId: string, now: number): Promise<boolean> {
    if (this.driven.has(runId)) return true;
    if (!(await this.store.claimRun(runId, this.instanceId, now + this.leaseMs, now))) return false;
    const detail = await this.store.getRun(runId);
    if (detail === undefined || isFinalRun(detail.run)) return false;
    const entry = this.byName.get(detail.run.workflow);
    if (entry === undefined) return false;
    const { def, graph } = entry;
    const stored = new Map(detail.tasks.map((t) => [t.taskId, t]));
    if (stored.size !== def.tasks.length || def.tasks.some((t) => !stored.has(t.id))) {
      this.logger.error(
        { runId, workflow: def.name },
        'the run’s tasks differ from the workflow definition; it is left as it is',
      );
      return false;
    }
    const d: DrivenRun = {
      def,
      graph,
      run: { ...detail.run, owner: this.instanceId, leaseExpiresAt: now + this.leaseMs },
      tasks: new Map(def.tasks.map((t) => [t.id, stored.get(t.id)!])),
      attempts: new Map(detail.attempts.map((a) => [attemptKey(a.taskId, a.attempt), a])),
      executing: new Map(),
    };
    const tasks: TaskInstance[] = [];
    const attempts: TaskAttempt[] = [];
    for (const task of d.tasks.values()) {
      if (task.state !== 'running') continue;
      const open = d.attempts.get(attemptKey(task.taskId, task.attempts));
      if (open !== undefined && open.outcome === null) {
        attempts.push({
          ...open,
          finishedAt: now,
          outcome: 'interrupted',
          error: 'the instance running the attempt stopped',
        });
      }
      tasks.push({ ...task, state: 'retrying', nextAttemptAt: now });
    }
    this.driven.set(runId, d);
    try {
      await this.persist(d, d.run, tasks, attempts);
    } catch (err) {
      this.driven.delete(runId);
      throw err;
    }
    this.logger.info({ runId, workflow: def.name }, 'driving workflow run');
    return true;
  }

  private async createDueRuns(now: number): Promise<void> {
    let paused: Set<string> | undefined;
    for (const { def } of this.byName.values()) {
      const schedule = def.schedule;
      if (schedule === undefined) continue;
      const current = previousSlot(schedule, now);
      if (current === null) continue;
      const known = this.knownLastSlot.get(def.name);
      if (known !== undefined && current <= known) continue;
      paused ??= await this.store.pausedWorkflows();
      if (paused.has(def.name)) continue;
      const last = await this.store.lastSlot(def.name);
      try {
        for (const slot of dueSlots(schedule, last, now)) {
          const onTime = slot === current && now - slot < CURRENT_SLOT_GRACE_MS;
          await this.createRun(def, slot, onTime ? 'schedule' : 'catch-up', {});
        }
        this.knownLastSlot.set(def.name, Math.max(current, last ?? current));
      } catch (err) {
        this.logger.error({ err, workflow: def.name }, 'creating a scheduled workflow run failed');
      }
    }
  }

  /** Creates and starts a run; undefined when the slot already has one. */
  private async createRun(
    def: WorkflowDefinition,
    slot: number | null,
    trigger: RunTrigger,
    params: Record<string, unknown>,
  ): Promise<WorkflowRun | undefined> {
    const now = this.clock.now();
    const scheduled = trigger === 'schedule' || trigger === 'catch-up';
    const run: WorkflowRun = {
      id: this.newId(),
      workflow: def.name,
      slot,
      trigger,
      state: 'running',
      params: { ...(def.params?.(slot) ?? {}), ...params },
      createdAt: now,
      finishedAt: null,
      deadlineAt:
        def.deadlineMs === undefined ? null : (scheduled ? (slot ?? now) : now) + def.deadlineMs,
      deadlineMissed: false,
      error: null,
      owner: this.instanceId,
      leaseExpiresAt: now + this.leaseMs,
    };
    const tasks: TaskInstance[] = def.tasks.map((t) => ({
      runId: run.id,
      taskId: t.id,
      state: 'pending',
      attempts: 0,
      startedAt: null,
      finishedAt: null,
      nextAttemptAt: null,
      output: null,
      error: null,
      callbackToken: null,
    }));
    if (!(await this.store.createRun(run, tasks))) return undefined;
    const d: DrivenRun = {
      ...this.definition(def.name),
      run,
      tasks: new Map(tasks.map((t) => [t.taskId, t])),
      attempts: new Map(),
      executing: new Map(),
    };
    this.driven.set(run.id, d);
    if (slot !== null) {
      this.knownLastSlot.set(def.name, Math.max(slot, this.knownLastSlot.get(def.name) ?? slot));
    }
    this.logger.info({ runId: run.id, workflow: def.name, slot, trigger }, 'workflow run created');
    await this.advanceLogged(d);
    this.setActiveGauge();
    return d.run;
  }

  private async runForSlot(workflow: string, slot: number): Promise<WorkflowRun | undefined> {
    for (const d of this.driven.values()) {
      if (d.run.workflow === workflow && d.run.slot === slot) return d.run;
    }
    return this.store.runForSlot(workflow, slot);
  }

  private findWaiting(token: string): { d: DrivenRun; task: TaskInstance } | undefined {
    for (const d of this.driven.values()) {
      for (const task of d.tasks.values()) {
        if (task.callbackToken !== token) continue;
        if (task.state !== 'waiting' && task.state !== 'running') return undefined;
        const open = d.attempts.get(attemptKey(task.taskId, task.attempts));
        return open?.outcome === null ? { d, task } : undefined;
      }
    }
    return undefined;
  }

  private async advanceLogged(d: DrivenRun): Promise<void> {
    try {
      await this.advance(d);
    } catch (err) {
      if (!(err instanceof RunTakenOver)) {
        this.logger.error({ err, runId: d.run.id }, 'advancing a workflow run failed');
      }
    }
  }

  /**
   * Moves the run forward at `clock.now()`: writes the plan, then aborts the
   * attempts it timed out and starts the ones it began. A write that fails
   * changes nothing; the next tick plans again.
   */
  private async advance(d: DrivenRun): Promise<void> {
    if (this.stopping || this.driven.get(d.run.id) !== d) return;
    const now = this.clock.now();
    const plan = this.plan(d, now);
    if (plan === undefined) return;
    const before = d.run;
    await this.persist(d, plan.run, plan.tasks, plan.attempts);
    for (const taskId of plan.closed) {
      d.executing.get(taskId)?.controller.abort(new Error('the attempt timed out'));
      d.executing.delete(taskId);
    }
    for (const taskId of plan.starts) this.launch(d, taskId);
    if (isFinalRun(d.run)) this.finished(d, before);
  }

  /** The next state of the run at `now`, or undefined when nothing changes. */
  private plan(d: DrivenRun, now: number): Plan | undefined {
    const { byId, topological } = d.graph;
    const work = new Map(d.tasks);
    const changed = new Set<string>();
    const attempts: TaskAttempt[] = [];
    const closed: string[] = [];
    const set = (task: TaskInstance): void => {
      work.set(task.taskId, task);
      changed.add(task.taskId);
    };

    for (const task of d.tasks.values()) {
      if (task.state !== 'running' && task.state !== 'waiting') continue;
      const timeoutMs = byId.get(task.taskId)?.timeoutMs;
      const open = d.attempts.get(attemptKey(task.taskId, task.attempts));
      if (timeoutMs === undefined || open?.outcome !== null || now < open.startedAt + timeoutMs) {
        continue;
      }
      const what = task.state === 'waiting' ? 'no callback within' : 'timed out after';
      const failed = this.failure(d, task, open, 'timed-out', `${what} ${timeoutMs} ms`, now);
      set(failed.task);
      attempts.push(failed.attempt);
      closed.push(task.taskId);
    }

    for (const id of topological) {
      const task = work.get(id)!;
      if (task.state !== 'pending') continue;
      const blocked = (byId.get(id)!.dependsOn ?? []).some((dep) => {
        const upstream = work.get(dep)!;
        if (upstream.state === 'skipped' || upstream.state === 'failed') return true;
        const branch = d.graph.branchOf.get(`${dep}\u0000${id}`);
        return upstream.state === 'succeeded' && branch !== undefined && branch !== upstream.output;
      });
      if (blocked) set({ ...task, state: 'skipped', finishedAt: now });
    }

    const inFlight = [...d.executing.keys()].filter((id) => !closed.includes(id)).length;
    const failedTask = d.def.tasks.map((t) => work.get(t.id)!).find((t) => t.state === 'failed');
    const starts: string[] = [];
    let run = d.run;
    if (failedTask !== undefined) {
      if (inFlight === 0) {
        const why = `the run failed at task ${failedTask.taskId}`;
        for (const task of work.values()) {
          if (FINAL_TASK_STATES.includes(task.state)) continue;
          const open = d.attempts.get(attemptKey(task.taskId, task.attempts));
          if (open !== undefined && open.outcome === null) {
            attempts.push({ ...open, finishedAt: now, outcome: 'interrupted', error: why });
          }
          set({ ...task, state: 'skipped', finishedAt: now, nextAttemptAt: null, error: why });
        }
        run = this.final(run, 'failed', now, `task ${failedTask.taskId}: ${failedTask.error}`);
      }
    } else {
      let capacity = this.maxParallelTasks - inFlight;
      for (const def of d.def.tasks) {
        if (capacity <= 0) break;
        const task = work.get(def.id)!;
        const ready =
          task.state === 'pending'
            ? (def.dependsOn ?? []).every((dep) => work.get(dep)!.state === 'succeeded')
            : task.state === 'retrying' && (task.nextAttemptAt ?? 0) <= now;
        if (!ready) continue;
        const attempt = task.attempts + 1;
        set({
          ...task,
          state: 'running',
          attempts: attempt,
          startedAt: task.startedAt ?? now,
          nextAttemptAt: null,
          error: null,
          callbackToken: def.kind === 'wait-for-callback' ? this.newToken() : null,
        });
        attempts.push({
          runId: run.id,
          taskId: def.id,
          attempt,
          startedAt: now,
          finishedAt: null,
          outcome: null,
          error: null,
        });
        starts.push(def.id);
        capacity -= 1;
      }
      const states = [...work.values()].map((t) => t.state);
      if (states.every((s) => s === 'succeeded' || s === 'skipped')) {
        run = this.final(run, 'succeeded', now, null);
      } else {
        const busy =
          inFlight + starts.length > 0 || states.includes('retrying') || states.includes('running');
        const state = !busy && states.includes('waiting') ? 'waiting' : 'running';
        if (state !== run.state) run = { ...run, state };
      }
    }
    if (changed.size === 0 && attempts.length === 0 && run === d.run) return undefined;
    return {
      run,
      tasks: [...changed].map((id) => work.get(id)!),
      attempts,
      starts,
      closed,
    };
  }

  private final(
    run: WorkflowRun,
    state: 'succeeded' | 'failed',
    now: number,
    error: string | null,
  ): WorkflowRun {
    const late = run.deadlineAt !== null && now > run.deadlineAt;
    return { ...run, state, finishedAt: now, error, deadlineMissed: run.deadlineMissed || late };
  }

  /** A failed or timed-out attempt: the task retries while failures number at most `retries`. */
  private failure(
    d: DrivenRun,
    task: TaskInstance,
    open: TaskAttempt,
    outcome: 'failed' | 'timed-out',
    error: string,
    now: number,
  ): { task: TaskInstance; attempt: TaskAttempt } {
    const def = d.graph.byId.get(task.taskId)!;
    const attempt: TaskAttempt = { ...open, finishedAt: now, outcome, error };
    let failures = 1;
    for (const a of d.attempts.values()) {
      if (a.taskId !== task.taskId || a.attempt === open.attempt) continue;
      if (a.outcome === 'failed' || a.outcome === 'timed-out') failures += 1;
    }
    if (failures <= (def.retries ?? 0)) {
      const backoff = (def.retryBackoffMs ?? 1_000) * 2 ** (failures - 1);
      return {
        task: { ...task, state: 'retrying', nextAttemptAt: now + backoff, error },
        attempt,
      };
    }
    return { task: { ...task, state: 'failed', finishedAt: now, error }, attempt };
  }

  /** Runs the attempt the last plan started, outside the queue; records its result on it. */
  private launch(d: DrivenRun, taskId: string): void {
    const def = d.graph.byId.get(taskId)!;
    const task = d.tasks.get(taskId)!;
    const attempt = task.attempts;
    const controller = new AbortController();
    d.executing.set(taskId, { attempt, controller });
    const outputs: Record<string, unknown> = {};
    for (const id of d.graph.ancestors.get(taskId) ?? []) {
      const upstream = d.tasks.get(id)!;
      if (upstream.state === 'succeeded') outputs[id] = upstream.output;
    }
    const ctx: TaskContext = {
      workflow: d.def.name,
      runId: d.run.id,
      slot: d.run.slot,
      params: d.run.params,
      outputs,
      attempt,
      signal: controller.signal,
      logger: this.logger.child({ workflow: d.def.name, runId: d.run.id, task: taskId, attempt }),
    };
    const token = task.callbackToken;
    const execution = (async () => {
      let result: AttemptResult;
      try {
        if (def.kind === 'wait-for-callback') {
          await def.start(ctx, token!);
          result = { kind: 'started' };
        } else if (def.kind === 'choice') {
          result = { kind: 'returned', output: await def.choose(ctx) };
        } else {
          result = { kind: 'returned', output: await def.run(ctx) };
        }
      } catch (err) {
        result = { kind: 'threw', error: errorText(err) };
      }
      await this.queue.run(async () => {
        const current = d.executing.get(taskId);
        if (current?.attempt === attempt) d.executing.delete(taskId);
        await this.recordResult(d, taskId, attempt, result, false);
        // Also when nothing was recorded (the attempt was closed by a timeout or an early
        // callback): the slot it held is free now.
        await this.advanceLogged(d);
      });
    })();
    this.inFlight.add(execution);
    void execution.finally(() => this.inFlight.delete(execution));
  }

  /**
   * Records what an attempt came to, if it is still the task's open attempt
   * on a run this instance drives. Returns whether it recorded anything. A
   * failed write makes the instance forget the run (recovery takes it back
   * and retries the attempt as interrupted), except for a callback, whose
   * caller gets the error and may retry.
   */
  private async recordResult(
    d: DrivenRun,
    taskId: string,
    attemptNo: number,
    result: AttemptResult,
    fromCallback: boolean,
  ): Promise<boolean> {
    if (this.driven.get(d.run.id) !== d) return false;
    const task = d.tasks.get(taskId)!;
    const open = d.attempts.get(attemptKey(taskId, attemptNo));
    if (task.attempts !== attemptNo || open === undefined || open.outcome !== null) return false;
    const def = d.graph.byId.get(taskId)!;
    const now = this.clock.now();
    let next: { task: TaskInstance; attempt?: TaskAttempt };
    if (result.kind === 'started') {
      if (task.state !== 'running') return false;
      next = { task: { ...task, state: 'waiting' } };
    } else if (result.kind === 'threw') {
      next = this.stopping
        ? {
            task: { ...task, state: 'retrying', nextAttemptAt: now, error: result.error },
            attempt: { ...open, finishedAt: now, outcome: 'interrupted', error: result.error },
          }
        : this.failure(d, task, open, 'failed', result.error, now);
    } else {
      const json = asJson(result.output);
      const badChoice =
        def.kind === 'choice' &&
        !(typeof result.output === 'string' && Object.hasOwn(def.branches, result.output));
      if (!json.ok) next = this.failure(d, task, open, 'failed', json.error, now);
      else if (badChoice) {
        const error = `the choice returned ${JSON.stringify(result.output)}, not one of its branches`;
        next = this.failure(d, task, open, 'failed', error, now);
      } else {
        next = {
          task: { ...task, state: 'succeeded', finishedAt: now, output: json.value, error: null },
          attempt: { ...open, finishedAt: now, outcome: 'succeeded', error: null },
        };
      }
    }
    try {
      await this.persist(d, d.run, [next.task], next.attempt === undefined ? [] : [next.attempt]);
    } catch (err) {
      if (fromCallback) {
        if (err instanceof RunTakenOver) throw unknownCallback();
        throw new CanopyError('CANOPY_META_UNAVAILABLE', 'the callback could not be stored', {
          cause: err,
        });
      }
      if (!(err instanceof RunTakenOver)) {
        this.logger.error({ err, runId: d.run.id, taskId }, 'recording a task attempt failed');
        this.forget(d, 'its progress could not be stored');
      }
      return false;
    }
    return !this.stopping;
  }

  /**
   * Writes the run row (with this instance's lease), tasks and attempts, then
   * applies them to memory, counts closed attempts and wakes waiters (of an
   * unfinished run; `finished` wakes those of a final one). Re-claims
   * the run first when its lease lapsed in this instance's clock; throws
   * RunTakenOver (having forgotten the run) when another instance holds it.
   */
  private async persist(
    d: DrivenRun,
    run: WorkflowRun,
    tasks: readonly TaskInstance[],
    attempts: readonly TaskAttempt[],
  ): Promise<void> {
    const now = this.clock.now();
    if (now >= (d.run.leaseExpiresAt ?? 0)) {
      const until = now + this.leaseMs;
      if (!(await this.store.claimRun(d.run.id, this.instanceId, until, now))) {
        this.forget(d, 'another instance holds its lease');
        throw new RunTakenOver(`run ${d.run.id} is driven by another instance`);
      }
      d.run = { ...d.run, leaseExpiresAt: until };
    }
    const row: WorkflowRun = {
      ...run,
      owner: this.instanceId,
      leaseExpiresAt: d.run.leaseExpiresAt,
    };
    await this.store.saveProgress(row, tasks, attempts);
    for (const attempt of attempts) {
      const key = attemptKey(attempt.taskId, attempt.attempt);
      if (attempt.outcome !== null && d.attempts.get(key)?.outcome == null) {
        this.metrics.workflowTaskAttempts.inc({ workflow: d.def.name, outcome: attempt.outcome });
      }
      d.attempts.set(key, attempt);
    }
    for (const task of tasks) d.tasks.set(task.taskId, task);
    d.run = row;
    // A final run is announced by `finished`, once its metrics are recorded.
    if (!isFinalRun(row)) {
      this.setActiveGauge();
      this.notify(row);
    }
  }

  /** Bookkeeping once a run is final: metrics, the deadline event, and letting it go. */
  private finished(d: DrivenRun, before: WorkflowRun): void {
    const run = d.run;
    const workflow = run.workflow;
    const finishedAt = run.finishedAt ?? this.clock.now();
    this.metrics.workflowRuns.inc({ workflow, result: run.state });
    this.metrics.workflowRunDuration.observe({ workflow }, (finishedAt - run.createdAt) / 1000);
    if (run.state === 'succeeded')
      this.metrics.workflowLastSuccess.set({ workflow }, finishedAt / 1000);
    if (run.deadlineMissed && !before.deadlineMissed) this.deadlineMissed(run, finishedAt);
    else if (run.state === 'succeeded' && run.deadlineAt !== null && !run.deadlineMissed) {
      this.emitDeadline({ workflow, runId: run.id, missed: false, at: finishedAt });
    }
    this.driven.delete(run.id);
    this.logger.info(
      { runId: run.id, workflow, state: run.state, error: run.error },
      'workflow run finished',
    );
    this.setActiveGauge();
    this.notify(run);
    try {
      this.onRunFinished?.(run);
    } catch (err) {
      this.logger.error({ err, runId: run.id }, 'the run-finished handler threw');
    }
  }

  private async checkDeadline(d: DrivenRun): Promise<void> {
    const now = this.clock.now();
    const run = d.run;
    if (this.driven.get(run.id) !== d || run.deadlineMissed || run.deadlineAt === null) return;
    if (now <= run.deadlineAt) return;
    await this.persist(d, { ...run, deadlineMissed: true }, [], []);
    this.deadlineMissed(d.run, now);
  }

  private deadlineMissed(run: WorkflowRun, at: number): void {
    this.metrics.workflowDeadlineMisses.inc({ workflow: run.workflow });
    this.logger.warn(
      { runId: run.id, workflow: run.workflow, deadlineAt: run.deadlineAt },
      'workflow run missed its deadline',
    );
    this.emitDeadline({ workflow: run.workflow, runId: run.id, missed: true, at });
  }

  private emitDeadline(event: DeadlineEvent): void {
    try {
      this.onDeadline?.(event);
    } catch (err) {
      this.logger.error({ err, runId: event.runId }, 'the deadline handler threw');
    }
  }

  /** Stops driving a run without writing: aborts its attempts, whose results are then dropped. */
  private forget(d: DrivenRun, why: string): void {
    if (this.driven.get(d.run.id) !== d) return;
    this.driven.delete(d.run.id);
    for (const execution of d.executing.values()) {
      execution.controller.abort(new Error(`the run is no longer driven here: ${why}`));
    }
    d.executing.clear();
    this.logger.warn({ runId: d.run.id, workflow: d.def.name }, `no longer driving run: ${why}`);
  }

  private whenRun(runId: string, accept: (run: WorkflowRun) => boolean): Promise<WorkflowRun> {
    return new Promise<WorkflowRun>((resolve, reject) => {
      this.queue
        .run(async () => {
          const run = this.driven.get(runId)?.run ?? (await this.store.getRun(runId))?.run;
          if (run === undefined) {
            reject(new CanopyError('CANOPY_WORKFLOW_NOT_FOUND', `no workflow run has id ${runId}`));
          } else if (accept(run)) {
            resolve(run);
          } else {
            this.waiters.add({ runId, accept, resolve, reject });
          }
        })
        .catch(reject);
    });
  }

  private notify(run: WorkflowRun): void {
    for (const waiter of this.waiters) {
      if (waiter.runId !== run.id || !waiter.accept(run)) continue;
      this.waiters.delete(waiter);
      waiter.resolve(run);
    }
  }

  /** Waiters on runs another instance drives learn their state from the store. */
  private async pollWaiters(): Promise<void> {
    const runIds = new Set(
      [...this.waiters].map((w) => w.runId).filter((id) => !this.driven.has(id)),
    );
    for (const runId of runIds) {
      const run = (await this.store.getRun(runId))?.run;
      if (run !== undefined) this.notify(run);
    }
  }

  private setActiveGauge(): void {
    const counts = new Map<string, number>();
    for (const d of this.driven.values()) {
      const key = `${d.run.workflow}\u0000${d.run.state}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    for (const def of this.defs) {
      for (const state of ['running', 'waiting'] as const) {
        const value = counts.get(`${def.name}\u0000${state}`) ?? 0;
        this.metrics.workflowRunsActive.set({ workflow: def.name, state }, value);
      }
    }
  }
}

function unknownCallback(): CanopyError {
  return new CanopyError(
    'CANOPY_WORKFLOW_CALLBACK_UNKNOWN',
    'no task waits on that callback token',
  );
}
