import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { isCanopyError } from '../core/errors.js';
import type { WorkflowRun } from '../core/workflows.js';
import type { TaskContext, WorkflowDefinition } from './definition.js';
import {
  DAY,
  HOUR,
  MIN,
  SEC,
  T0,
  attemptsOf,
  detail,
  harness,
  metricValue,
  taskState,
  until,
  type Harness,
} from './runner.fixture.js';
import { WorkflowRunner } from './runner.js';
import { slotsBetween } from './schedule.js';
import { validateWorkflows } from './validate.js';

let open: Harness[] = [];
async function setup(...args: Parameters<typeof harness>): Promise<Harness> {
  const h = await harness(...args);
  open.push(h);
  return h;
}
afterEach(async () => {
  for (const h of open) await h.close();
  open = [];
});

function expectCode(err: unknown, code: Parameters<typeof isCanopyError>[1]): void {
  expect(isCanopyError(err, code), String(err)).toBe(true);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

/** Rejects when the signal aborts (a task that only a timeout or stop ends). */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
  });
}

describe('a DAG', () => {
  function diamond(events: string[], seen: Record<string, TaskContext['outputs']>) {
    const step = (id: string, dependsOn: string[] = []) => ({
      id,
      dependsOn,
      async run(ctx: TaskContext) {
        events.push(`${id}:start`);
        seen[id] = ctx.outputs;
        await Promise.resolve();
        events.push(`${id}:end`);
        return { from: id, date: ctx.params.date };
      },
    });
    const def: WorkflowDefinition = {
      name: 'diamond',
      description: 'a → (b, c) → d',
      params: () => ({ date: '2026-06-09' }),
      tasks: [step('a'), step('b', ['a']), step('c', ['a']), step('d', ['b', 'c'])],
    };
    return def;
  }

  it('runs both branches in parallel before the join, with the outputs of every ancestor', async () => {
    const events: string[] = [];
    const seen: Record<string, TaskContext['outputs']> = {};
    const { runner, store } = await setup([diamond(events, seen)]);
    const run = await runner.trigger('diamond', { params: { extra: 1 } });
    expect(run.params).toEqual({ date: '2026-06-09', extra: 1 });
    expect((await runner.settled(run.id)).state).toBe('succeeded');
    expect(events).toEqual([
      'a:start',
      'a:end',
      'b:start',
      'c:start',
      'b:end',
      'c:end',
      'd:start',
      'd:end',
    ]);
    expect(seen.d).toEqual({
      a: { from: 'a', date: '2026-06-09' },
      b: { from: 'b', date: '2026-06-09' },
      c: { from: 'c', date: '2026-06-09' },
    });
    expect(seen.b).toEqual({ a: { from: 'a', date: '2026-06-09' } });
    const d = await detail(store, run.id);
    expect(taskState(d)).toEqual({
      a: 'succeeded',
      b: 'succeeded',
      c: 'succeeded',
      d: 'succeeded',
    });
    expect(d.attempts.map((a) => [a.taskId, a.attempt, a.outcome])).toEqual([
      ['a', 1, 'succeeded'],
      ['b', 1, 'succeeded'],
      ['c', 1, 'succeeded'],
      ['d', 1, 'succeeded'],
    ]);
    expect(d.run.finishedAt).toBe(T0);
  });

  it('serialises the branches with maxParallelTasks 1', async () => {
    const events: string[] = [];
    const { runner } = await setup([diamond(events, {})], { maxParallelTasks: 1 });
    const run = await runner.trigger('diamond');
    expect((await runner.settled(run.id)).state).toBe('succeeded');
    expect(events).toEqual([
      'a:start',
      'a:end',
      'b:start',
      'b:end',
      'c:start',
      'c:end',
      'd:start',
      'd:end',
    ]);
  });

  it('records metrics for the finished run and its attempts', async () => {
    const { runner, metrics, clock } = await setup([diamond([], {})]);
    const run = await runner.trigger('diamond');
    await runner.settled(run.id);
    expect(
      await metricValue(metrics.workflowRuns, { workflow: 'diamond', result: 'succeeded' }),
    ).toBe(1);
    expect(
      await metricValue(metrics.workflowTaskAttempts, {
        workflow: 'diamond',
        outcome: 'succeeded',
      }),
    ).toBe(4);
    expect(await metricValue(metrics.workflowLastSuccess, { workflow: 'diamond' })).toBe(
      clock.now() / 1000,
    );
    expect(
      await metricValue(metrics.workflowRunsActive, { workflow: 'diamond', state: 'running' }),
    ).toBe(0);
  });
});

describe('retries and timeouts', () => {
  it('retries a failing task with exponential backoff and records every attempt', async () => {
    let calls = 0;
    const { runner, store, clock, metrics } = await setup([
      {
        name: 'flaky',
        description: 'fails twice, then works',
        tasks: [
          {
            id: 'fetch',
            retries: 3,
            retryBackoffMs: 1000,
            run() {
              calls += 1;
              if (calls <= 2) return Promise.reject(new Error(`boom ${calls}`));
              return Promise.resolve('ok');
            },
          },
          { id: 'after', dependsOn: ['fetch'], run: () => Promise.resolve(null) },
        ],
      },
    ]);
    const run = await runner.trigger('flaky');
    const fetch = async () => (await detail(store, run.id)).tasks[0]!;
    await until(async () => expect((await fetch()).state).toBe('retrying'));
    expect((await fetch()).nextAttemptAt).toBe(T0 + 1000);

    clock.advance(999);
    await runner.tick();
    expect(calls).toBe(1);
    clock.advance(1);
    await runner.tick();
    await until(async () => expect((await fetch()).attempts).toBe(2));
    await until(async () => expect((await fetch()).state).toBe('retrying'));
    expect((await fetch()).nextAttemptAt).toBe(T0 + 1000 + 2000);

    clock.set(T0 + 2999);
    await runner.tick();
    expect(calls).toBe(2);
    clock.set(T0 + 3000);
    await runner.tick();
    expect((await runner.settled(run.id)).state).toBe('succeeded');

    const d = await detail(store, run.id);
    expect(attemptsOf(d, 'fetch')).toEqual([
      expect.objectContaining({
        attempt: 1,
        startedAt: T0,
        finishedAt: T0,
        outcome: 'failed',
        error: 'boom 1',
      }),
      expect.objectContaining({
        attempt: 2,
        startedAt: T0 + 1000,
        outcome: 'failed',
        error: 'boom 2',
      }),
      expect.objectContaining({
        attempt: 3,
        startedAt: T0 + 3000,
        outcome: 'succeeded',
        error: null,
      }),
    ]);
    expect(d.tasks[0]).toMatchObject({
      state: 'succeeded',
      attempts: 3,
      output: 'ok',
      startedAt: T0,
    });
    expect(
      await metricValue(metrics.workflowTaskAttempts, { workflow: 'flaky', outcome: 'failed' }),
    ).toBe(2);
  });

  it('fails the run when retries run out: downstream skipped, the error recorded', async () => {
    const { runner, store, metrics } = await setup([
      {
        name: 'broken',
        description: 'a task that always fails',
        tasks: [
          { id: 'load', run: async () => Promise.reject(new Error('disk full')) },
          { id: 'report', dependsOn: ['load'], run: () => Promise.resolve('never') },
        ],
      },
    ]);
    const run = await runner.trigger('broken');
    const final = await runner.settled(run.id);
    expect(final).toMatchObject({ state: 'failed', error: 'task load: disk full', finishedAt: T0 });
    const d = await detail(store, run.id);
    expect(taskState(d)).toEqual({ load: 'failed', report: 'skipped' });
    expect(attemptsOf(d, 'report')).toEqual([]);
    expect(await metricValue(metrics.workflowRuns, { workflow: 'broken', result: 'failed' })).toBe(
      1,
    );
  });

  it('times out an attempt at its timeout: the signal aborts and the attempt counts as a failure', async () => {
    let signal: AbortSignal | undefined;
    const { runner, store, clock, metrics } = await setup([
      {
        name: 'slow',
        description: 'a task that hangs',
        tasks: [
          {
            id: 'hang',
            timeoutMs: 5000,
            run: async (ctx) => {
              signal = ctx.signal;
              return untilAborted(ctx.signal);
            },
          },
          { id: 'next', dependsOn: ['hang'], run: () => Promise.resolve(null) },
        ],
      },
    ]);
    const run = await runner.trigger('slow');
    await until(() => expect(signal).toBeDefined());
    clock.advance(4999);
    await runner.tick();
    expect(signal!.aborted).toBe(false);
    expect((await detail(store, run.id)).run.state).toBe('running');
    clock.advance(1);
    await runner.tick();
    expect(signal!.aborted).toBe(true);
    const final = await runner.settled(run.id);
    expect(final.state).toBe('failed');
    const d = await detail(store, run.id);
    expect(attemptsOf(d, 'hang')).toEqual([
      expect.objectContaining({
        attempt: 1,
        outcome: 'timed-out',
        finishedAt: T0 + 5000,
        error: 'timed out after 5000 ms',
      }),
    ]);
    expect(taskState(d)).toEqual({ hang: 'failed', next: 'skipped' });
    expect(
      await metricValue(metrics.workflowTaskAttempts, { workflow: 'slow', outcome: 'timed-out' }),
    ).toBe(1);
  });
});

describe('a choice', () => {
  function chooser(pick: string, ran: string[]): WorkflowDefinition {
    const task = (id: string, dependsOn: string[]) => ({
      id,
      dependsOn,
      run: () => {
        ran.push(id);
        return Promise.resolve(id);
      },
    });
    return {
      name: 'choosy',
      description: 'big or small',
      tasks: [
        {
          id: 'size',
          kind: 'choice',
          choose: () => pick,
          branches: { big: ['heavy'], small: ['light'] },
        },
        task('heavy', ['size']),
        task('after-heavy', ['heavy']),
        task('light', ['size']),
        task('after-light', ['light']),
        task('report', ['size']),
      ],
    };
  }

  it('runs the branch taken and skips the other branch and everything downstream of it', async () => {
    const ran: string[] = [];
    const { runner, store } = await setup([chooser('big', ran)]);
    const run = await runner.trigger('choosy');
    expect((await runner.settled(run.id)).state).toBe('succeeded');
    const d = await detail(store, run.id);
    expect(taskState(d)).toEqual({
      size: 'succeeded',
      heavy: 'succeeded',
      'after-heavy': 'succeeded',
      light: 'skipped',
      'after-light': 'skipped',
      report: 'succeeded',
    });
    expect(d.tasks.find((t) => t.taskId === 'size')!.output).toBe('big');
    expect(ran.sort()).toEqual(['after-heavy', 'heavy', 'report']);
  });

  it('fails the attempt when choose names no branch', async () => {
    const { runner, store } = await setup([chooser('medium', [])]);
    const run = await runner.trigger('choosy');
    expect((await runner.settled(run.id)).state).toBe('failed');
    const d = await detail(store, run.id);
    expect(attemptsOf(d, 'size')[0]!.error).toMatch(/"medium", not one of its branches/);
    expect(Object.values(taskState(d)).filter((s) => s === 'skipped')).toHaveLength(5);
  });
});

describe('wait-for-callback', () => {
  function approval(
    tokens: string[],
    seen: TaskContext['outputs'][],
    retries = 0,
  ): WorkflowDefinition {
    return {
      name: 'approval',
      description: 'waits for a person',
      tasks: [
        { id: 'prepare', run: () => Promise.resolve({ rows: 3 }) },
        {
          id: 'approve',
          kind: 'wait-for-callback',
          dependsOn: ['prepare'],
          retries,
          retryBackoffMs: 1000,
          start: (_ctx, token) => {
            tokens.push(token);
            return Promise.resolve();
          },
        },
        {
          id: 'publish',
          dependsOn: ['approve'],
          run: (ctx) => {
            seen.push(ctx.outputs);
            return Promise.resolve('published');
          },
        },
      ],
    };
  }

  it('waits with the token stored, then continues with the callback’s output', async () => {
    const tokens: string[] = [];
    const seen: TaskContext['outputs'][] = [];
    const { runner, store, metrics } = await setup([approval(tokens, seen)]);
    const run = await runner.trigger('approval');
    expect((await runner.settled(run.id)).state).toBe('waiting');
    expect(tokens).toHaveLength(1);
    const waiting = await detail(store, run.id);
    expect(taskState(waiting)).toEqual({
      prepare: 'succeeded',
      approve: 'waiting',
      publish: 'pending',
    });
    expect((await store.findByToken(tokens[0]!))?.taskId).toBe('approve');
    expect(
      await metricValue(metrics.workflowRunsActive, { workflow: 'approval', state: 'waiting' }),
    ).toBe(1);

    await runner.completeCallback(tokens[0]!, { output: { approvedBy: 'ana' } });
    expect((await runner.settled(run.id)).state).toBe('succeeded');
    expect(seen).toEqual([{ prepare: { rows: 3 }, approve: { approvedBy: 'ana' } }]);
    const d = await detail(store, run.id);
    expect(attemptsOf(d, 'approve')).toEqual([
      expect.objectContaining({ attempt: 1, outcome: 'succeeded' }),
    ]);
    expectCode(
      await rejection(runner.completeCallback(tokens[0]!, { output: 1 })),
      'CANOPY_WORKFLOW_CALLBACK_UNKNOWN',
    );
    expectCode(
      await rejection(runner.completeCallback('no-such-token', { output: 1 })),
      'CANOPY_WORKFLOW_CALLBACK_UNKNOWN',
    );
  });

  it('an error fails the attempt: a retry waits on a new token, and the last failure fails the run', async () => {
    const tokens: string[] = [];
    const { runner, store, clock } = await setup([approval(tokens, [], 1)]);
    const run = await runner.trigger('approval');
    await runner.settled(run.id);
    await runner.completeCallback(tokens[0]!, { error: 'rejected by ana' });
    const retrying = await detail(store, run.id);
    expect(retrying.tasks[1]).toMatchObject({ state: 'retrying', nextAttemptAt: T0 + 1000 });
    expect(retrying.run.state).toBe('running');

    clock.advance(1000);
    await runner.tick();
    expect((await runner.settled(run.id)).state).toBe('waiting');
    expect(tokens).toHaveLength(2);
    expect(tokens[1]).not.toBe(tokens[0]);
    expectCode(
      await rejection(runner.completeCallback(tokens[0]!, { output: 1 })),
      'CANOPY_WORKFLOW_CALLBACK_UNKNOWN',
    );
    await runner.completeCallback(tokens[1]!, { error: 'rejected again' });
    const final = await runner.settled(run.id);
    expect(final).toMatchObject({ state: 'failed', error: 'task approve: rejected again' });
    const d = await detail(store, run.id);
    expect(attemptsOf(d, 'approve').map((a) => [a.attempt, a.outcome, a.error])).toEqual([
      [1, 'failed', 'rejected by ana'],
      [2, 'failed', 'rejected again'],
    ]);
    expect(taskState(d)).toEqual({ prepare: 'succeeded', approve: 'failed', publish: 'skipped' });
  });

  it('a callback wait times out like an attempt', async () => {
    const tokens: string[] = [];
    const def = approval(tokens, []);
    const withTimeout: WorkflowDefinition = {
      ...def,
      tasks: def.tasks.map((t) => (t.id === 'approve' ? { ...t, timeoutMs: HOUR } : t)),
    };
    const { runner, store, clock } = await setup([withTimeout]);
    const run = await runner.trigger('approval');
    await runner.settled(run.id);
    clock.advance(HOUR);
    await runner.tick();
    expect((await runner.settled(run.id)).state).toBe('failed');
    expect(attemptsOf(await detail(store, run.id), 'approve')[0]).toMatchObject({
      outcome: 'timed-out',
      error: `no callback within ${HOUR} ms`,
    });
  });
});

describe('deadlines', () => {
  const waits = (tokens: string[]): WorkflowDefinition => ({
    name: 'late',
    description: 'waits for a callback, due within 10 minutes',
    deadlineMs: 10 * MIN,
    tasks: [
      {
        id: 'wait',
        kind: 'wait-for-callback',
        start: (_ctx, token) => {
          tokens.push(token);
          return Promise.resolve();
        },
      },
    ],
  });

  it('a run past its deadline is marked once, counted and reported missed', async () => {
    const tokens: string[] = [];
    const { runner, store, clock, deadlines, metrics } = await setup([waits(tokens)]);
    const run = await runner.trigger('late');
    expect(run.deadlineAt).toBe(T0 + 10 * MIN);
    await runner.settled(run.id);
    clock.advance(10 * MIN);
    await runner.tick();
    expect(deadlines).toEqual([]);
    clock.advance(1);
    await runner.tick();
    await runner.tick();
    expect(deadlines).toEqual([
      { workflow: 'late', runId: run.id, missed: true, at: T0 + 10 * MIN + 1 },
    ]);
    expect((await detail(store, run.id)).run.deadlineMissed).toBe(true);
    expect(await metricValue(metrics.workflowDeadlineMisses, { workflow: 'late' })).toBe(1);

    await runner.completeCallback(tokens[0]!, { output: null });
    expect((await runner.settled(run.id)).state).toBe('succeeded');
    expect(deadlines).toHaveLength(1);
  });

  it('a run that succeeds in time reports the deadline met', async () => {
    const tokens: string[] = [];
    const { runner, clock, deadlines } = await setup([waits(tokens)]);
    const run = await runner.trigger('late');
    await runner.settled(run.id);
    clock.advance(5 * MIN);
    await runner.completeCallback(tokens[0]!, { output: null });
    expect((await runner.settled(run.id)).state).toBe('succeeded');
    expect(deadlines).toEqual([
      { workflow: 'late', runId: run.id, missed: false, at: T0 + 5 * MIN },
    ]);
  });
});

describe('schedules', () => {
  function hourly(catchUp: 'once' | 'all' | 'skip', ran: number[]): WorkflowDefinition {
    return {
      name: 'hourly',
      description: 'every hour',
      schedule: { cron: '0 * * * *', catchUp },
      deadlineMs: 30 * MIN,
      params: (slot) => ({ hour: slot === null ? null : new Date(slot).toISOString() }),
      tasks: [
        {
          id: 'work',
          run: (ctx) => {
            ran.push(ctx.slot!);
            return Promise.resolve(null);
          },
        },
      ],
    };
  }

  async function runsOf(h: Harness): Promise<WorkflowRun[]> {
    const runs = await h.store.listRuns({ workflow: 'hourly', limit: 1000 });
    return runs.sort((a, b) => a.slot! - b.slot!);
  }

  it('a tick creates the current slot’s run with its params and deadline', async () => {
    const ran: number[] = [];
    const h = await setup([hourly('once', ran)], { now: T0 + 2 * SEC });
    await h.runner.tick();
    const [run] = await runsOf(h);
    expect(run).toMatchObject({
      slot: T0,
      trigger: 'schedule',
      params: { hour: new Date(T0).toISOString() },
      deadlineAt: T0 + 30 * MIN,
    });
    await h.runner.settled(run!.id);
    await h.runner.tick();
    expect(await runsOf(h)).toHaveLength(1);
    expect(ran).toEqual([T0]);
  });

  const downtime: [policy: 'once' | 'all' | 'skip', slots: number[]][] = [
    ['once', [T0, T0 + 5 * HOUR]],
    ['all', [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 4 * HOUR, T0 + 5 * HOUR]],
    ['skip', [T0]],
  ];
  it.each(downtime)(
    'after a downtime, catch-up %s runs the slots it should',
    async (policy, slots) => {
      const ran: number[] = [];
      const h = await setup([hourly(policy, ran)], { now: T0 + SEC });
      await h.runner.tick();
      await until(() => expect(ran).toEqual([T0]));
      // Down from 00:00:01 to 05:10: a new process on the same store.
      h.clock.set(T0 + 5 * HOUR + 10 * MIN);
      const restarted = h.another({ instanceId: 'instance-a' });
      await restarted.start();
      await restarted.tick();
      const runs = await runsOf(h);
      expect(runs.map((r) => r.slot)).toEqual(slots);
      expect(runs.slice(1).every((r) => r.trigger === 'catch-up')).toBe(true);
      for (const r of runs) await restarted.settled(r.id);
      expect(ran.sort((a, b) => a - b)).toEqual(slots);
    },
  );

  it('pause stops new slots; resume catches up per policy', async () => {
    const ran: number[] = [];
    const h = await setup([hourly('once', ran)], { now: T0 + SEC });
    await h.runner.tick();
    await h.runner.pause('hourly');
    expectCode(await rejection(h.runner.trigger('hourly')), 'CANOPY_WORKFLOW_BAD_REQUEST');
    for (let t = T0 + HOUR; t <= T0 + 3 * HOUR; t += HOUR) {
      h.clock.set(t + SEC);
      await h.runner.tick();
    }
    expect((await runsOf(h)).map((r) => r.slot)).toEqual([T0]);
    h.clock.set(T0 + 3 * HOUR + 30 * MIN);
    await h.runner.resume('hourly');
    await h.runner.tick();
    const runs = await runsOf(h);
    expect(runs.map((r) => [r.slot, r.trigger])).toEqual([
      [T0, 'schedule'],
      [T0 + 3 * HOUR, 'catch-up'],
    ]);
  });

  it('trigger is idempotent per slot and checks the slot', async () => {
    const h = await setup([hourly('once', [])], { now: T0 + 10 * HOUR });
    const first = await h.runner.trigger('hourly', { slot: T0 + 2 * HOUR });
    const again = await h.runner.trigger('hourly', { slot: T0 + 2 * HOUR });
    expect(again.id).toBe(first.id);
    await h.runner.settled(first.id);
    const later = await h.runner.trigger('hourly', { slot: T0 + 2 * HOUR });
    expect(later).toMatchObject({ id: first.id, state: 'succeeded' });
    expect(await runsOf(h)).toHaveLength(1);
    // A manual run is held to its deadline from when it was started, not from its old slot.
    expect(first).toMatchObject({ trigger: 'manual', deadlineAt: T0 + 10 * HOUR + 30 * MIN });

    expectCode(
      await rejection(h.runner.trigger('hourly', { slot: T0 + 2 * HOUR + 1000 })),
      'CANOPY_WORKFLOW_BAD_REQUEST',
    );
    expectCode(
      await rejection(h.runner.trigger('hourly', { slot: T0 + 11 * HOUR })),
      'CANOPY_WORKFLOW_BAD_REQUEST',
    );
    expectCode(await rejection(h.runner.trigger('nope')), 'CANOPY_WORKFLOW_NOT_FOUND');
  });
});

describe('backfill', () => {
  it('runs every daily slot of a week, never more than `concurrency` unfinished at once', async () => {
    let running = 0;
    let maxUnfinished = 0;
    const gates: (() => void)[] = [];
    const ran: number[] = [];
    const h = await setup(
      [
        {
          name: 'daily',
          description: 'a daily job',
          // skip: the tick below must not add today's catch-up run to the backfill's.
          schedule: { cron: '0 2 * * *', catchUp: 'skip' },
          tasks: [
            {
              id: 'one',
              run: async (ctx) => {
                running += 1;
                const unfinished = await h.store.unfinishedRuns();
                maxUnfinished = Math.max(maxUnfinished, unfinished.length);
                await new Promise<void>((resolve) => gates.push(resolve));
                ran.push(ctx.slot!);
                running -= 1;
                return null;
              },
            },
            { id: 'two', dependsOn: ['one'], run: () => Promise.resolve(null) },
          ],
        },
      ],
      { now: T0 + 30 * DAY },
    );
    const from = T0 + 2 * DAY;
    const to = T0 + 8 * DAY + 2 * HOUR;
    const backfilling = h.runner.backfill('daily', from, to, 2);
    try {
      for (let released = 0; released < 7; released += 1) {
        const expected = Math.min(2, 7 - released);
        await until(async () => {
          expect(gates.length).toBe(expected);
          expect((await h.store.unfinishedRuns()).length).toBe(expected);
        });
        // Nothing more starts while two runs are unfinished, however often the runner ticks.
        await h.runner.tick();
        expect(running).toBe(expected);
        expect((await h.store.unfinishedRuns()).length).toBe(expected);
        gates.shift()!();
      }
    } finally {
      for (const release of gates) release();
    }
    const runs = await backfilling;
    const expected = slotsBetween({ cron: '0 2 * * *' }, from - 1, to);
    expect(expected).toHaveLength(7);
    expect(runs.map((r) => [r.slot, r.state, r.trigger])).toEqual(
      expected.map((slot) => [slot, 'succeeded', 'backfill']),
    );
    expect(await h.store.listRuns({ workflow: 'daily', limit: 100 })).toHaveLength(7);
    expect(ran.sort((a, b) => a - b)).toEqual(expected);
    expect(maxUnfinished).toBeLessThanOrEqual(2);

    expectCode(
      await rejection(h.runner.backfill('daily', to, from, 2)),
      'CANOPY_WORKFLOW_BAD_REQUEST',
    );
    expectCode(
      await rejection(h.runner.backfill('daily', from, from + HOUR, 2)),
      'CANOPY_WORKFLOW_BAD_REQUEST',
    );
    expectCode(
      await rejection(h.runner.backfill('daily', from, to, 0)),
      'CANOPY_WORKFLOW_BAD_REQUEST',
    );
  });
});

describe('two runners on one store', () => {
  it('create one run per slot and run each task once per slot', async () => {
    const executions = new Map<string, number>();
    const count = (ctx: TaskContext, task: string) => {
      const key = `${ctx.slot}:${task}`;
      executions.set(key, (executions.get(key) ?? 0) + 1);
    };
    const def: WorkflowDefinition = {
      name: 'minutely',
      description: 'every minute',
      schedule: { cron: '* * * * *', catchUp: 'all' },
      tasks: [
        {
          id: 'extract',
          run: async (ctx) => {
            count(ctx, 'extract');
            await Promise.resolve();
            return null;
          },
        },
        {
          id: 'load',
          dependsOn: ['extract'],
          run: (ctx) => {
            count(ctx, 'load');
            return Promise.resolve(null);
          },
        },
      ],
    };
    const h = await setup([def], { instanceId: 'instance-a' });
    const b = h.another({ instanceId: 'instance-b' });
    for (let minute = 0; minute <= 10; minute += 1) {
      h.clock.set(T0 + minute * MIN + 500);
      await Promise.all([h.runner.tick(), b.tick()]);
    }
    const runs = await h.store.listRuns({ workflow: 'minutely', limit: 100 });
    const slots = Array.from({ length: 11 }, (_, i) => T0 + i * MIN);
    expect(runs.map((r) => r.slot).sort((x, y) => x! - y!)).toEqual(slots);
    await until(async () => expect(await h.store.unfinishedRuns()).toEqual([]));
    const owners = new Set(runs.map((r) => r.owner));
    expect([...owners].every((o) => o === 'instance-a' || o === 'instance-b')).toBe(true);
    for (const slot of slots) {
      expect(executions.get(`${slot}:extract`)).toBe(1);
      expect(executions.get(`${slot}:load`)).toBe(1);
    }
    expect(executions.size).toBe(22);
  });
});

describe('leases', () => {
  it('an instance whose lease lapsed loses the run: its late result is dropped, the new owner finishes', async () => {
    const gates: ((value: string) => void)[] = [];
    const def: WorkflowDefinition = {
      name: 'contended',
      description: 'a task that waits for the test',
      tasks: [
        {
          id: 'work',
          run: (ctx) =>
            new Promise((resolve) => gates.push(() => resolve(`attempt ${ctx.attempt}`))),
        },
      ],
    };
    const h = await setup([def], { instanceId: 'instance-a' });
    const b = h.another({ instanceId: 'instance-b' });
    const run = await h.runner.trigger('contended');
    // On failure, no attempt is left hanging for the runners' stop to wait on.
    onTestFinished(() => gates.forEach((release) => release('released')));
    await until(() => expect(gates).toHaveLength(1));

    // instance-a stalls past its lease; instance-b takes the run over.
    h.clock.advance(61 * SEC);
    await b.tick();
    await until(() => expect(gates).toHaveLength(2));
    const taken = await detail(h.store, run.id);
    expect(taken.run.owner).toBe('instance-b');
    expect(attemptsOf(taken, 'work').map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'interrupted'],
      [2, null],
    ]);

    // instance-a's attempt returns late: nothing of it is written.
    gates[0]!('late');
    // Let the result reach instance-a's queue before the tick queued behind it.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await h.runner.tick();
    const after = await detail(h.store, run.id);
    expect(after.run.owner).toBe('instance-b');
    expect(attemptsOf(after, 'work').map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'interrupted'],
      [2, null],
    ]);

    gates[1]!('now');
    expect((await b.settled(run.id)).state).toBe('succeeded');
    const final = await detail(h.store, run.id);
    expect(final.tasks[0]).toMatchObject({ state: 'succeeded', output: 'attempt 2', attempts: 2 });
    expect(final.run.owner).toBe('instance-b');
  });
});

describe('validation', () => {
  it('lists every problem at once, and the runner refuses the definitions', () => {
    const noop = () => Promise.resolve(null);
    const defs: WorkflowDefinition[] = [
      {
        name: 'bad',
        description: '',
        schedule: { cron: 'sometimes', timezone: 'Nowhere/Land' },
        tasks: [
          { id: 'a', dependsOn: ['b'], run: noop },
          { id: 'b', dependsOn: ['a'], run: noop },
          { id: 'c', run: noop },
          { id: 'c', run: noop },
          { id: 'Bad Id', dependsOn: ['ghost'], retries: -1, timeoutMs: -5, run: noop },
          {
            id: 'pick',
            kind: 'choice',
            choose: () => 'x',
            branches: { x: ['a'], y: ['missing'] },
          },
        ],
      },
      { name: 'bad', description: '', tasks: [{ id: 'z', run: noop }] },
    ];
    let err: unknown;
    try {
      validateWorkflows(defs);
    } catch (e) {
      err = e;
    }
    expectCode(err, 'CANOPY_WORKFLOW_INVALID');
    const problems = (err as { details: { problems: string[] } }).details.problems;
    const expected = [
      /workflow 'bad' is declared twice/,
      /unknown time zone 'Nowhere\/Land'/,
      /task id 'c' is declared twice/,
      /task 'Bad Id': the id must be/,
      /task 'Bad Id': it depends on unknown task 'ghost'/,
      /task 'Bad Id': retries must be/,
      /task 'Bad Id': timeoutMs must be/,
      /branch 'x' names task 'a', which does not depend on 'pick'/,
      /branch 'y' names unknown task 'missing'/,
      /dependency cycle a → b → a/,
    ];
    for (const pattern of expected)
      expect(
        problems.some((p) => pattern.test(p)),
        String(pattern),
      ).toBe(true);
    expect(() => validateWorkflows([{ ...defs[1]!, schedule: { cron: 'nope' } }])).toThrow(
      /bad cron 'nope'/,
    );
    expect(
      () =>
        new WorkflowRunner({
          store: {} as never,
          workflows: defs,
          clock: { now: () => T0 },
          metrics: {} as never,
          logger: {} as never,
          instanceId: 'x',
        }),
    ).toThrow(/invalid workflow definitions/);
  });

  it('accepts good definitions', () => {
    expect(() =>
      validateWorkflows([
        {
          name: 'good',
          description: 'fine',
          schedule: { cron: '30 1 * * *', timezone: 'Europe/London', catchUp: 'all' },
          tasks: [
            { id: 'a', run: () => Promise.resolve(null) },
            {
              id: 'c',
              kind: 'choice',
              dependsOn: ['a'],
              choose: () => 'x',
              branches: { x: ['d'] },
            },
            { id: 'd', dependsOn: ['c'], run: () => Promise.resolve(null) },
          ],
        },
      ]),
    ).not.toThrow();
  });
});
