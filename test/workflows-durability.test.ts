/**
 * A workflow run waiting for a callback survives kill -9 of its process: a
 * second process on the same metadata file takes the run over once the dead
 * one's lease lapses, accepts the callback, and finishes the run, and the
 * stored history is whole (every task, the branch not taken, one attempt per
 * task, the wait's attempt spanning the kill).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DuckDbMetaStore } from '../src/storage/meta/index.js';
import { spawnWorkflowChild } from './helpers/workflow-child.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-workflow-kill9-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('kill -9 while a workflow run waits for a callback', () => {
  it('another process takes the run over and finishes it with the callback’s output', async () => {
    const file = path.join(dir, 'waiting.duckdb');
    const first = spawnWorkflowChild(['callback', file, 'instance-a']);
    const started = await first.waitFor('started');
    expect(started.triggered).toBe(true);
    const { token, runId } = (await first.waitFor('token')) as unknown as {
      token: string;
      runId: string;
    };
    expect(runId).toBe(started.runId);
    // Killed only once the wait is stored: a start cut off before that is retried with a new token.
    expect(await first.waitFor('settled')).toMatchObject({ state: 'waiting' });
    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const approval = { approvedBy: 'kim', note: 'ship it' };
    const second = spawnWorkflowChild(['callback', file, 'instance-b']);
    const resumed = await second.waitFor('started');
    expect(resumed).toMatchObject({ runId, triggered: false });
    second.send(`complete ${token} ${JSON.stringify(approval)}`);
    expect(await second.waitFor('completed')).toMatchObject({ token });
    expect(await second.waitFor('finished')).toMatchObject({ state: 'succeeded' });
    expect(await second.exited).toBe(0);
    // The wait was started once, in the first process: the second never restarts it.
    expect(second.events.filter((e) => e.event === 'token')).toHaveLength(0);

    const store = new DuckDbMetaStore({ path: file });
    await store.open();
    try {
      const runs = await store.listRuns({ workflow: 'review', limit: 10 });
      expect(runs.map((r) => r.id)).toEqual([runId]);
      const detail = (await store.getRun(runId))!;
      expect(detail.run).toMatchObject({
        state: 'succeeded',
        trigger: 'manual',
        error: null,
        owner: 'instance-b',
      });
      expect(detail.tasks.map((t) => [t.taskId, t.state, t.attempts, t.output])).toEqual([
        ['measure', 'succeeded', 1, { size: 42, pid: first.child.pid }],
        ['route', 'succeeded', 1, 'big'],
        ['approve-big', 'succeeded', 1, approval],
        ['approve-small', 'skipped', 0, null],
        ['publish', 'succeeded', 1, { published: approval, pid: second.child.pid }],
      ]);
      expect(detail.tasks.find((t) => t.taskId === 'approve-big')!.callbackToken).toBe(token);
      expect(detail.attempts.map((a) => [a.taskId, a.attempt, a.outcome, a.error])).toEqual([
        ['measure', 1, 'succeeded', null],
        ['route', 1, 'succeeded', null],
        ['approve-big', 1, 'succeeded', null],
        ['publish', 1, 'succeeded', null],
      ]);
      const wait = detail.attempts.find((a) => a.taskId === 'approve-big')!;
      expect(wait.startedAt).toBeLessThan(killedAt);
      expect(wait.finishedAt).toBeGreaterThan(killedAt);
      const publish = detail.attempts.find((a) => a.taskId === 'publish')!;
      expect(publish.startedAt).toBeGreaterThanOrEqual(wait.finishedAt!);
      expect(detail.run.finishedAt).toBeGreaterThanOrEqual(publish.finishedAt!);
    } finally {
      await store.close();
    }
  }, 60_000);

  it('a wait whose start was cut off is started again on a new token; the old one is refused', async () => {
    const file = path.join(dir, 'starting.duckdb');
    const first = spawnWorkflowChild(['callback', file, 'instance-a', 'hang-in-start']);
    const { token: lost, runId } = (await first.waitFor('token')) as unknown as {
      token: string;
      runId: string;
    };
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const second = spawnWorkflowChild(['callback', file, 'instance-b']);
    // Once the lease lapses the second process retries the cut-off attempt: a new start, a new token.
    const { token } = (await second.waitFor('token')) as unknown as { token: string };
    expect(token).not.toBe(lost);
    expect(await second.waitFor('settled')).toMatchObject({ state: 'waiting' });
    second.send(`complete ${lost} "late"`);
    expect(await second.waitFor('refused')).toMatchObject({
      token: lost,
      code: 'CANOPY_WORKFLOW_CALLBACK_UNKNOWN',
    });
    second.send(`complete ${token} "on time"`);
    expect(await second.waitFor('finished')).toMatchObject({ state: 'succeeded' });
    expect(await second.exited).toBe(0);

    const store = new DuckDbMetaStore({ path: file });
    await store.open();
    try {
      const detail = (await store.getRun(runId))!;
      expect(detail.run).toMatchObject({ state: 'succeeded', owner: 'instance-b' });
      expect(detail.tasks.find((t) => t.taskId === 'approve-big')).toMatchObject({
        state: 'succeeded',
        attempts: 2,
        output: 'on time',
        callbackToken: token,
      });
      expect(detail.attempts.map((a) => [a.taskId, a.attempt, a.outcome])).toEqual([
        ['measure', 1, 'succeeded'],
        ['route', 1, 'succeeded'],
        ['approve-big', 1, 'interrupted'],
        ['approve-big', 2, 'succeeded'],
        ['publish', 1, 'succeeded'],
      ]);
      const publish = detail.tasks.find((t) => t.taskId === 'publish')!;
      expect(publish.output).toEqual({ published: 'on time', pid: second.child.pid });
    } finally {
      await store.close();
    }
  }, 60_000);
});
