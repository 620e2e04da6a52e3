/**
 * Backfilling the daily pipeline over seven days builds the same lake as
 * running it each day as the day's data came: two Canopy apps get the same
 * readings; A runs the pipeline for each date right after that date's data
 * arrived, B gets all seven days first and then backfills the seven slots.
 * Silver (per-date aggregates) and every gold table (full rows) must agree,
 * and both must agree with counts computed from the generated readings.
 *
 * Both apps read one fixed ManualClock instant, after the seventh day's slot,
 * so processing times in the lake are equal and no schedule comes due (only
 * the minutely housekeeping slot of that instant, awaited at start).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { FINAL_RUN_STATES, type RunState } from '../src/core/workflows.js';
import { startTestApp, type TestApp } from './helpers/app.js';

const DAY = 86_400_000;
/** Seven consecutive days, 2026-06-01 … 2026-06-07. */
const DATES = Array.from({ length: 7 }, (_, i) => `2026-06-0${i + 1}`);
/** The daily cron is 00:30 UTC: the slot for a date is 00:30 of the day after. */
const slotOf = (date: string): number => Date.parse(`${date}T00:30:00Z`) + DAY;
const NOW = slotOf('2026-06-07') + 15 * 60_000 + 30_000;

const SENSORS = [
  { sensor_id: 'bw-temp-1', sensor_type: 'temperature', location: 'kew' },
  { sensor_id: 'bw-temp-2', sensor_type: 'temperature', location: 'wisley' },
  { sensor_id: 'bw-hum-1', sensor_type: 'humidity', location: 'kew' },
  { sensor_id: 'bw-pres-1', sensor_type: 'pressure', location: 'wisley' },
] as const;

interface Reading {
  sensor_id: string;
  sensor_type: string;
  location: string;
  value: number | null;
  timestamp: string;
}

/**
 * Every 30 minutes per sensor (each sensor at its own offset), values in
 * quarter steps so that sums are exact in floating point; on each day a few
 * values out of the type's range (anomalies) and a few nulls.
 */
function readingsOf(dayIndex: number, date: string): Reading[] {
  const start = Date.parse(`${date}T00:00:00Z`);
  const base: Record<string, number> = { temperature: 18, humidity: 55, pressure: 1000 };
  const out: Reading[] = [];
  SENSORS.forEach((sensor, s) => {
    for (let k = 0; k < 48; k++) {
      const at = start + k * 30 * 60_000 + (s * 7 + dayIndex) * 60_000;
      let value: number | null =
        base[sensor.sensor_type]! + ((k * 7 + s * 3 + dayIndex) % 17) * 0.25;
      if ((k + s + dayIndex) % 23 === 5) value = null;
      else if (sensor.sensor_type === 'temperature' && (k + 3 * dayIndex) % 19 === 11) value = 250;
      else if (sensor.sensor_type === 'humidity' && (k + dayIndex) % 29 === 3) value = -5;
      out.push({ ...sensor, value, timestamp: new Date(at).toISOString() });
    }
  });
  return out;
}

const READINGS = DATES.map((date, i) => readingsOf(i, date));

function oracle(date: string) {
  const day = READINGS[DATES.indexOf(date)]!;
  return {
    readings: day.length,
    sum: day.reduce((acc, r) => acc + (r.value ?? 0), 0),
    nulls: day.filter((r) => r.value === null).length,
    outOfRange: day.filter(
      (r) =>
        r.value !== null &&
        ((r.sensor_type === 'temperature' && r.value > 85) ||
          (r.sensor_type === 'humidity' && r.value < 0)),
    ).length,
  };
}

const apps: TestApp[] = [];
afterAll(async () => {
  for (const app of apps.splice(0)) await app.dispose();
});

async function startApp(): Promise<TestApp> {
  const app = await startTestApp(
    // Old anomalies and dead letters would be aged out otherwise (7 days by default).
    { lake: { retentionDays: { anomalies: 60, deadletter: 60 } } },
    undefined,
    { clock: new ManualClock(NOW) },
  );
  apps.push(app);
  const runner = app.workflows!.runner;
  // The start-up tick creates the housekeeping run of the current minute: let it finish.
  await runner.tick();
  const runs = await app.workflows!.api.store.listRuns({ limit: 100 });
  for (const run of runs) expect((await runner.settled(run.id)).state).toBe('succeeded');
  expect(runs.map((r) => r.workflow)).toEqual(['housekeeping']);
  return app;
}

async function post(app: TestApp, url: string, payload: unknown) {
  const res = await app.api.inject({
    method: 'POST',
    url,
    payload: payload as object,
    headers: { 'content-type': 'application/json' },
  });
  expect(res.statusCode, `${url}: ${res.body}`).toBeLessThan(300);
  return res.json<Record<string, unknown>>();
}

async function query(app: TestApp, sql: string): Promise<unknown[][]> {
  return (await post(app, '/api/query', { sql })).rows as unknown[][];
}

interface WireRun {
  id: string;
  state: RunState;
  slot: string | null;
  params: { date: string };
}
interface WireDetail {
  run: WireRun;
  tasks: { task_id: string; state: string; output: unknown }[];
}

async function detail(app: TestApp, id: string): Promise<WireDetail> {
  return (await app.api.inject({ method: 'GET', url: `/api/workflows/runs/${id}` })).json();
}

async function dailyRuns(app: TestApp): Promise<WireRun[]> {
  const res = await app.api.inject({
    method: 'GET',
    url: '/api/workflows/daily-pipeline/runs?limit=100',
  });
  return res.json<{ data: WireRun[] }>().data;
}

const GOLD_TABLES = [
  'gold_sensor_5min',
  'gold_location_hourly',
  'gold_daily_summary',
  'gold_device_summary',
];

/** Everything compared between the lakes: silver per date, and every gold table in full. */
async function lakeOf(app: TestApp) {
  const silver = await query(
    app,
    `SELECT CAST(event_time AS DATE)::VARCHAR AS date, count(*), sum(value),
            count(*) FILTER (WHERE is_anomaly), count(*) FILTER (WHERE value IS NULL)
       FROM silver_readings GROUP BY ALL ORDER BY date`,
  );
  const gold: Record<string, unknown[][]> = {};
  for (const table of GOLD_TABLES) {
    gold[table] = await query(app, `SELECT * FROM ${table} ORDER BY ALL`);
  }
  return { silver, gold };
}

describe('backfill of the daily pipeline', () => {
  it('builds the same lake as running each day as it came', async () => {
    const [a, b] = [await startApp(), await startApp()];

    // A: each day's data, exported, then that day's pipeline.
    const runsA: WireRun[] = [];
    for (const [i, date] of DATES.entries()) {
      await post(a, '/api/data', READINGS[i]);
      await a.housekeeping.runOnce();
      const { run } = (await post(a, '/api/workflows/daily-pipeline/run', {
        params: { date },
      })) as { run: WireRun };
      expect((await a.workflows!.runner.settled(run.id)).state).toBe('succeeded');
      runsA.push(run);
    }

    // B: all the data first, then one backfill over the seven slots.
    for (const day of READINGS) await post(b, '/api/data', day);
    await b.housekeeping.runOnce();
    const accepted = await post(b, '/api/workflows/daily-pipeline/backfill', {
      from: new Date(slotOf(DATES[0]!)).toISOString(),
      to: new Date(slotOf(DATES.at(-1)!)).toISOString(),
    });
    expect(accepted).toMatchObject({ slots: 7 });
    // Generous: on a loaded 2-core CI machine the seven runs can take a minute or more.
    const deadline = Date.now() + 150_000;
    let runsB: WireRun[] = [];
    for (;;) {
      runsB = await dailyRuns(b);
      if (runsB.length === 7 && runsB.every((r) => FINAL_RUN_STATES.includes(r.state))) break;
      if (Date.now() > deadline) {
        const stuck = runsB.filter((r) => !FINAL_RUN_STATES.includes(r.state));
        const details = await Promise.all(
          stuck.map(async (r) =>
            (
              await b.api.inject({ method: 'GET', url: `/api/workflows/runs/${r.id}` })
            ).json<unknown>(),
          ),
        );
        throw new Error(`backfill unfinished: ${JSON.stringify(details)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(runsB.map((r) => r.state)).toEqual(Array(7).fill('succeeded'));
    expect(runsB.map((r) => r.params.date).sort()).toEqual(DATES);
    expect(runsB.map((r) => r.slot).sort()).toEqual(
      DATES.map((d) => new Date(slotOf(d)).toISOString()),
    );

    // Each run took the processing branch, and its summary counts its own date.
    for (const [app, runs] of [
      [a, runsA],
      [b, runsB],
    ] as const) {
      for (const run of runs) {
        const d = await detail(app, run.id);
        const date = d.run.params.date;
        const states = Object.fromEntries(d.tasks.map((t) => [t.task_id, t.state]));
        expect(states).toEqual({
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
        const expected = oracle(date);
        const summary = d.tasks.find((t) => t.task_id === 'summary')!.output as Record<
          string,
          number
        >;
        expect(summary).toMatchObject({
          date,
          readings: expected.readings,
          sensors: SENSORS.length,
          missing: expected.nulls,
        });
        expect(summary.anomalies).toBeGreaterThanOrEqual(expected.outOfRange);
      }
    }

    const lakeA = await lakeOf(a);
    const lakeB = await lakeOf(b);
    expect(lakeB.silver).toEqual(lakeA.silver);
    for (const table of GOLD_TABLES) {
      expect(lakeA.gold[table]!.length, table).toBeGreaterThan(0);
      expect(lakeB.gold[table], table).toEqual(lakeA.gold[table]);
    }

    // Both agree with the generated data.
    expect(lakeA.silver.map(([date, n, sum, , nulls]) => [date, n, sum, nulls])).toEqual(
      DATES.map((date) => {
        const o = oracle(date);
        return [date, o.readings, o.sum, o.nulls];
      }),
    );
    for (const [date, , , anomalies] of lakeA.silver) {
      expect(anomalies).toBeGreaterThanOrEqual(oracle(date as string).outOfRange);
      const run = runsA.find((r) => r.params.date === date)!;
      const summary = (await detail(a, run.id)).tasks.find((t) => t.task_id === 'summary')!;
      expect((summary.output as { anomalies: number }).anomalies).toBe(anomalies);
    }
  }, 240_000);
});
