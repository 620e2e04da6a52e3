/**
 * The dashboard's endpoints over a real DuckDB hot store and a real local
 * lake (bronze and silver built by the real jobs), driven by `inject`; the
 * live stream over a listening server with real HTTP clients.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Alert } from '../core/alerts.js';
import { ManualClock } from '../core/clock.js';
import type { DeadLetter } from '../core/ingest.js';
import type { NewReading, Page, SensorRecord } from '../core/store.js';
import type { WorkflowRun } from '../core/workflows.js';
import { buildCatalog, runBronzeExport, runDeadLetterExport, runSilverJob } from '../lake/index.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { openLakeQueries, type LakeQueries } from '../query/index.js';
import { PlantDirectory } from '../sources/plant-directory.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { newReading } from '../../test/helpers/readings.js';
import { EventReader } from '../../test/helpers/sse.js';
import { alertToWire } from './alerts.js';
import { HISTORY_MINUTES, IngestRate } from './ingest-rate.js';
import { LiveFeed, sensorHealth } from './live.js';
import { buildApi, type ApiDeps } from './server.js';
import { IMMUTABLE_CACHE, safeRelativePath } from './static.js';
import type { WorkflowApiDeps } from './workflows.js';

const SECOND = 1_000;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 22, 12);
const HOT_MS = 6 * HOUR;
const EDGE = NOW - HOT_MS;

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-dashboard-'));
const lakeRoot = path.join(dir, 'lake');
mkdirSync(lakeRoot);
const lake = new LocalObjectStore({ root: lakeRoot });
const store = new DuckDbHotStore({ path: ':memory:' });
const clock = new ManualClock(NOW);
const logger = silentLogger();

// ---------------------------------------------------------------- the data

/** t1: a temperature every 10 s over the last 10 h (straddling the hot window's edge). */
const t1: NewReading[] = [];
for (let t = NOW - 10 * HOUR, i = 0; t < NOW; t += 10 * SECOND, i++) {
  const missing = i % 97 === 0;
  t1.push(
    newReading({
      sensorId: 't1',
      location: 'kew/floor-1/zone-a',
      eventTime: t,
      value: missing ? null : Math.round(Math.sin(i / 17) * 1000) / 100 + 20,
      imputed: !missing && i % 53 === 0,
      isAnomaly: i % 101 === 0,
      anomalyReasons: i % 101 === 0 ? ['range'] : [],
    }),
  );
}
/** t2: a temperature a minute over the last 2 h, elsewhere; a few z-score anomalies. */
const t2 = Array.from({ length: 120 }, (_, i) =>
  newReading({
    sensorId: 't2',
    location: 'kew/floor-1/zone-b',
    eventTime: NOW - 2 * HOUR + i * MINUTE,
    value: 15 + (i % 7),
    isAnomaly: i % 40 === 5,
    anomalyReasons: i % 40 === 5 ? ['zscore', 'device'] : [],
  }),
);
/** h1: humidity on another floor; its last reading 5 min ago. */
const h1 = Array.from({ length: 10 }, (_, i) =>
  newReading({
    sensorId: 'h1',
    sensorType: 'humidity',
    unit: '%',
    location: 'kew/floor-2',
    eventTime: NOW - 14 * MINUTE + i * MINUTE,
    value: 40 + i,
  }),
);
/** Plant 7's measures, as the plants decoder names them. */
const plantReadings = [
  newReading({
    sensorId: 'plant-7.soil_moisture',
    sensorType: 'soil_moisture',
    unit: '%',
    location: 'conservatory',
    eventTime: NOW - MINUTE,
    value: 33.5,
    source: 'poll:plants',
  }),
  newReading({
    sensorId: 'plant-7.temperature',
    sensorType: 'temperature',
    unit: 'C',
    location: 'conservatory',
    eventTime: NOW - MINUTE,
    value: 21.25,
    source: 'poll:plants',
  }),
];

const sensor = (
  sensorId: string,
  sensorType: string | null,
  location: string | null,
  intervalMs: number | null,
  unit = 'C',
): SensorRecord => ({
  sensorId,
  sensorType,
  unit,
  location,
  origin: 'config',
  intervalMs,
  firstSeen: null,
});

const deadLetter = (reason: DeadLetter['reason'], receivedAt: number): DeadLetter => ({
  receivedAt,
  source: 'http',
  origin: 'POST /api/data',
  reason,
  message: `a ${reason}`,
  raw: '{"oops"',
});

// ---------------------------------------------------------------- the app

const metrics = new Metrics({ defaultMetrics: false });
let activeAlerts: Alert[] = [];
const live = new LiveFeed({ clock, store, metrics, logger, activeAlerts: () => activeAlerts });
const dist = path.join(dir, 'dist');
/** The content of a file beside the dist folder and of a dot-file in it: never to be served. */
const SECRET = 'not-for-the-browser';
const plantsFile = path.join(dir, 'plants.json');
let plants: PlantDirectory;
let queries: LakeQueries;
let app: FastifyInstance;

const run = (over: Partial<WorkflowRun>): WorkflowRun => ({
  id: 'r',
  workflow: 'housekeeping',
  slot: null,
  trigger: 'schedule',
  state: 'succeeded',
  params: {},
  createdAt: NOW - HOUR,
  finishedAt: NOW - HOUR + SECOND,
  deadlineAt: null,
  deadlineMissed: false,
  error: null,
  owner: null,
  leaseExpiresAt: null,
  ...over,
});
const runs = [
  run({ id: 'a', workflow: 'daily', deadlineMissed: true, createdAt: NOW - 3 * HOUR }),
  run({ id: 'b', workflow: 'housekeeping', createdAt: NOW - 2 * HOUR }),
  run({ id: 'c', workflow: 'daily', deadlineMissed: true, createdAt: NOW - HOUR }),
];
const workflows = {
  store: {
    listRuns: (filter: { workflow?: string; limit: number }) =>
      Promise.resolve(
        runs
          .filter((r) => filter.workflow === undefined || r.workflow === filter.workflow)
          .sort((a, b) => b.createdAt - a.createdAt)
          .slice(0, filter.limit),
      ),
    getRun: () => Promise.resolve(undefined),
    pausedWorkflows: () => Promise.resolve(new Set<string>()),
  },
  workflows: () => [{ name: 'daily' }, { name: 'housekeeping' }],
} as unknown as WorkflowApiDeps;

function apiDeps(over: Partial<ApiDeps> = {}): ApiDeps {
  return {
    sink: {
      submit: () => Promise.reject(new Error('not used')),
      submitDeadLetter: () => Promise.reject(new Error('not used')),
    },
    store,
    queries,
    catalog: () => buildCatalog(lake),
    quality: {
      list: () => Promise.resolve([]),
      get: () => Promise.resolve(null),
      latestBySuite: () =>
        Promise.resolve([
          {
            suite: 'bronze',
            table: 'bronze_readings',
            success: true,
            expectations: 3,
            failed: 0,
            run_id: 'q1',
            finished_at: new Date(NOW).toISOString(),
          },
        ]),
    },
    workflows,
    metrics,
    logger,
    maxPayloadBytes: 1024 * 1024,
    dashboard: { live, clock, hotWindowMs: HOT_MS, plants, webDist: dist },
    ...over,
  };
}

beforeAll(async () => {
  await store.open();
  await store.upsertSensors([
    sensor('t1', 'temperature', 'kew/floor-1/zone-a', 10 * SECOND),
    sensor('t2', 'temperature', 'kew/floor-1/zone-b', null),
    sensor('h1', 'humidity', 'kew/floor-2', null, '%'),
    sensor('never', 'temperature', 'kew/floor-1/zone-b', null),
    sensor('plant-7.soil_moisture', 'soil_moisture', 'conservatory', null, '%'),
    sensor('plant-7.temperature', 'temperature', 'conservatory', null),
  ]);
  await store.append(
    [...t1, ...t2, ...h1, ...plantReadings],
    [
      deadLetter('INVALID_JSON', NOW - HOUR),
      deadLetter('INVALID_JSON', NOW - 2 * HOUR),
      deadLetter('MISSING_VALUE', NOW - 3 * HOUR),
      deadLetter('MISSING_VALUE', NOW - 30 * HOUR),
    ],
  );
  // The lake as the housekeeping and lake workflows leave it: everything in bronze and silver,
  // then the hot window purged, so t1's older half exists only in the lake.
  const workDir = path.join(dir, 'work');
  await runBronzeExport({ store, lake, workDir, logger });
  await runDeadLetterExport({ store, lake, logger });
  await runSilverJob({
    lake,
    workDir,
    ranges: { byType: {}, bySensor: {} },
    zscore: { window: 30, minHistory: 10, threshold: 6 },
    deviceScoreThreshold: 0.9,
    clock,
    logger,
  });
  await store.purge(EDGE);
  queries = await openLakeQueries(lake, logger);

  mkdirSync(path.join(dist, 'assets'), { recursive: true });
  writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>Canopy app</title>');
  writeFileSync(path.join(dist, 'assets', 'index-3f2a1b.js'), 'console.log(1)');
  writeFileSync(path.join(dist, 'favicon.svg'), '<svg/>');
  writeFileSync(path.join(dist, '.env'), SECRET);
  writeFileSync(path.join(dir, 'outside.txt'), SECRET);

  plants = await PlantDirectory.open({ file: plantsFile, logger, saveDelayMs: 60_000 });
  app = buildApi(apiDeps());
}, 60_000);

afterAll(async () => {
  await app?.close();
  await plants?.close();
  await queries?.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const getJson = async <T>(url: string): Promise<T> => {
  const res = await app.inject({ method: 'GET', url });
  expect(res.statusCode, res.body).toBe(200);
  return res.json<T>();
};

// ---------------------------------------------------------------- the oracle

type Point = [number, number | null, number | null, number | null, number];

/** What /api/series must answer for `readings` of one sensor, computed directly. */
function expectedPoints(
  readings: readonly NewReading[],
  from: number,
  to: number,
  bucketMs: number,
) {
  const inRange = readings
    .filter((r) => r.eventTime >= from && r.eventTime < to)
    .sort((a, b) => a.eventTime - b.eventTime);
  if (bucketMs === 0)
    return inRange.map((r): Point => [r.eventTime, r.value, r.value, r.value, r.imputed ? 1 : 0]);
  const groups = new Map<number, NewReading[]>();
  for (const r of inRange) {
    const start = from + Math.floor((r.eventTime - from) / bucketMs) * bucketMs;
    groups.set(start, [...(groups.get(start) ?? []), r]);
  }
  return [...groups.entries()].map(([start, group]): Point => {
    const values = group.flatMap((r) => (r.value === null ? [] : [r.value]));
    const imputed = group.filter((r) => r.imputed).length;
    if (values.length === 0) return [start, null, null, null, imputed];
    const avg = values.reduce((a, b) => a + b, 0) / values.length;
    return [start, avg, Math.min(...values), Math.max(...values), imputed];
  });
}

function expectSamePoints(actual: Point[], expected: Point[]): void {
  expect(actual.map((p) => [p[0], p[2], p[3], p[4]])).toEqual(
    expected.map((p) => [p[0], p[2], p[3], p[4]]),
  );
  actual.forEach((p, i) => {
    const want = expected[i]![1];
    if (want === null) expect(p[1]).toBeNull();
    else expect(p[1]).toBeCloseTo(want, 9);
  });
}

interface SeriesBody {
  from: string;
  to: string;
  bucketMs: number;
  downsampled: boolean;
  series: { sensor_id: string; sensor_type: string | null; unit: string | null; points: Point[] }[];
}

// ---------------------------------------------------------------- unit parts

describe('IngestRate', () => {
  it('averages the last ten whole seconds and keeps sixty minutes, reading old laps of the ring as zero', () => {
    const rate = new IngestRate();
    const t = Date.UTC(2026, 10, 22, 12, 30, 0);
    for (let s = 0; s < 12; s++) rate.add(10 + s, t + s * SECOND + 500);
    expect(rate.perMinute(t + 30 * SECOND).at(-1)).toEqual([t, 10 * 12 + 66]);
    // At t+12.2 s the whole seconds t+2 … t+11 count: 12 + … + 21.
    expect(rate.perSecond(t + 12_200)).toBe((12 + 21) / 2);
    // The current second never counts; a later time sees the counts age out.
    expect(rate.perSecond(t + 30 * SECOND)).toBe(0);

    rate.add(5, t + 61 * MINUTE);
    const minutes = rate.perMinute(t + 61 * MINUTE);
    expect(minutes).toHaveLength(HISTORY_MINUTES);
    expect(minutes.at(-1)).toEqual([t + 61 * MINUTE, 5]);
    expect(minutes[0]![0]).toBe(t + 2 * MINUTE);
    // Minute t (the 12 seconds above) left the hour; the ring slot it used reads zero.
    expect(minutes.reduce((sum, [, n]) => sum + n, 0)).toBe(5);
  });
});

describe('sensorHealth', () => {
  it.each([
    [null, 10_000, 'unknown'],
    [NOW - 20_000, 10_000, 'ok'],
    [NOW - 20_001, 10_000, 'late'],
    [NOW - 100_000, 10_000, 'late'],
    [NOW - 100_001, 10_000, 'silent'],
    [NOW - 2 * MINUTE, null, 'ok'],
    [NOW - 10 * MINUTE, null, 'late'],
    [NOW - 11 * MINUTE, null, 'silent'],
    [NOW + MINUTE, null, 'ok'],
  ])('last seen %s with interval %s is %s', (lastSeen, interval, health) => {
    expect(sensorHealth(lastSeen, interval, NOW)).toBe(health);
  });
});

// ---------------------------------------------------------------- the routes

describe('GET /api/overview', () => {
  it('gives each sensor its health, latest value and anomalies, with open alerts and freshness', async () => {
    clock.set(NOW + 30 * SECOND);
    activeAlerts = [
      { severity: 'critical', state: 'open' },
      { severity: 'critical', state: 'acknowledged' },
      { severity: 'warning', state: 'escalated' },
    ] as Alert[];
    const body = await getJson<{
      activeSensors: number;
      totalSensors: number;
      sensors: {
        sensor_id: string;
        health: string;
        last_value: number | null;
        anomalies: number;
      }[];
      openAlerts: unknown;
      freshness: Record<string, string | null>;
    }>('/api/overview');
    clock.set(NOW);
    activeAlerts = [];
    const health = Object.fromEntries(body.sensors.map((s) => [s.sensor_id, s.health]));
    // t1 every 10 s: 31 s after its last reading is over 2 intervals. h1 (no interval): 5.5 min, late.
    expect(health).toEqual({
      h1: 'late',
      never: 'unknown',
      'plant-7.soil_moisture': 'ok',
      'plant-7.temperature': 'ok',
      t1: 'late',
      t2: 'ok',
    });
    expect(body.activeSensors).toBe(3);
    expect(body.totalSensors).toBe(6);
    const t2Row = body.sensors.find((s) => s.sensor_id === 't2')!;
    expect(t2Row.last_value).toBe(t2.at(-1)!.value);
    expect(t2Row.anomalies).toBe(t2.filter((r) => r.isAnomaly).length);
    expect(body.openAlerts).toEqual({ critical: 2, warning: 1, info: 0 });
    expect(body.freshness.lastReadingAt).toBe(new Date(t1.at(-1)!.eventTime).toISOString());
    expect(body.freshness.lastExportAt).not.toBeNull();
    expect(body.freshness.lastSilverAt).not.toBeNull();
  });
});

describe('GET /api/series', () => {
  it('answers raw readings when the range holds no more than `points` per series', async () => {
    const from = NOW - 2 * HOUR;
    const body = await getJson<SeriesBody>(
      `/api/series?sensor=t2&sensor=nope&from=${from}&to=${NOW}&points=500`,
    );
    expect(body).toMatchObject({ downsampled: false, bucketMs: 0 });
    expect(body.series.map((s) => [s.sensor_id, s.sensor_type, s.unit])).toEqual([
      ['nope', null, null],
      ['t2', 'temperature', 'C'],
    ]);
    expect(body.series[0]!.points).toEqual([]);
    expect(body.series[1]!.points).toEqual(expectedPoints(t2, from, NOW, 0));
  });

  it('buckets a range over silver (before the hot window), bronze (exported) and the hot store (since), each reading once', async () => {
    // Not aligned on the edge: one bucket holds readings from both stores.
    const from = NOW - 10 * HOUR + 7 * MINUTE;
    const paging = vi.spyOn(store, 'queryReadings');
    const body = await getJson<SeriesBody>(
      `/api/series?sensor=t1&from=${new Date(from).toISOString()}&to=${NOW}&points=100`,
    );
    const pages = await Promise.all(
      paging.mock.results.map((r) => r.value as Promise<Page<unknown>>),
    );
    paging.mockRestore();
    // Only the reading committed after the last export came from the hot store.
    expect(pages.reduce((n, p) => n + p.items.length, 0)).toBe(1);
    const bucketMs = Math.ceil((NOW - from) / 100);
    expect(body).toMatchObject({ downsampled: true, bucketMs });
    expect((EDGE - from) % bucketMs).not.toBe(0);
    const points = body.series[0]!.points;
    expectSamePoints(points, expectedPoints(t1, from, NOW, bucketMs));
    expect(points.reduce((n, p) => n + p[4], 0)).toBe(
      t1.filter((r) => r.imputed && r.eventTime >= from).length,
    );
    // Old readings are really gone from the hot store: only the lake had them.
    const hot = await store.queryReadings({ sensorId: 't1', to: EDGE, limit: 10 });
    expect(hot.items).toEqual([]);
  });

  it('reads raw points of the hot window from the hot store, so a value imputed after the export shows', async () => {
    const missing = t1.find((r) => r.value === null && r.eventTime > NOW - HOUR)!;
    expect(
      await store.applyImputations([{ sensorId: 't1', eventTime: missing.eventTime, value: 99.5 }]),
    ).toBe(1);
    const from = missing.eventTime - 5 * MINUTE;
    const to = missing.eventTime + 5 * MINUTE;
    const body = await getJson<SeriesBody>(`/api/series?sensor=t1&from=${from}&to=${to}`);
    expect(body.downsampled).toBe(false);
    const expected = expectedPoints(t1, from, to, 0).map((p): Point =>
      p[0] === missing.eventTime ? [p[0], 99.5, 99.5, 99.5, 1] : p,
    );
    expect(body.series[0]!.points).toEqual(expected);
  });

  it('reads a range wholly older than the hot window from silver, raw when it is small', async () => {
    const from = NOW - 9 * HOUR;
    const to = from + 30 * MINUTE;
    const body = await getJson<SeriesBody>(`/api/series?sensor=t1&from=${from}&to=${to}`);
    expect(body.downsampled).toBe(false);
    expect(body.series[0]!.points).toEqual(expectedPoints(t1, from, to, 0));
    expect(body.series[0]!.points).toHaveLength(180);
  });

  it('charts every sensor of a type, narrowed by location, bucketing all series alike once one needs it', async () => {
    const from = NOW - 2 * HOUR;
    const all = await getJson<SeriesBody>(
      `/api/series?type=temperature&from=${from}&to=${NOW}&points=200`,
    );
    expect(all.series.map((s) => s.sensor_id)).toEqual([
      'never',
      'plant-7.temperature',
      't1',
      't2',
    ]);
    expect(all.downsampled).toBe(true); // t1 has 720 readings in 2 h
    expectSamePoints(all.series[3]!.points, expectedPoints(t2, from, NOW, all.bucketMs));
    expectSamePoints(all.series[2]!.points, expectedPoints(t1, from, NOW, all.bucketMs));

    const zone = await getJson<SeriesBody>(
      `/api/series?type=temperature&location=kew/floor-1/zone-b&from=${from}&to=${NOW}`,
    );
    expect(zone.series.map((s) => s.sensor_id)).toEqual(['never', 't2']);
    expect(zone.downsampled).toBe(false);
  });

  it.each([
    ['/api/series', /either sensor .* or type/],
    ['/api/series?sensor=t1&type=temperature', /either sensor .* or type/],
    ['/api/series?sensor=t1&points=5', /points must be an integer from 10 to 5000/],
    ['/api/series?sensor=t1&points=5001', /points must be an integer/],
    [
      '/api/series?sensor=t1&from=2026-11-22T12:00:00Z&to=2026-11-22T11:00:00Z',
      /from must be before to/,
    ],
    ['/api/series?sensor=t1&from=2020-01-01&to=2026-01-01', /at most 400 days/],
    ['/api/series?sensor=t1&from=soon', /from must be an ISO 8601 time/],
    ['/api/series?sensor=t1&location=kew', /location narrows a type/],
    [
      `/api/series?${Array.from({ length: 101 }, (_, i) => `sensor=s${i}`).join('&')}`,
      /at most 100 sensors/,
    ],
    ['/api/locations?measure=a&measure=b', /measure must be given once/],
    ['/api/anomalies?limit=5001', /limit must be an integer from 1 to 5000/],
  ])('GET %s answers 400 naming the problem', async (url, message) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(400);
    const { error } = res.json<{ error: { code: string; message: string } }>();
    expect(error.code).toBe('CANOPY_API_BAD_REQUEST');
    expect(error.message).toMatch(message);
  });
});

describe('GET /api/locations', () => {
  it('averages the latest value of a measure per location, split into site, floor and zone', async () => {
    const body = await getJson<{
      measure: string;
      unit: string;
      measures: string[];
      cells: unknown[];
    }>('/api/locations?measure=temperature');
    expect(body.measures).toEqual(['humidity', 'soil_moisture', 'temperature']);
    expect(body).toMatchObject({ measure: 'temperature', unit: 'C' });
    expect(body.cells).toEqual([
      {
        location: 'conservatory',
        site: 'conservatory',
        floor: null,
        zone: null,
        value: 21.25,
        sensors: ['plant-7.temperature'],
        last_seen: new Date(NOW - MINUTE).toISOString(),
      },
      {
        location: 'kew/floor-1/zone-a',
        site: 'kew',
        floor: 'floor-1',
        zone: 'zone-a',
        value: t1.at(-1)!.value,
        sensors: ['t1'],
        last_seen: new Date(t1.at(-1)!.eventTime).toISOString(),
      },
      {
        location: 'kew/floor-1/zone-b',
        site: 'kew',
        floor: 'floor-1',
        zone: 'zone-b',
        // `never` has no reading: it is listed but adds nothing to the mean.
        value: t2.at(-1)!.value,
        sensors: ['never', 't2'],
        last_seen: new Date(t2.at(-1)!.eventTime).toISOString(),
      },
    ]);
    const first = await getJson<{ measure: string; cells: { location: string }[] }>(
      '/api/locations',
    );
    expect(first.measure).toBe('humidity');
    expect(first.cells).toMatchObject([{ location: 'kew/floor-2', floor: 'floor-2', zone: null }]);
  });
});

describe('GET /api/anomalies', () => {
  const anomalous = [...t1, ...t2].filter((r) => r.isAnomaly);

  it('lists flagged readings of the range oldest first, with every reason seen', async () => {
    const body = await getJson<{
      items: { sensor_id: string; timestamp: string; value: number | null; reasons: string[] }[];
      reasons: string[];
      truncated: boolean;
    }>('/api/anomalies');
    const expected = anomalous
      .filter((r) => r.eventTime >= NOW - 24 * HOUR)
      .sort((a, b) => a.eventTime - b.eventTime || a.sensorId.localeCompare(b.sensorId));
    expect(body.items.map((i) => [i.sensor_id, i.timestamp, i.value, i.reasons])).toEqual(
      expected.map((r) => [
        r.sensorId,
        new Date(r.eventTime).toISOString(),
        r.value,
        [...r.anomalyReasons],
      ]),
    );
    expect(body.reasons).toEqual(['device', 'range', 'zscore']);
    expect(body.truncated).toBe(false);
  });

  it('filters by sensor, type and reason, and keeps the newest `limit`', async () => {
    const bySensor = await getJson<{ items: { sensor_id: string }[]; reasons: string[] }>(
      '/api/anomalies?sensor=t2',
    );
    expect(bySensor.items).toHaveLength(t2.filter((r) => r.isAnomaly).length);
    expect(bySensor.reasons).toEqual(['device', 'zscore']);
    const byReason = await getJson<{ items: { sensor_id: string }[]; reasons: string[] }>(
      '/api/anomalies?reason=range&type=temperature',
    );
    expect(new Set(byReason.items.map((i) => i.sensor_id))).toEqual(new Set(['t1']));
    // The reason list ignores the reason filter: it feeds the filter's choices.
    expect(byReason.reasons).toEqual(['device', 'range', 'zscore']);
    const newest = await getJson<{ items: { timestamp: string }[]; truncated: boolean }>(
      '/api/anomalies?limit=2',
    );
    expect(newest.truncated).toBe(true);
    const latest = anomalous
      .map((r) => r.eventTime)
      .sort((a, b) => a - b)
      .slice(-2);
    expect(newest.items.map((i) => Date.parse(i.timestamp))).toEqual(latest);
  });
});

describe('GET /api/pipeline', () => {
  it('reports the ingest rate, dead letters of the last day by reason, lake partitions, workflows and quality', async () => {
    live.readingsCommitted(t2.slice(0, 7));
    const body = await getJson<{
      ingest: { readingsPerSecond: number; perMinute: [number, number][] };
      deadLetters: { since: string; byReason: unknown[]; total: number };
      lake: {
        partitions: { layer: string; table: string; date: string | null; rows: number | null }[];
      };
      workflows: { enabled: boolean; runs: { id: string }[]; deadlineMisses: number };
      quality: { suites: { suite: string }[]; runs: unknown[] };
    }>('/api/pipeline');
    expect(body.ingest.perMinute).toHaveLength(60);
    expect(body.ingest.perMinute.at(-1)).toEqual([NOW, 7]);
    expect(body.deadLetters).toEqual({
      since: new Date(NOW - 24 * HOUR).toISOString(),
      byReason: [
        { reason: 'INVALID_JSON', count: 2 },
        { reason: 'MISSING_VALUE', count: 1 },
      ],
      total: 3,
    });
    const bronze = body.lake.partitions.filter((p) => p.table === 'bronze/readings');
    // Readings of 2026-11-22 (10 h before noon): one entry for the day, its hours summed.
    expect(bronze).toEqual([
      expect.objectContaining({ layer: 'bronze', date: '2026-11-22', rows: t1.length + 132 }),
    ]);
    expect(body.lake.partitions).toContainEqual(
      expect.objectContaining({ table: 'silver/readings', date: '2026-11-22' }),
    );
    expect(body.workflows).toEqual({
      enabled: true,
      runs: [
        expect.objectContaining({ id: 'c' }),
        expect.objectContaining({ id: 'b' }),
        expect.objectContaining({ id: 'a' }),
      ],
      deadlineMisses: 2,
    });
    expect(body.quality.suites).toMatchObject([{ suite: 'bronze' }]);
  });
});

describe('POST /api/query as CSV', () => {
  const query = (url: string, headers: Record<string, string> = {}) =>
    app.inject({
      method: 'POST',
      url,
      payload: {
        sql: "SELECT sensor_id, value, '=1+1' AS formula FROM readings WHERE sensor_id = 't2' ORDER BY event_time LIMIT 2",
      },
      headers: { 'content-type': 'application/json', ...headers },
    });

  it('answers text/csv with formula cells guarded, for Accept: text/csv or ?format=csv', async () => {
    for (const res of [
      await query('/api/query', { accept: 'text/csv' }),
      await query('/api/query?format=csv'),
    ]) {
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
      expect(res.headers['content-disposition']).toBe('attachment; filename="canopy-query.csv"');
      expect(res.headers['x-canopy-truncated']).toBe('false');
      expect(res.body).toBe(
        `sensor_id,value,formula\r\nt2,${t2[0]!.value},'=1+1\r\nt2,${t2[1]!.value},'=1+1\r\n`,
      );
    }
    const json = await query('/api/query');
    expect(json.json()).toMatchObject({
      rows: [
        ['t2', 15, '=1+1'],
        ['t2', 16, '=1+1'],
      ],
    });
    const bad = await query('/api/query?format=xml');
    expect(bad.statusCode).toBe(400);
  });
});

// ---------------------------------------------------------------- plants

describe('the plant directory and GET /api/plants', () => {
  const record = (over: Record<string, unknown> = {}) => ({
    plant_id: 7,
    name: 'Venus flytrap',
    soil_moisture: 33.5,
    temperature: 21.25,
    last_watered: '2026-11-22T08:00:00.000Z',
    recording_taken: new Date(NOW - MINUTE).toISOString(),
    botanist: { name: 'Ada Moss', email: 'ada@example.org', phone: '+44 20 7946 0011', age: 40 },
    ...over,
  });
  let failNext = false;
  const sink = {
    submit: () =>
      failNext
        ? Promise.reject(new Error('overloaded'))
        : Promise.resolve({ batchId: 'b', accepted: 2, rejected: [] }),
    submitDeadLetter: () => Promise.resolve(),
  };

  it('keeps each plant’s newest record from committed payloads, and joins it with the plant’s latest readings', async () => {
    const observed = plants.observe(sink);
    await observed.submit({
      source: 'poll:plants',
      format: 'plants',
      payload: JSON.stringify([
        record(),
        record({ plant_id: 9, name: 'Corpse flower', recording_taken: undefined }), // rejected by the decoder
        record({ plant_id: -3 }), // not a plant id
      ]),
    });
    // An older recording of plant 7 changes nothing; a refused message records nothing.
    await observed.submit({
      source: 'poll:plants',
      format: 'plants',
      payload: JSON.stringify(
        record({ name: 'old', recording_taken: new Date(NOW - HOUR).toISOString() }),
      ),
    });
    failNext = true;
    await expect(
      observed.submit({
        source: 'poll:plants',
        format: 'plants',
        payload: JSON.stringify(record({ plant_id: 3 })),
      }),
    ).rejects.toThrow('overloaded');
    failNext = false;

    const body = await getJson<{ plants: unknown[] }>('/api/plants');
    expect(body.plants).toEqual([
      {
        plant_id: '7',
        sensor_id: 'plant-7',
        sensors: { soil_moisture: 'plant-7.soil_moisture', temperature: 'plant-7.temperature' },
        name: 'Venus flytrap',
        location: 'conservatory',
        soil_moisture: 33.5,
        temperature: 21.25,
        last_watered: '2026-11-22T08:00:00.000Z',
        botanist: { name: 'Ada Moss', email: 'ada@example.org', phone: '+44 20 7946 0011' },
        recorded_at: new Date(NOW - MINUTE).toISOString(),
      },
    ]);
  });

  it('survives a restart through its file, written atomically, and sets an unreadable file aside', async () => {
    await plants.close();
    const reopened = await PlantDirectory.open({ file: plantsFile, logger });
    expect(reopened.list()).toEqual(plants.list());
    expect(reopened.list().map((p) => p.name)).toEqual(['Venus flytrap']);
    await reopened.close();

    const brokenFile = path.join(dir, 'broken-plants.json');
    writeFileSync(brokenFile, '{"version": 1, "plants": [');
    const fresh = await PlantDirectory.open({ file: brokenFile, logger });
    expect(fresh.list()).toEqual([]);
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir).filter((f) => f.startsWith('broken-plants.json.bad-'))).toHaveLength(1);
    await fresh.close();
  });
});

// ---------------------------------------------------------------- static files

describe('the dashboard’s static files', () => {
  it('serves index.html without caching and hashed assets as immutable, and falls back to index.html for app routes', async () => {
    const index = await app.inject({ method: 'GET', url: '/' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    expect(index.headers['cache-control']).toBe('no-cache');
    expect(index.body).toContain('Canopy app');

    const asset = await app.inject({ method: 'GET', url: '/assets/index-3f2a1b.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toMatch(/javascript/);
    expect(asset.headers['cache-control']).toBe(IMMUTABLE_CACHE);
    expect(asset.body).toBe('console.log(1)');

    const icon = await app.inject({ method: 'GET', url: '/favicon.svg' });
    expect(icon.headers['cache-control']).toBe('no-cache');
    expect(icon.body).toBe('<svg/>');

    for (const url of ['/alerts/42', '/sensors/plant-7.temperature?range=1h']) {
      const page = await app.inject({ method: 'GET', url });
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('Canopy app');
    }
    const head = await app.inject({ method: 'HEAD', url: '/' });
    expect(head.statusCode).toBe(200);
  });

  it.each([
    '/assets/gone-123.js',
    '/assets',
    '/..%2foutside.txt',
    '/assets/..%2f..%2foutside.txt',
    '/.env',
    '/a%00b',
    '/..%5coutside.txt',
  ])('answers GET %s with the JSON 404, never a file outside or index.html', async (url) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain(SECRET);
    expect(res.json<{ error: { code: string } }>().error.code).toBe('CANOPY_API_NOT_FOUND');
  });

  it('keeps decoded paths inside the folder (what a raw HTTP request line can carry)', () => {
    expect(safeRelativePath('/assets/index-3f2a1b.js')).toBe('assets/index-3f2a1b.js');
    expect(safeRelativePath('//assets//a%20b.js')).toBe('assets/a b.js');
    expect(safeRelativePath('/')).toBe('');
    for (const bad of [
      '/%2e%2e/outside.txt',
      '/../outside.txt',
      '/assets/%2E%2E/%2E%2E/outside.txt',
      '/..%5c..%5coutside.txt',
      '/.env',
      '/assets/.hidden/x.js',
      '/a%00b',
      '/%E0%A4%A',
    ])
      expect(safeRelativePath(bad), bad).toBeNull();
  });

  it('keeps unknown /api paths the API’s JSON 404', async () => {
    for (const url of ['/api/nope', '/api']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(404);
      expect(res.json<{ error: { code: string } }>().error.code).toBe('CANOPY_API_NOT_FOUND');
    }
  });

  it('answers 503 with a page saying how to build when web/dist is missing, and the API still works', async () => {
    const bare = buildApi(
      apiDeps({
        dashboard: { live, clock, hotWindowMs: HOT_MS, webDist: path.join(dir, 'no-such-dist') },
      }),
    );
    try {
      for (const url of ['/', '/alerts/1', '/assets/index-3f2a1b.js']) {
        const res = await bare.inject({ method: 'GET', url });
        expect(res.statusCode).toBe(503);
        expect(res.headers['content-type']).toMatch(/^text\/html/);
        expect(res.body).toContain('Dashboard not built: run npm run build:web');
      }
      expect((await bare.inject({ method: 'GET', url: '/api/plants' })).json()).toEqual({
        plants: [expect.objectContaining({ plant_id: '7', name: null })],
      });
    } finally {
      await bare.close();
    }
  });
});

// ---------------------------------------------------------------- the live stream

describe('GET /api/live', () => {
  const liveClock = new ManualClock(NOW);
  const liveMetrics = new Metrics({ defaultMetrics: false });
  const feed = new LiveFeed({
    clock: liveClock,
    store,
    metrics: liveMetrics,
    logger,
    readingsIntervalMs: 50,
    maxBufferedBytes: 64 * 1024,
  });
  let server: FastifyInstance;
  let base: string;

  beforeAll(async () => {
    server = buildApi(
      apiDeps({ dashboard: { live: feed, clock: liveClock, hotWindowMs: HOT_MS } }),
    );
    await server.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  });
  // Closed by the last test; again here in case it failed before.
  afterAll(() => server.close());

  const openAlert = {
    id: 'al-1',
    ruleId: 'too-hot',
    subject: 'sensor:t1',
    sensorId: 't1',
    location: 'kew/floor-1/zone-a',
    severity: 'critical',
    state: 'open',
    summary: 'temperature at t1 is 41 (above 40)',
    labels: { team: 'conservatory' },
    value: 41,
    threshold: 40,
    openedAt: NOW,
    updatedAt: NOW,
    escalatedAt: null,
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
    snoozedUntil: null,
    tier: 0,
    lastNotifiedAt: null,
    notifiedChannels: [],
  } satisfies Alert;

  it('sends stats at once, the newest reading per sensor of the commits since the last event, and alert changes', async () => {
    const res = await fetch(`${base}/api/live`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('no-cache, no-transform');
    const events = new EventReader(res.body!.getReader());
    expect(await events.next('stats')).toEqual({
      time: new Date(NOW).toISOString(),
      readingsPerSecond: 0,
      // Seeded from the store: t1 (10 s ago, every 10 s), t2 and plant-7's two (1 min ago).
      activeSensors: 4,
      openAlerts: { critical: 0, warning: 0, info: 0 },
    });
    expect((await liveMetrics.liveClients.get()).values).toMatchObject([{ value: 1 }]);

    // Two commits in one turn join one event, which keeps each sensor's newest reading.
    feed.readingsCommitted([
      newReading({ sensorId: 'a', eventTime: NOW - 2 * SECOND, value: 1 }),
      newReading({ sensorId: 'b', eventTime: NOW - SECOND, value: 5, isAnomaly: true }),
    ]);
    feed.readingsCommitted([
      newReading({ sensorId: 'a', eventTime: NOW - SECOND, value: 2, imputed: true }),
      newReading({ sensorId: 'a', eventTime: NOW - 3 * SECOND, value: 0 }),
    ]);
    expect(await events.next('readings')).toEqual([
      {
        sensor_id: 'a',
        sensor_type: 'temperature',
        location: 'kew',
        unit: 'C',
        timestamp: new Date(NOW - SECOND).toISOString(),
        value: 2,
        imputed: true,
        is_anomaly: false,
      },
      expect.objectContaining({ sensor_id: 'b', value: 5, is_anomaly: true }),
    ]);

    feed.alertsChanged([openAlert]);
    expect(await events.next('alert')).toEqual(alertToWire(openAlert));
    await events.cancel();
  });

  it('disconnects a client that stops reading once it is over its buffer limit, instead of buffering without bound', async () => {
    // The previous test's client went away; wait until the server has seen it go.
    while (feed.clientCount > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const response = await new Promise<IncomingMessage>((resolve, reject) =>
      get(`${base}/api/live`, resolve).on('error', reject),
    );
    response.pause(); // a stalled tab: nothing is read from the socket any more
    const closed = new Promise<void>((resolve) => response.socket.once('close', () => resolve()));
    const dropsBefore = (await liveMetrics.liveClientsDropped.get()).values[0]?.value ?? 0;
    const big = { ...openAlert, summary: 'x'.repeat(16 * 1024) };
    let written = 0;
    // The kernel's socket buffers take a few MB first; 1 GB would mean the limit never acted.
    while (feed.clientCount > 0 && written < 1024 ** 3) {
      feed.alertsChanged([big]);
      written += big.summary.length;
    }
    expect(feed.clientCount).toBe(0);
    await closed;
    expect((await liveMetrics.liveClientsDropped.get()).values[0]?.value).toBe(dropsBefore + 1);
  });

  it('ends every stream when the server closes, so closing never waits on a client', async () => {
    const res = await fetch(`${base}/api/live`);
    const events = new EventReader(res.body!.getReader());
    await events.next('stats');
    await server.close();
    expect(await events.next('stats')).toBeNull();
    expect(feed.clientCount).toBe(0);
  });
});
