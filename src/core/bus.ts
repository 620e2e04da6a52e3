/**
 * The bus between the ingest role (sources) and the process role (the ingest
 * pipeline and the hot store): a partitioned, durable queue with
 * acknowledgements. Adapters live in src/bus (in-process, NATS JetStream,
 * Kafka); one conformance suite (src/bus/bus.conformance.ts) runs against each.
 *
 * Contract:
 * - `publish(messages)` resolves only once the bus has durably accepted every
 *   message (JetStream publish ack, Kafka produce ack with acks=all; the
 *   in-process bus: accepted into its bounded queue, which a process crash
 *   loses). A source acknowledges its peer only then. If it rejects, some or
 *   all messages may still have been accepted: the source must not
 *   acknowledge, and its peer's retry is deduplicated downstream by the
 *   message's idempotency key (if it has one) — at-least-once, never less.
 *   While the bus is full (in-process) or the broker slow, it waits: that is
 *   the back-pressure sources pass on to their peers.
 * - Messages are spread over `partitions` by their `key` (a sensor id or the
 *   message's routing key, see `partitionOf`). Per partition, and so per key,
 *   the handler sees messages in publish order (of one publisher), one batch
 *   at a time; different partitions are handled concurrently.
 * - `consume(handler)` calls the handler with batches and acknowledges a
 *   batch only after the handler resolves — for the process role, after the
 *   durable hot-store commit. A batch whose handler rejects is delivered
 *   again (same messages, same order, `deliveryCount` one higher) after a
 *   back-off, and the partition waits for it, so order holds. Messages a
 *   consumer held without acknowledging when it crashed (or was abandoned)
 *   are delivered again to a consumer of the group: at-least-once, so the
 *   handler must be idempotent (the pipeline's idempotency keys).
 * - A consumer holds at most `maxInFlight` messages delivered and not yet
 *   acknowledged (fetched ahead included): the bound on memory and on
 *   redelivery after a crash.
 * - `lag()` counts messages published and not yet acknowledged by the
 *   consumer group (waiting plus in flight), for `canopy_bus_lag_messages`.
 *
 * Adapters differ in what they can promise; `BusCapabilities` says which, and
 * the conformance suite runs the matching cases.
 */
import type { RejectReason } from './errors.js';
import type { PayloadFormat } from './ingest.js';

export type BusAdapterKind = 'in-process' | 'nats' | 'kafka';

/** One message on the bus: a raw payload as a source received it, with what the pipeline needs. */
export interface BusMessage {
  /**
   * Partition key: a sensor id, or the message's routing key (an MQTT topic,
   * an HTTP client) when one payload may carry several sensors. Messages with
   * the same key keep their order.
   */
  key: string;
  /** Source instance name, as in `IngestMessage.source` (`mqtt`, `http`, …). */
  source: string;
  payload: Buffer;
  format?: PayloadFormat;
  contentType?: string;
  /** MQTT topic, URL, file name: kept with dead letters. */
  origin?: string;
  /** When the source received the message, epoch ms (the latency metric counts from it). */
  receivedAt: number;
  /** As `IngestMessage.idempotencyKey`; NATS also uses it as the publish's `Nats-Msg-Id`. */
  idempotencyKey?: string;
  wideCsvMapping?: string;
  /**
   * Set for a failure that produced no payload to decode (a polled endpoint
   * that answered 500): the consumer records it as a dead letter with the
   * payload as its raw text (`IngestSink.submitDeadLetter`).
   */
  deadLetter?: { reason: RejectReason; message: string };
}

/** A message as a consumer receives it. */
export interface BusDelivery {
  message: BusMessage;
  partition: number;
  /** 1 on the first delivery; more after a handler failure or a consumer crash. */
  deliveryCount: number;
  /**
   * Set when the bytes on the bus are not a message this version can read
   * (unknown wire version, broken header): then `message` holds the raw bytes
   * as `payload`, source `bus`, and the handler should dead-letter it (it is
   * acknowledged like any other once the handler resolves).
   */
  malformed?: string;
}

/** Resolves once the batch is durably handled; rejecting asks for redelivery. */
export type BusHandler = (batch: readonly BusDelivery[]) => Promise<void>;

export interface ConsumeOptions {
  /** Most messages per handler call (default: the bus's `maxBatch`). */
  maxBatch?: number;
}

export interface BusSubscription {
  /**
   * A clean stop: no new batches start, batches in the handler finish and
   * are acknowledged, messages fetched but not started go back to the bus for
   * another consumer. Resolves when done.
   */
  stop(): Promise<void>;
  /**
   * Stops at once, as a crash would: nothing more is acknowledged (a handler
   * that resolves later is ignored) and every message held goes back to the
   * bus — at once for the in-process bus, after the ack wait (NATS) or the
   * group's rebalance (Kafka) for the brokers.
   */
  abandon(): Promise<void>;
}

/** What an adapter can promise; the conformance suite runs the cases that apply. */
export interface BusCapabilities {
  /** Accepted messages survive the process (a broker stores them). */
  durable: boolean;
  /**
   * Several consumers (processes) can share a group, each message going to one
   * of them. In-process: several `consume` calls on one bus.
   */
  sharedConsumers: boolean;
  /**
   * A key is handled by one consumer of the group at a time, so its order
   * holds across consumers too (Kafka: partitions assigned to members).
   * Without it (NATS JetStream before priority groups), two consumers may
   * each take messages of one key, and order holds only within a consumer.
   */
  keyAffinity: boolean;
}

export interface Bus {
  readonly kind: BusAdapterKind;
  readonly capabilities: BusCapabilities;
  readonly partitions: number;
  publish(messages: readonly BusMessage[]): Promise<void>;
  consume(handler: BusHandler, options?: ConsumeOptions): Promise<BusSubscription>;
  /** Messages not yet acknowledged by the group (waiting and in flight). */
  lag(): Promise<number>;
  /** Resolves when the bus is reachable (for `/readyz`); throws with the reason otherwise. */
  ping(): Promise<void>;
  /** Abandons subscriptions still running (see `abandon`), waits for publishes in flight, disconnects. */
  close(): Promise<void>;
}

/**
 * The partition of a key: FNV-1a (32 bit) of its UTF-8 bytes, modulo the
 * partition count. Every adapter uses it, so a key lands in the same
 * partition whichever bus carries it; changing the partition count moves keys.
 */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  const bytes = Buffer.from(key, 'utf8');
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}
