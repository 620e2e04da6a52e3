/**
 * The first path a user runs: simulated sensors → MQTT (embedded broker, or
 * Mosquitto through the MQTT client source) → validation, stream checks →
 * hot store → GET /api/data; and polled plant endpoints → hot store.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/observability/logger.js';
import { runSimulator, startPlantsServer, type SimulatorTarget } from '../src/simulator/index.js';
import { HttpPollSource } from '../src/sources/http-poll.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { serviceForTests } from './helpers/services.js';

interface WireRow {
  sensor_id: string;
  sensor_type: string;
  timestamp: string;
  value: number | null;
  anomaly_score: number | null;
  is_anomaly: boolean;
  anomaly_reasons: string[];
  source: string;
  location: string | null;
}

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.dispose();
});

async function allReadings(app: TestApp, query = ''): Promise<WireRow[]> {
  const rows: WireRow[] = [];
  let cursor: string | null = null;
  do {
    const url: string = `/api/data?limit=10000${query}${cursor ? `&cursor=${cursor}` : ''}`;
    const res = await app.api.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(200);
    const page = res.json<{ data: WireRow[]; next_cursor: string | null }>();
    rows.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor);
  return rows;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function simulateBatch(target: SimulatorTarget, count: number): Promise<number> {
  const run = runSimulator(
    { mode: 'batch', target, count, seed: 7, sensors: 50 },
    { clock: systemClock, logger: silentLogger() },
  );
  await run.done;
  const stats = run.stats();
  expect(stats).toMatchObject({ failed: 0, error: null });
  return stats.sent;
}

function checkFlags(rows: WireRow[]): void {
  for (const row of rows) {
    if (row.anomaly_score !== null && row.anomaly_score > 0.5)
      expect(row.anomaly_reasons).toContain('device');
    expect(row.is_anomaly).toBe(row.anomaly_reasons.length > 0);
  }
}

describe('simulator → embedded MQTT broker → hot store → API', () => {
  it('stores every acknowledged reading, flagged, and serves it', async () => {
    const app = await startTestApp();
    apps.push(app);
    const sent = await simulateBatch(
      {
        kind: 'mqtt',
        url: `mqtt://127.0.0.1:${app.mqttPort}`,
        topic: 'iot/data',
        readingsPerMessage: 5,
      },
      1_000,
    );
    expect(sent).toBe(1_000);

    const rows = await allReadings(app);
    expect(rows).toHaveLength(sent);
    expect(new Set(rows.map((r) => `${r.sensor_id}@${r.timestamp}`)).size).toBe(sent);
    expect(rows.every((r) => r.source === 'mqtt')).toBe(true);
    checkFlags(rows);
    // Injected spikes beyond the physical range are caught by the range check.
    expect(rows.some((r) => r.anomaly_reasons.includes('range'))).toBe(true);

    const sensors = (await app.api.inject({ method: 'GET', url: '/api/sensors' })).json<{
      data: { sensor_id: string; origin: string; reading_count: number }[];
    }>();
    expect(sensors.data).toHaveLength(50);
    expect(sensors.data.every((s) => s.origin === 'discovered')).toBe(true);
    expect(sensors.data.reduce((n, s) => n + s.reading_count, 0)).toBe(sent);

    const temperature = await allReadings(app, '&sensor_type=temperature');
    expect(temperature.length).toBe(rows.filter((r) => r.sensor_type === 'temperature').length);
  });

  it('answers /metrics with the ingest counters', async () => {
    const app = await startTestApp();
    apps.push(app);
    await simulateBatch(
      { kind: 'http', url: `http://127.0.0.1:${app.httpPort}/api/data`, batchSize: 100 },
      300,
    );
    const metrics = (await app.api.inject({ method: 'GET', url: '/metrics' })).body;
    const acceptedOverHttp = [
      ...metrics.matchAll(
        /^canopy_readings_accepted_total\{source="http",sensor_type="\w+"\} (\d+)$/gm,
      ),
    ].reduce((sum, m) => sum + Number(m[1]), 0);
    expect(acceptedOverHttp).toBe(300);
    expect(metrics).toMatch(/^canopy_hot_store_rows 300$/m);
    expect((await app.api.inject({ method: 'GET', url: '/healthz' })).json()).toEqual({
      status: 'ok',
    });
  });
});

describe.runIf(await serviceForTests('Mosquitto', 1883))(
  'simulator → Mosquitto → MQTT client source → hot store',
  () => {
    it('subscribes with QoS 1 and stores every reading published to the broker', async () => {
      const topic = `canopy-test/${randomUUID()}/data`;
      const app = await startTestApp({
        mqtt: {
          embedded: { enabled: false },
          client: {
            enabled: true,
            url: 'mqtt://127.0.0.1:1883',
            clientId: `canopy-test-${randomUUID()}`,
            topics: [topic],
            cleanSession: true,
          },
        },
      });
      apps.push(app);
      const sent = await simulateBatch(
        { kind: 'mqtt', url: 'mqtt://127.0.0.1:1883', topic, readingsPerMessage: 10 },
        500,
      );
      await eventually(async () => (await app.store.countReadings()) >= sent);
      const rows = await allReadings(app);
      expect(rows).toHaveLength(sent);
      expect(rows.every((r) => r.source === 'mqtt-client')).toBe(true);
      checkFlags(rows);
    });
  },
);

describe('plants API → HTTP poll source → hot store', () => {
  it('stores good plant readings and dead-letters each faulty endpoint with its reason', async () => {
    const app = await startTestApp();
    apps.push(app);
    // An odd minute, so the flaky plant answers; a minute ago so nothing is in the future.
    const clock = new ManualClock((Math.floor(Date.now() / 120_000) * 2 - 1) * 60_000);
    const plants = await startPlantsServer({ count: 50, seed: 3, clock });
    try {
      const source = new HttpPollSource({
        name: 'plants',
        urlTemplate: `${plants.url}/plants/{id}`,
        ids: Array.from({ length: 50 }, (_, i) => i + 1),
        format: 'plants',
        intervalMs: 60_000,
        timeoutMs: 2_000,
        concurrency: 8,
        retries: 1,
        retryDelayMs: 10,
        sink: app.pipeline,
        logger: silentLogger(),
        metrics: app.metrics,
      });
      const report = await source.pollOnce();
      const f = plants.faultyIds;
      expect(report).toEqual({
        ok: 50 - f.notFound.length,
        httpErrors: f.notFound.length,
        failed: 0,
      });

      const rows = await allReadings(app, '&location=conservatory');
      // Every answering plant gives two readings, except a missing recording time (none)
      // and a string temperature (moisture only).
      expect(rows).toHaveLength(
        2 * (50 - f.notFound.length - f.missingRecording.length) - f.stringTemperature.length,
      );
      for (const id of f.negativeMoisture) {
        expect(
          rows.find((r) => r.sensor_id === `plant-${id}.soil_moisture`)?.anomaly_reasons,
        ).toContain('range');
      }
      const letters = (
        await app.api.inject({ method: 'GET', url: '/api/deadletters?source=poll:plants' })
      ).json<{ data: { reason: string; origin: string }[] }>();
      const byReason = (reason: string): string[] =>
        letters.data.filter((d) => d.reason === reason).map((d) => d.origin);
      expect(byReason('POLL_HTTP_ERROR').sort()).toEqual(
        f.notFound.map((id) => `${plants.url}/plants/${id}`).sort(),
      );
      expect(byReason('MISSING_TIMESTAMP')).toHaveLength(f.missingRecording.length);
      expect(byReason('INVALID_VALUE')).toHaveLength(f.stringTemperature.length);
    } finally {
      await plants.close();
    }
  });

  it('reports an unreachable endpoint as POLL_FAILED after its retries', async () => {
    const app = await startTestApp();
    apps.push(app);
    const source = new HttpPollSource({
      name: 'nowhere',
      urlTemplate: 'http://127.0.0.1:9/x/{id}',
      ids: ['a'],
      format: 'json',
      intervalMs: 60_000,
      timeoutMs: 500,
      concurrency: 1,
      retries: 2,
      retryDelayMs: 5,
      sink: app.pipeline,
      logger: silentLogger(),
      metrics: app.metrics,
    });
    expect(await source.pollOnce()).toEqual({ ok: 0, httpErrors: 0, failed: 1 });
    const letters = (
      await app.api.inject({ method: 'GET', url: '/api/deadletters?reason=POLL_FAILED' })
    ).json<{ data: { message: string }[] }>();
    expect(letters.data[0]?.message).toMatch(/after 3 attempts/);
  });

  it('runs configured polling sources on start (npm start wires the plants this way)', async () => {
    const plants = await startPlantsServer({
      count: 5,
      seed: 1,
      clock: systemClock,
      faultyIds: {
        notFound: [],
        flaky: [],
        negativeMoisture: [],
        stringTemperature: [],
        missingRecording: [],
      },
    });
    try {
      const app = await startTestApp({
        poll: [
          {
            name: 'plants',
            urlTemplate: `${plants.url}/plants/{id}`,
            ids: [1, 2, 3, 4, 5],
            format: 'plants',
          },
        ],
      });
      apps.push(app);
      await eventually(async () => (await app.store.countReadings()) === 10);
      expect((await allReadings(app)).every((r) => r.source === 'poll:plants')).toBe(true);
    } finally {
      await plants.close();
    }
  });
});
