/**
 * Test helpers for the workflow runner: a runner on a real DuckDB metadata
 * store with a ManualClock, and readers for its metrics.
 */
import { vi } from 'vitest';
import { ManualClock } from '../core/clock.js';
import type { RunDetail, TaskAttempt } from '../core/workflows.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { DuckDbMetaStore } from '../storage/meta/duckdb-meta-store.js';
import type { WorkflowDefinition } from './definition.js';
import { WorkflowRunner, type DeadlineEvent, type WorkflowRunnerOptions } from './runner.js';

export const T0 = Date.parse('2026-06-10T00:00:00Z');
export const SEC = 1000;
export const MIN = 60 * SEC;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

export interface Harness {
  store: DuckDbMetaStore;
  clock: ManualClock;
  metrics: Metrics;
  deadlines: DeadlineEvent[];
  runner: WorkflowRunner;
  /** Another runner on the same store and clock. */
  another(options?: Partial<WorkflowRunnerOptions>): WorkflowRunner;
  close(): Promise<void>;
}

export async function harness(
  workflows: readonly WorkflowDefinition[],
  options: Partial<WorkflowRunnerOptions> & { path?: string; now?: number } = {},
): Promise<Harness> {
  const store = new DuckDbMetaStore({ path: options.path ?? ':memory:' });
  await store.open();
  const clock = new ManualClock(options.now ?? T0);
  const metrics = new Metrics({ defaultMetrics: false });
  const deadlines: DeadlineEvent[] = [];
  const runners: WorkflowRunner[] = [];
  const make = (extra: Partial<WorkflowRunnerOptions>) => {
    const runner = new WorkflowRunner({
      store,
      workflows,
      clock,
      metrics,
      logger: silentLogger(),
      instanceId: 'instance-a',
      onDeadline: (event) => deadlines.push(event),
      ...options,
      ...extra,
    });
    runners.push(runner);
    return runner;
  };
  const runner = make({});
  return {
    store,
    clock,
    metrics,
    deadlines,
    runner,
    another: make,
    async close() {
      for (const r of runners) await r.stop();
      await store.close();
    },
  };
}

/** Polls until `check` passes (for state reached by task functions running on their own). */
export async function until(check: () => unknown): Promise<void> {
  await vi.waitFor(check, { timeout: 5_000, interval: 2 });
}

export async function detail(store: DuckDbMetaStore, runId: string): Promise<RunDetail> {
  const found = await store.getRun(runId);
  if (found === undefined) throw new Error(`no run ${runId}`);
  return found;
}

export function taskState(d: RunDetail): Record<string, string> {
  return Object.fromEntries(d.tasks.map((t) => [t.taskId, t.state]));
}

export function attemptsOf(d: RunDetail, taskId: string): TaskAttempt[] {
  return d.attempts.filter((a) => a.taskId === taskId);
}

/** The value of a metric series with exactly these labels (0 when absent). */
export async function metricValue(
  metric: { get(): Promise<{ values: { labels: object; value: number }[] }> },
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metric.get();
  const match = values.find((v) => {
    const l = v.labels as Record<string, unknown>;
    return Object.entries(labels).every(([k, val]) => l[k] === val);
  });
  return match?.value ?? 0;
}
