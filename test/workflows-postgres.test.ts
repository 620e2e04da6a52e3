/**
 * Two Canopy-like processes share one PostgreSQL metadata store and the same
 * minutely workflow: each schedule slot gets exactly one run, and its task
 * runs exactly once, whichever process creates and drives it.
 *
 * Time is simulated: both processes read t0 until a common real instant,
 * then t0 + 60 × the real time elapsed (capped at tEnd), so ten minutes of
 * schedule pass in about ten seconds.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { PostgresMetaStore } from '../src/storage/meta/index.js';
import { serviceForTests } from './helpers/services.js';
import { spawnWorkflowChild, type WorkflowChild } from './helpers/workflow-child.js';

const PG_TEST_URL = 'postgres://postgres@127.0.0.1:5432/test';
const postgres = await serviceForTests('postgresql', 5432);

const MIN = 60_000;
const SPEED = 60;
const T0 = Date.parse('2026-06-10T09:00:00Z');
/** Slots T0, T0 + 1 min, …, T0 + 9 min: ten of them. */
const T_END = T0 + 9 * MIN + 30_000;
const SLOTS = Array.from({ length: 10 }, (_, i) => T0 + i * MIN);

async function withClient<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: PG_TEST_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

async function pollUntil(check: () => Promise<boolean>, what: string, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe.runIf(postgres)('two processes on one PostgreSQL metadata store', () => {
  it('create one run per schedule slot and execute each slot’s task once', async () => {
    const schema = `canopy_wf_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
    await withClient(async (client) => {
      await client.query(`CREATE SCHEMA "${schema}"`);
      await client.query(
        `CREATE TABLE "${schema}".executions (slot bigint, run_id text, instance text)`,
      );
    });
    const children: WorkflowChild[] = [];
    const observer = new PostgresMetaStore({ connectionString: PG_TEST_URL, schema });
    try {
      for (const instance of ['instance-a', 'instance-b']) {
        children.push(
          spawnWorkflowChild([
            'schedule',
            schema,
            instance,
            String(T0),
            String(T_END),
            String(SPEED),
          ]),
        );
      }
      // Both have migrated the schema (one after the other, under the advisory lock).
      await Promise.all(children.map((c) => c.waitFor('ready')));
      // Both runners start while the clock still reads t0, so both race for the first slot.
      const realStart = Date.now() + 1_500;
      for (const c of children) c.send(`go ${realStart}`);
      await Promise.all(children.map((c) => c.waitFor('running')));
      await observer.open();

      // Past tEnd no slot comes due: the simulated clock is a function of real time, so wait
      // for that instant, then for the last slot's run to exist and every run to finish.
      const simulatedEnd = realStart + (T_END - T0) / SPEED;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, simulatedEnd - Date.now())));
      await pollUntil(
        async () =>
          (await observer.lastSlot('minutely')) === SLOTS.at(-1) &&
          (await observer.unfinishedRuns()).length === 0,
        'the last slot’s run and every run to finish',
      );
      for (const c of children) c.send('stop');
      for (const c of children) {
        await c.waitFor('stopped');
        expect(await c.exited).toBe(0);
      }

      const runs = await observer.listRuns({ workflow: 'minutely', limit: 1000 });
      expect(runs.map((r) => r.slot).sort((a, b) => a! - b!)).toEqual(SLOTS);
      expect(runs.every((r) => r.state === 'succeeded')).toBe(true);
      const executions = await withClient(
        async (client) =>
          (
            await client.query<{ slot: string; run_id: string; instance: string }>(
              `SELECT slot, run_id, instance FROM "${schema}".executions ORDER BY slot`,
            )
          ).rows,
      );
      expect(executions.map((e) => Number(e.slot))).toEqual(SLOTS);
      const runBySlot = new Map(runs.map((r) => [r.slot, r]));
      for (const e of executions) {
        const run = runBySlot.get(Number(e.slot))!;
        expect(e.run_id).toBe(run.id);
        // The instance that ran the task is the one that drove the run to its end.
        const detail = (await observer.getRun(run.id))!;
        expect(detail.tasks[0]).toMatchObject({ state: 'succeeded', attempts: 1 });
        expect(detail.tasks[0]!.output).toEqual({ instance: e.instance });
        expect(detail.attempts).toHaveLength(1);
      }
      const split = { a: 0, b: 0 };
      for (const e of executions) split[e.instance === 'instance-a' ? 'a' : 'b'] += 1;
      console.log(
        `minutely slots executed by instance-a: ${split.a}, by instance-b: ${split.b}; triggers: ${runs
          .map((r) => r.trigger)
          .join(',')}`,
      );
      expect(split.a + split.b).toBe(SLOTS.length);
    } finally {
      for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
      await Promise.all(children.map((c) => c.exited));
      await observer.close();
      await withClient((client) => client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
    }
  }, 60_000);
});
