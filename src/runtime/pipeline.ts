/**
 * The ingest pipeline: decode → validate → enrich → stream checks → group
 * commit → acknowledge. Every source hands its messages to `submit`.
 *
 * Contract of `submit` (see src/core/ingest.ts): it resolves only after the
 * message's readings and dead letters are durably committed, and then the
 * source may acknowledge. It rejects with CANOPY_INGEST_OVERLOADED (nothing
 * stored, retry later) when more than `maxPendingReadings` wait for a commit,
 * or with CANOPY_STORE_COMMIT_FAILED when the commit failed (nothing stored).
 *
 * Group commit: while one commit is running, later messages queue; the next
 * commit takes everything queued (up to `maxBatchReadings`). Under load that
 * makes batches large and commits few; at low rates each message commits at
 * once with no added delay. `canopy_ingest_latency_seconds` observes each
 * committed message once, from its receipt to the end of its commit.
 *
 * Idempotency keys: a message with `idempotencyKey` is checked against the
 * store's receipts first; a key already committed returns the first result
 * (marked `duplicate`) and stores nothing. Otherwise its receipt joins the
 * group commit, in the same transaction as its readings and dead letters, so
 * a crash leaves either both or neither. A second submit with the same key
 * while the first is in flight waits for the first (in-process map), so the
 * two never meet in one commit; if the first fails, the second tries itself.
 * The store's primary key on receipts is the last guard.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import type {
  DeadLetter,
  IngestMessage,
  IngestResult,
  IngestSink,
  Rejection,
} from '../core/ingest.js';
import type { Reading } from '../core/reading.js';
import type { HotStore, IngestReceipt, NewReading, SensorRecord } from '../core/store.js';
import {
  BUILT_IN_WIDE_CSV_MAPPINGS,
  decodeAndValidate,
  type DecodeOptions,
  type WideCsvMapping,
} from '../ingest/index.js';
import type { Logger } from '../observability/logger.js';
import { SensorTypeLabels, type Metrics } from '../observability/metrics.js';
import type { CanopyConfig } from '../config/schema.js';
import { StreamChecker } from '../stream/index.js';
import { SensorRegistry } from './registry.js';

export interface PipelineOptions {
  store: HotStore;
  checker: StreamChecker;
  registry: SensorRegistry;
  decode: DecodeOptions;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  maxPendingReadings: number;
  maxBatchReadings: number;
  /** Wide-CSV mappings a message may name in `wideCsvMapping`. */
  wideCsvMappings?: Readonly<Record<string, WideCsvMapping>>;
  /**
   * Most distinct sensor ids the registry holds (`ingest.maxSensors`); readings
   * of further new sensors are rejected as TOO_MANY_SENSORS. Default: no cap.
   */
  maxSensors?: number;
  /** Bounds the `sensor_type` label of the accepted-readings counter (default: built-in types). */
  sensorTypeLabels?: SensorTypeLabels;
}

/**
 * Told of each committed group, after the commit and before its messages are
 * acknowledged: the readings as stored (with their anomaly flags) and how
 * many records went to the dead-letter store. Listeners must return at once
 * and never throw (the alert service queues the work).
 */
export type CommitListener = (readings: readonly NewReading[], rejected: number) => void;

interface PendingWrite {
  readings: NewReading[];
  deadLetters: DeadLetter[];
  sensors: SensorRecord[];
  receipt: IngestReceipt | undefined;
  /** Receive time of the submitted message, epoch ms; undefined for a lone dead letter. */
  receivedAt: number | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class IngestPipeline implements IngestSink {
  private queue: PendingWrite[] = [];
  private pendingReadings = 0;
  private committing = false;
  private flushScheduled = false;
  private idleWaiters: (() => void)[] = [];
  /** Keyed submits not yet settled, by idempotency key. */
  private readonly inFlight = new Map<string, Promise<IngestResult>>();
  private readonly commitListeners: CommitListener[] = [];

  private readonly sensorTypeLabels: SensorTypeLabels;

  constructor(private readonly o: PipelineOptions) {
    this.sensorTypeLabels = o.sensorTypeLabels ?? new SensorTypeLabels();
  }

  onCommit(listener: CommitListener): void {
    this.commitListeners.push(listener);
  }

  async submit(message: IngestMessage): Promise<IngestResult> {
    const key = message.idempotencyKey;
    if (key === undefined) return this.process(message, undefined);
    for (;;) {
      const running = this.inFlight.get(key);
      if (running) {
        try {
          return this.duplicate(message, await running);
        } catch {
          // The first attempt stored nothing; this submit is free to try.
          if (this.inFlight.get(key) === running) this.inFlight.delete(key);
          continue;
        }
      }
      const attempt = this.submitKeyed(message, key);
      this.inFlight.set(key, attempt);
      try {
        return await attempt;
      } finally {
        if (this.inFlight.get(key) === attempt) this.inFlight.delete(key);
      }
    }
  }

  private async submitKeyed(message: IngestMessage, key: string): Promise<IngestResult> {
    const receipt = (await this.o.store.findReceipts([key])).get(key);
    if (receipt) {
      return this.duplicate(message, {
        batchId: receipt.batchId,
        accepted: receipt.accepted,
        rejected: receipt.rejections.map((r) => ({ ...r, raw: '' })),
      });
    }
    return this.process(message, key);
  }

  private duplicate(message: IngestMessage, first: IngestResult): IngestResult {
    this.o.metrics.duplicateMessages.inc({ source: message.source });
    return { ...first, duplicate: true };
  }

  private decodeOptions(message: IngestMessage): DecodeOptions {
    const name = message.wideCsvMapping;
    if (name === undefined) return this.o.decode;
    const mapping = this.o.wideCsvMappings?.[name];
    // An unknown name leaves no mapping, and the decoder rejects the payload as UNSUPPORTED_FORMAT.
    if (mapping === undefined) return { ...this.o.decode, wideCsv: undefined };
    return { ...this.o.decode, wideCsv: mapping };
  }

  private async process(message: IngestMessage, key: string | undefined): Promise<IngestResult> {
    const now = this.o.clock.now();
    const validated = decodeAndValidate(message, this.decodeOptions(message), now);
    const rejections = validated.rejections;
    const readings = this.admitSensors(validated.readings, rejections);
    if (readings.length > 0 && this.pendingReadings + readings.length > this.o.maxPendingReadings) {
      this.o.metrics.overloadRejections.inc({ source: message.source });
      throw new CanopyError(
        'CANOPY_INGEST_OVERLOADED',
        `ingest queue full (${this.pendingReadings} readings waiting for a commit); retry shortly`,
      );
    }

    const batchId = randomUUID();
    const receivedAt = message.receivedAt ?? now;
    const sensors: SensorRecord[] = [];
    const rows: NewReading[] = new Array<NewReading>(readings.length);
    for (let i = 0; i < readings.length; i++) {
      const reading = readings[i]!;
      const discovered = this.o.registry.enrich(reading);
      if (discovered) sensors.push(discovered);
      const flags = this.o.checker.check(reading);
      for (const rule of flags.anomalyReasons) this.o.metrics.anomalies.inc({ rule });
      // An explicit literal, not a spread: one hidden class for every row, and
      // several times faster on this path.
      rows[i] = {
        sensorId: reading.sensorId,
        sensorType: reading.sensorType,
        location: reading.location,
        eventTime: reading.eventTime,
        value: reading.value,
        unit: reading.unit,
        anomalyScore: reading.anomalyScore,
        isAnomaly: flags.isAnomaly,
        anomalyReasons: flags.anomalyReasons,
        ingestTime: now,
        source: message.source,
        batchId,
        imputed: false,
      };
    }
    const deadLetters: DeadLetter[] = rejections.map((r) => ({
      receivedAt,
      source: message.source,
      origin: message.origin ?? null,
      reason: r.reason,
      message: r.message,
      raw: r.raw,
    }));

    const receipt: IngestReceipt | undefined =
      key === undefined
        ? undefined
        : {
            key,
            batchId,
            accepted: rows.length,
            rejections: rejections.map((r) =>
              r.index === undefined
                ? { reason: r.reason, message: r.message }
                : { reason: r.reason, message: r.message, index: r.index },
            ),
            committedAt: now,
          };
    if (rows.length > 0 || deadLetters.length > 0 || receipt)
      await this.enqueue(rows, deadLetters, sensors, receipt, receivedAt);
    for (const r of rejections)
      this.o.metrics.deadLetters.inc({ source: message.source, reason: r.reason });
    return { batchId, accepted: rows.length, rejected: rejections };
  }

  /**
   * The readings whose sensor is registered or still fits under `maxSensors`;
   * the others become TOO_MANY_SENSORS rejections. Every sensor id becomes a
   * row in the sensors table and a series in every per-sensor view, so one
   * device inventing ids must not grow them without bound.
   */
  private admitSensors(readings: Reading[], rejections: Rejection[]): Reading[] {
    const max = this.o.maxSensors;
    const registry = this.o.registry;
    if (max === undefined || registry.registeredCount + readings.length <= max) return readings;
    const admitted: Reading[] = [];
    const newcomers = new Set<string>();
    for (const reading of readings) {
      const id = reading.sensorId;
      if (registry.isRegistered(id) || newcomers.has(id)) {
        admitted.push(reading);
      } else if (registry.registeredCount + newcomers.size < max) {
        newcomers.add(id);
        admitted.push(reading);
      } else {
        rejections.push({
          reason: 'TOO_MANY_SENSORS',
          message: `sensor ${id} is new and ${max} distinct sensors are registered already (ingest.maxSensors)`,
          raw: JSON.stringify(reading),
        });
      }
    }
    return admitted;
  }

  async submitDeadLetter(
    deadLetter: Omit<DeadLetter, 'receivedAt'> & { receivedAt?: number },
  ): Promise<void> {
    const row: DeadLetter = {
      ...deadLetter,
      receivedAt: deadLetter.receivedAt ?? this.o.clock.now(),
    };
    await this.enqueue([], [row], [], undefined, undefined);
    this.o.metrics.deadLetters.inc({ source: row.source, reason: row.reason });
  }

  /** Resolves once everything submitted so far is committed (or failed). */
  async drain(): Promise<void> {
    if (!this.committing && this.queue.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private enqueue(
    readings: NewReading[],
    deadLetters: DeadLetter[],
    sensors: SensorRecord[],
    receipt: IngestReceipt | undefined,
    receivedAt: number | undefined,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ readings, deadLetters, sensors, receipt, receivedAt, resolve, reject });
      this.pendingReadings += readings.length;
      this.o.metrics.pendingReadings.set(this.pendingReadings);
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.committing || this.flushScheduled) return;
    this.flushScheduled = true;
    // Let the rest of this I/O turn's messages join the same commit.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.committing) return;
    this.committing = true;
    try {
      while (this.queue.length > 0) {
        const group = this.takeGroup();
        await this.commit(group);
      }
    } finally {
      this.committing = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Takes queued writes up to maxBatchReadings (always at least one). */
  private takeGroup(): PendingWrite[] {
    let count = 0;
    let n = 0;
    while (n < this.queue.length) {
      const size = this.queue[n]!.readings.length;
      if (n > 0 && count + size > this.o.maxBatchReadings) break;
      count += size;
      n++;
    }
    return this.queue.splice(0, n);
  }

  private async commit(group: PendingWrite[]): Promise<void> {
    const readings = group.length === 1 ? group[0]!.readings : group.flatMap((w) => w.readings);
    const deadLetters = group.flatMap((w) => w.deadLetters);
    const sensors = group.flatMap((w) => w.sensors);
    // Stamped at commit: the retention of a key counts from when it became durable.
    const committedAt = this.o.clock.now();
    const receipts = group.flatMap((w) => (w.receipt ? [{ ...w.receipt, committedAt }] : []));
    const stopTimer = this.o.metrics.commitDuration.startTimer();
    try {
      if (sensors.length > 0) await this.o.store.upsertSensors(sensors);
      await this.o.store.append(readings, deadLetters, receipts);
      stopTimer();
      this.o.metrics.commitBatchSize.observe(readings.length);
      // Counted per commit, before any acknowledgement: a client that got its
      // answer finds its readings in the counter.
      this.o.metrics.countAccepted(readings, this.sensorTypeLabels);
      this.observeLatency(group);
      for (const listener of this.commitListeners) listener(readings, deadLetters.length);
      for (const w of group) w.resolve();
    } catch (err) {
      this.o.metrics.commitFailures.inc();
      for (const s of sensors) this.o.registry.forget(s.sensorId);
      const error =
        err instanceof CanopyError
          ? err
          : new CanopyError('CANOPY_STORE_COMMIT_FAILED', 'hot-store commit failed', {
              cause: err,
            });
      this.o.logger.error(
        { err: error, readings: readings.length },
        'group commit failed; nothing in it was acknowledged',
      );
      for (const w of group) w.reject(error);
    } finally {
      this.pendingReadings -= readings.length;
      this.o.metrics.pendingReadings.set(this.pendingReadings);
    }
  }

  /**
   * One latency observation per message of a committed group: receipt to
   * durable commit, so queueing behind other commits counts too. The clock is
   * read once per group. A receive time ahead of the clock (a source stamping
   * with another clock) counts as 0 rather than a negative duration.
   */
  private observeLatency(group: readonly PendingWrite[]): void {
    const committedAt = this.o.clock.now();
    for (const w of group) {
      if (w.receivedAt === undefined) continue;
      this.o.metrics.ingestLatency.observe(Math.max(0, committedAt - w.receivedAt) / 1000);
    }
  }
}

/**
 * Builds the pipeline for a config over an open store: registers configured
 * sensors, learns the known ones and warms the z-score histories from the
 * store, so a restart flags exactly as if it had never stopped.
 */
export async function createPipeline(
  config: CanopyConfig,
  store: HotStore,
  deps: { clock: Clock; metrics: Metrics; logger: Logger },
  decode: Omit<DecodeOptions, 'limits'> = {},
): Promise<IngestPipeline> {
  const registry = new SensorRegistry(config.sensors, config.sensorTypes);
  await store.upsertSensors(registry.configRecords());
  registry.markKnown((await store.listSensors()).map((s) => s.sensorId));
  const checker = new StreamChecker(config.stream, registry.rangeFor);
  checker.warm(await store.recentValues(config.stream.zscoreWindow));
  return new IngestPipeline({
    store,
    checker,
    registry,
    clock: deps.clock,
    metrics: deps.metrics,
    logger: deps.logger.child({ component: 'pipeline' }),
    decode: { ...decode, limits: config.ingest },
    maxPendingReadings: config.ingest.maxPendingReadings,
    maxBatchReadings: config.ingest.maxBatchReadings,
    maxSensors: config.ingest.maxSensors,
    wideCsvMappings: { ...BUILT_IN_WIDE_CSV_MAPPINGS, ...config.ingest.wideCsv },
    sensorTypeLabels: new SensorTypeLabels([
      ...Object.keys(config.sensorTypes),
      ...config.sensors.flatMap((s) => (s.type === undefined ? [] : [s.type])),
    ]),
  });
}
