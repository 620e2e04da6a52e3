/**
 * The dashboard's server side in a running Canopy: readings posted over
 * HTTP and plants polled from the plants API, read back through the
 * dashboard endpoints and the live stream by real HTTP clients, each answer
 * checked against what was sent or against the raw readings of GET /api/data.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/observability/logger.js';
import {
  startPlantsServer,
  type PlantRecording,
  type PlantsServer,
} from '../src/simulator/index.js';
import { createObjectStore } from '../src/storage/index.js';
import { LakeJobs } from '../src/workflows/jobs.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { EventReader } from './helpers/sse.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;

type Point = [number, number | null, number | null, number | null, number];

interface WireReading {
  sensor_id: string;
  timestamp: string;
  value: number | null;
  imputed: boolean;
}

const work = mkdtempSync(path.join(tmpdir(), 'canopy-dashboard-e2e-'));
const dist = path.join(work, 'dist');
const plantsClock = new ManualClock(Date.now());
let plantsServer: PlantsServer;
let plantsOpen = true;
let app: TestApp;
let base: string;

const overrides = (plantsUrl: string, dashboardDir: string) => ({
  workflows: { enabled: false },
  store: { retentionHours: 1 },
  http: { dashboardDir },
  poll: [
    {
      name: 'plants',
      urlTemplate: `${plantsUrl}/plants/{id}`,
      ids: [1, 2, 3],
      format: 'plants' as const,
      intervalMs: HOUR,
      retries: 0,
    },
  ],
});

async function post(readings: object[]): Promise<void> {
  const res = await fetch(`${base}/api/data`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(readings),
  });
  expect(res.status, await res.clone().text()).toBe(200);
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(base + url);
  expect(res.status, `${url}: ${await res.clone().text()}`).toBe(200);
  return (await res.json()) as T;
}

/** Every reading GET /api/data returns for the filter, following its cursors. */
async function allReadings(filter: string): Promise<WireReading[]> {
  const out: WireReading[] = [];
  let cursor: string | null = null;
  do {
    const page: { data: WireReading[]; next_cursor: string | null } = await getJson(
      `/api/data?${filter}&limit=10000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`,
    );
    out.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor !== null);
  return out;
}

/** Waits for `check` to hold, polling (for work that happens in the background). */
async function eventually<T>(
  what: string,
  get: () => Promise<T>,
  check: (value: T) => boolean,
): Promise<T> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const value = await get();
    if (check(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting for ${what}`);
}

beforeAll(async () => {
  mkdirSync(path.join(dist, 'assets'), { recursive: true });
  writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>Canopy test build</title>');
  writeFileSync(path.join(dist, 'assets', 'index-abc123.js'), 'export {};');
  writeFileSync(path.join(work, 'secret.txt'), 'outside the dist folder');
  plantsServer = await startPlantsServer({
    count: 3,
    clock: plantsClock,
    // Plant 2 reports its temperature as text: that measure is rejected, its moisture kept.
    faultyIds: {
      notFound: [],
      flaky: [],
      negativeMoisture: [],
      stringTemperature: [2],
      missingRecording: [],
    },
  });
  app = await startTestApp(overrides(plantsServer.url, dist));
  base = `http://127.0.0.1:${app.httpPort}`;
}, 60_000);

afterAll(async () => {
  await app?.dispose();
  if (plantsOpen) await plantsServer?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('the dashboard API of a running Canopy', () => {
  it('streams stats, the readings just committed and alert changes to an HTTP client', async () => {
    const res = await fetch(`${base}/api/live`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events = new EventReader(res.body!.getReader());
    const first = await events.next<{ readingsPerSecond: unknown; openAlerts: unknown }>('stats');
    expect(typeof first?.readingsPerSecond).toBe('number');
    expect(Object.keys(first!.openAlerts as object)).toEqual(['critical', 'warning', 'info']);

    const now = Date.now();
    await post([
      {
        sensor_id: 'live-1',
        sensor_type: 'temperature',
        location: 'kew/floor-1/zone-a',
        value: 21.5,
        timestamp: now,
      },
      {
        sensor_id: 'live-2',
        sensor_type: 'temperature',
        location: 'kew/floor-1/zone-b',
        value: 19,
        timestamp: now,
      },
    ]);
    // The plants polled at start have readings events of their own: wait for this batch's.
    const batch = await events.next<{ sensor_id: string; value: number; timestamp: string }[]>(
      'readings',
      (b) => b.some((r) => r.sensor_id === 'live-1'),
    );
    expect(batch).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          sensor_id: 'live-1',
          value: 21.5,
          timestamp: new Date(now).toISOString(),
        }),
        expect.objectContaining({ sensor_id: 'live-2', value: 19 }),
      ]),
    );
    // Counted once its second is over: a later stats event shows the rate and both sensors.
    const stats = await events.next<{ readingsPerSecond: number; activeSensors: number }>('stats');
    const later = stats!.readingsPerSecond > 0 ? stats : await events.next<typeof stats>('stats');
    expect(later!.readingsPerSecond).toBeGreaterThan(0);
    expect(later!.activeSensors).toBeGreaterThanOrEqual(2);

    // A dry bed in the conservatory opens the starter rule's critical alert.
    await post([
      {
        sensor_id: 'bed-1',
        sensor_type: 'soil_moisture',
        location: 'conservatory',
        value: 12,
        timestamp: now,
      },
    ]);
    // The plants polled at start may open alerts of their own: wait for this bed's.
    const alert = await events.next<{
      id: string;
      sensor_id: string;
      rule_id: string;
      severity: string;
      state: string;
    }>('alert', (a) => a.sensor_id === 'bed-1');
    expect(alert).toMatchObject({
      rule_id: 'conservatory-soil-moisture',
      severity: 'critical',
      state: 'open',
    });
    const stored = await getJson<{ alert: unknown }>(`/api/alerts/${alert!.id}`);
    expect(alert).toEqual(stored.alert);
    await events.cancel();
  });

  it('downsamples a type’s series exactly as the raw readings of GET /api/data say', async () => {
    const end = Date.now() - MINUTE;
    const readings = ['trend-1', 'trend-2', 'trend-3'].flatMap((id, k) =>
      Array.from({ length: 1_500 }, (_, i) => ({
        sensor_id: id,
        sensor_type: 'humidity',
        location: 'kew/floor-3',
        value: 40 + k + Math.round(Math.cos(i / 25) * 500) / 100,
        timestamp: end - (1_500 - i) * 1_000,
      })),
    );
    await post(readings);
    const from = end - 30 * MINUTE;
    const to = end;
    // The oracle: every raw reading of the range from GET /api/data, bucketed here.
    const raw = await allReadings(
      `sensor_type=humidity&location=kew/floor-3&from=${from}&to=${to}`,
    );
    expect(raw).toHaveLength(3 * 1_500);
    const series = () =>
      getJson<{
        bucketMs: number;
        downsampled: boolean;
        series: { sensor_id: string; unit: string | null; points: Point[] }[];
      }>(`/api/series?type=humidity&location=kew/floor-3&from=${from}&to=${to}&points=100`);
    // Before an export the hot store answers alone; after one, bronze does with the hot store.
    const before = await series();
    await app.housekeeping.runOnce();
    const after = await series();
    for (const body of [before, after]) {
      expect(body.downsampled).toBe(true);
      expect(body.bucketMs).toBe(18_000);
      expect(body.series.map((s) => [s.sensor_id, s.unit])).toEqual([
        ['trend-1', '%'],
        ['trend-2', '%'],
        ['trend-3', '%'],
      ]);
      for (const one of body.series) {
        const buckets = new Map<number, number[]>();
        for (const r of raw.filter((x) => x.sensor_id === one.sensor_id)) {
          const start =
            from + Math.floor((Date.parse(r.timestamp) - from) / body.bucketMs) * body.bucketMs;
          buckets.set(start, [...(buckets.get(start) ?? []), r.value!]);
        }
        const expected = [...buckets.entries()].sort(([a], [b]) => a - b);
        expect(one.points.map((p) => [p[0], p[2], p[3], p[4]])).toEqual(
          expected.map(([t, v]) => [t, Math.min(...v), Math.max(...v), 0]),
        );
        one.points.forEach((p, i) => {
          const values = expected[i]![1];
          expect(p[1]).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 9);
        });
      }
    }
  });

  it('reads a range older than the hot window from the lake, after the readings left the hot store', async () => {
    const start = Date.now() - 3 * HOUR;
    const old = Array.from({ length: 240 }, (_, i) => ({
      sensor_id: 'old-1',
      sensor_type: 'pressure',
      location: 'kew/floor-1/zone-a',
      value: 1000 + (i % 13),
      timestamp: start + i * 15_000,
    }));
    await post(old);
    await app.housekeeping.runOnce(); // bronze export, then the 1 h hot window is purged
    expect(await allReadings('sensor_id=old-1')).toEqual([]);
    const lake = createObjectStore(app.config.lake, app.config.dataDir);
    try {
      await new LakeJobs({
        config: app.config,
        lake,
        clock: systemClock,
        logger: silentLogger(),
      }).silver();
    } finally {
      lake.close();
    }
    const from = start;
    const to = start + HOUR;
    const body = await getJson<{ downsampled: boolean; series: { points: Point[] }[] }>(
      `/api/series?sensor=old-1&from=${from}&to=${to}`,
    );
    expect(body.downsampled).toBe(false);
    expect(body.series[0]!.points).toEqual(
      old.map((r) => [r.timestamp, r.value, r.value, r.value, 0]),
    );
  });

  it('maps the latest value of a measure onto site, floor and zone', async () => {
    const body = await getJson<{
      measure: string;
      cells: {
        location: string;
        site: string;
        floor: string;
        zone: string | null;
        value: number;
        sensors: string[];
      }[];
    }>('/api/locations?measure=temperature');
    expect(body.cells.filter((c) => c.location.startsWith('kew/'))).toEqual([
      expect.objectContaining({
        location: 'kew/floor-1/zone-a',
        site: 'kew',
        floor: 'floor-1',
        zone: 'zone-a',
        value: 21.5,
        sensors: ['live-1'],
      }),
      expect.objectContaining({
        location: 'kew/floor-1/zone-b',
        zone: 'zone-b',
        value: 19,
        sensors: ['live-2'],
      }),
    ]);
  });

  it('lists anomalies flagged on arrival once they are exported, and dead letters by reason', async () => {
    const now = Date.now();
    await post([
      {
        sensor_id: 'hot-1',
        sensor_type: 'temperature',
        location: 'kew/floor-1/zone-a',
        value: 500,
        timestamp: now,
      },
    ]);
    const bad = await fetch(`${base}/api/data`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"sensor_id": ',
    });
    expect(bad.status).toBe(400);
    await app.housekeeping.runOnce();

    const anomalies = await getJson<{
      items: { sensor_id: string; value: number; reasons: string[] }[];
      reasons: string[];
    }>('/api/anomalies?sensor=hot-1');
    expect(anomalies.items).toEqual([
      expect.objectContaining({
        sensor_id: 'hot-1',
        value: 500,
        timestamp: new Date(now).toISOString(),
        reasons: ['range'],
      }),
    ]);
    expect(anomalies.reasons).toEqual(['range']);

    const pipeline = await getJson<{
      ingest: { perMinute: [number, number][] };
      deadLetters: { byReason: { reason: string; count: number }[]; total: number };
      lake: { partitions: { table: string }[] };
      workflows: { enabled: boolean };
    }>('/api/pipeline');
    expect(pipeline.deadLetters.byReason).toContainEqual({ reason: 'INVALID_JSON', count: 1 });
    expect(pipeline.deadLetters.total).toBe(
      pipeline.deadLetters.byReason.reduce((n, r) => n + r.count, 0),
    );
    const tables = new Set(pipeline.lake.partitions.map((p) => p.table));
    expect([...tables]).toEqual(expect.arrayContaining(['bronze/readings', 'silver/readings']));
    expect(pipeline.workflows.enabled).toBe(false);
    // Every reading this process committed was in the last hour: the history adds up to the counter.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const accepted = [
      ...metrics.matchAll(/^canopy_readings_accepted_total\{[^}]*\} (\d+)$/gm),
    ].reduce((n, m) => n + Number(m[1]), 0);
    expect(pipeline.ingest.perMinute.reduce((n, [, count]) => n + count, 0)).toBe(accepted);
  });

  it('shows each polled plant with its name, botanist and watering, and only accepted measures', async () => {
    const answers = await Promise.all(
      [1, 2, 3].map(
        async (id) =>
          (await (await fetch(`${plantsServer.url}/plants/${id}`)).json()) as PlantRecording,
      ),
    );
    const body = await eventually(
      'the first poll round',
      () =>
        getJson<{
          plants: {
            plant_id: string;
            name: string | null;
            soil_moisture: number | null;
            temperature: number | null;
          }[];
        }>('/api/plants'),
      (b) => b.plants.length === 3 && b.plants.every((p) => p.soil_moisture !== null),
    );
    expect(body.plants).toEqual(
      answers.map((a) => ({
        plant_id: String(a.plant_id),
        sensor_id: `plant-${a.plant_id}`,
        sensors: {
          soil_moisture: `plant-${a.plant_id}.soil_moisture`,
          temperature: `plant-${a.plant_id}.temperature`,
        },
        name: a.name,
        location: 'conservatory',
        soil_moisture: a.soil_moisture,
        temperature: a.plant_id === 2 ? null : a.temperature,
        last_watered: new Date(a.last_watered).toISOString(),
        botanist: a.botanist,
        recorded_at: new Date(a.recording_taken).toISOString(),
      })),
    );
    expect(typeof answers[1]!.temperature).toBe('string');
  });

  it('serves the built app with the right cache headers and never a file outside it', async () => {
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(await index.text()).toContain('Canopy test build');
    const route = await fetch(`${base}/plants/7`);
    expect(await route.text()).toContain('Canopy test build');
    const asset = await fetch(`${base}/assets/index-abc123.js`);
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${base}/assets/index-old999.js`)).status).toBe(404);

    // fetch would normalise `..` away; a raw request line keeps it.
    for (const rawPath of [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/assets/%2e%2e/%2e%2e/secret.txt',
    ]) {
      const { status, body } = await new Promise<{ status: number; body: string }>(
        (resolve, reject) => {
          const req = httpRequest(
            { host: '127.0.0.1', port: app.httpPort!, path: rawPath },
            (res) => {
              let text = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => (text += chunk));
              res.on('end', () => resolve({ status: res.statusCode!, body: text }));
            },
          );
          req.on('error', reject);
          req.end();
        },
      );
      expect(status, rawPath).toBe(404);
      expect(body).not.toContain('outside the dist folder');
    }
  });

  it('keeps plants across a restart, stops with a live client connected, and answers 503 without a build', async () => {
    const res = await fetch(`${base}/api/live`);
    const events = new EventReader(res.body!.getReader());
    await events.next('stats');
    await app.stop(); // would hang if the stream were left open
    expect(await events.next('stats')).toBeNull();

    const before = plantsServer;
    await before.close(); // the restarted Canopy cannot poll: names come from the directory file
    plantsOpen = false;
    app = await startTestApp(overrides(before.url, path.join(work, 'missing-dist')), app.dataDir);
    base = `http://127.0.0.1:${app.httpPort}`;
    const plants = await getJson<{ plants: { plant_id: string; name: string | null }[] }>(
      '/api/plants',
    );
    expect(plants.plants.map((p) => [p.plant_id, p.name !== null])).toEqual([
      ['1', true],
      ['2', true],
      ['3', true],
    ]);

    const page = await fetch(`${base}/`);
    expect(page.status).toBe(503);
    expect(await page.text()).toContain('Dashboard not built: run npm run build:web');
    expect((await fetch(`${base}/api/overview`)).status).toBe(200);
  });
});
