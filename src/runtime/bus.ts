/**
 * The bus between sources and the pipeline, when `bus.kind` is `nats` or
 * `kafka` (with `in-process`, the default, none of this runs: sources submit
 * to the pipeline and acknowledge after its commit).
 *
 * Ingest side — `BusIngestSink`, the sink the sources and the HTTP API get:
 * it decodes and validates the payload (so an HTTP client still hears which
 * records were bad, and the key is known), publishes the raw payload with a
 * fresh idempotency key (or the message's own), and resolves once the bus
 * has durably accepted it: the source acknowledges its peer then. Nothing is
 * stored on this side.
 *
 * Process side — `consumeIntoPipeline`: each delivered batch is submitted to
 * the pipeline (its messages join one group commit) and the bus is
 * acknowledged after the commit. A redelivered message (a failed commit, a
 * crashed consumer) carries the same idempotency key, so the pipeline's
 * receipts store it once. The pipeline decodes again: it is the authority on
 * what is stored; the two agree except for a reading whose timestamp crossed
 * `ingest.maxFutureSkewMs` between the two clocks.
 *
 * Partition key: the sensor id when every good reading of the payload has
 * the same one (a device's own topic), else the message's origin (MQTT
 * topic, URL), else its source.
 */
import { randomUUID } from 'node:crypto';
import type { Bus, BusDelivery, BusMessage, BusSubscription } from '../core/bus.js';
import type { Clock } from '../core/clock.js';
import type { DeadLetter, IngestMessage, IngestResult, IngestSink } from '../core/ingest.js';
import type { Reading } from '../core/reading.js';
import { openBus } from '../bus/index.js';
import type { CanopyConfig } from '../config/schema.js';
import {
  BUILT_IN_WIDE_CSV_MAPPINGS,
  decodeAndValidate,
  type DecodeOptions,
  type WideCsvMapping,
} from '../ingest/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { busReadiness, type ReadinessCheck } from '../observability/readiness.js';

export interface BusIngestSinkOptions {
  bus: Bus;
  clock: Clock;
  decode: DecodeOptions;
  /** Mappings a message may name in `wideCsvMapping`, as the pipeline has them. */
  wideCsvMappings: Readonly<Record<string, WideCsvMapping>>;
}

export function routingKey(message: IngestMessage, readings: readonly Reading[]): string {
  const first = readings[0]?.sensorId;
  if (first !== undefined && readings.every((r) => r.sensorId === first)) return first;
  return message.origin ?? message.source;
}

export class BusIngestSink implements IngestSink {
  /**
   * The key given to a message without one, kept while the message object
   * lives: a source retrying the same message after a publish timeout
   * (`submitPatiently`) republishes it under the same key, so NATS's
   * duplicate window or the pipeline's receipts store it once.
   */
  private readonly givenKeys = new WeakMap<IngestMessage, string>();

  constructor(private readonly o: BusIngestSinkOptions) {}

  private keyOf(message: IngestMessage): string {
    if (message.idempotencyKey !== undefined) return message.idempotencyKey;
    let key = this.givenKeys.get(message);
    if (key === undefined) this.givenKeys.set(message, (key = `bus:${randomUUID()}`));
    return key;
  }

  async submit(message: IngestMessage): Promise<IngestResult> {
    const now = this.o.clock.now();
    const { readings, rejections } = decodeAndValidate(message, this.decodeOptions(message), now);
    const published: BusMessage = {
      key: routingKey(message, readings),
      source: message.source,
      payload: typeof message.payload === 'string' ? Buffer.from(message.payload) : message.payload,
      receivedAt: message.receivedAt ?? now,
      // Every message gets a key: a redelivery from the bus must not store twice.
      idempotencyKey: this.keyOf(message),
    };
    if (message.format !== undefined) published.format = message.format;
    if (message.contentType !== undefined) published.contentType = message.contentType;
    if (message.origin !== undefined) published.origin = message.origin;
    if (message.wideCsvMapping !== undefined) published.wideCsvMapping = message.wideCsvMapping;
    await this.o.bus.publish([published]);
    return { batchId: randomUUID(), accepted: readings.length, rejected: rejections };
  }

  async submitDeadLetter(
    deadLetter: Omit<DeadLetter, 'receivedAt'> & { receivedAt?: number },
  ): Promise<void> {
    await this.o.bus.publish([
      {
        key: deadLetter.origin ?? deadLetter.source,
        source: deadLetter.source,
        payload: Buffer.from(deadLetter.raw),
        ...(deadLetter.origin === null ? {} : { origin: deadLetter.origin }),
        receivedAt: deadLetter.receivedAt ?? this.o.clock.now(),
        deadLetter: { reason: deadLetter.reason, message: deadLetter.message },
      },
    ]);
  }

  private decodeOptions(message: IngestMessage): DecodeOptions {
    const name = message.wideCsvMapping;
    if (name === undefined) return this.o.decode;
    return { ...this.o.decode, wideCsv: this.o.wideCsvMappings[name] };
  }
}

/** What of a delivery the pipeline gets: a message to ingest, or a dead letter to record. */
function submitDelivery(sink: IngestSink, delivery: BusDelivery): Promise<unknown> {
  const m = delivery.message;
  if (delivery.malformed !== undefined)
    return sink.submitDeadLetter({
      source: 'bus',
      origin: m.origin ?? null,
      reason: 'BUS_MESSAGE_UNREADABLE',
      message: delivery.malformed,
      raw: m.payload.toString('base64'),
      receivedAt: m.receivedAt,
    });
  if (m.deadLetter !== undefined)
    return sink.submitDeadLetter({
      source: m.source,
      origin: m.origin ?? null,
      reason: m.deadLetter.reason,
      message: m.deadLetter.message,
      raw: m.payload.toString('utf8'),
      receivedAt: m.receivedAt,
    });
  const message: IngestMessage = { source: m.source, payload: m.payload, receivedAt: m.receivedAt };
  if (m.format !== undefined) message.format = m.format;
  if (m.contentType !== undefined) message.contentType = m.contentType;
  if (m.origin !== undefined) message.origin = m.origin;
  if (m.idempotencyKey !== undefined) message.idempotencyKey = m.idempotencyKey;
  if (m.wideCsvMapping !== undefined) message.wideCsvMapping = m.wideCsvMapping;
  return sink.submit(message);
}

/**
 * Feeds the bus into the pipeline: a batch's messages are submitted together
 * (in order, so they join one group commit in order), and the batch is
 * acknowledged once every one is committed. One failure (overload, a failed
 * commit) fails the batch: the bus delivers it again, and the receipts make
 * the messages already committed duplicates that store nothing.
 */
export function consumeIntoPipeline(bus: Bus, pipeline: IngestSink): Promise<BusSubscription> {
  return bus.consume(async (batch) => {
    // Every submit settles before the batch does, so a retry never overlaps its own first try.
    const results = await Promise.allSettled(batch.map((d) => submitDelivery(pipeline, d)));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  });
}

export interface StartBusDeps {
  /** What consumes the bus: the pipeline, or null in a process without the process role (publish only). */
  pipeline: IngestSink | null;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** `/readyz` checks and the app's shutdown steps (run in reverse): the bus adds its own. */
  readiness: ReadinessCheck[];
  stops: (() => Promise<void>)[];
}

/**
 * Opens the configured NATS or Kafka bus and, given a pipeline, starts
 * consuming it into that; returns the sink sources should use, or null for `in-process`
 * (sources then use the pipeline itself). Call it right after the pipeline's
 * drain step is registered: shutdown then stops the sources, the consumer
 * (its batches in flight commit and are acknowledged), closes the bus, and
 * only then drains the pipeline.
 */
export async function startBus(
  config: CanopyConfig,
  deps: StartBusDeps,
): Promise<{ sink: IngestSink } | null> {
  if (config.bus.kind === 'in-process') return null;
  const bus = await openBus(config.bus, { metrics: deps.metrics, logger: deps.logger });
  deps.stops.push(() => bus.close());
  deps.readiness.push(busReadiness(bus));
  if (deps.pipeline !== null) {
    const subscription = await consumeIntoPipeline(bus, deps.pipeline);
    deps.stops.push(() => subscription.stop());
  }
  deps.logger.info(
    { bus: config.bus.kind, partitions: bus.partitions, consuming: deps.pipeline !== null },
    deps.pipeline === null
      ? 'sources publish to the bus; other processes consume it'
      : 'sources publish to the bus; a consumer feeds the pipeline',
  );
  return {
    sink: new BusIngestSink({
      bus,
      clock: deps.clock,
      decode: { limits: config.ingest },
      wideCsvMappings: { ...BUILT_IN_WIDE_CSV_MAPPINGS, ...config.ingest.wideCsv },
    }),
  };
}
