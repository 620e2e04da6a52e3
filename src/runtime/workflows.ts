/**
 * Workflows in the running platform: the platform's own workflows
 * (housekeeping, hourly lake, daily pipeline) on the runner, with their run
 * history in the metadata store. A missed deadline and a failed run reach the
 * alert rules as `deadline` and `job` pipeline events.
 */
import { hostname } from 'node:os';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { AlertStore } from '../core/alerts.js';
import type { WorkflowStore } from '../core/workflows.js';
import type { CanopyConfig } from '../config/schema.js';
import type { Notifier, PipelineEvent } from '../alerts/index.js';
import type { WorkflowApiDeps } from '../api/workflows.js';
import type { LakeEngineSettings } from '../lake/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { LakeQueries } from '../query/index.js';
import { LakeJobs } from '../workflows/jobs.js';
import { platformWorkflows } from '../workflows/platform.js';
import {
  IMPUTATION_WORKFLOW,
  imputationWorkflow,
  resumePredictions,
  type ImputationDeps,
} from '../imputation/workflow.js';
import { nextSlot, slotsBetween, WorkflowRunner } from '../workflows/index.js';
import type { Housekeeping } from './housekeeping.js';

export interface Workflows {
  runner: WorkflowRunner;
  api: WorkflowApiDeps;
  stop(): Promise<void>;
}

export async function startWorkflows(deps: {
  config: CanopyConfig;
  store: WorkflowStore;
  lake: ObjectStore;
  hotStore: HotStore;
  housekeeping: Housekeeping;
  queries: LakeQueries;
  notifiers: ReadonlyMap<string, Notifier>;
  /** Alerting, when on: alert counts for the daily summary, and pipeline events. */
  alerts?: { store: Pick<AlertStore, 'listAlerts'>; observe(event: PipelineEvent): void };
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** Shared with housekeeping, so their lake engines take one memory budget. */
  lakeEngine: LakeEngineSettings;
}): Promise<Workflows> {
  const { config, clock } = deps;
  const logger = deps.logger.child({ component: 'workflows' });
  const summaryChannels =
    config.workflows.daily.summaryChannels ?? (deps.notifiers.has('log') ? ['log'] : []);
  const unknown = summaryChannels.filter((c) => !deps.notifiers.has(c));
  if (unknown.length > 0)
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `workflows.daily.summaryChannels names ${unknown.join(', ')}, not in alerting.notifiers (${[...deps.notifiers.keys()].join(', ')})`,
    );

  const stopping = new AbortController();
  const jobs = new LakeJobs({ config, lake: deps.lake, clock, logger, engine: deps.lakeEngine });
  const imputation: ImputationDeps = {
    config,
    lake: deps.lake,
    hotStore: deps.hotStore,
    leases: deps.store,
    jobs,
    housekeeping: deps.housekeeping,
    metrics: deps.metrics,
    logger: logger.child({ workflow: IMPUTATION_WORKFLOW }),
    now: () => clock.now(),
    callbacks: {},
    stopping: stopping.signal,
  };
  const definitions = platformWorkflows({
    config,
    summaryChannels,
    jobs,
    lake: deps.lake,
    hotStore: deps.hotStore,
    housekeeping: deps.housekeeping,
    queries: deps.queries,
    notifiers: deps.notifiers,
    now: () => clock.now(),
    ...(deps.alerts === undefined ? {} : { alerts: deps.alerts.store }),
  });
  if (config.imputation.enabled) definitions.push(imputationWorkflow(imputation));
  const runner = new WorkflowRunner({
    store: deps.store,
    workflows: definitions,
    clock,
    metrics: deps.metrics,
    logger,
    instanceId: config.workflows.instanceId ?? `${hostname()}:${process.pid}`,
    leaseMs: config.workflows.leaseMs,
    onDeadline: (e) =>
      deps.alerts?.observe({ kind: 'deadline', workflow: e.workflow, missed: e.missed, at: e.at }),
    onRunFinished: (run) =>
      deps.alerts?.observe({
        kind: 'job',
        name: run.workflow,
        ok: run.state === 'succeeded',
        at: run.finishedAt ?? clock.now(),
        ...(run.error === null ? {} : { error: run.error }),
      }),
  });
  imputation.callbacks.complete = (token, result) => runner.completeCallback(token, result);
  await runner.start();
  if (config.imputation.enabled) {
    const resumed = resumePredictions(imputation);
    if (resumed > 0) logger.info({ resumed }, 'imputation predictions resumed after a restart');
  }

  const byName = (name: string) => definitions.find((d) => d.name === name);
  return {
    runner,
    stop: () => {
      stopping.abort();
      return runner.stop();
    },
    api: {
      store: deps.store,
      workflows: () => runner.workflows(),
      slotsBetween: (def, from, to) =>
        def.schedule === undefined ? [] : slotsBetween(def.schedule, from, to),
      nextSlot: (def, after) => (def.schedule === undefined ? null : nextSlot(def.schedule, after)),
      trigger: (name, options) => runner.trigger(name, options),
      backfill: (name, from, to, concurrency) => {
        if (!byName(name))
          throw new CanopyError('CANOPY_WORKFLOW_NOT_FOUND', `no workflow ${name}`);
        return runner.backfill(name, from, to, concurrency);
      },
      completeCallback: (token, result) => runner.completeCallback(token, result),
      pause: (name) => runner.pause(name),
      resume: (name) => runner.resume(name),
      now: () => clock.now(),
      logger,
    },
  };
}
