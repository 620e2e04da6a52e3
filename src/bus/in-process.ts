/**
 * The in-process bus (the default): a bounded queue per partition in memory.
 *
 * Not durable: a message counts as accepted once it is queued, and a crash of
 * the process loses the queue. A source that acknowledged its peer on that
 * accept would have acknowledged readings a crash can lose, so with the
 * default `bus.kind: in-process` the runtime puts no bus between sources and
 * the pipeline (sources acknowledge after the commit, as before); this adapter
 * serves tests, tools and the conformance suite's reference. Separate ingest
 * and process roles need NATS or Kafka.
 *
 * Back-pressure: at most `capacity` messages are held (queued plus in the
 * consumers); `publish` waits for room, first come first served.
 *
 * Several `consume` calls on one bus share the work like a consumer group:
 * each partition belongs to one consumer at a time (round robin over the
 * consumers), and moves to another only once its holder holds none of its
 * messages, so a key's order holds across consumers. A consumer's clean stop
 * or abandon puts what it held back at the head of its partitions.
 */
import {
  type Bus,
  type BusCapabilities,
  type BusHandler,
  type BusMessage,
  type BusSubscription,
  type ConsumeOptions,
  partitionOf,
} from '../core/bus.js';
import { CanopyError } from '../core/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { backoff, Dispatcher } from './dispatcher.js';

export interface InProcessBusOptions {
  partitions: number;
  /** Messages held (queued and in consumers) before `publish` waits. */
  capacity: number;
  maxInFlight: number;
  maxBatch: number;
  maxDeliver: number;
  retryInitialMs: number;
  retryMaxMs: number;
  metrics?: Metrics;
  logger: Logger;
}

interface Entry {
  message: BusMessage;
  partition: number;
  deliveryCount: number;
}

interface Member {
  dispatcher: Dispatcher<Entry>;
  leaving: boolean;
}

const ADAPTER = 'in-process';

export class InProcessBus implements Bus {
  readonly kind = ADAPTER;
  readonly capabilities: BusCapabilities = {
    durable: false,
    sharedConsumers: true,
    keyAffinity: true,
  };
  readonly partitions: number;
  private readonly queues: Entry[][];
  /** Which member holds messages of a partition, and how many. */
  private readonly holders = new Map<number, { member: Member; count: number }>();
  private readonly members: Member[] = [];
  private total = 0;
  private publishWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private closed = false;
  private readonly stopLagSampling: () => void;

  constructor(private readonly o: InProcessBusOptions) {
    this.partitions = o.partitions;
    this.queues = Array.from({ length: o.partitions }, () => []);
    this.stopLagSampling = o.metrics?.sampleBusLag(ADAPTER, () => this.lag()) ?? (() => {});
  }

  async publish(messages: readonly BusMessage[]): Promise<void> {
    const stopTimer = this.o.metrics?.busPublishDuration.startTimer({ adapter: ADAPTER });
    for (const message of messages) {
      if (this.closed) throw closedError();
      // A slot is counted in `total` when taken: at once, or by admitWaiters.
      if (this.total < this.o.capacity && this.publishWaiters.length === 0) this.total++;
      else
        await new Promise<void>((resolve, reject) => this.publishWaiters.push({ resolve, reject }));
      const partition = partitionOf(message.key, this.partitions);
      this.queues[partition]!.push({ message, partition, deliveryCount: 1 });
      this.feed();
    }
    stopTimer?.();
    this.o.metrics?.busPublished.inc({ adapter: ADAPTER }, messages.length);
  }

  consume(handler: BusHandler, options: ConsumeOptions = {}): Promise<BusSubscription> {
    if (this.closed) return Promise.reject(closedError());
    const member: Member = {
      leaving: false,
      dispatcher: new Dispatcher<Entry>({
        adapter: ADAPTER,
        handler,
        maxInFlight: this.o.maxInFlight,
        maxBatch: options.maxBatch ?? this.o.maxBatch,
        maxDeliver: this.o.maxDeliver,
        retryDelayMs: backoff(this.o.retryInitialMs, this.o.retryMaxMs),
        metrics: this.o.metrics,
        logger: this.o.logger,
        ack: (entries) => {
          this.release(member, entries);
          this.total -= entries.length;
          this.admitWaiters();
          return Promise.resolve();
        },
        release: (entries) => this.requeue(member, entries, false),
        onRoom: () => this.feed(),
      }),
    };
    this.members.push(member);
    this.feed();
    return Promise.resolve({
      stop: async () => {
        member.leaving = true;
        await member.dispatcher.stop();
        this.leave(member);
      },
      abandon: () => {
        member.leaving = true;
        this.requeue(member, member.dispatcher.abandon(), true);
        this.leave(member);
        return Promise.resolve();
      },
    });
  }

  lag(): Promise<number> {
    return Promise.resolve(this.total);
  }

  ping(): Promise<void> {
    return this.closed ? Promise.reject(closedError()) : Promise.resolve();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const member of this.members.splice(0)) member.dispatcher.abandon();
    for (const waiter of this.publishWaiters.splice(0)) waiter.reject(closedError());
    this.stopLagSampling();
    return Promise.resolve();
  }

  private leave(member: Member): void {
    const at = this.members.indexOf(member);
    if (at >= 0) this.members.splice(at, 1);
    this.feed();
  }

  /** Gives free slots to waiting publishers, in arrival order. */
  private admitWaiters(): void {
    while (this.total < this.o.capacity && this.publishWaiters.length > 0) {
      this.total++;
      this.publishWaiters.shift()!.resolve();
    }
  }

  /** Entries a member no longer holds (acknowledged or handed back). */
  private release(member: Member, entries: readonly Entry[]): void {
    for (const entry of entries) {
      const holder = this.holders.get(entry.partition);
      if (holder?.member !== member) continue;
      if (--holder.count === 0) this.holders.delete(entry.partition);
    }
  }

  /** Puts handed-back entries before the rest of their partition, oldest first. */
  private requeue(member: Member, entries: readonly Entry[], crashed: boolean): void {
    this.release(member, entries);
    const byPartition = new Map<number, Entry[]>();
    for (const entry of entries) {
      const list = byPartition.get(entry.partition) ?? [];
      list.push(crashed ? { ...entry, deliveryCount: entry.deliveryCount + 1 } : entry);
      byPartition.set(entry.partition, list);
    }
    for (const [partition, list] of byPartition) this.queues[partition]!.unshift(...list);
  }

  /** The member a partition's next messages go to, if any. */
  private ownerOf(partition: number, active: readonly Member[]): Member | undefined {
    const holder = this.holders.get(partition);
    if (holder !== undefined) return holder.member;
    return active.length === 0 ? undefined : active[partition % active.length];
  }

  /** Moves queued entries into their owners' dispatchers while they have room. */
  private feed(): void {
    if (this.closed) return;
    const active = this.members.filter((m) => !m.leaving && m.dispatcher.active);
    for (let partition = 0; partition < this.partitions; partition++) {
      const queue = this.queues[partition]!;
      if (queue.length === 0) continue;
      const owner = this.ownerOf(partition, active);
      if (owner === undefined || owner.leaving) continue;
      const take = Math.min(owner.dispatcher.room, queue.length);
      if (take === 0) continue;
      const entries = queue.splice(0, take);
      const holder = this.holders.get(partition) ?? { member: owner, count: 0 };
      holder.count += entries.length;
      this.holders.set(partition, holder);
      owner.dispatcher.push(
        entries.map((entry) => ({
          handle: entry,
          delivery: {
            message: entry.message,
            partition: entry.partition,
            deliveryCount: entry.deliveryCount,
          },
        })),
      );
    }
  }
}

function closedError(): CanopyError {
  return new CanopyError('CANOPY_BUS_CLOSED', 'the bus is closed');
}
