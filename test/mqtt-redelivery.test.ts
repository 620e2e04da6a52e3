/**
 * Exactly-once storage of QoS 1 redeliveries by the MQTT client source, with
 * the real pipeline and DuckDB hot store, against the machine's Mosquitto: a
 * message is committed, its PUBACK is lost (the sink fails after the commit,
 * as a crash between commit and PUBACK would), the broker delivers it
 * again, and the store holds its readings once.
 */
import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestMessage, IngestResult, IngestSink } from '../src/core/ingest.js';
import { systemClock } from '../src/core/clock.js';
import { loadConfig } from '../src/config/load.js';
import { silentLogger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { createPipeline, type IngestPipeline } from '../src/runtime/pipeline.js';
import { DuckDbHotStore } from '../src/storage/index.js';
import { MqttClientSource } from '../src/sources/mqtt-client.js';
import { storedCounts, waitFor } from './helpers/faults.js';
import { serviceForTests } from './helpers/services.js';

const hasMosquitto = await serviceForTests('Mosquitto', 1883);

/**
 * Commits through the pipeline; the first submit of each key then fails, so
 * the peer gets no PUBACK although the readings are stored.
 */
class LosesFirstPuback implements IngestSink {
  readonly results: IngestResult[] = [];
  private readonly failed = new Set<string>();
  constructor(private readonly inner: IngestSink) {}
  async submit(message: IngestMessage): Promise<IngestResult> {
    const result = await this.inner.submit(message);
    this.results.push(result);
    const key = message.idempotencyKey ?? '';
    if (!this.failed.has(key)) {
      this.failed.add(key);
      throw new Error('connection lost after the commit, before the PUBACK');
    }
    return result;
  }
  submitDeadLetter(deadLetter: Parameters<IngestSink['submitDeadLetter']>[0]): Promise<void> {
    return this.inner.submitDeadLetter(deadLetter);
  }
}

const store = new DuckDbHotStore({ path: ':memory:' });
let pipeline: IngestPipeline;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  await store.open();
  const config = loadConfig({ env: {} }).config;
  pipeline = await createPipeline(config, store, {
    clock: systemClock,
    metrics: new Metrics({ defaultMetrics: false }),
    logger: silentLogger(),
  });
});

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await store.close();
});

const reading = (sensorId: string, value: number): string =>
  JSON.stringify({ sensor_id: sensorId, value, timestamp: Date.now() - 60_000 });

/** A client source with a persistent session on a topic of its own, and a publisher to it. */
async function subscribed(
  sink: IngestSink,
): Promise<{ publish: (sensorId: string, payload: string) => Promise<void> }> {
  const prefix = `canopy-test/${randomUUID()}`;
  const source = new MqttClientSource({
    url: 'mqtt://127.0.0.1:1883',
    clientId: `canopy-test-redelivery-${prefix.slice(12, 20)}`,
    topics: [`${prefix}/#`],
    cleanSession: false,
    sessionExpirySeconds: 60,
    sink,
    logger: silentLogger(),
  });
  cleanups.push(() => source.stop());
  await source.start();
  const publisher = await mqtt.connectAsync('mqtt://127.0.0.1:1883', {
    clientId: `test-pub-${randomUUID()}`,
  });
  cleanups.push(() => publisher.endAsync());
  return {
    publish: async (sensorId, payload) => {
      await publisher.publishAsync(`${prefix}/${sensorId}`, payload, { qos: 1 });
    },
  };
}

describe.runIf(hasMosquitto)('MQTT QoS 1 redeliveries to the client source are stored once', () => {
  it('Mosquitto redelivering a message Canopy committed but did not PUBACK', async () => {
    const sink = new LosesFirstPuback(pipeline);
    const { publish } = await subscribed(sink);
    const sensorId = `redeliver-client-${randomUUID().slice(0, 8)}`;
    await publish(sensorId, reading(sensorId, 3));

    await waitFor('the redelivery', () => sink.results.length >= 2);
    expect(sink.results.map((r) => r.duplicate === true)).toEqual([false, true]);
    expect(sink.results[1]!.batchId).toBe(sink.results[0]!.batchId);
    expect([...(await storedCounts(store, sensorId))]).toEqual([[3, 1]]);
  });

  it('keys by content: same bytes store once, other bytes with the same reading store again', async () => {
    const results: IngestResult[] = [];
    const { publish } = await subscribed({
      submit: async (m) => {
        const result = await pipeline.submit(m);
        results.push(result);
        return result;
      },
      submitDeadLetter: (d) => pipeline.submitDeadLetter(d),
    });
    const sensorId = `content-${randomUUID().slice(0, 8)}`;
    const payload = reading(sensorId, 5);
    await publish(sensorId, payload);
    await publish(sensorId, payload);
    await waitFor('both copies handled', () => results.length >= 2);
    expect([...(await storedCounts(store, sensorId))]).toEqual([[5, 1]]);

    // Different bytes are a different message: the hot store keeps both rows, and
    // silver's dedup on (sensor_id, event_time) keeps one (DESIGN.md §2).
    await publish(sensorId, `${payload}\n`);
    await waitFor('the third message handled', () => results.length >= 3);
    expect([...(await storedCounts(store, sensorId))]).toEqual([[5, 2]]);
  });

  it('a payload without timestamps stores no reading; delivered twice it is dead-lettered once', async () => {
    const sink = new LosesFirstPuback(pipeline);
    const { publish } = await subscribed(sink);
    const sensorId = `no-time-${randomUUID().slice(0, 8)}`;
    const payload = JSON.stringify({ sensor_id: sensorId, value: 1 });
    await publish(sensorId, payload);
    await waitFor('the redelivery', () => sink.results.length >= 2);

    // Every reading needs its own event time, so no receive-time reading can collapse.
    expect(sink.results[0]!.accepted).toBe(0);
    expect(sink.results[0]!.rejected.map((r) => r.reason)).toEqual(['MISSING_TIMESTAMP']);
    expect(sink.results[1]!.duplicate).toBe(true);
    expect((await storedCounts(store, sensorId)).size).toBe(0);
    const deadLetters = await store.listDeadLetters({ source: 'mqtt-client', limit: 1000 });
    expect(deadLetters.items.filter((d) => d.raw === payload)).toHaveLength(1);
  });
});
