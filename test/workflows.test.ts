/**
 * The platform's workflows end to end, through the API of a whole Canopy:
 * the daily pipeline over a day of readings (with the summary reaching a real
 * webhook receiver), the no-data branch of its choice, and a failing task
 * whose retries outlast the run's deadline, raising the deadline-missed and
 * job-failed alerts. Time comes from a ManualClock the test moves.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { lakeSql, startTestApp, type TestApp } from './helpers/app.js';
import { runCanopy } from './helpers/cli.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/receivers.js';

const NOW = Date.UTC(2026, 10, 29, 8, 0, 0);
const DATE = '2026-11-27';
const HOUR = 3_600_000;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Harness {
  app: TestApp;
  clock: ManualClock;
  webhook: WebhookReceiver;
}

async function start(extra: Record<string, unknown> = {}): Promise<Harness> {
  const webhook = await startWebhookReceiver();
  cleanups.push(() => webhook.close());
  const clock = new ManualClock(NOW);
  const app = await startTestApp(
    {
      alerting: { tickMs: 3_600_000, notifiers: { team: { kind: 'webhook', url: webhook.url } } },
      workflows: { daily: { summaryChannels: ['team'] } },
      ...extra,
    },
    undefined,
    { clock },
  );
  cleanups.push(() => app.dispose());
  return { app, clock, webhook };
}

/** Six sensors, one reading an hour through DATE; two readings far out of range. */
function dayOfReadings(): Record<string, unknown>[] {
  const readings: Record<string, unknown>[] = [];
  for (let s = 0; s < 6; s++)
    for (let h = 0; h < 24; h++)
      readings.push({
        sensor_id: `wf-${s}`,
        sensor_type: 'temperature',
        location: `greenhouse/${s % 2 === 0 ? 'east' : 'west'}`,
        value: s === 0 && (h === 5 || h === 17) ? 500 : 18 + s + (h % 4) * 0.5,
        timestamp: new Date(Date.parse(`${DATE}T00:00:00Z`) + h * HOUR + s * 1000).toISOString(),
      });
  return readings;
}

async function runDaily(app: TestApp, date: string) {
  const started = await app.api.inject({
    method: 'POST',
    url: '/api/workflows/daily-pipeline/run',
    headers: { 'content-type': 'application/json' },
    payload: { params: { date } },
  });
  expect(started.statusCode).toBe(202);
  const { run } = started.json<{ run: { id: string } }>();
  await app.workflows!.runner.settled(run.id);
  return detail(app, run.id);
}

async function detail(app: TestApp, runId: string) {
  const res = await app.api.inject({ method: 'GET', url: `/api/workflows/runs/${runId}` });
  expect(res.statusCode).toBe(200);
  return res.json<{
    run: { id: string; state: string; deadline_missed: boolean; error: string | null };
    tasks: { task_id: string; state: string; attempts: number; output: unknown }[];
    attempts: { task_id: string; attempt: number; outcome: string }[];
  }>();
}

const taskStates = (d: Awaited<ReturnType<typeof detail>>) =>
  Object.fromEntries(d.tasks.map((t) => [t.task_id, t.state]));

describe('the platform workflows', () => {
  it('lists the housekeeping, hourly and daily workflows with their schedules and DAGs', async () => {
    const { app } = await start();
    const res = await app.api.inject({ method: 'GET', url: '/api/workflows' });
    const workflows = res.json<{
      data: {
        name: string;
        schedule: { cron: string } | null;
        next_slot: string;
        tasks: { id: string; depends_on: string[] }[];
      }[];
    }>().data;
    expect(workflows.map((w) => [w.name, w.schedule?.cron])).toEqual([
      ['housekeeping', '* * * * *'],
      ['hourly-lake', '5 * * * *'],
      ['daily-pipeline', '30 0 * * *'],
      ['daily-imputation', '0 2 * * *'],
    ]);
    const daily = workflows.find((w) => w.name === 'daily-pipeline')!;
    expect(daily.next_slot).toBe('2026-11-30T00:30:00.000Z');
    const dependsOn = Object.fromEntries(daily.tasks.map((t) => [t.id, t.depends_on]));
    expect(dependsOn).toMatchObject({
      silver: ['freshness'],
      gold: ['silver'],
      quality: ['gold'],
      'warehouse-load': ['quality'],
      summary: ['warehouse-load'],
      notify: ['summary'],
    });
  });

  it('runs the daily pipeline over a day of readings and sends the summary', async () => {
    const { app, webhook } = await start();
    const readings = dayOfReadings();
    const post = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      headers: { 'content-type': 'application/json' },
      payload: readings,
    });
    expect(post.statusCode).toBe(200);
    await app.housekeeping.runOnce();

    const d = await runDaily(app, DATE);
    expect(d.run.state).toBe('succeeded');
    expect(taskStates(d)).toEqual({
      freshness: 'succeeded',
      silver: 'succeeded',
      gold: 'succeeded',
      quality: 'succeeded',
      'warehouse-load': 'succeeded',
      summary: 'succeeded',
      notify: 'succeeded',
      'summary-no-data': 'skipped',
      retention: 'succeeded',
    });
    expect(d.tasks.find((t) => t.task_id === 'freshness')!.output).toBe('process');

    // The oracle: the readings sent, and the anomalies silver flagged for the date.
    const [[flagged]] = (await lakeSql(
      app,
      `SELECT count(*) FILTER (WHERE is_anomaly) FROM silver_readings WHERE date = DATE '${DATE}'`,
    )) as [[number]];
    expect(flagged).toBeGreaterThanOrEqual(2);
    // The two out-of-range readings fail the bronze suite's range expectation: the summary
    // reports what the quality history holds.
    const quality = (await app.api.inject({ method: 'GET', url: '/api/quality' })).json<{
      suites: { suite: string; success: boolean }[];
    }>();
    const failedSuites = quality.suites.filter((s) => !s.success).map((s) => s.suite);
    expect(failedSuites).toEqual(['bronze_readings']);
    const summary = d.tasks.find((t) => t.task_id === 'summary')!.output;
    expect(summary).toMatchObject({
      date: DATE,
      readings: readings.length,
      sensors: 6,
      anomalies: flagged,
      missing: 0,
      deadLetters: 0,
      quality: { success: false, failedSuites },
    });

    const [report] = await webhook.waitFor(1);
    expect(report!.headers['x-canopy-event']).toBe('daily-summary');
    expect(report!.json).toMatchObject({
      id: `daily-summary:${DATE}:team`,
      title: `Canopy daily summary for ${DATE}`,
      data: { readings: readings.length, sensors: 6 },
    });
  });

  it('takes the no-data branch for a day without bronze, and still reports it', async () => {
    const { app, webhook } = await start();
    const d = await runDaily(app, '2026-11-20');
    expect(d.run.state).toBe('succeeded');
    expect(d.tasks.find((t) => t.task_id === 'freshness')!.output).toBe('no-data');
    expect(taskStates(d)).toMatchObject({
      silver: 'skipped',
      gold: 'skipped',
      notify: 'skipped',
      'summary-no-data': 'succeeded',
    });
    const [report] = await webhook.waitFor(1);
    expect(report!.json).toMatchObject({
      id: 'daily-summary:2026-11-20:team',
      data: { readings: 0, sensors: 0 },
    });
  });

  it('the CLI lists the workflows, runs one to its end and shows its history', async () => {
    const { app } = await start();
    const url = `http://127.0.0.1:${app.httpPort}`;
    const list = await runCanopy(['jobs', 'list', '--url', url], {});
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('batch jobs (canopy jobs run <job>): bronze-export, silver');
    expect(list.stdout).toMatch(
      /daily-pipeline\s+30 0 \* \* \* \(UTC\)\s+2026-11-30T00:30:00.000Z/,
    );

    const run = await runCanopy(
      ['jobs', 'run', 'daily-pipeline', '--date', '2026-11-20', '--wait', '--url', url],
      {},
    );
    expect(run.code).toBe(0);
    const finished = JSON.parse(run.stdout) as { id: string; state: string; params: object };
    expect(finished).toMatchObject({ state: 'succeeded', params: { date: '2026-11-20' } });

    const runs = await runCanopy(['jobs', 'runs', 'daily-pipeline', '--json', '--url', url], {});
    expect((JSON.parse(runs.stdout) as { id: string }[]).map((r) => r.id)).toEqual([finished.id]);
    const paused = await runCanopy(['jobs', 'pause', 'daily-pipeline', '--url', url], {});
    expect(JSON.parse(paused.stdout)).toEqual({ workflow: 'daily-pipeline', paused: true });
    const refused = await runCanopy(
      ['jobs', 'run', 'daily-pipeline', '--date', '2026-11-21', '--url', url],
      {},
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('CANOPY_WORKFLOW_BAD_REQUEST');
  });

  it('a task failing past the deadline raises deadline-missed, and the failed run raises job-failed', async () => {
    // The warehouse is a PostgreSQL nobody listens on: warehouse-load fails on every attempt.
    const { app, clock } = await start({
      warehouse: { kind: 'postgres', postgres: { host: '127.0.0.1', port: 1 } },
    });
    await app.api.inject({
      method: 'POST',
      url: '/api/data',
      headers: { 'content-type': 'application/json' },
      payload: dayOfReadings(),
    });
    await app.housekeeping.runOnce();
    const runner = app.workflows!.runner;
    const started = await runner.trigger('daily-pipeline', { params: { date: DATE } });
    const warehouseAttempts = async () =>
      (await detail(app, started.id)).attempts.filter(
        (a) => a.task_id === 'warehouse-load' && a.outcome !== null,
      ).length;
    // The first warehouse-load attempt fails; the task waits 5 min for its retry.
    await expect.poll(warehouseAttempts, { timeout: 20_000 }).toBe(1);

    const alerts = async () =>
      (await app.api.inject({ method: 'GET', url: '/api/alerts?state=active' }))
        .json<{ data: { subject: string }[] }>()
        .data.map((a) => a.subject);

    // Past the deadline (2 h after the run started), the run is unfinished: the alert opens.
    clock.advance(2 * HOUR + 1);
    await runner.tick();
    await app.alerting!.service.flush();
    expect((await detail(app, started.id)).run.deadline_missed).toBe(true);
    expect(await alerts()).toContain('pipeline:deadline-missed:daily-pipeline');

    // The retry came due at that tick and fails too; the third attempt waits 10 min.
    await expect.poll(warehouseAttempts, { timeout: 20_000 }).toBe(2);
    clock.advance(10 * 60_000 + 1);
    await runner.tick();
    const final = await runner.settled(started.id);
    expect(final.state).toBe('failed');
    const d = await detail(app, started.id);
    expect(d.attempts.filter((a) => a.task_id === 'warehouse-load').map((a) => a.outcome)).toEqual([
      'failed',
      'failed',
      'failed',
    ]);
    expect(taskStates(d)).toMatchObject({ summary: 'skipped', notify: 'skipped' });
    expect(d.run.error).toContain('warehouse-load');
    await app.alerting!.service.flush();
    expect(await alerts()).toContain('pipeline:job-failed:daily-pipeline');
  });
});
