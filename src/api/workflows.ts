/**
 * Workflow routes: the workflows and their schedules, run history, manual
 * runs, backfills, pause and resume, and the callback that completes a
 * wait-for-callback task.
 *
 *   GET  /api/workflows                       every workflow, its schedule, next slot, last run
 *   GET  /api/workflows/:name/runs            runs, newest first (state, limit)
 *   GET  /api/workflows/runs/:id              one run with its tasks and attempts
 *   POST /api/workflows/:name/run             {"slot"?, "params"?} → 202 {run}
 *   POST /api/workflows/:name/backfill        {"from", "to", "concurrency"?} → 202 {slots}
 *   POST /api/workflows/:name/pause|resume
 *   POST /api/workflows/callbacks/:token      {"output"?} or {"error"}
 */
import type { FastifyInstance } from 'fastify';
import { CanopyError } from '../core/errors.js';
import {
  RUN_STATES,
  type RunDetail,
  type RunState,
  type TaskAttempt,
  type TaskInstance,
  type WorkflowRun,
  type WorkflowStore,
} from '../core/workflows.js';
import type { Logger } from '../observability/logger.js';
import type { WorkflowDefinition } from '../workflows/definition.js';
import { jsonObjectBody, optionalString, parseLimit, parseTimeParam } from './params.js';

/** The most slots one backfill may cover: a year of a daily workflow, or a few days of an hourly one. */
export const MAX_BACKFILL_SLOTS = 400;

export interface WorkflowApiDeps {
  store: Pick<WorkflowStore, 'listRuns' | 'getRun' | 'pausedWorkflows'>;
  workflows(): readonly WorkflowDefinition[];
  /** The schedule's slots in (from, to]. */
  slotsBetween(def: WorkflowDefinition, fromExclusive: number, toInclusive: number): number[];
  nextSlot(def: WorkflowDefinition, after: number): number | null;
  trigger(
    workflow: string,
    options: { slot?: number; params?: Record<string, unknown>; trigger: 'manual' },
  ): Promise<WorkflowRun>;
  backfill(workflow: string, from: number, to: number, concurrency: number): Promise<unknown>;
  completeCallback(token: string, result: { output?: unknown } | { error: string }): Promise<void>;
  pause(workflow: string): Promise<void>;
  resume(workflow: string): Promise<void>;
  now(): number;
  logger: Logger;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function runToWire(r: WorkflowRun) {
  return {
    id: r.id,
    workflow: r.workflow,
    slot: iso(r.slot),
    trigger: r.trigger,
    state: r.state,
    params: r.params,
    created_at: iso(r.createdAt),
    finished_at: iso(r.finishedAt),
    duration_ms: r.finishedAt === null ? null : r.finishedAt - r.createdAt,
    deadline_at: iso(r.deadlineAt),
    deadline_missed: r.deadlineMissed,
    error: r.error,
    owner: r.owner,
  };
}

function taskToWire(t: TaskInstance) {
  return {
    task_id: t.taskId,
    state: t.state,
    attempts: t.attempts,
    started_at: iso(t.startedAt),
    finished_at: iso(t.finishedAt),
    next_attempt_at: iso(t.nextAttemptAt),
    output: t.output,
    error: t.error,
    // The token itself is the credential that completes the task: shown only while it waits.
    callback_token: t.state === 'waiting' ? t.callbackToken : null,
  };
}

function attemptToWire(a: TaskAttempt) {
  return {
    task_id: a.taskId,
    attempt: a.attempt,
    started_at: iso(a.startedAt),
    finished_at: iso(a.finishedAt),
    duration_ms: a.finishedAt === null ? null : a.finishedAt - a.startedAt,
    outcome: a.outcome,
    error: a.error,
  };
}

function detailToWire(d: RunDetail) {
  return {
    run: runToWire(d.run),
    tasks: d.tasks.map(taskToWire),
    attempts: d.attempts.map(attemptToWire),
  };
}

function bodyTime(body: Record<string, unknown>, name: string): number | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' && typeof value !== 'number')
    throw new CanopyError('CANOPY_API_BAD_REQUEST', `${name} must be an ISO 8601 time`);
  return parseTimeParam({ [name]: String(value) }, name);
}

export function registerWorkflowRoutes(app: FastifyInstance, deps: WorkflowApiDeps): void {
  const definition = (name: string): WorkflowDefinition => {
    const def = deps.workflows().find((w) => w.name === name);
    if (!def) throw new CanopyError('CANOPY_WORKFLOW_NOT_FOUND', `no workflow ${name}`);
    return def;
  };

  app.get('/api/workflows', async () => {
    const paused = await deps.store.pausedWorkflows();
    const now = deps.now();
    const data = await Promise.all(
      deps.workflows().map(async (w) => {
        const [last] = await deps.store.listRuns({ workflow: w.name, limit: 1 });
        return {
          name: w.name,
          description: w.description,
          schedule:
            w.schedule === undefined
              ? null
              : {
                  cron: w.schedule.cron,
                  timezone: w.schedule.timezone ?? 'UTC',
                  catch_up: w.schedule.catchUp ?? 'once',
                },
          deadline_ms: w.deadlineMs ?? null,
          paused: paused.has(w.name),
          next_slot: w.schedule === undefined ? null : iso(deps.nextSlot(w, now)),
          tasks: w.tasks.map((t) => ({
            id: t.id,
            kind: t.kind ?? 'task',
            depends_on: t.dependsOn ?? [],
          })),
          last_run: last === undefined ? null : runToWire(last),
        };
      }),
    );
    return { data };
  });

  app.get('/api/workflows/runs/:id', async (request) => {
    const { id } = request.params as { id: string };
    const detail = await deps.store.getRun(id);
    if (!detail) throw new CanopyError('CANOPY_WORKFLOW_NOT_FOUND', `no workflow run ${id}`);
    return detailToWire(detail);
  });

  app.get('/api/workflows/:name/runs', async (request) => {
    const { name } = request.params as { name: string };
    definition(name);
    const q = request.query as Record<string, unknown>;
    const stateText = optionalString(q, 'state');
    const state = stateText?.split(',').map((s) => s.trim());
    for (const s of state ?? [])
      if (!(RUN_STATES as readonly string[]).includes(s))
        throw new CanopyError(
          'CANOPY_API_BAD_REQUEST',
          `state must be a comma list of ${RUN_STATES.join(', ')}; got "${s}"`,
        );
    const runs = await deps.store.listRuns({
      workflow: name,
      limit: parseLimit(q, 50, 1_000),
      ...(state === undefined ? {} : { state: state as RunState[] }),
    });
    return { data: runs.map(runToWire) };
  });

  app.post('/api/workflows/:name/run', async (request, reply) => {
    const { name } = request.params as { name: string };
    definition(name);
    const body = jsonObjectBody(request.body);
    const slot = bodyTime(body, 'slot');
    const params = body.params;
    if (
      params !== undefined &&
      (typeof params !== 'object' || params === null || Array.isArray(params))
    )
      throw new CanopyError('CANOPY_API_BAD_REQUEST', 'params must be a JSON object');
    const run = await deps.trigger(name, {
      trigger: 'manual',
      ...(slot === undefined ? {} : { slot }),
      ...(params === undefined ? {} : { params: params as Record<string, unknown> }),
    });
    return reply.status(202).send({ run: runToWire(run) });
  });

  app.post('/api/workflows/:name/backfill', async (request, reply) => {
    const { name } = request.params as { name: string };
    const def = definition(name);
    if (def.schedule === undefined)
      throw new CanopyError('CANOPY_WORKFLOW_BAD_REQUEST', `${name} has no schedule to backfill`);
    const body = jsonObjectBody(request.body);
    const from = bodyTime(body, 'from');
    const to = bodyTime(body, 'to');
    if (from === undefined || to === undefined)
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        'give "from" and "to" (ISO 8601): every slot in [from, to] runs',
      );
    const concurrency = body.concurrency ?? 2;
    if (
      typeof concurrency !== 'number' ||
      !Number.isInteger(concurrency) ||
      concurrency < 1 ||
      concurrency > 16
    )
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        'concurrency must be an integer from 1 to 16',
      );
    const slots = to < from ? [] : deps.slotsBetween(def, from - 1, to);
    if (slots.length === 0 || slots.length > MAX_BACKFILL_SLOTS)
      throw new CanopyError(
        'CANOPY_WORKFLOW_BAD_REQUEST',
        `the range holds ${slots.length} slots of ${name}; a backfill takes 1 to ${MAX_BACKFILL_SLOTS}`,
      );
    // Runs in the background: the client follows it in GET /api/workflows/:name/runs.
    deps.backfill(name, from, to, concurrency).catch((err: unknown) => {
      deps.logger.error({ err, workflow: name }, 'backfill failed');
    });
    return reply.status(202).send({
      workflow: name,
      slots: slots.length,
      from: iso(slots[0]!),
      to: iso(slots.at(-1)!),
      concurrency,
    });
  });

  for (const action of ['pause', 'resume'] as const) {
    app.post(`/api/workflows/:name/${action}`, async (request) => {
      const { name } = request.params as { name: string };
      definition(name);
      await deps[action](name);
      return { workflow: name, paused: action === 'pause' };
    });
  }

  app.post('/api/workflows/callbacks/:token', async (request) => {
    const { token } = request.params as { token: string };
    const body = jsonObjectBody(request.body);
    if (body.error !== undefined) {
      if (typeof body.error !== 'string' || body.error === '')
        throw new CanopyError('CANOPY_API_BAD_REQUEST', 'error must be a non-empty string');
      await deps.completeCallback(token, { error: body.error });
    } else {
      await deps.completeCallback(token, { output: body.output ?? null });
    }
    return { completed: true };
  });
}
