import { describe, expect, it } from 'vitest';
import type { BusDelivery, BusMessage } from '../core/bus.js';
import { ManualClock } from '../core/clock.js';
import type { DeadLetter, IngestMessage, IngestResult, IngestSink } from '../core/ingest.js';
import { InProcessBus } from '../bus/in-process.js';
import { until } from '../bus/bus.conformance.js';
import { DEFAULT_LIMITS } from '../ingest/index.js';
import { silentLogger } from '../observability/logger.js';
import { BusIngestSink, consumeIntoPipeline, routingKey } from './bus.js';

const NOW = Date.parse('2026-11-30T12:00:00Z');

function bus(): InProcessBus {
  return new InProcessBus({
    partitions: 4,
    capacity: 100,
    maxInFlight: 10,
    maxBatch: 10,
    maxDeliver: 0,
    retryInitialMs: 1,
    retryMaxMs: 5,
    logger: silentLogger(),
  });
}

function sink(on: InProcessBus): BusIngestSink {
  return new BusIngestSink({
    bus: on,
    clock: new ManualClock(NOW),
    decode: { limits: DEFAULT_LIMITS },
    wideCsvMappings: {},
  });
}

/** Everything on the bus, taken by a consumer that acknowledges at once. */
async function drain(on: InProcessBus, count: number): Promise<BusMessage[]> {
  const got: BusMessage[] = [];
  const sub = await on.consume((batch) => {
    got.push(...batch.map((d) => d.message));
    return Promise.resolve();
  });
  await until(() => got.length >= count, `${count} messages`);
  await sub.stop();
  return got;
}

const reading = (id: string, value: unknown = 1) => ({
  sensor_id: id,
  value,
  timestamp: '2026-11-30T11:00:00Z',
});

describe('routingKey', () => {
  const message: IngestMessage = { source: 'mqtt', payload: '', origin: 'sensors/x' };
  const r = (sensorId: string) => ({ sensorId }) as Parameters<typeof routingKey>[1][number];
  it('is the sensor id when every reading has the same, else the origin, else the source', () => {
    expect(routingKey(message, [r('a'), r('a')])).toBe('a');
    expect(routingKey(message, [r('a'), r('b')])).toBe('sensors/x');
    expect(routingKey(message, [])).toBe('sensors/x');
    expect(routingKey({ source: 'http', payload: '' }, [r('a'), r('b')])).toBe('http');
  });
});

describe('BusIngestSink', () => {
  it('answers from its own validation and publishes the raw payload with its metadata', async () => {
    const on = bus();
    const payload = JSON.stringify([reading('s1'), reading('s1', 'warm')]);
    const result = await sink(on).submit({
      source: 'http',
      payload,
      contentType: 'application/json',
      origin: 'POST /api/data',
      idempotencyKey: 'http:abc',
    });
    expect(result.accepted).toBe(1);
    expect(result.rejected.map((r) => r.reason)).toEqual(['INVALID_VALUE']);
    const [published] = await drain(on, 1);
    expect(published).toEqual({
      key: 's1',
      source: 'http',
      payload: Buffer.from(payload),
      contentType: 'application/json',
      origin: 'POST /api/data',
      receivedAt: NOW,
      idempotencyKey: 'http:abc',
    });
    await on.close();
  });

  it('gives a message without a key one, the same on a retry of that message, another for the next', async () => {
    const on = bus();
    const s = sink(on);
    const message: IngestMessage = { source: 'mqtt', payload: JSON.stringify(reading('s2')) };
    await s.submit(message);
    await s.submit(message);
    await s.submit({ ...message });
    const keys = (await drain(on, 3)).map((m) => m.idempotencyKey!);
    expect(keys[0]).toMatch(/^bus:[0-9a-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
    expect(keys[2]).not.toBe(keys[0]);
    await on.close();
  });

  it('publishes a dead letter as a message marked deadLetter', async () => {
    const on = bus();
    await sink(on).submitDeadLetter({
      source: 'poll:plants',
      origin: 'http://127.0.0.1/plants/3',
      reason: 'POLL_HTTP_ERROR',
      message: 'answered 500',
      raw: 'Internal Server Error',
    });
    const [published] = await drain(on, 1);
    expect(published).toEqual({
      key: 'http://127.0.0.1/plants/3',
      source: 'poll:plants',
      origin: 'http://127.0.0.1/plants/3',
      payload: Buffer.from('Internal Server Error'),
      receivedAt: NOW,
      deadLetter: { reason: 'POLL_HTTP_ERROR', message: 'answered 500' },
    });
    await on.close();
  });
});

/** A pipeline stand-in that records calls and fails the submits it is told to, once each. */
class RecordingSink implements IngestSink {
  readonly submitted: IngestMessage[] = [];
  readonly deadLetters: Omit<DeadLetter, 'receivedAt'>[] = [];
  constructor(private readonly failOnce = new Set<string>()) {}
  submit(message: IngestMessage): Promise<IngestResult> {
    this.submitted.push(message);
    if (this.failOnce.delete(message.idempotencyKey ?? ''))
      return Promise.reject(new Error('commit failed'));
    return Promise.resolve({ batchId: 'b', accepted: 1, rejected: [] });
  }
  submitDeadLetter(deadLetter: Omit<DeadLetter, 'receivedAt'>): Promise<void> {
    this.deadLetters.push(deadLetter);
    return Promise.resolve();
  }
}

describe('consumeIntoPipeline', () => {
  it('submits messages, records dead letters and unreadable bytes, and retries a failed batch whole', async () => {
    const on = bus();
    const pipeline = new RecordingSink(new Set(['k2']));
    const message = (key: string): BusMessage => ({
      key: 'same',
      source: 'mqtt',
      payload: Buffer.from(key),
      receivedAt: 5,
      origin: 'sensors/same',
      idempotencyKey: key,
    });
    await on.publish([
      message('k1'),
      message('k2'),
      { ...message('k3'), deadLetter: { reason: 'POLL_FAILED', message: 'timeout' } },
    ]);
    const sub = await consumeIntoPipeline(on, pipeline);
    await until(async () => (await on.lag()) === 0, 'all acknowledged');
    await sub.stop();
    // k1 and k2 went in together, k2 failed, and the batch came again whole.
    expect(pipeline.submitted.map((m) => m.idempotencyKey)).toEqual(['k1', 'k2', 'k1', 'k2']);
    expect(pipeline.submitted[0]).toEqual({
      source: 'mqtt',
      payload: Buffer.from('k1'),
      receivedAt: 5,
      origin: 'sensors/same',
      idempotencyKey: 'k1',
    });
    expect(pipeline.deadLetters.map((d) => [d.reason, d.raw])).toEqual([
      ['POLL_FAILED', 'k3'],
      ['POLL_FAILED', 'k3'],
    ]);
    await on.close();

    // Bytes that were not a bus frame become a BUS_MESSAGE_UNREADABLE dead letter, base64.
    const unreadable = new RecordingSink();
    const delivery: BusDelivery = {
      message: { key: 'x', source: 'bus', payload: Buffer.from([0xff, 0x00]), receivedAt: 1 },
      partition: 0,
      deliveryCount: 1,
      malformed: 'not a Canopy bus frame (no CB magic)',
    };
    const fake = bus();
    const handled = fake.consume.bind(fake);
    fake.consume = (handler) => {
      void handler([delivery]);
      return handled(handler);
    };
    const subscription = await consumeIntoPipeline(fake, unreadable);
    await subscription.stop();
    expect(unreadable.deadLetters).toEqual([
      {
        source: 'bus',
        origin: null,
        reason: 'BUS_MESSAGE_UNREADABLE',
        message: 'not a Canopy bus frame (no CB magic)',
        raw: '/wA=',
        receivedAt: 1,
      },
    ]);
    await fake.close();
  });
});
