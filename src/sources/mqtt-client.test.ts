/**
 * The MQTT client source against the machine's Mosquitto (127.0.0.1:1883):
 * shared subscriptions split a topic between processes, and a persistent
 * session keeps what was published while the source was away. Each test
 * uses its own topic prefix and client ids, and removes its sessions.
 */
import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import type { IngestMessage, IngestResult, IngestSink } from '../core/ingest.js';
import { silentLogger } from '../observability/logger.js';
import { waitFor } from '../../test/helpers/faults.js';
import { serviceForTests } from '../../test/helpers/services.js';
import { expandClientId, MqttClientSource, subscriptionFilters } from './mqtt-client.js';
import { mqttMessageKey } from './mqtt-key.js';

const BROKER = 'mqtt://127.0.0.1:1883';
const hasMosquitto = await serviceForTests('Mosquitto', 1883);

/** Records every message handed to it and commits nothing. */
class RecordingSink implements IngestSink {
  readonly messages: IngestMessage[] = [];
  submit(message: IngestMessage): Promise<IngestResult> {
    this.messages.push(message);
    return Promise.resolve({ batchId: randomUUID(), accepted: 1, rejected: [] });
  }
  submitDeadLetter(): Promise<void> {
    return Promise.resolve();
  }
}

const started: MqttClientSource[] = [];
const sessions: { clientId: string; protocolVersion: 4 | 5 }[] = [];

afterAll(async () => {
  for (const source of started) await source.stop();
  // A clean connect under each client id ends the session the test left at the broker.
  for (const { clientId, protocolVersion } of sessions) {
    const c = await mqtt.connectAsync(BROKER, { clientId, clean: true, protocolVersion });
    await c.endAsync();
  }
});

function source(
  options: Partial<ConstructorParameters<typeof MqttClientSource>[0]> & {
    clientId: string;
    topics: string[];
    sink: IngestSink;
  },
): MqttClientSource {
  const s = new MqttClientSource({
    url: BROKER,
    cleanSession: false,
    logger: silentLogger(),
    ...options,
  });
  started.push(s);
  sessions.push({ clientId: s.clientId, protocolVersion: options.protocolVersion === 4 ? 4 : 5 });
  return s;
}

async function publish(topics: string[], protocolVersion: 4 | 5 = 5): Promise<void> {
  const publisher = await mqtt.connectAsync(BROKER, {
    clientId: `test-pub-${randomUUID()}`,
    protocolVersion,
  });
  try {
    await Promise.all(topics.map((t, i) => publisher.publishAsync(t, `{"n":${i}}`, { qos: 1 })));
  } finally {
    await publisher.endAsync();
  }
}

describe('MQTT client source settings', () => {
  it('replaces {hostname} and {pid} in the client id', () => {
    expect(expandClientId('canopy-{hostname}-{pid}', { hostname: 'worker-2', pid: 41 })).toBe(
      'canopy-worker-2-41',
    );
    expect(expandClientId('canopy-ingest')).toBe('canopy-ingest');
  });

  it('subscribes as $share/<group>/<filter> and refuses group names with / + #', () => {
    expect(subscriptionFilters(['iot/data', 'sensors/#'], 'ingest')).toEqual([
      '$share/ingest/iot/data',
      '$share/ingest/sensors/#',
    ]);
    expect(subscriptionFilters(['sensors/#'])).toEqual(['sensors/#']);
    for (const bad of ['a/b', 'a+', '#', ''])
      expect(() => subscriptionFilters(['x'], bad)).toThrow(/share group/);
  });

  it('keys a message by topic and payload bytes', () => {
    const key = mqttMessageKey('sensors/a', Buffer.from('{"v":1}'));
    expect(key).toMatch(/^mqtt:[0-9a-f]{64}$/);
    expect(mqttMessageKey('sensors/a', '{"v":1}')).toBe(key);
    expect(mqttMessageKey('sensors/b', '{"v":1}')).not.toBe(key);
    expect(mqttMessageKey('sensors/a', '{"v":2}')).not.toBe(key);
    // The separator keeps topic and payload apart: "a" + "b/c" is not "a/b" + "c".
    expect(mqttMessageKey('a', 'b/c')).not.toBe(mqttMessageKey('a/b', 'c'));
  });
});

describe.runIf(hasMosquitto)('MQTT client source against Mosquitto', () => {
  it.each([5, 4] as const)(
    'MQTT %i: two sources in one share group split the messages, each handled once',
    async (protocolVersion) => {
      const prefix = `canopy-test/${randomUUID()}`;
      const group = `g${randomUUID().slice(0, 8)}`;
      const sinks = [new RecordingSink(), new RecordingSink()];
      const sources = sinks.map((sink, i) =>
        source({
          clientId: `canopy-test-${prefix.slice(12, 20)}-${i}`,
          topics: [`${prefix}/#`],
          shareGroup: group,
          protocolVersion,
          cleanSession: true,
          sink,
        }),
      );
      for (const s of sources) await s.start();

      const topics = Array.from({ length: 200 }, (_, i) => `${prefix}/sensor-${i}`);
      await publish(topics, protocolVersion);
      const handled = (): IngestMessage[] => sinks.flatMap((s) => s.messages);
      await waitFor('200 messages handled', () => handled().length >= 200);

      // Every message once, by one of the two, under its real topic (not the $share filter).
      expect(
        handled()
          .map((m) => m.origin)
          .sort(),
      ).toEqual([...topics].sort());
      expect(sinks[0]!.messages.length).toBeGreaterThan(0);
      expect(sinks[1]!.messages.length).toBeGreaterThan(0);
      for (const m of handled())
        expect(m.idempotencyKey).toBe(mqttMessageKey(m.origin!, m.payload));
      for (const s of sources) await s.stop();
    },
  );

  it.each([5, 4] as const)(
    'MQTT %i: a persistent session receives what was published while the source was away',
    async (protocolVersion) => {
      const prefix = `canopy-test/${randomUUID()}`;
      const clientId = `canopy-test-session-${prefix.slice(12, 20)}`;
      const first = new RecordingSink();
      const options = {
        clientId,
        topics: [`${prefix}/#`],
        protocolVersion,
        sessionExpirySeconds: 60,
      };
      const before = source({ ...options, sink: first });
      await before.start();
      await before.stop();

      const topics = Array.from({ length: 20 }, (_, i) => `${prefix}/s${i}`);
      await publish(topics);
      expect(first.messages).toHaveLength(0);

      const second = new RecordingSink();
      const after = source({ ...options, sink: second });
      await after.start();
      await waitFor('the queued messages', () => second.messages.length >= 20);
      expect(second.messages.map((m) => m.origin).sort()).toEqual([...topics].sort());
      await after.stop();
    },
  );

  it('redelivers a message whose PUBACK was withheld, after reconnecting', async () => {
    const prefix = `canopy-test/${randomUUID()}`;
    const seen: IngestMessage[] = [];
    let failures = 0;
    // The first delivery fails after it was seen, so no PUBACK goes out and the source reconnects.
    const sink: IngestSink = {
      submit(message) {
        seen.push(message);
        if (failures++ === 0) return Promise.reject(new Error('lost before PUBACK'));
        return Promise.resolve({ batchId: randomUUID(), accepted: 1, rejected: [] });
      },
      submitDeadLetter: () => Promise.resolve(),
    };
    const s = source({
      clientId: `canopy-test-redeliver-${prefix.slice(12, 20)}`,
      topics: [`${prefix}/#`],
      sink,
    });
    await s.start();
    await publish([`${prefix}/once`]);
    await waitFor('the redelivery', () => seen.length >= 2);
    expect(seen[1]!.origin).toBe(`${prefix}/once`);
    expect(seen[1]!.idempotencyKey).toBe(seen[0]!.idempotencyKey);
    await s.stop();
  });
});
