/**
 * The imputation workflow end to end, through a whole Canopy: readings with
 * nulls posted over HTTP, the `daily-imputation` run (prediction in a worker
 * thread completing a callback), then the filled values seen through
 * GET /api/data, silver and gold's `daily_summary`; a second run finds
 * nothing new; a day with nothing missing ends at the choice and touches
 * nothing. Time comes from a ManualClock.
 */
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalObjectStore } from '../src/storage/index.js';
import { ManualClock } from '../src/core/clock.js';
import { lakeSql, startTestApp, type TestApp } from './helpers/app.js';
import { runCanopy } from './helpers/cli.js';
import { gappedDay, STEP } from './helpers/imputation.js';

const DATE = '2026-11-28';
/** Before the 02:00 slot (runs are started by the test); the hot window still holds DATE's afternoon. */
const NOW = Date.UTC(2026, 10, 29, 1, 0, 0);
const DAY = 86_400_000;
const day = gappedDay(DATE, NOW);
const dayStart = Date.parse(`${DATE}T00:00:00Z`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** `model`: the forest where accuracy is checked; the linear baseline, quick to train, elsewhere. */
async function start(
  model: 'forest' | 'linear' = 'linear',
): Promise<{ app: TestApp; clock: ManualClock }> {
  const clock = new ManualClock(NOW);
  const app = await startTestApp(
    { imputation: { model, maxGapMs: 6 * 3_600_000, trainingDays: 7, maxTrainingRows: 1_500 } },
    undefined,
    { clock },
  );
  cleanups.push(() => app.dispose());
  return { app, clock };
}

async function post(app: TestApp, rows: Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 2_000) {
    const res = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      headers: { 'content-type': 'application/json' },
      payload: rows.slice(i, i + 2_000),
    });
    expect(res.statusCode).toBe(200);
  }
}

interface RunDetail {
  run: { id: string; state: string; error: string | null };
  tasks: { task_id: string; state: string; output: unknown }[];
}

async function startImputation(app: TestApp): Promise<string> {
  const started = await app.api.inject({
    method: 'POST',
    url: '/api/workflows/daily-imputation/run',
    headers: { 'content-type': 'application/json' },
    payload: { params: { date: DATE } },
  });
  expect(started.statusCode).toBe(202);
  return started.json<{ run: { id: string } }>().run.id;
}

async function finished(app: TestApp, runId: string): Promise<RunDetail> {
  await app.workflows!.runner.completed(runId);
  const res = await app.api.inject({ method: 'GET', url: `/api/workflows/runs/${runId}` });
  return res.json<RunDetail>();
}

async function runImputation(app: TestApp): Promise<RunDetail> {
  return finished(app, await startImputation(app));
}

const output = (d: RunDetail, task: string) => d.tasks.find((t) => t.task_id === task)?.output;
const states = (d: RunDetail) => Object.fromEntries(d.tasks.map((t) => [t.task_id, t.state]));

interface WireRow {
  sensor_id: string;
  timestamp: string;
  value: number | null;
  imputed: boolean;
}

async function hotRows(app: TestApp, sensor: string): Promise<WireRow[]> {
  const from = new Date(dayStart + 9 * 3_600_000).toISOString();
  const to = new Date(dayStart + DAY).toISOString();
  const res = await app.api.inject({
    method: 'GET',
    url: `/api/data?sensor_id=${sensor}&from=${from}&to=${to}&limit=1000`,
  });
  expect(res.statusCode).toBe(200);
  return res.json<{ data: WireRow[] }>().data;
}

async function lakeKeys(app: TestApp, prefix: string): Promise<string[]> {
  const lake = new LocalObjectStore({ root: path.join(app.dataDir, 'lake') });
  return (await lake.list(prefix)).map((o) => `${o.key}@${o.etag}`).sort();
}

describe('the daily imputation workflow', () => {
  it(
    'fills short gaps from HTTP-ingested nulls, flags them everywhere, and imputes nothing twice',
    { timeout: 120_000 },
    async () => {
      const { app, clock } = await start('forest');
      await post(app, day.readings(true));

      const first = await runImputation(app);
      expect(first.run).toMatchObject({ state: 'succeeded', error: null });
      expect(output(first, 'records')).toBe('impute');
      const hiddenShort = day
        .readings(false)
        .filter(
          (r) => r.sensor_id === 'gh-temp' && day.shortGap(Date.parse(r.timestamp as string)),
        );
      const hiddenLong = day
        .readings(false)
        .filter(
          (r) => r.sensor_id === 'gh-humidity' && day.longGap(Date.parse(r.timestamp as string)),
        );
      expect(output(first, 'find')).toEqual({
        missing: hiddenShort.length + hiddenLong.length,
        sensors: 2,
      });
      expect(output(first, 'write-back')).toMatchObject({
        filled: hiddenShort.length,
        leftMissing: hiddenLong.length,
        alreadyImputed: 0,
        hotStoreUpdated: hiddenShort.length,
      });

      // The hot store: the short gaps now hold values, flagged imputed; the long gap stays null.
      const temp = await hotRows(app, 'gh-temp');
      const imputed = temp.filter((r) => r.imputed);
      expect(imputed.map((r) => r.timestamp).sort()).toEqual(
        hiddenShort.map((r) => r.timestamp).sort(),
      );
      expect(imputed.every((r) => typeof r.value === 'number')).toBe(true);
      const humidity = await hotRows(app, 'gh-humidity');
      const nulls = humidity.filter((r) => r.value === null);
      expect(nulls).toHaveLength(hiddenLong.length);
      expect(nulls.every((r) => !r.imputed)).toBe(true);

      // Accuracy against the hidden truth, and against linear interpolation across the gap
      // computed here from the neighbours (the baseline the model must not lose to).
      const truthAt = new Map(hiddenShort.map((r) => [r.timestamp, r.value as number]));
      const known = new Map(
        temp
          .filter((r) => !r.imputed && r.value !== null)
          .map((r) => [Date.parse(r.timestamp), r.value!]),
      );
      let modelError = 0;
      let linearError = 0;
      for (const r of imputed) {
        const t = Date.parse(r.timestamp);
        let before = t - STEP;
        while (!known.has(before)) before -= STEP;
        let after = t + STEP;
        while (!known.has(after)) after += STEP;
        const linear =
          known.get(before)! +
          ((known.get(after)! - known.get(before)!) * (t - before)) / (after - before);
        modelError += Math.abs(r.value! - truthAt.get(r.timestamp)!);
        linearError += Math.abs(linear - truthAt.get(r.timestamp)!);
      }
      expect(modelError / imputed.length).toBeLessThan(0.5);
      expect(modelError).toBeLessThanOrEqual(linearError);

      // Silver and gold: the refresh step rebuilt the date with the imputation file.
      const [[silverImputed, withModel, stillMissing]] = (await lakeSql(
        app,
        `SELECT count(*) FILTER (WHERE imputed), count(imputation_model),
              count(*) FILTER (WHERE value IS NULL)
         FROM silver_readings WHERE date = DATE '${DATE}'`,
      )) as [[number, number, number]];
      expect([silverImputed, withModel, stillMissing]).toEqual([
        hiddenShort.length,
        hiddenShort.length,
        hiddenLong.length,
      ]);
      const gold = (await lakeSql(
        app,
        `SELECT sensor_id, imputed_count, missing_count FROM gold_daily_summary
        WHERE date = DATE '${DATE}' ORDER BY sensor_id`,
      )) as [string, number, number][];
      expect(gold).toEqual([
        ['gh-co2', 0, 0],
        ['gh-humidity', 0, hiddenLong.length],
        ['gh-temp', hiddenShort.length, 0],
      ]);
      const [[fromFile]] = (await lakeSql(
        app,
        `SELECT count(*) FROM imputations WHERE date = DATE '${DATE}'`,
      )) as [[number]];
      expect(fromFile).toBe(hiddenShort.length);

      // A second run: only the long gap is missing, and it stays missing; nothing is written.
      const imputationsBefore = await lakeKeys(app, 'imputations/');
      clock.advance(60_000); // runs list newest first: the second starts a minute later
      const second = await runImputation(app);
      expect(second.run.state).toBe('succeeded');
      expect(output(second, 'find')).toEqual({ missing: hiddenLong.length, sensors: 1 });
      expect(output(second, 'write-back')).toMatchObject({ filled: 0, hotStoreUpdated: 0 });
      expect(output(second, 'train')).toMatchObject({ trained: [], reused: 1 });
      expect(await lakeKeys(app, 'imputations/')).toEqual(imputationsBefore);

      const runs = (await app.api.inject({ method: 'GET', url: '/api/imputation/runs' })).json<{
        data: Record<string, unknown>[];
      }>().data;
      expect(runs).toMatchObject([
        { id: second.run.id, date: DATE, result: 'imputed', missing: day.hidden.long, filled: 0 },
        {
          id: first.run.id,
          state: 'succeeded',
          result: 'imputed',
          missing: day.hidden.short + day.hidden.long,
          filled: day.hidden.short,
          left_missing: day.hidden.long,
          models_trained: 2,
        },
      ]);
    },
  );

  it(
    'ends at the choice with "no records" when nothing is missing, and touches nothing',
    { timeout: 60_000 },
    async () => {
      const { app } = await start();
      await post(app, day.readings(false));
      await app.housekeeping.runOnce();
      const hotBefore = await hotRows(app, 'gh-temp');

      const cli = await runCanopy(
        ['impute', 'run', '--date', DATE, '--url', `http://127.0.0.1:${app.httpPort}`],
        {},
      );
      expect(cli.code).toBe(0);
      const summary = JSON.parse(cli.stdout) as { id: string; result: string; missing: number };
      expect(summary).toMatchObject({ result: 'no records', missing: 0, filled: null });
      const d = await finished(app, summary.id);
      expect(d.run.state).toBe('succeeded');
      expect(output(d, 'records')).toBe('none');
      expect(output(d, 'no-records')).toEqual({ result: 'no records', date: DATE });
      expect(states(d)).toMatchObject({
        train: 'skipped',
        features: 'skipped',
        predict: 'skipped',
        'write-back': 'skipped',
        refresh: 'skipped',
      });
      expect(await lakeKeys(app, 'imputations/')).toEqual([]);
      expect(await lakeKeys(app, 'models/')).toEqual([]);
      expect(await hotRows(app, 'gh-temp')).toEqual(hotBefore);
    },
  );

  it(
    'two runs for the same date at once never write a value twice',
    { timeout: 120_000 },
    async () => {
      const { app } = await start();
      await post(app, day.readings(true));
      const ids = [await startImputation(app), await startImputation(app)];
      const runs = await Promise.all(ids.map((id) => finished(app, id)));
      expect(runs.map((r) => r.run.state)).toEqual(['succeeded', 'succeeded']);
      // Whichever run wrote a value first keeps it; the other finds it written (or, if it
      // looked later, not missing at all).
      const filled = runs.map(
        (r) => (output(r, 'write-back') as { filled: number } | null)?.filled ?? 0,
      );
      expect(filled[0]! + filled[1]!).toBe(day.hidden.short);
      const [[rows, distinct]] = (await lakeSql(
        app,
        `SELECT count(*), count(DISTINCT (sensor_id, event_time)) FROM imputations`,
      )) as [[number, number]];
      expect([rows, distinct]).toEqual([day.hidden.short, day.hidden.short]);
      expect((await hotRows(app, 'gh-temp')).filter((r) => r.imputed)).toHaveLength(
        day.hidden.short,
      );
    },
  );
});
