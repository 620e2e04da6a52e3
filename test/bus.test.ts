/**
 * A whole Canopy with `bus.kind: nats` against the machine's NATS JetStream:
 * sources publish to the bus and acknowledge after its durable accept, a
 * consumer feeds the pipeline, and every reading is stored once — also when
 * a commit fails and the bus delivers the batch again.
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../src/bus/bus.conformance.js';
import type { StoredReading } from '../src/core/reading.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { serviceForTests } from './helpers/services.js';

const nats = await serviceForTests('NATS', 4222);

const apps: TestApp[] = [];
const streams: string[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.dispose();
  const nc = await connect({ servers: ['nats://127.0.0.1:4222'] });
  const jsm = await jetstreamManager(nc);
  for (const stream of streams.splice(0)) await jsm.streams.delete(stream);
  await nc.close();
});

async function natsApp(): Promise<TestApp> {
  const id = randomBytes(5).toString('hex');
  const stream = `CANOPY_APP_${id}`;
  streams.push(stream);
  const app = await startTestApp({
    alerting: { enabled: false },
    workflows: { enabled: false },
    landing: { enabled: false },
    bus: {
      kind: 'nats',
      partitions: 4,
      nats: { stream, subjectPrefix: `canopy-app.${id}`, consumer: `canopy-app-${id}` },
    },
  });
  apps.push(app);
  return app;
}

async function stored(app: TestApp, sensorId: string): Promise<StoredReading[]> {
  return (await app.store.queryReadings({ sensorId, limit: 10_000 })).items;
}

async function metric(app: TestApp, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${app.httpPort}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' '))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

if (nats) {
  describe('Canopy with a NATS bus', () => {
    it('stores HTTP and MQTT readings through the bus, answering HTTP from its own validation', async () => {
      const app = await natsApp();
      const t = Date.now() - 60_000;
      const response = await fetch(`http://127.0.0.1:${app.httpPort}/api/data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([
          { sensor_id: 'bus-http', value: 1, timestamp: t },
          { sensor_id: 'bus-http', value: 2, timestamp: t + 1 },
          { sensor_id: 'bus-http', value: 'warm', timestamp: t + 2 },
        ]),
      });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { accepted: number; rejected: { reason: string }[] };
      expect(body.accepted).toBe(2);
      expect(body.rejected.map((r) => r.reason)).toEqual(['INVALID_VALUE']);

      const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.mqttPort}`, {
        clientId: `bus-test-${randomBytes(3).toString('hex')}`,
      });
      for (let i = 0; i < 20; i++)
        await client.publishAsync(
          'sensors/bus-mqtt',
          JSON.stringify({ sensor_id: 'bus-mqtt', value: i, timestamp: t + i }),
          { qos: 1 },
        );
      await client.endAsync();

      await until(async () => (await stored(app, 'bus-http')).length === 2, '2 HTTP readings');
      await until(async () => (await stored(app, 'bus-mqtt')).length === 20, '20 MQTT readings');
      expect((await stored(app, 'bus-mqtt')).map((r) => r.value).sort((a, b) => a! - b!)).toEqual(
        Array.from({ length: 20 }, (_, i) => i),
      );
      // The bad record went to the dead-letter store on the process side.
      await until(async () => (await app.store.countDeadLetters()) === 1, 'one dead letter');
      await until(async () => (await metric(app, 'canopy_bus_lag_messages')) === 0, 'no lag');
      expect(await metric(app, 'canopy_bus_published_total')).toBe(21);
      const ready = (await (await fetch(`http://127.0.0.1:${app.httpPort}/readyz`)).json()) as {
        checks: { name: string; ok: boolean }[];
      };
      expect(ready.checks).toContainEqual({ name: 'bus', ok: true });
    });

    it('stores a batch once when its first commit failed and the bus delivered it again', async () => {
      const app = await natsApp();
      const store = app.store;
      const append = store.append.bind(store);
      let failures = 0;
      store.append = (...args) => {
        if (failures++ === 0) return Promise.reject(new Error('disk full'));
        return append(...args);
      };
      const t = Date.now() - 60_000;
      for (let batch = 0; batch < 5; batch++) {
        const response = await fetch(`http://127.0.0.1:${app.httpPort}/api/data`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-ndjson' },
          body: Array.from({ length: 10 }, (_, i) =>
            JSON.stringify({
              sensor_id: 'bus-retry',
              value: batch * 10 + i,
              timestamp: t + batch * 10 + i,
            }),
          ).join('\n'),
        });
        expect(response.status).toBe(200);
      }
      await until(async () => (await stored(app, 'bus-retry')).length >= 50, '50 readings');
      await until(async () => (await metric(app, 'canopy_bus_lag_messages')) === 0, 'no lag');
      const values = (await stored(app, 'bus-retry')).map((r) => r.value!);
      expect(values.sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
      expect(failures).toBeGreaterThan(1);
      expect(await metric(app, 'canopy_bus_redelivered_total')).toBeGreaterThan(0);
    });
  });
}

describe('Canopy with the default bus', () => {
  it('puts no bus between sources and the pipeline, and has no bus readiness check', async () => {
    const app = await startTestApp({ alerting: { enabled: false }, workflows: { enabled: false } });
    apps.push(app);
    const ready = (await (await fetch(`http://127.0.0.1:${app.httpPort}/readyz`)).json()) as {
      checks: { name: string }[];
    };
    expect(ready.checks.map((c) => c.name)).not.toContain('bus');
    expect(await metric(app, 'canopy_bus_published_total')).toBe(0);
  });
});
