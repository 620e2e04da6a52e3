/**
 * Kill -9 while the imputation workflow's prediction step runs: `canopy up`
 * as a child process is killed the moment the prediction job is handed to
 * its worker thread, then started again on the same data folder. The run
 * must finish (the restarted process starts the prediction again for the
 * same callback token), and no value may be written twice.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalObjectStore } from '../src/storage/index.js';
import { gappedDay } from './helpers/imputation.js';
import { spawnCanopy, type CanopyProcess } from './helpers/process.js';

const DAY = 86_400_000;

const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-impute-kill-'));
const running: CanopyProcess[] = [];
afterAll(async () => {
  for (const p of running) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
});

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined> | T | undefined) {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  if (!res.ok)
    throw new Error(`${init?.method ?? 'GET'} ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function sql(base: string, query: string): Promise<unknown[][]> {
  return (
    await json<{ rows: unknown[][] }>(`${base}/api/query`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sql: query }),
    })
  ).rows;
}

describe('kill -9 during the imputation prediction step', () => {
  it(
    'the restarted process completes the run, and every value is written once',
    { timeout: 240_000 },
    async () => {
      const configFile = path.join(dataDir, 'canopy.yaml');
      writeFileSync(
        configFile,
        JSON.stringify({
          dataDir,
          // The restarted process is the same instance: it takes its runs back at once.
          workflows: { instanceId: 'imputation-kill-test', daily: { catchUpDays: 0 } },
          // Runs are started by the test only; the linear model keeps training out of the way.
          imputation: { cron: '0 0 1 1 *', model: 'linear', trainingDays: 7 },
        }),
      );
      const env = { CANOPY_LOG_LEVEL: 'info' };
      const now = Date.now();
      const date = new Date(now - DAY).toISOString().slice(0, 10);
      const day = gappedDay(date, now - 60_000);

      const first = await spawnCanopy(env, ['--config', configFile]);
      running.push(first);
      const rows = day.readings(true);
      for (let i = 0; i < rows.length; i += 2_000) {
        await json(`${first.httpUrl}/api/data`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(rows.slice(i, i + 2_000)),
        });
      }
      const { run } = await json<{ run: { id: string } }>(
        `${first.httpUrl}/api/workflows/daily-imputation/run`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ params: { date } }),
        },
      );
      const jobFile = path.join(dataDir, 'imputation', 'jobs', `${run.id}.json`);
      // The task waits on its callback token and the worker has the job.
      await waitUntil('the prediction step to wait', async () => {
        const d = await json<{ tasks: { task_id: string; state: string }[] }>(
          `${first.httpUrl}/api/workflows/runs/${run.id}`,
        );
        const waiting = d.tasks.some((t) => t.task_id === 'predict' && t.state === 'waiting');
        return waiting && existsSync(jobFile) ? true : undefined;
      });
      first.child.kill('SIGKILL');
      expect(await first.exited).toBe('SIGKILL');
      // Killed before the worker staged its predictions: the kill hit the prediction step.
      const lake = new LocalObjectStore({ root: path.join(dataDir, 'lake') });
      expect(await lake.head(`imputations/_runs/${run.id}/predictions.json`)).toBeNull();

      const second = await spawnCanopy(env, ['--config', configFile]);
      running.push(second);
      type Detail = {
        run: { state: string; error: string | null };
        tasks: { task_id: string; state: string; attempts: number; output: unknown }[];
      };
      const detail = await waitUntil('the run to finish', async () => {
        const d = await json<Detail>(`${second.httpUrl}/api/workflows/runs/${run.id}`);
        return ['succeeded', 'failed', 'cancelled'].includes(d.run.state) ? d : undefined;
      });
      expect(detail.run).toMatchObject({ state: 'succeeded', error: null });
      const task = (id: string) => detail.tasks.find((t) => t.task_id === id)!;
      expect(task('write-back').output).toMatchObject({
        filled: day.hidden.short,
        leftMissing: day.hidden.long,
        alreadyImputed: 0,
      });
      // Resumed on the same token by the restarted process, not timed out and retried.
      expect(task('predict')).toMatchObject({ state: 'succeeded', attempts: 1 });
      expect(existsSync(jobFile)).toBe(false);

      const [[values, distinct]] = (await sql(
        second.httpUrl,
        `SELECT count(*), count(DISTINCT (sensor_id, event_time)) FROM imputations`,
      )) as [[number, number]];
      expect([values, distinct]).toEqual([day.hidden.short, day.hidden.short]);
      const [[silverImputed]] = (await sql(
        second.httpUrl,
        `SELECT count(*) FILTER (WHERE imputed) FROM silver_readings WHERE date = DATE '${date}'`,
      )) as [[number]];
      expect(silverImputed).toBe(day.hidden.short);
    },
  );
});
