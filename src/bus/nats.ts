/**
 * The bus on NATS JetStream (`@nats-io/jetstream` over `@nats-io/transport-node`).
 *
 * - One stream (`bus.nats.stream`) with subjects `<subjectPrefix>.<partition>`
 *   (`canopy.readings.0` …), file storage and work-queue retention: a message
 *   stays until the consumer group acknowledges it, however long the process
 *   role is down, and no longer. The stream and the consumer are created at
 *   open when missing (an operator may create them with other limits first:
 *   replicas, max bytes; an existing consumer gets this config's ack wait and
 *   max deliver).
 * - Publish: one JetStream publish per message, all in flight at once, and
 *   `publish` resolves when every publish ack is in (the stream has stored
 *   them). An idempotency key goes as `Nats-Msg-Id`, so a publisher's retry
 *   within the stream's duplicate window (2 min) is stored once.
 * - Consume: one durable pull consumer (`bus.nats.consumer`) with explicit
 *   acks; every process of the group pulls from it, so they share the work.
 *   A process fetches only as many messages as it has room for
 *   (`maxInFlight`) and acknowledges each after its batch's handler resolved.
 *   While it holds a message it tells the server it is working on it (every
 *   third of the ack wait), so a slow commit is not redelivered elsewhere; a
 *   crashed process stops doing that, and the server redelivers its messages
 *   after `ackWaitMs`. Server-side `max_deliver` is `bus.maxDeliver`.
 * - Order: the server delivers a subject's messages in stream order, and a
 *   process handles a partition's messages one batch at a time. Two processes
 *   may each pull messages of one key, though (JetStream 2.9 has no partition
 *   assignment for one consumer), so across processes a key's order is not
 *   kept: `keyAffinity` is false. NATS 2.11's pinned priority groups, one
 *   consumer per partition, are the way to add it.
 */
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
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

export interface NatsBusOptions {
  servers: string[];
  user?: string | undefined;
  password?: string | undefined;
  token?: string | undefined;
  stream: string;
  subjectPrefix: string;
  consumer: string;
  partitions: number;
  ackWaitMs: number;
  /** Deliveries before a message is given up; 0: never. */
  maxDeliver: number;
  maxInFlight: number;
  maxBatch: number;
  publishTimeoutMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  /** Connection name the server shows (`nats server report connections`). */
  name?: string;
  metrics?: Metrics;
  logger: Logger;
}

const ADAPTER = 'nats';
/** How long one pull request waits for messages before the next is sent. */
const FETCH_EXPIRES_MS = 5_000;
const DUPLICATE_WINDOW_MS = 120_000;

export async function openNatsBus(o: NatsBusOptions): Promise<NatsBus> {
  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: o.servers,
      name: o.name ?? 'canopy',
      ...(o.user === undefined ? {} : { user: o.user }),
      ...(o.password === undefined ? {} : { pass: o.password }),
      ...(o.token === undefined ? {} : { token: o.token }),
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
    });
  } catch (cause) {
    throw new CanopyError(
      'CANOPY_BUS_UNAVAILABLE',
      `cannot connect to NATS at ${o.servers.join(', ')}: ${(cause as Error).message}`,
      { cause },
    );
  }
  try {
    const jsm = await jetstreamManager(nc);
    await ensureStream(jsm, o);
    await ensureConsumer(jsm, o);
    return new NatsBus(o, nc, jsm, jetstream(nc, { timeout: o.publishTimeoutMs }));
  } catch (cause) {
    await nc.close();
    if (cause instanceof CanopyError) throw cause;
    throw new CanopyError(
      'CANOPY_BUS_UNAVAILABLE',
      `cannot set up JetStream stream ${o.stream} and consumer ${o.consumer}: ${(cause as Error).message}`,
      { cause },
    );
  }
}

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

async function ensureStream(jsm: JetStreamManager, o: NatsBusOptions): Promise<void> {
  const subject = `${o.subjectPrefix}.*`;
  try {
    const info = await jsm.streams.info(o.stream);
    if (!info.config.subjects.includes(subject))
      throw new CanopyError(
        'CANOPY_BUS_UNAVAILABLE',
        `JetStream stream ${o.stream} exists without subject ${subject} (it has ${info.config.subjects.join(', ')})`,
      );
    return;
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
  }
  await jsm.streams.add({
    name: o.stream,
    subjects: [subject],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  });
}

async function ensureConsumer(jsm: JetStreamManager, o: NatsBusOptions): Promise<void> {
  const ackWait = nanos(o.ackWaitMs);
  const maxDeliver = o.maxDeliver > 0 ? o.maxDeliver : -1;
  try {
    const info = await jsm.consumers.info(o.stream, o.consumer);
    if (info.config.ack_wait !== ackWait || info.config.max_deliver !== maxDeliver)
      await jsm.consumers.update(o.stream, o.consumer, {
        ack_wait: ackWait,
        max_deliver: maxDeliver,
      });
    return;
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
  }
  await jsm.consumers.add(o.stream, {
    durable_name: o.consumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: ackWait,
    max_deliver: maxDeliver,
    // Each process bounds what it holds (maxInFlight); the server need not.
    max_ack_pending: -1,
    filter_subject: `${o.subjectPrefix}.*`,
  });
}

interface Running {
  dispatcher: Dispatcher<JsMsg>;
  loop: Promise<void>;
  closeFetch(): void;
  stopWorking(): void;
}

export class NatsBus implements Bus {
  readonly kind = ADAPTER;
  readonly capabilities: BusCapabilities = {
    durable: true,
    sharedConsumers: true,
    keyAffinity: false,
  };
  readonly partitions: number;
  private readonly publishes = new Set<Promise<unknown>>();
  private readonly subscriptions = new Set<Running>();
  private closed = false;
  private readonly stopLagSampling: () => void;

  constructor(
    private readonly o: NatsBusOptions,
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
  ) {
    this.partitions = o.partitions;
    this.stopLagSampling = o.metrics?.sampleBusLag(ADAPTER, () => this.lag()) ?? (() => {});
  }

  async publish(messages: readonly BusMessage[]): Promise<void> {
    if (this.closed) throw closedError();
    const stopTimer = this.o.metrics?.busPublishDuration.startTimer({ adapter: ADAPTER });
    // Settled together, so a failure is reported only once no publish of the call is in flight.
    const all = Promise.allSettled(
      messages.map((message) =>
        this.js.publish(
          `${this.o.subjectPrefix}.${partitionOf(message.key, this.partitions)}`,
          encodeBusMessage(message),
          message.idempotencyKey === undefined ? {} : { msgID: message.idempotencyKey },
        ),
      ),
    );
    this.publishes.add(all);
    const results = await all.finally(() => this.publishes.delete(all));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      const cause: unknown = failed.reason;
      throw new CanopyError(
        'CANOPY_BUS_UNAVAILABLE',
        `JetStream did not acknowledge a publish to stream ${this.o.stream}: ${(cause as Error).message}`,
        { cause },
      );
    }
    stopTimer?.();
    this.o.metrics?.busPublished.inc({ adapter: ADAPTER }, messages.length);
  }

  async consume(handler: BusHandler, options: ConsumeOptions = {}): Promise<BusSubscription> {
    if (this.closed) throw closedError();
    const consumer = await this.js.consumers.get(this.o.stream, this.o.consumer);
    const logger = this.o.logger;
    const dispatcher = new Dispatcher<JsMsg>({
      adapter: ADAPTER,
      handler,
      maxInFlight: this.o.maxInFlight,
      maxBatch: options.maxBatch ?? this.o.maxBatch,
      maxDeliver: this.o.maxDeliver,
      retryDelayMs: backoff(this.o.retryInitialMs, this.o.retryMaxMs),
      metrics: this.o.metrics,
      logger,
      ack: (msgs) => {
        for (const m of msgs) m.ack();
        return Promise.resolve();
      },
      // Handed back at once rather than after the ack wait.
      release: (msgs) => {
        for (const m of msgs) m.nak();
      },
    });

    let fetch: ConsumerMessages | undefined;
    const closeFetch = (): void => {
      void fetch?.close();
    };
    // Collects the messages of one socket read, so a burst becomes batches rather than singles.
    let arrived: HeldRecord<JsMsg>[] = [];
    const take = (m: JsMsg): void => {
      if (arrived.length === 0)
        setImmediate(() => {
          const records = arrived;
          arrived = [];
          dispatcher.push(records);
        });
      arrived.push({ handle: m, delivery: this.toDelivery(m) });
    };
    const retry = backoff(this.o.retryInitialMs, this.o.retryMaxMs);
    const loop = (async () => {
      for (let failures = 0; dispatcher.active;) {
        await dispatcher.waitForRoom();
        const want = dispatcher.room - arrived.length;
        if (!dispatcher.active) break;
        if (want <= 0) {
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        try {
          fetch = await consumer.fetch({ max_messages: want, expires: FETCH_EXPIRES_MS });
          if (!dispatcher.active) closeFetch();
          for await (const m of fetch) take(m);
          failures = 0;
        } catch (err) {
          if (!dispatcher.active) break;
          failures++;
          logger.warn({ err, stream: this.o.stream }, 'JetStream fetch failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, retry(failures)));
        }
      }
    })();

    const working = setInterval(
      () => {
        for (const m of dispatcher.heldHandles()) m.working();
      },
      Math.max(50, Math.floor(this.o.ackWaitMs / 3)),
    );
    working.unref();
    const running: Running = {
      dispatcher,
      loop,
      closeFetch,
      stopWorking: () => clearInterval(working),
    };
    this.subscriptions.add(running);
    return {
      stop: async () => {
        const stopped = dispatcher.stop();
        closeFetch();
        await stopped;
        await loop;
        running.stopWorking();
        this.subscriptions.delete(running);
        // Acks and naks are plain publishes: make sure they reached the server.
        if (!this.nc.isClosed()) await this.nc.flush();
      },
      abandon: () => this.abandon(running),
    };
  }

  private async abandon(running: Running): Promise<void> {
    running.dispatcher.abandon();
    running.stopWorking();
    running.closeFetch();
    this.subscriptions.delete(running);
    await running.loop;
  }

  private toDelivery(m: JsMsg): BusDelivery {
    const suffix = m.subject.slice(this.o.subjectPrefix.length + 1);
    const decoded = decodeBusMessage(m.data);
    const deliveryCount = m.info.deliveryCount;
    if (decoded.ok) {
      const partition = /^\d+$/.test(suffix)
        ? Number(suffix)
        : partitionOf(decoded.message.key, this.partitions);
      return { message: decoded.message, partition, deliveryCount };
    }
    return {
      message: {
        key: m.subject,
        source: 'bus',
        payload: Buffer.from(m.data),
        origin: m.subject,
        receivedAt: m.time.getTime(),
      },
      partition: /^\d+$/.test(suffix) ? Number(suffix) : 0,
      deliveryCount,
      malformed: decoded.reason,
    };
  }

  async lag(): Promise<number> {
    const info = await this.jsm.consumers.info(this.o.stream, this.o.consumer);
    return info.num_pending + info.num_ack_pending;
  }

  async ping(): Promise<void> {
    if (this.closed || this.nc.isClosed()) throw closedError();
    await this.jsm.consumers.info(this.o.stream, this.o.consumer);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopLagSampling();
    await Promise.all([...this.subscriptions].map((running) => this.abandon(running)));
    await Promise.all([...this.publishes]);
    await this.nc.close();
  }
}

function closedError(): CanopyError {
  return new CanopyError('CANOPY_BUS_CLOSED', 'the bus is closed');
}
