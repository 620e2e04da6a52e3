import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it } from 'vitest';
import { serviceForTests } from '../../test/helpers/services.js';
import type { Bus } from '../core/bus.js';
import { isCanopyError } from '../core/errors.js';
import { configSchema } from '../config/schema.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { busReadiness, checkReadiness } from '../observability/readiness.js';
import { busConformance, type TopicOptions } from './bus.conformance.js';
import { openBus } from './index.js';
import { openNatsBus, type NatsBusOptions } from './nats.js';

const SERVERS = ['nats://127.0.0.1:4222'];
const nats = await serviceForTests('NATS', 4222);

function natsOptions(options: TopicOptions, id: string): NatsBusOptions {
  return {
    servers: SERVERS,
    stream: `CANOPY_TEST_${id}`,
    subjectPrefix: `canopy-test.${id}`,
    consumer: `canopy-test-${id}`,
    publishTimeoutMs: 5_000,
    retryInitialMs: 5,
    retryMaxMs: 100,
    logger: silentLogger(),
    ...options,
  };
}

if (nats) {
  busConformance('NATS JetStream', () => ({
    async topic(options) {
      const id = randomBytes(5).toString('hex');
      const config = natsOptions(options, id);
      const clients: Bus[] = [];
      const raw = await connect({ servers: SERVERS });
      return {
        async client() {
          const bus = await openNatsBus(config);
          clients.push(bus);
          return bus;
        },
        async publishRaw(partition, bytes) {
          const jsm = await jetstreamManager(raw);
          await jsm.jetstream().publish(`${config.subjectPrefix}.${partition}`, bytes);
        },
        async cleanup() {
          for (const bus of clients) await bus.close();
          const jsm = await jetstreamManager(raw);
          await jsm.streams.delete(config.stream);
          await raw.close();
        },
      };
    },
  }));
}

describe('NATS bus', () => {
  it('reports an unreachable server as CANOPY_BUS_UNAVAILABLE', async () => {
    const err = await openNatsBus({
      ...natsOptions(
        { partitions: 1, maxInFlight: 1, maxBatch: 1, maxDeliver: 0, ackWaitMs: 1_000 },
        'unreachable',
      ),
      servers: ['nats://127.0.0.1:1'],
    }).catch((e: unknown) => e);
    expect(isCanopyError(err, 'CANOPY_BUS_UNAVAILABLE')).toBe(true);
  });
});

if (nats) {
  describe('NATS bus from config', () => {
    it('opens from the bus config, creates stream and consumer, reports lag and readiness', async () => {
      const id = randomBytes(5).toString('hex');
      const config = configSchema.parse({
        bus: {
          kind: 'nats',
          nats: {
            stream: `CANOPY_CFG_${id}`,
            subjectPrefix: `canopy-cfg.${id}`,
            consumer: `canopy-cfg-${id}`,
          },
        },
      }).bus;
      const metrics = new Metrics({ defaultMetrics: false });
      const bus = await openBus(config, { metrics, logger: silentLogger() });
      const raw = await connect({ servers: SERVERS });
      try {
        expect(bus.kind).toBe('nats');
        expect(bus.partitions).toBe(16);
        const jsm = await jetstreamManager(raw);
        const stream = await jsm.streams.info(config.nats.stream);
        expect(stream.config.subjects).toEqual([`canopy-cfg.${id}.*`]);
        expect(stream.config.retention).toBe('workqueue');
        const consumer = await jsm.consumers.info(config.nats.stream, config.nats.consumer);
        expect(consumer.config.ack_policy).toBe('explicit');
        expect(consumer.config.ack_wait).toBe(30_000 * 1_000_000);

        await bus.publish([
          { key: 'a', source: 'test', payload: Buffer.from('1'), receivedAt: 1 },
          { key: 'b', source: 'test', payload: Buffer.from('2'), receivedAt: 2 },
        ]);
        // The stream holds both, and lag (sampled at scrape) says so.
        expect((await jsm.streams.info(config.nats.stream)).state.messages).toBe(2);
        expect(await metrics.registry.getSingleMetricAsString('canopy_bus_lag_messages')).toContain(
          'canopy_bus_lag_messages{adapter="nats"} 2',
        );
        expect(await checkReadiness([busReadiness(bus)])).toEqual({
          ready: true,
          checks: [{ name: 'bus', ok: true }],
        });
        await bus.close();
        const closed = await checkReadiness([busReadiness(bus)]);
        expect(closed.ready).toBe(false);
        expect(closed.checks[0]!.reason).toMatch(/closed/);
      } finally {
        await bus.close();
        const jsm = await jetstreamManager(raw);
        await jsm.streams.delete(config.nats.stream);
        await raw.close();
      }
    });
  });
}
