/**
 * The consumer side every adapter shares: what it fetched goes in here, and
 * the dispatcher calls the handler, acknowledges, retries and bounds.
 *
 * - Per partition one batch at a time, in arrival order; partitions run
 *   concurrently. Arrival order is the broker's order per partition, so a
 *   key's messages reach the handler in publish order.
 * - At most `maxInFlight` records are held (queued here or in the handler);
 *   an adapter fetches only `room` more, which is the back-pressure on the
 *   broker side.
 * - A batch whose handler rejects is retried in place after a back-off, with
 *   `deliveryCount` one higher, and its partition waits: retrying here rather
 *   than handing the batch back to the broker keeps a key's order (a broker
 *   would deliver newer messages of the key meanwhile). Records whose
 *   deliveries reach `maxDeliver` (0: no limit) are given up: acknowledged
 *   with their batch, counted and logged. A handler's failure is its whole
 *   batch's: partition-mates in one batch count their deliveries together.
 * - A handled batch is acknowledged through the adapter's `ack`, always in
 *   partition order (Kafka commits offsets, which must not skip a record).
 */
import type { BusDelivery, BusHandler } from '../core/bus.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** A fetched record: what the handler sees, and the adapter's handle to acknowledge it. */
export interface HeldRecord<T> {
  delivery: BusDelivery;
  handle: T;
}

export interface DispatcherOptions<T> {
  adapter: string;
  handler: BusHandler;
  maxInFlight: number;
  maxBatch: number;
  /** Deliveries after which a record is given up; 0: never. */
  maxDeliver: number;
  /** Acknowledges handled records of one partition, in order. A rejection is logged: the broker redelivers. */
  ack(handles: readonly T[], partition: number): Promise<void>;
  /** Hands back records fetched but never started, on a clean stop. */
  release(handles: readonly T[]): void;
  /** Told whenever held records were let go, so `room` may have grown (the in-process bus feeds then). */
  onRoom?: () => void;
  /** Back-off before retry `attempt` (1, 2, …) of a failed batch. */
  retryDelayMs(attempt: number): number;
  metrics: Metrics | undefined;
  logger: Logger;
}

type State = 'running' | 'stopping' | 'abandoned';

export class Dispatcher<T> {
  private state: State = 'running';
  private readonly queues = new Map<number, HeldRecord<T>[]>();
  /** Partitions with a batch in the handler or waiting to retry. */
  private readonly busy = new Set<number>();
  /** Records of running batches, by partition (what abandon hands back). */
  private readonly running = new Map<number, HeldRecord<T>[]>();
  private readonly batches = new Set<Promise<void>>();
  private heldCount = 0;
  private roomWaiters: (() => void)[] = [];
  private readonly wake = new AbortController();

  constructor(private readonly o: DispatcherOptions<T>) {}

  /** How many more records may be pushed now. */
  get room(): number {
    return this.state === 'running' ? Math.max(0, this.o.maxInFlight - this.heldCount) : 0;
  }

  get active(): boolean {
    return this.state === 'running';
  }

  /** Every record held now (queued or in the handler): NATS extends their ack wait. */
  *heldHandles(): Iterable<T> {
    for (const records of this.running.values()) for (const r of records) yield r.handle;
    for (const records of this.queues.values()) for (const r of records) yield r.handle;
  }

  /** Resolves when `room` is above zero, or the dispatcher stopped. */
  waitForRoom(): Promise<void> {
    if (this.room > 0 || this.state !== 'running') return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** Takes fetched records (in broker order per partition). After a stop they are released at once. */
  push(records: readonly HeldRecord<T>[]): void {
    if (records.length === 0) return;
    if (this.state !== 'running') {
      if (this.state === 'stopping') this.o.release(records.map((r) => r.handle));
      return;
    }
    for (const record of records) {
      const partition = record.delivery.partition;
      let queue = this.queues.get(partition);
      if (queue === undefined) this.queues.set(partition, (queue = []));
      queue.push(record);
    }
    this.heldCount += records.length;
    this.pump();
  }

  /** Clean stop: see `BusSubscription.stop`. */
  async stop(): Promise<void> {
    if (this.state === 'running') {
      this.state = 'stopping';
      const queued = [...this.queues.values()].flat();
      this.queues.clear();
      this.heldCount -= queued.length;
      if (queued.length > 0) this.o.release(queued.map((r) => r.handle));
      this.wake.abort();
      this.notifyRoom();
    }
    while (this.batches.size > 0) await Promise.all(this.batches);
  }

  /** Crash-like stop: returns every record held, none acknowledged. */
  abandon(): T[] {
    if (this.state === 'abandoned') return [];
    this.state = 'abandoned';
    const handles = [...this.heldHandles()];
    this.queues.clear();
    this.running.clear();
    this.heldCount = 0;
    this.wake.abort();
    this.notifyRoom();
    return handles;
  }

  private notifyRoom(): void {
    for (const resolve of this.roomWaiters.splice(0)) resolve();
    this.o.onRoom?.();
  }

  private pump(): void {
    if (this.state !== 'running') return;
    for (const [partition, queue] of this.queues) {
      if (this.busy.has(partition) || queue.length === 0) continue;
      const batch = queue.splice(0, this.o.maxBatch);
      if (queue.length === 0) this.queues.delete(partition);
      this.busy.add(partition);
      this.running.set(partition, batch);
      const run = this.runBatch(partition, batch).finally(() => this.batches.delete(run));
      this.batches.add(run);
    }
  }

  private async runBatch(partition: number, batch: HeldRecord<T>[]): Promise<void> {
    let givenUp: HeldRecord<T>[] = [];
    let pending = batch;
    for (let attempt = 1; pending.length > 0; attempt++) {
      this.countDelivered(pending);
      try {
        await this.o.handler(pending.map((r) => r.delivery));
        break;
      } catch (err) {
        if (this.isAbandoned()) return;
        const exhausted = pending.filter(
          (r) => this.o.maxDeliver > 0 && r.delivery.deliveryCount >= this.o.maxDeliver,
        );
        if (exhausted.length > 0) {
          givenUp = [...givenUp, ...exhausted];
          pending = pending.filter((r) => !exhausted.includes(r));
          this.o.metrics?.busGivenUp.inc({ adapter: this.o.adapter }, exhausted.length);
          this.o.logger.error(
            {
              err,
              partition,
              keys: [...new Set(exhausted.map((r) => r.delivery.message.key))],
              maxDeliver: this.o.maxDeliver,
            },
            'bus messages reached maxDeliver; acknowledged without being handled',
          );
        } else {
          this.o.logger.warn(
            { err, partition, messages: pending.length, attempt },
            'bus handler failed; retrying the batch',
          );
        }
        if (pending.length === 0) break;
        if (this.state === 'running') await this.sleep(this.o.retryDelayMs(attempt));
        if (this.isAbandoned()) return;
        if (this.state === 'stopping') {
          // A clean stop does not wait out retries: the bus delivers the batch
          // again. Nothing of it is acknowledged, so no offset skips a record.
          this.o.release([...pending, ...givenUp].map((r) => r.handle));
          pending = [];
          givenUp = [];
          break;
        }
        for (const r of pending)
          r.delivery = { ...r.delivery, deliveryCount: r.delivery.deliveryCount + 1 };
      }
    }
    if (this.isAbandoned()) return;
    // Handled and given-up records are acknowledged together, in partition order.
    const done = new Set([...givenUp, ...pending]);
    const handles = batch.filter((r) => done.has(r)).map((r) => r.handle);
    if (handles.length > 0) {
      try {
        await this.o.ack(handles, partition);
      } catch (err) {
        this.o.logger.warn(
          { err, partition, messages: handles.length },
          'bus acknowledgement failed; the broker will deliver these messages again',
        );
      }
    }
    if (this.isAbandoned()) return;
    this.running.delete(partition);
    this.busy.delete(partition);
    this.heldCount -= batch.length;
    this.notifyRoom();
    this.pump();
  }

  /** Read through a method: the state changes across awaits, which narrowing cannot see. */
  private isAbandoned(): boolean {
    return this.state === 'abandoned';
  }

  private countDelivered(records: readonly HeldRecord<T>[]): void {
    const metrics = this.o.metrics;
    if (metrics === undefined) return;
    const labels = { adapter: this.o.adapter };
    metrics.busDelivered.inc(labels, records.length);
    let again = 0;
    for (const r of records) if (r.delivery.deliveryCount > 1) again++;
    if (again > 0) metrics.busRedelivered.inc(labels, again);
  }

  /** A back-off that a stop or abandon cuts short. */
  private sleep(ms: number): Promise<void> {
    if (this.wake.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wake.signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** Exponential back-off from `initialMs`, capped at `maxMs`. */
export function backoff(initialMs: number, maxMs: number): (attempt: number) => number {
  return (attempt) => Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
}
