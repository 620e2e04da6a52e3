/**
 * Limits against hostile or runaway clients, end to end over real HTTP and
 * MQTT connections: the API's rate limit per API key (auth required) and per
 * address (auth off), the embedded broker's publish rate limit per client id,
 * and the cap on distinct sensor ids.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { runCanopy } from './helpers/cli.js';

const START = Date.UTC(2026, 10, 30, 12, 0, 0);

async function get(
  app: TestApp,
  url: string,
  key?: string,
): Promise<{ status: number; code: unknown; retryAfter: string | null }> {
  const res = await fetch(`http://127.0.0.1:${app.httpPort}${url}`, {
    headers: key === undefined ? {} : { authorization: `Bearer ${key}` },
  });
  const body = (await res.json()) as { error?: { code?: unknown } };
  return { status: res.status, code: body.error?.code, retryAfter: res.headers.get('retry-after') };
}

/** A counter's value, read from the registry (an HTTP scrape would count against the limit). */
async function counter(app: TestApp, name: string): Promise<number> {
  const metric = await app.metrics.registry.getSingleMetric(name)?.get();
  return metric?.values[0]?.value ?? 0;
}

function reading(sensorId: string, value: number): string {
  return JSON.stringify({ sensor_id: sensorId, value, timestamp: START });
}

describe('HTTP rate limit per API key (auth required)', () => {
  let app: TestApp;
  let adminKey: string;

  beforeAll(async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-ratelimit-'));
    const created = await runCanopy(
      ['keys', 'create', '--name', 'bootstrap', '--scopes', 'admin'],
      { CANOPY_DATA_DIR: dataDir },
    );
    expect(created.code).toBe(0);
    adminKey = created.stdout.trim();
    app = await startTestApp(
      {
        workflows: { enabled: false },
        auth: { mode: 'required' },
        http: { rateLimit: { enabled: true, max: 4 } },
      },
      dataDir,
    );
  }, 60_000);

  afterAll(async () => {
    await app?.dispose();
  });

  async function createKey(name: string): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${app.httpPort}/api/keys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name, scopes: ['read'] }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { key: string }).key;
  }

  it('answers 429 with Retry-After to the key over its limit, and not to another key', async () => {
    const a = await createKey('a');
    const b = await createKey('b');
    const before = await counter(app, 'canopy_http_rate_limited_total');
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await get(app, '/api/sensors', a)).status);
    expect(statuses).toEqual([200, 200, 200, 200]);
    const over = await get(app, '/api/sensors', a);
    expect([over.status, over.code]).toEqual([429, 'CANOPY_API_RATE_LIMITED']);
    const retryAfter = Number(over.retryAfter);
    expect(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60).toBe(true);
    expect((await get(app, '/api/sensors', b)).status).toBe(200);
    // Probes are never limited, whoever calls.
    for (let i = 0; i < 6; i += 1) expect((await get(app, '/healthz')).status).toBe(200);
    expect(await counter(app, 'canopy_http_rate_limited_total')).toBe(before + 1);
  });
});

describe('limits with auth off: HTTP per address, MQTT per client id, sensor cap', () => {
  let app: TestApp;
  const clock = new ManualClock(START);
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    app = await startTestApp(
      {
        workflows: { enabled: false },
        alerting: { enabled: false },
        http: { rateLimit: { enabled: true, max: 3 } },
        mqtt: { embedded: { publishRateLimit: { enabled: true, perSecond: 1, burst: 3 } } },
        ingest: { maxSensors: 4 },
      },
      undefined,
      { clock },
    );
  }, 60_000);

  afterAll(async () => {
    for (const client of clients) await client.endAsync(true);
    await app?.dispose();
  });

  async function connect(clientId: string): Promise<MqttClient> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${app.mqttPort}`, {
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    return client;
  }

  async function values(sensorId: string): Promise<number[]> {
    const page = await app.store.queryReadings({ sensorId, limit: 100 });
    return page.items.map((r) => r.value as number).sort((x, y) => x - y);
  }

  it('limits HTTP requests per client address', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i += 1) statuses.push((await get(app, '/api/sensors')).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  it('refuses a publish over the client’s bucket without PUBACK, and not another client’s', async () => {
    const before = await counter(app, 'canopy_mqtt_publishes_rate_limited_total');
    const fast = await connect('fast');
    for (let i = 1; i <= 3; i += 1)
      await fast.publishAsync('iot/data', reading('m-fast', i), { qos: 1 });
    let acknowledged = false;
    const closed = new Promise<void>((resolve) => fast.once('close', () => resolve()));
    fast.publish('iot/data', reading('m-fast', 4), { qos: 1 }, (err) => {
      if (!err) acknowledged = true;
    });
    await closed;
    expect(acknowledged).toBe(false);
    expect(await values('m-fast')).toEqual([1, 2, 3]);
    expect(await counter(app, 'canopy_mqtt_publishes_rate_limited_total')).toBe(before + 1);

    const other = await connect('other');
    await other.publishAsync('iot/data', reading('m-other', 1), { qos: 1 });
    expect(await values('m-other')).toEqual([1]);

    // Reconnecting earns nothing; time does: one token per second.
    const again = await connect('fast');
    const closedAgain = new Promise<void>((resolve) => again.once('close', () => resolve()));
    again.publish('iot/data', reading('m-fast', 5), { qos: 1 });
    await closedAgain;
    clock.advance(1_000);
    const later = await connect('fast');
    await later.publishAsync('iot/data', reading('m-fast', 6), { qos: 1 });
    expect(await values('m-fast')).toEqual([1, 2, 3, 6]);
  });

  it('rejects readings of new sensors past ingest.maxSensors as TOO_MANY_SENSORS', async () => {
    // m-fast and m-other are registered already: two more fit.
    const payload = ['c-1', 'c-2', 'c-3', 'c-1', 'm-fast'].map(
      (id, i) => JSON.parse(reading(id, 10 + i)) as unknown,
    );
    const result = await app.pipeline.submit({
      source: 'http',
      payload: JSON.stringify(payload),
      format: 'json',
    });
    expect(result.accepted).toBe(4);
    expect(result.rejected.map((r) => r.reason)).toEqual(['TOO_MANY_SENSORS']);
    expect(result.rejected[0]!.message).toMatch(/c-3 is new and 4 distinct sensors/);
    const sensors = (await app.store.listSensors()).map((s) => s.sensorId).sort();
    expect(sensors).toEqual(['c-1', 'c-2', 'm-fast', 'm-other']);
  });
});
