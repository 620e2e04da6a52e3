import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { DuckDbMetaStore } from '../storage/meta/duckdb-meta-store.js';
import type { WorkflowDefinition } from './definition.js';
import { SEC, T0, attemptsOf, detail, metricValue, taskState, until } from './runner.fixture.js';
import { WorkflowRunner } from './runner.js';

let dir: string;
let file: string;
const stores: DuckDbMetaStore[] = [];
const runners: WorkflowRunner[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'canopy-workflows-'));
  file = path.join(dir, 'meta.duckdb');
});
afterEach(async () => {
  for (const r of runners.splice(0)) await r.stop();
  for (const s of stores.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function openStore(): Promise<DuckDbMetaStore> {
  const store = new DuckDbMetaStore({ path: file });
  await store.open();
  stores.push(store);
  return store;
}

/** Closes the store under a runner that is simply dropped: nothing more is written. */
async function kill(store: DuckDbMetaStore): Promise<void> {
  stores.splice(stores.indexOf(store), 1);
  await store.close();
}

function runner(
  store: DuckDbMetaStore,
  clock: ManualClock,
  workflows: WorkflowDefinition[],
  instanceId: string,
  metrics = new Metrics({ defaultMetrics: false }),
  keep = true,
): WorkflowRunner {
  const r = new WorkflowRunner({
    store,
    workflows,
    clock,
    metrics,
    logger: silentLogger(),
    instanceId,
    leaseMs: 60 * SEC,
  });
  if (keep) runners.push(r);
  return r;
}

function review(tokens: string[]): WorkflowDefinition {
  return {
    name: 'review',
    description: 'measure, route, wait for a person, publish',
    tasks: [
      { id: 'measure', run: () => Promise.resolve({ size: 42 }) },
      {
        id: 'route',
        kind: 'choice',
        dependsOn: ['measure'],
        choose: (ctx) => ((ctx.outputs.measure as { size: number }).size > 10 ? 'manual' : 'auto'),
        branches: { manual: ['approve'], auto: ['auto-ok'] },
      },
      {
        id: 'approve',
        kind: 'wait-for-callback',
        dependsOn: ['route'],
        start: (_ctx, token) => {
          tokens.push(token);
          return Promise.resolve();
        },
      },
      { id: 'auto-ok', dependsOn: ['route'], run: () => Promise.resolve('auto') },
      {
        id: 'publish',
        dependsOn: ['approve'],
        run: (ctx) => Promise.resolve({ published: true, by: ctx.outputs.approve }),
      },
    ],
  };
}

describe('restart', () => {
  it('a run waiting for a callback survives its instance: another takes it over and finishes it', async () => {
    const clock = new ManualClock(T0);
    const tokens: string[] = [];
    const store1 = await openStore();
    const first = runner(store1, clock, [review(tokens)], 'instance-a', undefined, false);
    const run = await first.trigger('review');
    expect((await first.settled(run.id)).state).toBe('waiting');
    expect(tokens).toHaveLength(1);
    await kill(store1);

    clock.advance(30 * SEC);
    const store2 = await openStore();
    const second = runner(store2, clock, [review(tokens)], 'instance-b');
    await second.start();
    // The first instance's lease still holds: the callback must wait for it.
    const early: unknown = await second
      .completeCallback(tokens[0]!, { output: 'kim' })
      .catch((e: unknown) => e);
    expect(isCanopyError(early, 'CANOPY_META_UNAVAILABLE')).toBe(true);
    expect((await detail(store2, run.id)).run.owner).toBe('instance-a');

    clock.advance(31 * SEC);
    await second.tick();
    expect((await detail(store2, run.id)).run.owner).toBe('instance-b');
    await second.completeCallback(tokens[0]!, { output: { approvedBy: 'kim' } });
    expect((await second.settled(run.id)).state).toBe('succeeded');

    const d = await detail(store2, run.id);
    expect(taskState(d)).toEqual({
      measure: 'succeeded',
      route: 'succeeded',
      approve: 'succeeded',
      'auto-ok': 'skipped',
      publish: 'succeeded',
    });
    const outputs = Object.fromEntries(d.tasks.map((t) => [t.taskId, t.output]));
    expect(outputs).toEqual({
      measure: { size: 42 },
      route: 'manual',
      approve: { approvedBy: 'kim' },
      'auto-ok': null,
      publish: { published: true, by: { approvedBy: 'kim' } },
    });
    expect(d.attempts.map((a) => [a.taskId, a.attempt, a.outcome, a.startedAt])).toEqual([
      ['measure', 1, 'succeeded', T0],
      ['route', 1, 'succeeded', T0],
      ['approve', 1, 'succeeded', T0],
      ['publish', 1, 'succeeded', T0 + 61 * SEC],
    ]);
    expect(d.tasks.find((t) => t.taskId === 'approve')!.callbackToken).toBe(tokens[0]);
    expect(tokens).toHaveLength(1);
    expect(d.run).toMatchObject({ finishedAt: T0 + 61 * SEC, error: null });
  });

  it('an attempt cut off by a crash is recorded interrupted and retried without using a retry', async () => {
    const clock = new ManualClock(T0);
    let crashed = true;
    let calls = 0;
    const def: WorkflowDefinition = {
      name: 'crashy',
      description: 'its first attempt never returns',
      tasks: [
        {
          id: 'work',
          retries: 0,
          run: async () => {
            calls += 1;
            if (crashed) return new Promise(() => undefined);
            return 'done';
          },
        },
      ],
    };
    const store1 = await openStore();
    const first = runner(store1, clock, [def], 'instance-a', undefined, false);
    const run = await first.trigger('crashy');
    await until(() => expect(calls).toBe(1));
    await kill(store1);

    crashed = false;
    clock.advance(5 * SEC);
    const store2 = await openStore();
    const metrics = new Metrics({ defaultMetrics: false });
    // The same instance restarting takes its runs back at once.
    const second = runner(store2, clock, [def], 'instance-a', metrics);
    await second.start();
    expect((await second.settled(run.id)).state).toBe('succeeded');
    const d = await detail(store2, run.id);
    expect(attemptsOf(d, 'work')).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'interrupted', finishedAt: T0 + 5 * SEC }),
      expect.objectContaining({ attempt: 2, outcome: 'succeeded', startedAt: T0 + 5 * SEC }),
    ]);
    expect(d.tasks[0]).toMatchObject({ state: 'succeeded', attempts: 2, output: 'done' });
    expect(
      await metricValue(metrics.workflowTaskAttempts, {
        workflow: 'crashy',
        outcome: 'interrupted',
      }),
    ).toBe(1);
  });

  it('stop records an aborted attempt as interrupted and releases the run to any instance', async () => {
    const clock = new ManualClock(T0);
    let stopping = true;
    const def: WorkflowDefinition = {
      name: 'stoppable',
      description: 'runs until aborted the first time',
      tasks: [
        {
          id: 'work',
          run: (ctx) =>
            stopping
              ? new Promise((_, reject) =>
                  ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))),
                )
              : Promise.resolve('finished'),
        },
      ],
    };
    const store = await openStore();
    const first = runner(store, clock, [def], 'instance-a', undefined, false);
    const run = await first.trigger('stoppable');
    await until(async () => expect((await detail(store, run.id)).tasks[0]!.state).toBe('running'));
    await first.stop();
    const stopped = await detail(store, run.id);
    expect(stopped.run).toMatchObject({ state: 'running', owner: null, leaseExpiresAt: null });
    expect(stopped.tasks[0]).toMatchObject({ state: 'retrying', nextAttemptAt: T0 });
    expect(attemptsOf(stopped, 'work')).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'interrupted', error: 'aborted' }),
    ]);

    stopping = false;
    const second = runner(store, clock, [def], 'instance-b');
    await second.start();
    expect((await second.settled(run.id)).state).toBe('succeeded');
    expect((await detail(store, run.id)).run.owner).toBe('instance-b');
  });
});
