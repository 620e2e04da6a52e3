/**
 * The bus on Kafka (`@platformatic/kafka`, pure JavaScript, no native client).
 *
 * - Topic `bus.kafka.topic` (`sensor-events`), created at open when missing
 *   with `bus.partitions` partitions; an existing topic's partition count wins
 *   (with a warning when it differs), so every process maps keys alike.
 * - Publish: one produce request per call from an idempotent producer with
 *   `acks=all`, each message sent to partition `partitionOf(key)` with the key
 *   as Kafka key; `publish` resolves when the brokers acknowledged it. The
 *   idempotent producer keeps a partition's order through its own retries.
 * - Consume: a consumer group (`bus.kafka.groupId`); Kafka assigns each
 *   partition to one member, so a key is handled by one process at a time and
 *   in order (`keyAffinity`). Offsets are committed only after a batch's
 *   handler resolved, never automatically; a new member starts from the
 *   group's committed offsets (the earliest offset for a new group).
 * - Failure: a failed batch is retried in place (Kafka has no per-message
 *   nack); a crashed member's partitions move to others after the session
 *   timeout (`max(6 s, ackWaitMs)`), which re-read from the last commit.
 *   Kafka keeps no delivery count: after a crash `deliveryCount` starts at 1
 *   again, and `maxDeliver` counts the retries of one process.
 * - Around a rebalance, a member may still handle messages of a partition it
 *   just lost; its commit then fails and the new owner reads them again:
 *   at-least-once, and the pipeline's idempotency keys absorb it.
 * - Back-pressure: the member stops reading its fetch stream while it holds
 *   `maxInFlight` messages; the client's own fetch buffer (one fetch, at most
 *   `maxBytes`) comes on top of that.
 */
import {
  Admin,
  Consumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  type Message,
  type MessagesStream,
  type SASLMechanismValue,
} from '@platformatic/kafka';
import {
  type Bus,
  type BusCapabilities,
  type BusDelivery,
  type BusHandler,
  type BusMessage,
  type BusSubscription,
  type ConsumeOptions,
  partitionOf,
} from '../core/bus.js';
import { CanopyError } from '../core/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { backoff, Dispatcher, type HeldRecord } from './dispatcher.js';
import { decodeBusMessage, encodeBusMessage } from './wire.js';

export interface KafkaBusOptions {
  brokers: string[];
  topic: string;
  groupId: string;
  clientId: string;
  partitions: number;
  replicationFactor: number;
  /** Session timeout of the group membership (at least 6 s, Kafka's default minimum). */
  ackWaitMs: number;
  maxDeliver: number;
  maxInFlight: number;
  maxBatch: number;
  publishTimeoutMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  sasl?: { mechanism: SASLMechanismValue; username: string; password: string } | undefined;
  tls?: boolean;
  metrics?: Metrics;
  logger: Logger;
}

type KafkaMessage = Message<Buffer, Buffer, Buffer, Buffer>;

const ADAPTER = 'kafka';
const LATEST = -1n;
const EARLIEST = -2n;
const MIN_SESSION_TIMEOUT_MS = 6_000;

function connection(o: KafkaBusOptions) {
  return {
    clientId: o.clientId,
    bootstrapBrokers: o.brokers,
    timeout: o.publishTimeoutMs,
    ...(o.sasl === undefined ? {} : { sasl: o.sasl }),
    ...(o.tls === true ? { tls: {} } : {}),
  };
}

function unavailable(what: string, cause: unknown): CanopyError {
  return new CanopyError(
    'CANOPY_BUS_UNAVAILABLE',
    `${what}: ${cause instanceof Error ? cause.message : String(cause)}`,
    { cause },
  );
}

export async function openKafkaBus(o: KafkaBusOptions): Promise<KafkaBus> {
  const admin = new Admin(connection(o));
  try {
    const partitions = await ensureTopic(admin, o);
    return new KafkaBus(o, admin, partitions);
  } catch (cause) {
    await admin.close().catch(() => {});
    if (cause instanceof CanopyError) throw cause;
    throw unavailable(`cannot set up Kafka topic ${o.topic} at ${o.brokers.join(', ')}`, cause);
  }
}

async function topicPartitions(admin: Admin, topic: string): Promise<number | undefined> {
  const topics = await admin.listTopics();
  if (!topics.includes(topic)) return undefined;
  const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
  return metadata.topics.get(topic)?.partitionsCount;
}

async function ensureTopic(admin: Admin, o: KafkaBusOptions): Promise<number> {
  let partitions = await topicPartitions(admin, o.topic);
  if (partitions === undefined) {
    try {
      await admin.createTopics({
        topics: [o.topic],
        partitions: o.partitions,
        replicas: o.replicationFactor,
      });
    } catch (err) {
      // Another process may have created it meanwhile; otherwise this is the error to report.
      if ((await topicPartitions(admin, o.topic)) === undefined) throw err;
    }
    partitions = (await topicPartitions(admin, o.topic)) ?? o.partitions;
  }
  if (partitions !== o.partitions)
    o.logger.warn(
      { topic: o.topic, partitions, configured: o.partitions },
      'Kafka topic has another partition count than bus.partitions; using the topic’s',
    );
  return partitions;
}

interface Running {
  dispatcher: Dispatcher<KafkaMessage>;
  consumer: Consumer<Buffer, Buffer, Buffer, Buffer>;
  loop: Promise<void>;
  stream(): MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
}

export class KafkaBus implements Bus {
  readonly kind = ADAPTER;
  readonly capabilities: BusCapabilities = {
    durable: true,
    sharedConsumers: true,
    keyAffinity: true,
  };
  private producer: Producer<Buffer, Buffer, Buffer, Buffer> | undefined;
  private readonly publishes = new Set<Promise<unknown>>();
  private readonly subscriptions = new Set<Running>();
  private closed = false;
  private readonly stopLagSampling: () => void;

  constructor(
    private readonly o: KafkaBusOptions,
    private readonly admin: Admin,
    readonly partitions: number,
  ) {
    this.stopLagSampling = o.metrics?.sampleBusLag(ADAPTER, () => this.lag()) ?? (() => {});
  }

  async publish(messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw closedError();
    if (messages.length === 0) return;
    const stopTimer = this.o.metrics?.busPublishDuration.startTimer({ adapter: ADAPTER });
    this.producer ??= new Producer<Buffer, Buffer, Buffer, Buffer>({
      ...connection(this.o),
      idempotent: true,
      acks: ProduceAcks.ALL,
    });
    const sent = this.producer.send({
      messages: messages.map((message) => ({
        topic: this.o.topic,
        partition: partitionOf(message.key, this.partitions),
        key: Buffer.from(message.key, 'utf8'),
        value: encodeBusMessage(message),
      })),
    });
    this.publishes.add(sent);
    try {
      await sent;
    } catch (cause) {
      throw unavailable(`Kafka did not acknowledge a produce to ${this.o.topic}`, cause);
    } finally {
      this.publishes.delete(sent);
    }
    stopTimer?.();
    this.o.metrics?.busPublished.inc({ adapter: ADAPTER }, messages.length);
  }

  async consume(handler: BusHandler, options: ConsumeOptions = {}): Promise<BusSubscription> {
    if (this.closed) throw closedError();
    const sessionTimeout = Math.max(MIN_SESSION_TIMEOUT_MS, this.o.ackWaitMs);
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...connection(this.o),
      groupId: this.o.groupId,
      autocommit: false,
      sessionTimeout,
      heartbeatInterval: Math.floor(sessionTimeout / 10),
      rebalanceTimeout: sessionTimeout * 2,
      maxWaitTime: 500,
      highWaterMark: this.o.maxInFlight,
    });
    const logger = this.o.logger;
    const dispatcher = new Dispatcher<KafkaMessage>({
      adapter: ADAPTER,
      handler,
      maxInFlight: this.o.maxInFlight,
      maxBatch: options.maxBatch ?? this.o.maxBatch,
      maxDeliver: this.o.maxDeliver,
      retryDelayMs: backoff(this.o.retryInitialMs, this.o.retryMaxMs),
      metrics: this.o.metrics,
      logger,
      // Committing the last record's offset commits the partition up to it.
      ack: (records) => commitThrough(records.at(-1)!),
      // Not committed: the partition's next owner (or this member) reads them again.
      release: () => {},
    });

    let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
    let arrived: HeldRecord<KafkaMessage>[] = [];
    const flush = (): void => {
      const records = arrived;
      arrived = [];
      dispatcher.push(records);
    };
    const retry = backoff(this.o.retryInitialMs, this.o.retryMaxMs);
    const open = async (): Promise<MessagesStream<Buffer, Buffer, Buffer, Buffer>> =>
      consumer.consume({
        topics: [this.o.topic],
        mode: MessagesStreamModes.COMMITTED,
        fallbackMode: MessagesStreamFallbackModes.EARLIEST,
        autocommit: false,
      });
    try {
      stream = await open();
    } catch (cause) {
      await closeForcefully(consumer).catch(() => {});
      throw unavailable(`cannot join Kafka group ${this.o.groupId}`, cause);
    }
    const loop = (async () => {
      for (let failures = 0; dispatcher.active;) {
        try {
          stream ??= await open();
          for await (const m of stream as AsyncIterable<KafkaMessage>) {
            if (!dispatcher.active) break;
            if (arrived.length === 0) setImmediate(flush);
            arrived.push({ handle: m, delivery: this.toDelivery(m) });
            if (arrived.length >= dispatcher.room) {
              flush();
              await dispatcher.waitForRoom();
            }
          }
          failures = 0;
          if (dispatcher.active) stream = undefined;
        } catch (err) {
          if (!dispatcher.active) break;
          failures++;
          stream = undefined;
          logger.warn({ err, topic: this.o.topic }, 'Kafka consume stream failed; rejoining');
          await new Promise((resolve) => setTimeout(resolve, retry(failures)));
        }
      }
    })();
    const running: Running = { dispatcher, consumer, loop, stream: () => stream };
    this.subscriptions.add(running);
    return {
      stop: async () => {
        const stopped = dispatcher.stop();
        await stopped;
        await this.closeConsumer(running);
      },
      abandon: async () => {
        dispatcher.abandon();
        await this.closeConsumer(running);
      },
    };
  }

  /** The partitions this process's consumers hold now (diagnostics, tests). */
  assignedPartitions(): number[] {
    const out = new Set<number>();
    for (const { consumer } of this.subscriptions)
      for (const assignment of consumer.assignments ?? [])
        if (assignment.topic === this.o.topic) for (const p of assignment.partitions) out.add(p);
    return [...out].sort((a, b) => a - b);
  }

  private async closeConsumer(running: Running): Promise<void> {
    if (!this.subscriptions.delete(running)) return;
    await running.stream()?.close();
    await closeForcefully(running.consumer).catch((err: unknown) => {
      this.o.logger.warn({ err }, 'closing the Kafka consumer failed');
    });
    await running.loop;
  }

  private toDelivery(m: KafkaMessage): BusDelivery {
    // Typed as always set, but a record written by another producer may have no key or value.
    const value = (m.value as Buffer | undefined) ?? Buffer.alloc(0);
    const decoded = decodeBusMessage(value);
    if (decoded.ok) return { message: decoded.message, partition: m.partition, deliveryCount: 1 };
    return {
      message: {
        key: (m.key as Buffer | undefined)?.toString('utf8') ?? '',
        source: 'bus',
        payload: Buffer.from(value),
        origin: `${m.topic}/${m.partition}@${m.offset}`,
        receivedAt: Number(m.timestamp),
      },
      partition: m.partition,
      deliveryCount: 1,
      malformed: decoded.reason,
    };
  }

  /** Group lag over every partition: end offset minus committed (or the log start, for none). */
  async lag(): Promise<number> {
    const partitions = Array.from({ length: this.partitions }, (_, i) => i);
    const offsets = (timestamp: bigint) =>
      this.admin.listOffsets({
        topics: [
          {
            name: this.o.topic,
            partitions: partitions.map((i) => ({ partitionIndex: i, timestamp })),
          },
        ],
      });
    const [latest, earliest, committed] = await Promise.all([
      offsets(LATEST),
      offsets(EARLIEST),
      this.admin.listConsumerGroupOffsets({
        groups: [
          {
            groupId: this.o.groupId,
            topics: [{ name: this.o.topic, partitionIndexes: partitions }],
          },
        ],
      }),
    ]);
    const byPartition = (topics: { partitions: { partitionIndex: number; offset: bigint }[] }[]) =>
      new Map(
        topics.flatMap((t) => t.partitions.map((p) => [p.partitionIndex, p.offset] as const)),
      );
    const end = byPartition(latest);
    const start = byPartition(earliest);
    const done = new Map(
      committed
        .flatMap((g) => g.topics)
        .filter((t) => t.name === this.o.topic)
        .flatMap((t) => t.partitions.map((p) => [p.partitionIndex, p.committedOffset] as const)),
    );
    let lag = 0n;
    for (const p of partitions) {
      const from = (done.get(p) ?? -1n) >= 0n ? done.get(p)! : (start.get(p) ?? 0n);
      const to = end.get(p) ?? 0n;
      if (to > from) lag += to - from;
    }
    return Number(lag);
  }

  async ping(): Promise<void> {
    if (this.closed) throw closedError();
    if ((await topicPartitions(this.admin, this.o.topic)) === undefined)
      throw new Error(`Kafka topic ${this.o.topic} does not exist`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopLagSampling();
    await Promise.all(
      [...this.subscriptions].map((running) => {
        running.dispatcher.abandon();
        return this.closeConsumer(running);
      }),
    );
    await Promise.allSettled([...this.publishes]);
    await this.producer?.close();
    await this.admin.close();
  }
}

function commitThrough(message: KafkaMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    void message.commit((err?: Error) => (err ? reject(err) : resolve()));
  });
}

/** Closes a consumer without waiting for its streams to drain (the callback form: the typed promise overload needs `force` left out). */
function closeForcefully(consumer: Consumer<Buffer, Buffer, Buffer, Buffer>): Promise<void> {
  return new Promise((resolve, reject) => {
    consumer.close(true, (err) => (err ? reject(err) : resolve()));
  });
}

function closedError(): CanopyError {
  return new CanopyError('CANOPY_BUS_CLOSED', 'the bus is closed');
}
