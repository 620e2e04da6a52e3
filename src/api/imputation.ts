/**
 * GET /api/imputation/runs: the `daily-imputation` workflow's runs, newest
 * first, each with what it did, read from the run's task outputs (the run
 * history is the record; nothing else is kept). `limit` 1..100 (default 20).
 *
 *   { "data": [ { id, date, state, created_at, finished_at, error,
 *                 result: "imputed" | "no records" | null,
 *                 missing, filled, left_missing, already_imputed,
 *                 hot_store_updated, models_trained, models_reused } ] }
 *
 * Counts are null while the task that reports them has not succeeded.
 */
import type { FastifyInstance } from 'fastify';
import type { RunDetail } from '../core/workflows.js';
import { IMPUTATION_WORKFLOW } from '../imputation/workflow.js';
import { runToWire, type WorkflowApiDeps } from './workflows.js';
import { parseLimit } from './params.js';

type Outputs = Record<string, Record<string, unknown> | string | null>;

function count(value: unknown): number | null {
  return typeof value === 'number' ? value : null;
}

export function imputationRunToWire(detail: RunDetail) {
  const outputs: Outputs = Object.fromEntries(
    detail.tasks
      .filter((t) => t.state === 'succeeded')
      .map((t) => [t.taskId, t.output as Outputs[string]]),
  );
  const field = (task: string, name: string) => {
    const output = outputs[task];
    return typeof output === 'object' && output !== null ? output[name] : undefined;
  };
  const trained = field('train', 'trained');
  const { id, state, created_at, finished_at, error } = runToWire(detail.run);
  return {
    id,
    date: typeof detail.run.params.date === 'string' ? detail.run.params.date : null,
    state,
    created_at,
    finished_at,
    error,
    result:
      outputs.records === 'none' ? 'no records' : outputs.records === 'impute' ? 'imputed' : null,
    missing: count(field('find', 'missing')),
    filled: count(field('write-back', 'filled')),
    left_missing: count(field('write-back', 'leftMissing')),
    already_imputed: count(field('write-back', 'alreadyImputed')),
    hot_store_updated: count(field('write-back', 'hotStoreUpdated')),
    models_trained: Array.isArray(trained) ? trained.length : null,
    models_reused: count(field('train', 'reused')),
  };
}

export function registerImputationRoutes(app: FastifyInstance, deps: WorkflowApiDeps): void {
  app.get('/api/imputation/runs', async (req) => {
    const limit = parseLimit(req.query as Record<string, unknown>, 20, 100);
    const runs = await deps.store.listRuns({ workflow: IMPUTATION_WORKFLOW, limit });
    const details = await Promise.all(runs.map((r) => deps.store.getRun(r.id)));
    return {
      data: details.flatMap((d) => (d === undefined ? [] : [imputationRunToWire(d)])),
    };
  });
}
