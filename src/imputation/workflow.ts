/**
 * `daily-imputation`: fills the missing readings of one event date (by
 * default yesterday) with per-sensor models, as a workflow:
 *
 *   prepare ─▶ find ─▶ records ─┬─ none ──▶ no-records            (ends: "no records")
 *                               └─ impute ─▶ train ─▶ features ─▶ predict ─▶ write-back ─▶ refresh
 *
 * - prepare: exports the hot store to bronze and rebuilds dirty silver
 *   dates, so silver holds every stored reading of the date; the search for
 *   missing values then reads silver alone (hot store and lake in one place).
 * - find: readings of the date whose value is null, not imputed, and in no
 *   imputation file yet. records: the choice.
 * - train (retraining as a task): a model per sensor with missing values,
 *   unless a current one is stored (same co-located sensors, gap rule and
 *   kind, younger than `retrainDays`); trained in a worker thread on
 *   `trainingDays` of silver, stored under `models/sensor-…/`.
 * - features: per sensor, the frame of it and its co-located sensors over
 *   the day before to the day after, and the event times to fill, staged in
 *   the lake (`imputations/_runs/<run>/input.json`).
 * - predict (wait-for-callback): a worker thread predicts and stages
 *   `predictions.json`, then completes the task's callback token. The job is
 *   also written to `<dataDir>/imputation/jobs/`, so after a crash the
 *   restarted process starts the worker again for the same token
 *   (`resumePredictions`); a run another instance took over times out and
 *   retries instead.
 * - write-back: holding the date's lease (so two runs for one date, in one
 *   process or several, take turns), the values not already in another
 *   run's file (so no value is ever written twice) as
 *   `imputations/date=D/<run>.parquet`, then the hot store's rows
 *   (`applyImputations`, one transaction). Both are idempotent, so a retried
 *   write-back changes nothing more.
 * - refresh: silver (the new file made the date dirty) and then gold, so
 *   `daily_summary` counts the values as imputed.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CanopyError, isCanopyError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { WorkflowStore } from '../core/workflows.js';
import type { CanopyConfig } from '../config/schema.js';
import { listModels, saveModel, type SeriesFrame } from '../ml/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Housekeeping } from '../runtime/housekeeping.js';
import type { TaskContext, WorkflowDefinition } from '../workflows/definition.js';
import type { LakeJobs } from '../workflows/jobs.js';
import { dateParam, dayBefore } from '../workflows/platform.js';
import {
  findMissing,
  imputedKeys,
  readHistory,
  runStagingKey,
  writeImputations,
  type MissingReading,
} from './lake-io.js';
import {
  frameToJson,
  gridFrame,
  maxGapStepsFor,
  modelMatches,
  sensorModelName,
  sensorStep,
  wantedFeatures,
  type Prediction,
  type PredictionTarget,
  type ModelWanted,
  type TrainJob,
} from './sensor-models.js';
import { runInWorker, type PredictionSummary } from './worker-protocol.js';

export const IMPUTATION_WORKFLOW = 'daily-imputation';
const DAY = 86_400_000;
const TRAINING_SEED = 1;

/** Completes a wait-for-callback token (the runner's `completeCallback`). */
export type CompleteCallback = (
  token: string,
  result: { output?: unknown } | { error: string },
) => Promise<void>;

export interface ImputationDeps {
  config: CanopyConfig;
  lake: ObjectStore;
  hotStore: HotStore;
  /** Serialises write-backs of one date across runs and processes. */
  leases: Pick<WorkflowStore, 'acquireLease' | 'releaseLease'>;
  jobs: LakeJobs;
  housekeeping: Pick<Housekeeping, 'step'>;
  metrics: Metrics;
  logger: Logger;
  now(): number;
  /** Set once the runner exists (the definitions are made before it). */
  callbacks: { complete?: CompleteCallback };
  /**
   * Aborted when the process stops: running prediction workers are ended and
   * their jobs kept, so the next start resumes them (`resumePredictions`).
   */
  stopping: AbortSignal;
}

/** A prediction job as written to `<dataDir>/imputation/jobs/<run>.json`. */
interface PredictionJob {
  token: string;
  runId: string;
}

function dayStart(date: string): number {
  return Date.parse(`${date}T00:00:00Z`);
}

function shiftDate(date: string, days: number): string {
  return new Date(dayStart(date) + days * DAY).toISOString().slice(0, 10);
}

function workDir(config: CanopyConfig): string {
  return path.join(config.dataDir, 'tmp');
}

function jobsDir(config: CanopyConfig): string {
  return path.join(config.dataDir, 'imputation', 'jobs');
}

/** The sensors with missing values, grouped, with their co-located sensors. */
interface SensorPlan {
  sensorId: string;
  /** The sensor and every other known sensor at its location, sorted. */
  measures: string[];
  intervalMs: number | null;
  missing: MissingReading[];
}

async function planSensors(deps: ImputationDeps, date: string): Promise<SensorPlan[]> {
  const missing = await findMissing(deps.lake, workDir(deps.config), date);
  const known = await deps.hotStore.listSensors();
  const byId = new Map(known.map((s) => [s.sensorId, s]));
  const bySensor = new Map<string, MissingReading[]>();
  for (const r of missing) {
    const rows = bySensor.get(r.sensorId);
    if (rows) rows.push(r);
    else bySensor.set(r.sensorId, [r]);
  }
  return [...bySensor].map(([sensorId, rows]) => {
    const location = byId.get(sensorId)?.location ?? rows[0]!.location;
    const colocated =
      location === null ? [] : known.filter((s) => s.location === location).map((s) => s.sensorId);
    return {
      sensorId,
      measures: [...new Set([sensorId, ...colocated])].sort(),
      intervalMs: byId.get(sensorId)?.intervalMs ?? null,
      missing: rows,
    };
  });
}

interface TrainOutput {
  trained: string[];
  reused: number;
  /** Sensors with no measured value in the training window: their readings stay missing. */
  untrainable: string[];
}

async function train(deps: ImputationDeps, ctx: TaskContext): Promise<TrainOutput> {
  const { config } = deps;
  const settings = config.imputation;
  const date = dateParam(ctx.params);
  const from = shiftDate(date, 1 - settings.trainingDays);
  const jobs: TrainJob[] = [];
  let reused = 0;
  for (const plan of await planSensors(deps, date)) {
    const history = await readHistory(deps.lake, workDir(config), plan.measures, from, date);
    const stepMs = sensorStep(plan.intervalMs, history, plan.sensorId);
    const frame = gridFrame(history, plan.measures, stepMs, dayStart(from), dayStart(date) + DAY);
    const wanted = wantedModel(deps, plan.sensorId, frame, deps.now() - settings.retrainDays * DAY);
    if ((await listModels(deps.lake, wanted.name)).some((m) => modelMatches(m, wanted))) {
      reused++;
      continue;
    }
    jobs.push({
      sensorId: plan.sensorId,
      name: wanted.name,
      kind: wanted.kind,
      frame: frameToJson(frame),
      maxGapSteps: wanted.maxGapSteps,
      maxRows: settings.maxTrainingRows,
      seed: TRAINING_SEED,
      trainedAt: deps.now(),
    });
  }
  const trained: string[] = [];
  const untrainable: string[] = [];
  if (jobs.length > 0) {
    const { models } = await runInWorker({ kind: 'train', jobs }, ctx.signal);
    for (const [i, model] of models.entries()) {
      if (model === null) {
        untrainable.push(jobs[i]!.sensorId);
        continue;
      }
      await saveModel(deps.lake, model);
      deps.metrics.imputationModelsTrained.inc({ kind: model.kind });
      trained.push(`${model.name}@${model.version}`);
    }
  }
  return { trained, reused, untrainable };
}

/** What the sensor's model must be for a frame of its location, trained after `trainedAfter`. */
function wantedModel(
  deps: ImputationDeps,
  sensorId: string,
  frame: SeriesFrame,
  trainedAfter: number,
): ModelWanted {
  return {
    name: sensorModelName(sensorId),
    kind: deps.config.imputation.model,
    features: wantedFeatures(frame, sensorId),
    maxGapSteps: maxGapStepsFor(deps.config.imputation.maxGapMs, frame.stepMs),
    trainedAfter,
  };
}

/** The newest stored model of the sensor that matches what is wanted now (of any age). */
async function currentModel(
  deps: ImputationDeps,
  sensorId: string,
  frame: SeriesFrame,
): Promise<{ name: string; version: string } | undefined> {
  const wanted = wantedModel(deps, sensorId, frame, -Infinity);
  const matching = (await listModels(deps.lake, wanted.name)).filter((m) =>
    modelMatches(m, wanted),
  );
  const newest = matching.at(-1);
  return newest && { name: newest.name, version: newest.version };
}

async function features(deps: ImputationDeps, ctx: TaskContext) {
  const { config } = deps;
  const date = dateParam(ctx.params);
  const [from, to] = [shiftDate(date, -1), shiftDate(date, 1)];
  const targets: PredictionTarget[] = [];
  const withoutModel: string[] = [];
  for (const plan of await planSensors(deps, date)) {
    const history = await readHistory(deps.lake, workDir(config), plan.measures, from, to);
    const stepMs = sensorStep(plan.intervalMs, history, plan.sensorId);
    const frame = gridFrame(history, plan.measures, stepMs, dayStart(from), dayStart(to) + DAY);
    const model = await currentModel(deps, plan.sensorId, frame);
    if (model === undefined) {
      withoutModel.push(plan.sensorId);
      continue;
    }
    targets.push({
      sensorId: plan.sensorId,
      model,
      frame: frameToJson(frame),
      eventTimes: plan.missing.map((r) => r.eventTime),
    });
  }
  await deps.lake.put(runStagingKey(ctx.runId, 'input'), JSON.stringify({ date, targets }));
  return {
    sensors: targets.length,
    values: targets.reduce((n, t) => n + t.eventTimes.length, 0),
    withoutModel,
  };
}

/** Delays between tries to hand a finished prediction to the runner (a store write can fail). */
const COMPLETE_RETRY_MS = [500, 1_000, 2_000, 4_000, 8_000];

/**
 * Starts the worker for a prediction job and completes the job's token with
 * its summary (or its error), retrying while the runner cannot record it.
 * Removes the job file once the token is completed or unknown (the run moved
 * on), unless a newer attempt has replaced the file with its own token.
 */
function launchPrediction(deps: ImputationDeps, job: PredictionJob): void {
  const file = path.join(jobsDir(deps.config), `${job.runId}.json`);
  const log = deps.logger.child({ runId: job.runId });
  const request = {
    kind: 'predict' as const,
    lake: deps.config.lake,
    dataDir: deps.config.dataDir,
    runId: job.runId,
  };
  const complete = async (result: { output: unknown } | { error: string }) => {
    const completeCallback = deps.callbacks.complete;
    if (!completeCallback) throw new Error('imputation callbacks are not wired to a runner');
    for (let attempt = 0; ; attempt++) {
      if (deps.stopping.aborted) return false;
      try {
        await completeCallback(job.token, result);
        return true;
      } catch (err) {
        if (isCanopyError(err, 'CANOPY_WORKFLOW_CALLBACK_UNKNOWN')) {
          log.warn('prediction finished for a task that no longer waits; dropped');
          return true;
        }
        const delay = COMPLETE_RETRY_MS[attempt];
        if (delay === undefined) throw err;
        log.warn({ err, delay }, 'could not complete the prediction callback; retrying');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  };
  void runInWorker(request, deps.stopping)
    .then(
      ({ summary }) => ({ output: summary }),
      (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }),
    )
    .then(async (result) => {
      if (deps.stopping.aborted || !(await complete(result))) return;
      if (readJob(file)?.token === job.token) rmSync(file, { force: true });
    })
    .catch((err: unknown) => log.error({ err }, 'completing the prediction callback failed'));
}

function readJob(file: string): PredictionJob | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as PredictionJob;
  } catch {
    return undefined;
  }
}

function startPrediction(deps: ImputationDeps, ctx: TaskContext, token: string): Promise<void> {
  const dir = jobsDir(deps.config);
  mkdirSync(dir, { recursive: true });
  const job: PredictionJob = { token, runId: ctx.runId };
  const file = path.join(dir, `${ctx.runId}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(job));
  renameSync(`${file}.tmp`, file);
  launchPrediction(deps, job);
  return Promise.resolve();
}

/**
 * Starts the worker again for every prediction job a previous process left
 * behind (it died while predicting): their tasks still wait on the same
 * tokens. Call once the runner has started.
 */
export function resumePredictions(deps: ImputationDeps): number {
  let resumed = 0;
  let names: string[];
  try {
    names = readdirSync(jobsDir(deps.config)).filter((n) => n.endsWith('.json'));
  } catch {
    return 0;
  }
  for (const name of names) {
    const file = path.join(jobsDir(deps.config), name);
    const job = readJob(file);
    if (job === undefined) {
      deps.logger.warn({ file }, 'unreadable imputation job file; removed');
      rmSync(file, { force: true });
      continue;
    }
    launchPrediction(deps, job);
    resumed++;
  }
  return resumed;
}

/**
 * How long a write-back holds its date's lease. Writing one date takes
 * seconds; a holder that crashed keeps others waiting at most this long.
 */
const WRITE_BACK_LEASE_MS = 5 * 60_000;
const WRITE_BACK_LEASE_POLL_MS = 200;

/** Runs `work` holding the lease on `date`'s write-back, waiting for it first. */
async function withWriteBackLease<T>(
  deps: ImputationDeps,
  ctx: TaskContext,
  date: string,
  work: () => Promise<T>,
): Promise<T> {
  const name = `imputation-write-back:${date}`;
  const giveUpAt = deps.now() + 2 * WRITE_BACK_LEASE_MS;
  for (;;) {
    const now = deps.now();
    if (await deps.leases.acquireLease(name, ctx.runId, now + WRITE_BACK_LEASE_MS, now)) break;
    if (now > giveUpAt)
      throw new CanopyError(
        'CANOPY_IMPUTATION_FAILED',
        `another run kept the write-back of ${date} longer than ${(2 * WRITE_BACK_LEASE_MS) / 60_000} minutes`,
      );
    await sleep(WRITE_BACK_LEASE_POLL_MS, undefined, { signal: ctx.signal });
  }
  try {
    return await work();
  } finally {
    await deps.leases.releaseLease(name, ctx.runId);
  }
}

async function writeBack(deps: ImputationDeps, ctx: TaskContext) {
  const date = dateParam(ctx.params);
  return withWriteBackLease(deps, ctx, date, () => writeBackHeld(deps, ctx, date));
}

async function writeBackHeld(deps: ImputationDeps, ctx: TaskContext, date: string) {
  const { config, lake } = deps;
  const summary = ctx.outputs.predict as PredictionSummary;
  const { predictions } = JSON.parse((await lake.get(summary.key)).toString('utf8')) as {
    predictions: Prediction[];
  };
  const elsewhere = await imputedKeys(lake, workDir(config), date, ctx.runId);
  const fresh = predictions.filter((p) => !elsewhere.has(`${p.sensorId}\u0000${p.eventTime}`));
  const values = fresh.flatMap((p) =>
    p.value === null
      ? []
      : [
          {
            sensorId: p.sensorId,
            eventTime: p.eventTime,
            value: p.value,
            uncertainty: p.uncertainty,
            model: p.model,
            modelVersion: p.modelVersion,
          },
        ],
  );
  let key: string | null = null;
  if (values.length > 0) {
    key = await writeImputations(lake, workDir(config), date, ctx.runId, values, deps.now());
  }
  const hotStoreUpdated = await deps.hotStore.applyImputations(values);
  const leftMissing = fresh.length - values.length;
  // Counted when the attempt succeeds; a retried write-back counts again (at-least-once metrics).
  deps.metrics.imputationValues.inc({ result: 'filled' }, values.length);
  deps.metrics.imputationValues.inc({ result: 'left_missing' }, leftMissing);
  await lake.delete([runStagingKey(ctx.runId, 'input'), runStagingKey(ctx.runId, 'predictions')]);
  return {
    date,
    key,
    filled: values.length,
    leftMissing,
    alreadyImputed: predictions.length - fresh.length,
    hotStoreUpdated,
  };
}

export function imputationWorkflow(deps: ImputationDeps): WorkflowDefinition {
  const { config } = deps;
  const settings = config.imputation;
  const timezone = config.workflows.timezone;
  return {
    name: IMPUTATION_WORKFLOW,
    description:
      'Yesterday’s missing values: find → (none: "no records") → train → features → predict (worker) → write back → silver and gold.',
    schedule: { cron: settings.cron, timezone, catchUp: 'once' },
    deadlineMs: settings.deadlineMs,
    params: (slot) => ({ date: dayBefore(timezone, slot ?? deps.now()) }),
    tasks: [
      {
        id: 'prepare',
        retries: 2,
        retryBackoffMs: 60_000,
        run: async () => {
          await deps.housekeeping.step('export');
          return { silverDates: (await deps.jobs.silver()).map((d) => d.date) };
        },
      },
      {
        id: 'find',
        dependsOn: ['prepare'],
        run: async (ctx) => {
          const missing = await findMissing(deps.lake, workDir(config), dateParam(ctx.params));
          return { missing: missing.length, sensors: new Set(missing.map((r) => r.sensorId)).size };
        },
      },
      {
        id: 'records',
        kind: 'choice',
        dependsOn: ['find'],
        description: 'Anything to impute?',
        choose: (ctx) =>
          (ctx.outputs.find as { missing: number }).missing > 0 ? 'impute' : 'none',
        branches: { impute: ['train'], none: ['no-records'] },
      },
      {
        id: 'no-records',
        dependsOn: ['records'],
        run: (ctx) => Promise.resolve({ result: 'no records', date: dateParam(ctx.params) }),
      },
      { id: 'train', dependsOn: ['records'], retries: 1, run: (ctx) => train(deps, ctx) },
      { id: 'features', dependsOn: ['train'], retries: 1, run: (ctx) => features(deps, ctx) },
      {
        id: 'predict',
        kind: 'wait-for-callback',
        dependsOn: ['features'],
        retries: 2,
        timeoutMs: settings.predictionTimeoutMs,
        start: (ctx, token) => startPrediction(deps, ctx, token),
      },
      { id: 'write-back', dependsOn: ['predict'], retries: 2, run: (ctx) => writeBack(deps, ctx) },
      {
        id: 'refresh',
        dependsOn: ['write-back'],
        retries: 2,
        retryBackoffMs: 60_000,
        run: async () => ({
          silverDates: (await deps.jobs.silver()).map((d) => d.date),
          goldDates: (await deps.jobs.gold()).dates.map((d) => d.date),
        }),
      },
    ],
  };
}
