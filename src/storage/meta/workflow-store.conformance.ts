/**
 * The one conformance suite every `WorkflowStore` adapter runs (DuckDB file,
 * PostgreSQL). It tests the contract in `core/workflows.ts` through the
 * store's own methods only, and checks `listRuns` against a plain in-memory
 * oracle of the documented filter.
 *
 * Contract details the interface comments leave open, fixed here so that
 * every adapter agrees:
 * - Every field round-trips exactly; a task's `output` may be any JSON value
 *   (null, a string, a number, …) and comes back as that value.
 * - createRun also refuses (returns false, writes nothing) a run whose id
 *   exists. Null slots never conflict.
 * - claimRun treats an owned run without a lease (`leaseExpiresAt` null) as
 *   unleased, i.e. takes it. It does not look at the run's state.
 * - saveProgress writes every field of the run row as given (owner and lease
 *   too). A task instance the run was not created with goes after the
 *   others in `getRun`. Any failing row fails the whole call.
 * - `listRuns`: `state: []` matches no run; runs created at the same
 *   millisecond come in descending id order; `limit` outside 1..1000 rejects
 *   with CANOPY_API_BAD_REQUEST. `unfinishedRuns`: ties in ascending id order.
 * - findByToken finds only a task in state `waiting`.
 * - purgeRuns keeps every unfinished run however old, and finished runs
 *   created at or after `before`.
 *
 * The fixtures (`runFixture`, `taskFixture`, `attemptFixture`) are exported
 * for other tests.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isCanopyError } from '../../core/errors.js';
import type { MetaStore } from '../../core/meta.js';
import {
  FINAL_RUN_STATES,
  RUN_STATES,
  type RunFilter,
  type TaskAttempt,
  type TaskInstance,
  type TaskState,
  type WorkflowRun,
} from '../../core/workflows.js';
import { alertFixture, changesOf, FIXTURE_T0 } from './alert-store.conformance.js';
import { META_MIGRATIONS, type MetaMigration } from './meta-sql.js';

export interface WorkflowStoreHarness {
  /**
   * A new, unopened store over the harness's storage. May be called again
   * for the same storage after the previous store is closed; with
   * `sharedStorage` also while it is open (another process's store).
   */
  make(options?: { migrations?: readonly MetaMigration[] }): MetaStore;
  /** Whether several stores may have the storage open at once (PostgreSQL). */
  sharedStorage: boolean;
  /** Closes every store the harness made and removes the storage. */
  cleanup(): Promise<void>;
}

/** A running scheduled run of workflow `nightly` for the slot FIXTURE_T0; override anything. */
export function runFixture(overrides: Partial<WorkflowRun> = {}): WorkflowRun {
  return {
    id: randomUUID(),
    workflow: 'nightly',
    slot: FIXTURE_T0,
    trigger: 'schedule',
    state: 'running',
    params: { date: '2026-11-22' },
    createdAt: FIXTURE_T0,
    finishedAt: null,
    deadlineAt: null,
    deadlineMissed: false,
    error: null,
    owner: null,
    leaseExpiresAt: null,
    ...overrides,
  };
}

/** A pending task instance of run `runId`. */
export function taskFixture(
  runId: string,
  taskId: string,
  overrides: Partial<TaskInstance> = {},
): TaskInstance {
  return {
    runId,
    taskId,
    state: 'pending',
    attempts: 0,
    startedAt: null,
    finishedAt: null,
    nextAttemptAt: null,
    output: null,
    error: null,
    callbackToken: null,
    ...overrides,
  };
}

/** A running first attempt of a task. */
export function attemptFixture(
  runId: string,
  taskId: string,
  overrides: Partial<TaskAttempt> = {},
): TaskAttempt {
  return {
    runId,
    taskId,
    attempt: 1,
    startedAt: FIXTURE_T0,
    finishedAt: null,
    outcome: null,
    error: null,
    ...overrides,
  };
}

/** The documented `listRuns` semantics, over plain objects. */
function oracle(runs: readonly WorkflowRun[], f: RunFilter): WorkflowRun[] {
  return runs
    .filter((r) => f.workflow === undefined || r.workflow === f.workflow)
    .filter((r) => !f.state || f.state.includes(r.state))
    .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    .slice(0, f.limit);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

export function describeWorkflowStoreConformance(
  name: string,
  createHarness: () => Promise<WorkflowStoreHarness>,
): void {
  describe(`WorkflowStore conformance: ${name}`, () => {
    let harness: WorkflowStoreHarness;
    let store: MetaStore;

    beforeEach(async () => {
      harness = await createHarness();
      store = harness.make();
      await store.open();
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    it('round-trips every field of runs, task instances and attempts', async () => {
      const full = runFixture({
        workflow: "daily-'report'; DROP TABLE workflow_runs; --",
        slot: Number.MAX_SAFE_INTEGER,
        trigger: 'catch-up',
        state: 'failed',
        params: {
          date: '2026-11-22',
          nested: { list: [1, 0.1 + 0.2, -1e-300, null, true], text: 'Ünïcode ✓ "q" \\ 🌱\n' },
          empty: {},
        },
        createdAt: FIXTURE_T0 + 1,
        finishedAt: FIXTURE_T0 + 2,
        deadlineAt: FIXTURE_T0 + 3,
        deadlineMissed: true,
        error: 'task "load" failed: HTTP 503',
        owner: 'canopy-a:1234',
        leaseExpiresAt: FIXTURE_T0 + 4,
      });
      const sparse = runFixture({ slot: null, trigger: 'manual', params: {}, createdAt: 0 });
      const outputs: unknown[] = [null, 'branch-b', 42.5, 0, false, [1, 'two'], { rows: 3 }, ''];
      const tasks = outputs.map((output, i) =>
        taskFixture(full.id, `t${outputs.length - i}`, {
          state: 'succeeded',
          attempts: i + 1,
          startedAt: FIXTURE_T0 + i,
          finishedAt: FIXTURE_T0 + i + 1,
          output,
        }),
      );
      const waiting = taskFixture(full.id, 'approve', {
        state: 'waiting',
        attempts: 1,
        startedAt: FIXTURE_T0 + 10,
        callbackToken: randomUUID(),
      });
      const retrying = taskFixture(full.id, 'flaky', {
        state: 'retrying',
        attempts: 2,
        startedAt: FIXTURE_T0 + 11,
        nextAttemptAt: FIXTURE_T0 + 60_000,
        error: 'timed out after 30 s — 🔧',
      });
      const attempts = [
        attemptFixture(full.id, 'flaky', {
          attempt: 1,
          startedAt: FIXTURE_T0 + 11,
          finishedAt: FIXTURE_T0 + 12,
          outcome: 'timed-out',
          error: 'timed out after 30 s — 🔧',
        }),
        attemptFixture(full.id, 'flaky', { attempt: 2, startedAt: FIXTURE_T0 + 13 }),
        attemptFixture(full.id, 'approve', {
          startedAt: FIXTURE_T0 + 10,
          finishedAt: FIXTURE_T0 + 10,
          outcome: 'interrupted',
        }),
      ];
      const allTasks = [...tasks, waiting, retrying];
      expect(await store.createRun(full, allTasks)).toBe(true);
      expect(await store.createRun(sparse, [])).toBe(true);
      await store.saveProgress(full, [], attempts);

      const detail = await store.getRun(full.id);
      expect(detail).toEqual({
        run: full,
        tasks: allTasks,
        attempts: [attempts[2], attempts[0], attempts[1]],
      });
      // The JSON values come back as the same types, not as their text.
      expect(detail?.tasks.map((t) => t.output)).toStrictEqual([...outputs, null, null]);
      expect(await store.getRun(sparse.id)).toEqual({ run: sparse, tasks: [], attempts: [] });
      expect(await store.getRun(randomUUID())).toBeUndefined();
    });

    it('refuses a second run for a (workflow, slot), writing nothing; null slots never conflict', async () => {
      const first = runFixture();
      expect(await store.createRun(first, [taskFixture(first.id, 'a')])).toBe(true);

      const again = runFixture({ trigger: 'catch-up', createdAt: FIXTURE_T0 + 5 });
      expect(await store.createRun(again, [taskFixture(again.id, 'b')])).toBe(false);
      expect(await store.getRun(again.id)).toBeUndefined();
      expect(await store.getRun(first.id)).toEqual({
        run: first,
        tasks: [taskFixture(first.id, 'a')],
        attempts: [],
      });

      // Same slot, other workflow; other slot, same workflow: both fine.
      expect(await store.createRun(runFixture({ workflow: 'hourly' }), [])).toBe(true);
      expect(await store.createRun(runFixture({ slot: FIXTURE_T0 + 1 }), [])).toBe(true);
      // The same id again is refused too.
      expect(await store.createRun({ ...first, slot: FIXTURE_T0 + 2 }, [])).toBe(false);

      const manual = [1, 2, 3].map(() => runFixture({ slot: null, trigger: 'manual' }));
      for (const run of manual) expect(await store.createRun(run, [])).toBe(true);
      const listed = await store.listRuns({ workflow: 'nightly', limit: 100 });
      expect(listed.filter((r) => r.slot === null)).toHaveLength(3);
      expect(listed.filter((r) => r.slot === FIXTURE_T0).map((r) => r.id)).toEqual([first.id]);
    });

    it('lets exactly one of many concurrent createRun calls for a slot win', async () => {
      const stores = [store];
      if (harness.sharedStorage) {
        // Another process: its own store and connection pool on the same database.
        const other = harness.make();
        await other.open();
        stores.push(other);
      }
      for (const slot of [1, 2, 3, 4, 5]) {
        const contenders = Array.from({ length: 6 }, (_, i) => {
          const run = runFixture({ slot, createdAt: FIXTURE_T0 + i });
          const by = stores[i % stores.length] ?? store;
          return { run, tasks: [taskFixture(run.id, 'a'), taskFixture(run.id, 'b')], by };
        });
        const results = await Promise.all(
          contenders.map(({ run, tasks, by }) => by.createRun(run, tasks)),
        );
        expect(results.filter((r) => r === true)).toHaveLength(1);
        const winner = contenders[results.indexOf(true)];
        const runs = (await store.listRuns({ limit: 1000 })).filter((r) => r.slot === slot);
        expect(runs.map((r) => r.id)).toEqual([winner?.run.id]);
        expect((await store.getRun(winner?.run.id ?? ''))?.tasks).toEqual(winner?.tasks);
      }
    });

    it('claims a run that is unowned, owned by the claimant, or whose lease lapsed', async () => {
      const run = runFixture();
      await store.createRun(run, []);
      const owner = async () => {
        const r = (await store.getRun(run.id))?.run;
        return { owner: r?.owner, leaseExpiresAt: r?.leaseExpiresAt };
      };

      expect(await store.claimRun(run.id, 'a', FIXTURE_T0 + 100, FIXTURE_T0)).toBe(true);
      expect(await owner()).toEqual({ owner: 'a', leaseExpiresAt: FIXTURE_T0 + 100 });
      // Its own run: extended (or shortened) as asked.
      expect(await store.claimRun(run.id, 'a', FIXTURE_T0 + 200, FIXTURE_T0 + 50)).toBe(true);
      expect(await owner()).toEqual({ owner: 'a', leaseExpiresAt: FIXTURE_T0 + 200 });
      // Someone else's, lease still holding (also at its last millisecond): refused, unchanged.
      expect(await store.claimRun(run.id, 'b', FIXTURE_T0 + 900, FIXTURE_T0 + 150)).toBe(false);
      expect(await store.claimRun(run.id, 'b', FIXTURE_T0 + 900, FIXTURE_T0 + 200)).toBe(false);
      expect(await owner()).toEqual({ owner: 'a', leaseExpiresAt: FIXTURE_T0 + 200 });
      // Expired before `now`: taken over.
      expect(await store.claimRun(run.id, 'b', FIXTURE_T0 + 900, FIXTURE_T0 + 201)).toBe(true);
      expect(await owner()).toEqual({ owner: 'b', leaseExpiresAt: FIXTURE_T0 + 900 });
      expect(await store.claimRun(run.id, 'a', FIXTURE_T0 + 999, FIXTURE_T0 + 300)).toBe(false);

      // An owner without a lease holds nothing.
      const unleased = runFixture({ slot: null, owner: 'c', leaseExpiresAt: null });
      await store.createRun(unleased, []);
      expect(await store.claimRun(unleased.id, 'a', FIXTURE_T0 + 5, FIXTURE_T0)).toBe(true);
      expect(await store.claimRun(randomUUID(), 'a', FIXTURE_T0 + 5, FIXTURE_T0)).toBe(false);
    });

    it('holds a named lease for one owner until it is given up or expires', async () => {
      const t = FIXTURE_T0;
      expect(await store.acquireLease('write-back:d1', 'a', t + 100, t)).toBe(true);
      // Another owner, while it holds (also at its last millisecond): refused.
      expect(await store.acquireLease('write-back:d1', 'b', t + 900, t + 50)).toBe(false);
      expect(await store.acquireLease('write-back:d1', 'b', t + 900, t + 100)).toBe(false);
      // Another name is free; the holder extends its own.
      expect(await store.acquireLease('write-back:d2', 'b', t + 900, t + 50)).toBe(true);
      expect(await store.acquireLease('write-back:d1', 'a', t + 300, t + 60)).toBe(true);
      expect(await store.acquireLease('write-back:d1', 'b', t + 900, t + 200)).toBe(false);
      // Given up by someone else: nothing happens; by the holder: free at once.
      await store.releaseLease('write-back:d1', 'b');
      expect(await store.acquireLease('write-back:d1', 'b', t + 900, t + 200)).toBe(false);
      await store.releaseLease('write-back:d1', 'a');
      expect(await store.acquireLease('write-back:d1', 'b', t + 900, t + 200)).toBe(true);
      // Expired before `now`: taken over, and the old holder's release is ignored.
      expect(await store.acquireLease('write-back:d1', 'c', t + 2000, t + 901)).toBe(true);
      await store.releaseLease('write-back:d1', 'b');
      expect(await store.acquireLease('write-back:d1', 'a', t + 3000, t + 1000)).toBe(false);
    });

    it('gives a lease to exactly one of many concurrent contenders', async () => {
      for (let round = 0; round < 5; round++) {
        const name = `contended:${round}`;
        const owners = Array.from({ length: 8 }, (_, i) => `owner-${i}`);
        const results = await Promise.all(
          owners.map((o) => store.acquireLease(name, o, FIXTURE_T0 + 1000, FIXTURE_T0)),
        );
        expect(results.filter((r) => r)).toHaveLength(1);
        const holder = owners[results.indexOf(true)]!;
        const others = owners.filter((o) => o !== holder);
        for (const o of others) {
          expect(await store.acquireLease(name, o, FIXTURE_T0 + 1000, FIXTURE_T0)).toBe(false);
        }
      }
    });

    it("renews only the owner's unfinished runs", async () => {
      const lease = FIXTURE_T0 + 10;
      const mine = runFixture({ slot: 1, owner: 'a', leaseExpiresAt: lease });
      const mineWaiting = runFixture({
        slot: 2,
        state: 'waiting',
        owner: 'a',
        leaseExpiresAt: lease,
      });
      const mineDone = runFixture({
        slot: 3,
        state: 'succeeded',
        finishedAt: FIXTURE_T0 + 5,
        owner: 'a',
        leaseExpiresAt: lease,
      });
      const theirs = runFixture({ slot: 4, owner: 'b', leaseExpiresAt: lease });
      const unowned = runFixture({ slot: 5 });
      for (const run of [mine, mineWaiting, mineDone, theirs, unowned]) {
        await store.createRun(run, []);
      }
      await store.renewLeases('a', FIXTURE_T0 + 500);
      const leaseOf = async (id: string) => (await store.getRun(id))?.run.leaseExpiresAt;
      expect(await leaseOf(mine.id)).toBe(FIXTURE_T0 + 500);
      expect(await leaseOf(mineWaiting.id)).toBe(FIXTURE_T0 + 500);
      expect(await leaseOf(mineDone.id)).toBe(lease);
      expect(await leaseOf(theirs.id)).toBe(lease);
      expect(await leaseOf(unowned.id)).toBeNull();
    });

    it('saveProgress upserts the run, tasks and attempts by key, atomically', async () => {
      const run = runFixture({ owner: 'a', leaseExpiresAt: FIXTURE_T0 + 100, error: 'x' });
      const [z, a] = [taskFixture(run.id, 'z'), taskFixture(run.id, 'a')];
      await store.createRun(run, [z, a]);

      const first = attemptFixture(run.id, 'a', { startedAt: FIXTURE_T0 + 1 });
      const runningA = { ...a, state: 'running' as const, attempts: 1, startedAt: FIXTURE_T0 + 1 };
      const progressed = { ...run, state: 'waiting' as const, error: null, owner: null };
      await store.saveProgress(progressed, [runningA], [first]);
      expect(await store.getRun(run.id)).toEqual({
        run: progressed,
        tasks: [z, runningA],
        attempts: [first],
      });

      // Update the attempt, every task field (back to null too), add a task not created with the run.
      const finished = {
        ...first,
        finishedAt: FIXTURE_T0 + 2,
        outcome: 'failed' as const,
        error: 'e',
      };
      const second = attemptFixture(run.id, 'a', { attempt: 2, startedAt: FIXTURE_T0 + 3 });
      const doneA = {
        ...runningA,
        state: 'succeeded' as const,
        attempts: 2,
        startedAt: null,
        finishedAt: FIXTURE_T0 + 4,
        output: { ok: true },
      };
      const late = taskFixture(run.id, 'b', { state: 'skipped' });
      const done = { ...progressed, state: 'succeeded' as const, finishedAt: FIXTURE_T0 + 4 };
      await store.saveProgress(done, [doneA, late], [finished, second]);
      expect(await store.getRun(run.id)).toEqual({
        run: done,
        tasks: [z, doneA, late],
        attempts: [finished, second],
      });

      // A row the database refuses (a state outside the schema) fails the whole call.
      const bad = { ...z, state: 'exploded' as TaskState };
      const err = await rejection(
        store.saveProgress({ ...done, error: 'changed' }, [{ ...doneA, output: 1 }, bad], []),
      );
      expect(err).toBeInstanceOf(Error);
      expect(await store.getRun(run.id)).toEqual({
        run: done,
        tasks: [z, doneA, late],
        attempts: [finished, second],
      });
    });

    it('orders tasks by declaration and attempts by task, then attempt number', async () => {
      const run = runFixture();
      const ids = ['zeta', 'alpha', 'mid', 'beta'];
      const tasks = ids.map((id) => taskFixture(run.id, id));
      await store.createRun(run, tasks);
      const attempts = [
        attemptFixture(run.id, 'beta', { attempt: 1 }),
        attemptFixture(run.id, 'alpha', { attempt: 10 }),
        attemptFixture(run.id, 'zeta', { attempt: 1 }),
        attemptFixture(run.id, 'alpha', { attempt: 2 }),
        attemptFixture(run.id, 'alpha', { attempt: 1 }),
      ];
      await store.saveProgress(run, [], attempts);
      const detail = await store.getRun(run.id);
      expect(detail?.tasks.map((t) => t.taskId)).toEqual(ids);
      expect(detail?.attempts.map((a) => `${a.taskId}#${a.attempt}`)).toEqual([
        'zeta#1',
        'alpha#1',
        'alpha#2',
        'alpha#10',
        'beta#1',
      ]);
    });

    it('lists runs as the documented filter does, newest first, and checks the limit', async () => {
      const runs: WorkflowRun[] = [];
      const workflows = ['nightly', 'hourly', 'weekly'];
      for (let i = 0; i < 40; i++) {
        runs.push(
          runFixture({
            workflow: workflows[i % 3] ?? 'nightly',
            slot: i % 5 === 0 ? null : i,
            state: RUN_STATES[i % RUN_STATES.length] ?? 'running',
            // Some share a millisecond, to pin the tie order.
            createdAt: FIXTURE_T0 + Math.floor((i * 7) % 23) * 1000,
          }),
        );
      }
      for (const run of runs) await store.createRun(run, []);
      const filters: RunFilter[] = [
        { limit: 1000 },
        { limit: 1 },
        { limit: 7 },
        { workflow: 'hourly', limit: 1000 },
        { workflow: 'unknown', limit: 1000 },
        { state: ['running', 'waiting'], limit: 1000 },
        { state: FINAL_RUN_STATES, limit: 5 },
        { state: [], limit: 1000 },
        { workflow: 'weekly', state: ['failed'], limit: 1000 },
      ];
      for (const filter of filters) {
        expect(await store.listRuns(filter), JSON.stringify(filter)).toEqual(oracle(runs, filter));
      }
      for (const limit of [0, 1001, 1.5, -1, Number.NaN]) {
        const err = await rejection(store.listRuns({ limit }));
        expect(isCanopyError(err, 'CANOPY_API_BAD_REQUEST'), String(err)).toBe(true);
      }
    });

    it('lists unfinished runs oldest first, and the last slot of a workflow', async () => {
      const runs = [
        runFixture({ slot: 30, state: 'succeeded', createdAt: FIXTURE_T0 }),
        runFixture({ slot: 10, state: 'waiting', createdAt: FIXTURE_T0 + 3 }),
        runFixture({ slot: 20, state: 'running', createdAt: FIXTURE_T0 + 1 }),
        runFixture({ slot: null, state: 'cancelled', createdAt: FIXTURE_T0 - 1 }),
        runFixture({ slot: null, state: 'running', createdAt: FIXTURE_T0 + 2 }),
        runFixture({ workflow: 'hourly', slot: 99, state: 'failed', createdAt: FIXTURE_T0 }),
        runFixture({ workflow: 'manual-only', slot: null, createdAt: FIXTURE_T0 }),
      ];
      expect(await store.unfinishedRuns()).toEqual([]);
      expect(await store.lastSlot('nightly')).toBeNull();
      for (const run of runs) await store.createRun(run, []);
      expect(await store.unfinishedRuns()).toEqual(
        runs
          .filter((r) => !FINAL_RUN_STATES.includes(r.state))
          .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)),
      );
      expect(await store.lastSlot('nightly')).toBe(30);
      expect(await store.lastSlot('hourly')).toBe(99);
      expect(await store.lastSlot('manual-only')).toBeNull();
      expect(await store.lastSlot('unknown')).toBeNull();
      expect(await store.runForSlot('nightly', 30)).toEqual(
        runs.find((r) => r.workflow === 'nightly' && r.slot === 30),
      );
      expect(await store.runForSlot('hourly', 30)).toBeUndefined();
    });

    it('finds a task by its callback token only while it waits', async () => {
      const run = runFixture();
      const token = randomUUID();
      const waiting = taskFixture(run.id, 'approve', { state: 'waiting', callbackToken: token });
      const doneToken = randomUUID();
      const done = taskFixture(run.id, 'done', { state: 'succeeded', callbackToken: doneToken });
      await store.createRun(run, [waiting, done, taskFixture(run.id, 'other')]);
      expect(await store.findByToken(token)).toEqual(waiting);
      expect(await store.findByToken(doneToken)).toBeUndefined();
      expect(await store.findByToken(randomUUID())).toBeUndefined();

      const completed = { ...waiting, state: 'succeeded' as const, output: { approved: true } };
      await store.saveProgress(run, [completed], []);
      expect(await store.findByToken(token)).toBeUndefined();
    });

    it('keeps pause flags per workflow', async () => {
      expect(await store.pausedWorkflows()).toEqual(new Set());
      await store.setPaused('nightly', true);
      await store.setPaused('nightly', true);
      await store.setPaused('hourly', true);
      await store.setPaused('weekly', false);
      expect(await store.pausedWorkflows()).toEqual(new Set(['nightly', 'hourly']));
      await store.setPaused('nightly', false);
      await store.setPaused('nightly', false);
      expect(await store.pausedWorkflows()).toEqual(new Set(['hourly']));
    });

    it('purges finished runs created before the cutoff with their tasks and attempts, never unfinished ones', async () => {
      const cutoff = FIXTURE_T0 + 1000;
      const old = (state: WorkflowRun['state'], createdAt = FIXTURE_T0) =>
        runFixture({ slot: null, state, createdAt });
      const doomed = [old('succeeded'), old('failed'), old('cancelled', cutoff - 1)];
      const kept = [
        old('running'),
        old('waiting', 0),
        old('succeeded', cutoff),
        old('failed', cutoff + 1),
      ];
      for (const run of [...doomed, ...kept]) {
        await store.createRun(run, [taskFixture(run.id, 'a')]);
        await store.saveProgress(run, [], [attemptFixture(run.id, 'a')]);
      }
      const keptBefore = await Promise.all(kept.map((r) => store.getRun(r.id)));

      expect(await store.purgeRuns(cutoff)).toBe(doomed.length);
      for (const run of doomed) expect(await store.getRun(run.id)).toBeUndefined();
      expect(await Promise.all(kept.map((r) => store.getRun(r.id)))).toEqual(keptBefore);
      expect(await store.purgeRuns(cutoff)).toBe(0);
      // A purged slot may be run again.
      expect(await store.createRun({ ...doomed[0], id: randomUUID() } as WorkflowRun, [])).toBe(
        true,
      );
    });

    it('keeps everything across a close and reopen', async () => {
      const run = runFixture({ state: 'waiting', owner: 'a', leaseExpiresAt: FIXTURE_T0 + 9 });
      const task = taskFixture(run.id, 'approve', { state: 'waiting', callbackToken: 'tok-1' });
      const attempt = attemptFixture(run.id, 'approve');
      await store.createRun(run, [task]);
      await store.saveProgress(run, [], [attempt]);
      await store.setPaused('nightly', true);
      await store.close();

      const reopened = harness.make();
      await reopened.open();
      expect(await reopened.getRun(run.id)).toEqual({ run, tasks: [task], attempts: [attempt] });
      expect(await reopened.unfinishedRuns()).toEqual([run]);
      expect(await reopened.findByToken('tok-1')).toEqual(task);
      expect(await reopened.pausedWorkflows()).toEqual(new Set(['nightly']));
      expect(await reopened.createRun(runFixture(), [])).toBe(false);
    });

    it('migrates a v1 store (alerts only) to v2, keeping its alerts', async () => {
      await harness.cleanup();
      harness = await createHarness();
      const v1 = harness.make({ migrations: META_MIGRATIONS.slice(0, 1) });
      await v1.open();
      const alert = alertFixture();
      await v1.apply(changesOf({ alerts: [alert] }));
      // The v1 schema has no workflow tables.
      expect(await rejection(v1.getRun(randomUUID()))).toBeInstanceOf(Error);
      await v1.close();

      const v2 = harness.make();
      await v2.open();
      expect(await v2.getAlert(alert.id)).toEqual(alert);
      const run = runFixture();
      expect(await v2.createRun(run, [taskFixture(run.id, 'a')])).toBe(true);
      expect((await v2.getRun(run.id))?.tasks).toEqual([taskFixture(run.id, 'a')]);
    });
  });
}
