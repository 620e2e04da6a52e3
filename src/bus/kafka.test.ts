/**
 * The Kafka adapter. No Kafka broker runs on this machine or in CI: the
 * conformance suite runs only when `KAFKA_BROKERS` names one
 * (`KAFKA_BROKERS=127.0.0.1:9092 npx vitest run src/bus/kafka.test.ts`), and
 * says so when it does not. The tests below it need no broker.
 */
import { randomBytes } from 'node:crypto';
import { Admin } from '@platformatic/kafka';
import { describe, expect, it } from 'vitest';
import { kafkaBrokersForTests } from '../../test/helpers/services.js';
import type { Bus } from '../core/bus.js';
import { isCanopyError } from '../core/errors.js';
import { silentLogger } from '../observability/logger.js';
import { busConformance, until, type TopicOptions } from './bus.conformance.js';
import { openKafkaBus, type KafkaBus, type KafkaBusOptions } from './kafka.js';

const brokers = kafkaBrokersForTests();

function kafkaOptions(options: TopicOptions, id: string, on: string[]): KafkaBusOptions {
  return {
    brokers: on,
    topic: `canopy-test-${id}`,
    groupId: `canopy-test-${id}`,
    clientId: `canopy-test-${id}`,
    replicationFactor: 1,
    publishTimeoutMs: 10_000,
    retryInitialMs: 5,
    retryMaxMs: 100,
    logger: silentLogger(),
    ...options,
  };
}

if (brokers.length > 0) {
  busConformance('Kafka', () => ({
    topic(options) {
      const id = randomBytes(5).toString('hex');
      const config = kafkaOptions(options, id, brokers);
      const clients: Bus[] = [];
      return Promise.resolve({
        async client() {
          const bus = await openKafkaBus(config);
          clients.push(bus);
          return bus;
        },
        async groupSettled(members) {
          await until(() => {
            const held = members.map((m) => (m as KafkaBus).assignedPartitions());
            const all = new Set(held.flat());
            return held.every((h) => h.length > 0) && all.size === members[0]!.partitions;
          }, 'every member of the group holds partitions');
        },
        async cleanup() {
          for (const bus of clients) await bus.close();
          const admin = new Admin({ clientId: config.clientId, bootstrapBrokers: brokers });
          await admin.deleteTopics({ topics: [config.topic] });
          await admin.deleteGroups({ groups: [config.groupId] }).catch(() => {});
          await admin.close();
        },
      });
    },
  }));
}

describe('Kafka bus', () => {
  it('reports an unreachable broker as CANOPY_BUS_UNAVAILABLE', async () => {
    const err = await openKafkaBus({
      ...kafkaOptions(
        { partitions: 1, maxInFlight: 1, maxBatch: 1, maxDeliver: 0, ackWaitMs: 1_000 },
        'unreachable',
        ['127.0.0.1:1'],
      ),
      publishTimeoutMs: 1_000,
    }).catch((e: unknown) => e);
    expect(isCanopyError(err, 'CANOPY_BUS_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toContain('canopy-test-unreachable');
  });
});
