/**
 * The conformance suite every bus adapter passes (run by in-process.test.ts,
 * nats.test.ts and kafka.test.ts). Cases an adapter cannot promise are
 * declared by its `capabilities` and run as their weaker form, named so in
 * the test title, rather than skipped.
 *
 * Each case gets a fresh topic (a new in-process bus; a new stream and
 * consumer, or topic and group, on a broker) from `harness.topic`, and every
 * `client()` of a topic is one process's view of it: a new connection on a
 * broker, the same bus in-process. Waits poll for a condition with a generous
 * bound; nothing asserts on speed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import {
  partitionOf,
  type Bus,
  type BusDelivery,
  type BusHandler,
  type BusMessage,
} from '../core/bus.js';
import { isCanopyError } from '../core/errors.js';

export interface TopicOptions {
  partitions: number;
  maxInFlight: number;
  maxBatch: number;
  /** 0: never give up. */
  maxDeliver: number;
  /** How long a broker waits for an acknowledgement before redelivering (NATS). */
  ackWaitMs: number;
}

export interface TopicFixture {
  /** One process's bus on the topic. Closed by `cleanup`. */
  client(): Promise<Bus>;
  /** Publishes bytes that are not a bus frame (brokers only). */
  publishRaw?(partition: number, bytes: Buffer): Promise<void>;
  /** Resolves once every given client's consumer takes part in the group (Kafka's rebalance). */
  groupSettled?(clients: readonly Bus[]): Promise<void>;
  /** Closes the clients and deletes the topic. */
  cleanup(): Promise<void>;
}

export interface BusHarness {
  topic(options: TopicOptions): Promise<TopicFixture>;
}

const DEFAULTS: TopicOptions = {
  partitions: 4,
  maxInFlight: 64,
  maxBatch: 16,
  maxDeliver: 0,
  // Long enough that a slow test machine never lets an ack wait run out
  // unasked: only the crash case waits one out, and it sets a short one.
  ackWaitMs: 10_000,
};

/** Polls `condition` until true; fails with `what` after `timeoutMs`. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`still waiting after ${timeoutMs} ms: ${what}`);
    await sleep(10);
  }
}

interface Seen {
  id: string;
  key: string;
  seq: number;
  deliveryCount: number;
  partition: number;
}

function message(key: string, seq: number, extra: Partial<BusMessage> = {}): BusMessage {
  return {
    key,
    source: 'test',
    payload: Buffer.from(JSON.stringify({ key, seq })),
    receivedAt: 1_700_000_000_000 + seq,
    ...extra,
  };
}

function parse(delivery: BusDelivery): Seen {
  const body = JSON.parse(delivery.message.payload.toString('utf8')) as {
    key: string;
    seq: number;
  };
  return {
    id: `${body.key}#${body.seq}`,
    key: body.key,
    seq: body.seq,
    deliveryCount: delivery.deliveryCount,
    partition: delivery.partition,
  };
}

/** Messages for `keys` keys × `perKey`, interleaved round robin (k0#0, k1#0, …, k0#1, …). */
function interleaved(prefix: string, keys: number, perKey: number): BusMessage[] {
  const out: BusMessage[] = [];
  for (let seq = 0; seq < perKey; seq++)
    for (let k = 0; k < keys; k++) out.push(message(`${prefix}${k}`, seq));
  return out;
}

async function publishInChunks(bus: Bus, messages: readonly BusMessage[], size = 25) {
  for (let i = 0; i < messages.length; i += size) await bus.publish(messages.slice(i, i + size));
}

/**
 * Records what a handler acknowledged: per key, the sequence numbers in the
 * order their batches resolved, and whether one partition was ever handled
 * twice at once.
 */
class Recorder {
  readonly acked: Seen[] = [];
  readonly attempts: Seen[] = [];
  readonly overlaps: number[] = [];
  private readonly inHandler = new Set<number>();

  handler(inner: (batch: readonly Seen[]) => Promise<void> = () => Promise.resolve()): BusHandler {
    return async (batch) => {
      const seen = batch.map(parse);
      const partitions = new Set(seen.map((s) => s.partition));
      for (const p of partitions) {
        if (this.inHandler.has(p)) this.overlaps.push(p);
        this.inHandler.add(p);
      }
      this.attempts.push(...seen);
      try {
        await inner(seen);
        this.acked.push(...seen);
      } finally {
        for (const p of partitions) this.inHandler.delete(p);
      }
    };
  }

  ids(): Set<string> {
    return new Set(this.acked.map((s) => s.id));
  }

  /** Per key, the acknowledged sequence numbers in acknowledgement order. */
  byKey(): Map<string, number[]> {
    const out = new Map<string, number[]>();
    for (const s of this.acked) {
      const list = out.get(s.key) ?? [];
      list.push(s.seq);
      out.set(s.key, list);
    }
    return out;
  }
}

function expectInOrder(byKey: Map<string, number[]>, keys: number, perKey: number) {
  expect(byKey.size).toBe(keys);
  const expected = Array.from({ length: perKey }, (_, i) => i);
  for (const [key, seqs] of byKey) expect(seqs, `order of ${key}`).toEqual(expected);
}

export function busConformance(name: string, harness: () => BusHarness): void {
  describe(`bus conformance: ${name}`, () => {
    const fixtures: TopicFixture[] = [];
    const open = async (options: Partial<TopicOptions> = {}): Promise<TopicFixture> => {
      const fixture = await harness().topic({ ...DEFAULTS, ...options });
      fixtures.push(fixture);
      return fixture;
    };
    afterEach(async () => {
      for (const fixture of fixtures.splice(0)) await fixture.cleanup();
    });

    it('carries every field and the payload bytes unchanged, on the key’s partition', async () => {
      const topic = await open();
      const bus = await topic.client();
      const payload = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x0a, 0x22]);
      const full: BusMessage = {
        key: 'sensor-α/7',
        source: 'mqtt',
        payload,
        format: 'csv-wide',
        contentType: 'text/csv',
        origin: 'sensors/α/7',
        receivedAt: 1_700_000_123_456,
        idempotencyKey: 'file:abc',
        wideCsvMapping: 'air-quality-uci',
      };
      const bare = message('bare', 0);
      await bus.publish([full, bare]);
      const got: BusDelivery[] = [];
      const sub = await bus.consume((batch) => {
        got.push(...batch);
        return Promise.resolve();
      });
      await until(() => got.length >= 2, 'two deliveries');
      await sub.stop();
      const first = got.find((d) => d.message.key === full.key)!;
      expect({ ...first.message, payload: [...first.message.payload] }).toEqual({
        ...full,
        payload: [...payload],
      });
      expect(first.partition).toBe(partitionOf(full.key, bus.partitions));
      expect(first.deliveryCount).toBe(1);
      expect(first.malformed).toBeUndefined();
      const second = got.find((d) => d.message.key === 'bare')!;
      expect(second.message).toEqual(bare);
    });

    it('delivers each key’s messages in publish order, one batch per partition at a time', async () => {
      const topic = await open();
      const bus = await topic.client();
      const recorder = new Recorder();
      const sub = await bus.consume(recorder.handler(() => sleep(1)));
      await publishInChunks(bus, interleaved('k', 12, 40));
      await until(() => recorder.acked.length >= 480, 'all 480 messages handled');
      await sub.stop();
      expectInOrder(recorder.byKey(), 12, 40);
      expect(recorder.acked).toHaveLength(480);
      expect(recorder.overlaps).toEqual([]);
    });

    it('delivers a batch again after its handler fails, keeping the key’s order', async () => {
      const topic = await open();
      const bus = await topic.client();
      const recorder = new Recorder();
      const failOn = new Set(['k1#3', 'k2#0', 'k2#9']);
      const sub = await bus.consume(
        recorder.handler((batch) => {
          for (const s of batch)
            if (failOn.delete(s.id)) return Promise.reject(new Error(`fail on ${s.id}`));
          return Promise.resolve();
        }),
      );
      await publishInChunks(bus, interleaved('k', 4, 10));
      await until(() => recorder.ids().size >= 40, 'all 40 messages handled');
      await sub.stop();
      expectInOrder(recorder.byKey(), 4, 10);
      expect(failOn.size).toBe(0);
      for (const id of ['k1#3', 'k2#0', 'k2#9']) {
        const tries = recorder.attempts.filter((s) => s.id === id);
        expect(tries.length, id).toBeGreaterThanOrEqual(2);
        expect(tries.at(-1)!.deliveryCount, id).toBeGreaterThan(tries[0]!.deliveryCount);
      }
      await until(async () => (await bus.lag()) === 0, 'lag back to 0');
    });

    it('delivers what a crashed consumer held to the next consumer of the group', async () => {
      const topic = await open({ maxInFlight: 16, ackWaitMs: 1_000 });
      const publisher = await topic.client();
      await publishInChunks(publisher, interleaved('c', 5, 20));

      // The first consumer takes messages and never finishes: a process that hangs, then dies.
      const crashing = await topic.client();
      let taken = 0;
      const hung = await crashing.consume((batch) => {
        taken += batch.length;
        return new Promise<void>(() => {});
      });
      await until(() => taken > 0, 'the first consumer took messages');
      await hung.abandon();

      const recorder = new Recorder();
      const survivor = await topic.client();
      const sub = await survivor.consume(recorder.handler());
      await until(() => recorder.ids().size >= 100, 'all 100 messages handled by the survivor');
      await sub.stop();
      expect(recorder.acked).toHaveLength(100);
      // Without key affinity the survivor takes newer messages while the crashed one's wait out the ack wait.
      if (survivor.capabilities.keyAffinity) expectInOrder(recorder.byKey(), 5, 20);
    });

    it('loses nothing under concurrent publishers', async () => {
      const topic = await open({ maxInFlight: 256, maxBatch: 64 });
      const publishers = await Promise.all([0, 1, 2, 3].map(() => topic.client()));
      const recorder = new Recorder();
      const consumerBus = await topic.client();
      const sub = await consumerBus.consume(recorder.handler());
      await Promise.all(
        publishers.map((bus, p) => publishInChunks(bus, interleaved(`p${p}-`, 5, 50), 10)),
      );
      await until(() => recorder.acked.length >= 1_000, 'all 1,000 messages handled');
      await sub.stop();
      expect(recorder.ids().size).toBe(1_000);
      expect(recorder.acked).toHaveLength(1_000);
      // Each publisher's keys keep its order.
      expectInOrder(recorder.byKey(), 20, 50);
    });

    it('never holds more than maxInFlight messages in the handler', async () => {
      const maxInFlight = 8;
      const topic = await open({ maxInFlight, maxBatch: 4, partitions: 8 });
      const bus = await topic.client();
      let inHandler = 0;
      let peak = 0;
      let handled = 0;
      const sub = await bus.consume(async (batch) => {
        inHandler += batch.length;
        peak = Math.max(peak, inHandler);
        await sleep(2);
        inHandler -= batch.length;
        handled += batch.length;
      });
      await publishInChunks(bus, interleaved('b', 16, 8));
      await until(() => handled >= 128, 'all 128 messages handled');
      await sub.stop();
      expect(peak).toBeLessThanOrEqual(maxInFlight);
      // The bound was reached, so the check above was a real one.
      expect(peak).toBeGreaterThan(1);
    });

    it('reports lag: published and not yet acknowledged', async () => {
      const topic = await open();
      const bus = await topic.client();
      expect(await bus.lag()).toBe(0);
      await publishInChunks(bus, interleaved('l', 3, 10));
      await until(async () => (await bus.lag()) === 30, 'lag 30 before any consumer');
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let handled = 0;
      const sub = await bus.consume(async (batch) => {
        await gate;
        handled += batch.length;
      });
      // Delivered but not acknowledged still counts.
      expect(await bus.lag()).toBe(30);
      release();
      await until(() => handled >= 30, 'all handled');
      await until(async () => (await bus.lag()) === 0, 'lag back to 0');
      await sub.stop();
    });

    it('gives a message up after maxDeliver failed deliveries and goes on', async () => {
      // One message per batch: a failure is its whole batch's, so the poison's partition-mates would share its fate.
      const topic = await open({ maxDeliver: 3, maxBatch: 1 });
      const bus = await topic.client();
      const recorder = new Recorder();
      const sub = await bus.consume(
        recorder.handler((batch) =>
          batch.some((s) => s.key === 'poison')
            ? Promise.reject(new Error('poison'))
            : Promise.resolve(),
        ),
      );
      await bus.publish([message('poison', 0)]);
      await publishInChunks(bus, interleaved('g', 4, 5));
      await until(() => recorder.ids().size >= 20, 'the 20 good messages handled');
      await until(async () => (await bus.lag()) === 0, 'lag back to 0');
      await sub.stop();
      const poison = recorder.attempts.filter((s) => s.key === 'poison');
      expect(poison.map((s) => s.deliveryCount)).toEqual([1, 2, 3]);
      expect(recorder.ids().has('poison#0')).toBe(false);
      expectInOrder(recorder.byKey(), 4, 5);
    });

    it('stops cleanly: batches in the handler are acknowledged, the rest goes to the next consumer', async () => {
      const topic = await open({ maxInFlight: 32, maxBatch: 4 });
      const bus = await topic.client();
      await publishInChunks(bus, interleaved('s', 4, 30));
      const first = new Recorder();
      const firstBus = await topic.client();
      const sub = await firstBus.consume(first.handler(() => sleep(5)));
      await until(() => first.acked.length >= 8, 'the first consumer handled some');
      await sub.stop();
      const second = new Recorder();
      const secondBus = await topic.client();
      const next = await secondBus.consume(second.handler());
      await until(
        () => first.acked.length + second.acked.length >= 120,
        'all 120 handled between the two',
      );
      await next.stop();
      const all = [...first.acked, ...second.acked].map((s) => s.id);
      expect(new Set(all).size).toBe(120);
      // A clean stop acknowledged what it handled: nothing was handled twice.
      expect(all).toHaveLength(120);
      // Attempts the first consumer started all finished (nothing abandoned mid-way).
      expect(first.attempts.length).toBe(first.acked.length);
    });

    it('shares the work between two consumers of the group, each message handled once', async () => {
      const topic = await open({ maxInFlight: 8, maxBatch: 4, partitions: 8 });
      const [a, b, publisher] = await Promise.all([topic.client(), topic.client(), topic.client()]);
      const ra = new Recorder();
      const rb = new Recorder();
      const subs = [
        await a.consume(ra.handler(() => sleep(2))),
        await b.consume(rb.handler(() => sleep(2))),
      ];
      await topic.groupSettled?.([a, b]);
      await publishInChunks(publisher, interleaved('w', 16, 15));
      await until(() => ra.acked.length + rb.acked.length >= 240, 'all 240 handled');
      await Promise.all(subs.map((s) => s.stop()));
      const all = [...ra.acked, ...rb.acked].map((s) => s.id);
      expect(all).toHaveLength(240);
      expect(new Set(all).size).toBe(240);
      expect(ra.acked.length).toBeGreaterThan(0);
      expect(rb.acked.length).toBeGreaterThan(0);
      if (a.capabilities.keyAffinity) {
        // Each key went to one consumer, in order.
        const aKeys = new Set(ra.acked.map((s) => s.key));
        for (const s of rb.acked) expect(aKeys.has(s.key), s.key).toBe(false);
        expectInOrder(new Map([...ra.byKey(), ...rb.byKey()]), 16, 15);
      }
    });

    it('hands bytes that are not a bus frame to the handler as malformed (brokers)', async () => {
      const topic = await open();
      const bus = await topic.client();
      if (topic.publishRaw === undefined) {
        // In-process messages are objects, never bytes: nothing can be malformed.
        expect(bus.capabilities.durable).toBe(false);
        return;
      }
      await topic.publishRaw(1, Buffer.from('{"not":"a frame"}'));
      const got: BusDelivery[] = [];
      const sub = await bus.consume((batch) => {
        got.push(...batch);
        return Promise.resolve();
      });
      await until(() => got.length >= 1, 'the raw message delivered');
      await sub.stop();
      expect(got[0]!.malformed).toMatch(/magic/);
      expect(got[0]!.message.source).toBe('bus');
      expect(got[0]!.message.payload.toString()).toBe('{"not":"a frame"}');
      await until(async () => (await bus.lag()) === 0, 'acknowledged like any other');
    });

    it('answers ping while open and refuses publish and consume once closed', async () => {
      const topic = await open();
      const bus = await topic.client();
      await bus.ping();
      await bus.close();
      const published = await bus.publish([message('x', 0)]).catch((err: unknown) => err);
      expect(isCanopyError(published, 'CANOPY_BUS_CLOSED')).toBe(true);
      const consumed = await bus.consume(() => Promise.resolve()).catch((err: unknown) => err);
      expect(isCanopyError(consumed, 'CANOPY_BUS_CLOSED')).toBe(true);
      await expect(bus.ping()).rejects.toThrow();
    });
  });
}
