import { describe, expect, it } from 'vitest';
import type { BusMessage } from '../core/bus.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { busConformance, until, type TopicOptions } from './bus.conformance.js';
import { InProcessBus } from './in-process.js';

function inProcessBus(options: TopicOptions & { capacity?: number; metrics?: Metrics }) {
  return new InProcessBus({
    capacity: 10_000,
    retryInitialMs: 5,
    retryMaxMs: 50,
    logger: silentLogger(),
    ...options,
  });
}

busConformance('in-process', () => ({
  topic(options) {
    const bus = inProcessBus(options);
    return Promise.resolve({ client: () => Promise.resolve(bus), cleanup: () => bus.close() });
  },
}));

const OPTIONS: TopicOptions = {
  partitions: 2,
  maxInFlight: 4,
  maxBatch: 2,
  maxDeliver: 0,
  ackWaitMs: 1_000,
};

function message(key: string, seq: number): BusMessage {
  return { key, source: 'test', payload: Buffer.from(String(seq)), receivedAt: seq };
}

describe('InProcessBus', () => {
  it('makes publishers wait while `capacity` messages are held, and lets them in as acks free room', async () => {
    const bus = inProcessBus({ ...OPTIONS, capacity: 5 });
    const first = bus.publish([0, 1, 2, 3, 4].map((i) => message('a', i)));
    await first;
    let secondDone = false;
    const second = bus.publish([message('a', 5), message('a', 6)]).then(() => {
      secondDone = true;
    });
    // Let every pending callback run: the publish still waits, with nothing consuming.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(secondDone).toBe(false);
    expect(await bus.lag()).toBe(5);

    const handled: string[] = [];
    const sub = await bus.consume((batch) => {
      handled.push(...batch.map((d) => d.message.payload.toString()));
      return Promise.resolve();
    });
    await second;
    await until(() => handled.length === 7, 'all 7 handled');
    expect(handled).toEqual(['0', '1', '2', '3', '4', '5', '6']);
    await sub.stop();
    await bus.close();
  });

  it('rejects a publisher still waiting for room when the bus closes', async () => {
    const bus = inProcessBus({ ...OPTIONS, capacity: 1 });
    await bus.publish([message('a', 0)]);
    const waiting = bus.publish([message('a', 1)]).catch((err: unknown) => err);
    await bus.close();
    expect(await waiting).toMatchObject({ code: 'CANOPY_BUS_CLOSED' });
  });

  it('counts published, delivered and redelivered messages and samples lag at scrape', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const bus = inProcessBus({ ...OPTIONS, metrics });
    await bus.publish([message('a', 0), message('b', 1), message('c', 2)]);
    expect(await metrics.registry.getSingleMetricAsString('canopy_bus_lag_messages')).toContain(
      'canopy_bus_lag_messages{adapter="in-process"} 3',
    );
    let failed = false;
    const sub = await bus.consume((batch) => {
      if (!failed && batch.some((d) => d.message.key === 'b')) {
        failed = true;
        return Promise.reject(new Error('once'));
      }
      return Promise.resolve();
    });
    await until(async () => (await bus.lag()) === 0, 'all acknowledged');
    await sub.stop();
    const value = async (name: string) =>
      (await metrics.registry.getMetricsAsJSON())
        .find((m) => m.name === name)!
        .values.reduce((sum, v) => sum + v.value, 0);
    expect(await value('canopy_bus_published_total')).toBe(3);
    // b was delivered twice; a and c may have shared its first batch (one partition of two).
    const delivered = await value('canopy_bus_delivered_total');
    const redelivered = await value('canopy_bus_redelivered_total');
    expect(redelivered).toBeGreaterThanOrEqual(1);
    expect(delivered).toBe(3 + redelivered);
    expect(await metrics.registry.getSingleMetricAsString('canopy_bus_lag_messages')).toContain(
      'canopy_bus_lag_messages{adapter="in-process"} 0',
    );
    await bus.close();
    // A closed bus is no longer sampled.
    expect(await metrics.registry.getSingleMetricAsString('canopy_bus_lag_messages')).not.toContain(
      'adapter="in-process"',
    );
  });
});
