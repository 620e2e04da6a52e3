/**
 * The outbox dispatcher: delivers pending OutboxEntries through their
 * channel's notifier, records each attempt in the AlertStore, and retries
 * failures with exponential backoff until `maxAttempts`.
 *
 * Delivery is at least once. An entry is recorded delivered right after its
 * send succeeds; a crash (or a store failure) between the two leaves it
 * pending, and it is sent again with the same payload and id. Receivers
 * dedupe on the payload id (webhook `X-Canopy-Notification-Id`, the email
 * Message-ID, the SNS `notification_id` attribute). Exactly one notification
 * per alert transition is therefore a property of ids, not of this loop.
 *
 * Independence: attempts run concurrently, at most `concurrency` in all and
 * at most half of that (at least one) per channel, so a channel whose
 * receiver hangs holds only its own slots, each until its timeout
 * (`timeoutMsFor(channel)`), while the other channels' entries go through.
 * Within a channel, entries start oldest first.
 *
 * Retries: a failed attempt n (1-based) is tried again after
 * min(initialBackoffMs × 2^(n−1), maxBackoffMs) ± 20 % (uniform jitter from
 * `random`, so channels recovering together do not retry in lockstep); after
 * attempt `maxAttempts` the entry fails for good (status `failed`). An entry
 * whose channel is no longer configured fails for good at once.
 *
 * Fast path (`offer`): entries just committed by the alert service are
 * queued at once, without reading them back from the store. They are durable
 * already, so a crash before their delivery is recorded leaves them pending
 * for the next start, as with any other entry.
 *
 * Loop (`start`), the slow path: a pass reads the due entries and queues
 * those not already queued or in flight; then the loop sleeps until the next
 * entry is due (per `store.nextDueAt()` and the retries it scheduled itself,
 * at most 30 s) or until `wake()`. It is woken when the store may hold due
 * entries that are not tracked: a pass or an offer ran into the limit on
 * tracked entries, an attempt scheduled a retry, or an id held after a failed
 * record is released. Passes never overlap. A store failure is logged and the
 * pass retried after a second; it never ends the loop.
 *
 * Recording: outcomes are written with `store.recordDeliveries`, all those
 * waiting when the previous write finishes in one transaction, so a burst of
 * deliveries costs a few commits rather than one each.
 */
import type { AlertStore, DeliveryOutcome, DeliveryRecord, OutboxEntry } from '../core/alerts.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { untilAborted } from './notifiers/format.js';
import type { Notifier } from './notifiers/index.js';

export interface OutboxDispatcherOptions {
  store: AlertStore;
  notifiers: ReadonlyMap<string, Notifier>;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** Attempts per entry, the first included; the last failure gives up. */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Attempts in flight at once, over all channels. */
  concurrency: number;
  /** How long one attempt on `channel` may take before it is aborted. */
  timeoutMsFor: (channel: string) => number;
  /** Uniform in [0, 1), for the backoff jitter; default Math.random. */
  random?: () => number;
}

/** New entries read per store query. */
const FETCH_BATCH = 100;
/** Entries held in memory at once (queued or in flight); the rest wait in the store. */
const MAX_TRACKED = 10_000;
/** The longest the loop sleeps without looking at the store. */
const MAX_IDLE_WAIT_MS = 30_000;
/** Pause after a store failure before the next try. */
const STORE_RETRY_MS = 1_000;
/** Backoff jitter: ± this share of the delay. */
const JITTER = 0.2;

interface Job {
  entry: OutboxEntry;
  /** Settles the job for `deliverDue`: true once attempted, false if dropped by `stop`. */
  done: (attempted: boolean) => void;
}

interface PendingRecord extends DeliveryRecord {
  entry: OutboxEntry;
  written: () => void;
}

interface Collected {
  /** One per entry queued by this pass: resolves true once attempted. */
  jobs: Promise<boolean>[];
  /** The query hit its limit: more entries may be due. */
  more: boolean;
}

export class OutboxDispatcher {
  readonly #o: OutboxDispatcherOptions;
  readonly #random: () => number;
  readonly #perChannelLimit: number;
  readonly #log: Logger;

  /** Ids queued or in flight: a pass skips them, so no entry is sent twice at once. */
  readonly #tracked = new Set<string>();
  /** Waiting for a slot, by channel; iteration order is the round-robin order. */
  readonly #queues = new Map<string, Job[]>();
  readonly #runningByChannel = new Map<string, number>();
  #running = 0;
  readonly #inFlight = new Set<Promise<void>>();
  /**
   * While a pass is reading, finished ids stay tracked until it is done: the
   * rows it reads may predate their delivery record, and must not be queued again.
   */
  #collecting = false;
  #releasedWhileCollecting: string[] = [];
  /** Ids held after their delivery could not be recorded, released after STORE_RETRY_MS. */
  readonly #holds = new Set<NodeJS.Timeout>();
  /** Retry times this dispatcher scheduled and has not read back yet. */
  readonly #retryTimes: number[] = [];
  /** The store may hold due entries that are not tracked (a limit was hit): passes must look. */
  #backlog = false;
  /** An attempt scheduled a retry the sleeping loop does not know of yet. */
  #retryScheduled = false;
  /** Outcomes waiting for the next `recordDeliveries` write, in attempt order. */
  #toRecord: PendingRecord[] = [];
  #recording = false;

  /** Tail of the chain that keeps passes from overlapping. */
  #passes: Promise<unknown> = Promise.resolve();
  #loop: Promise<void> | null = null;
  #stopping = false;
  #stopped: Promise<void> | null = null;
  #wakeRequested = false;
  #sleeper: (() => void) | null = null;

  constructor(o: OutboxDispatcherOptions) {
    this.#o = o;
    this.#random = o.random ?? Math.random;
    this.#perChannelLimit = Math.max(1, Math.floor(o.concurrency / 2));
    this.#log = o.logger;
  }

  /** Starts the delivery loop; a second call, or one after `stop`, does nothing. */
  start(): void {
    if (this.#loop !== null || this.#stopping) return;
    this.#loop = this.#runLoop();
  }

  /**
   * Entries the alert service has just committed: each due one not already
   * tracked is queued for delivery at once, without a store read. Entries not
   * yet due, or beyond the limit on tracked entries, are left to the loop
   * (woken for them). Ignored once stopping: they stay pending in the store.
   */
  offer(entries: readonly OutboxEntry[]): void {
    if (this.#stopping || entries.length === 0) return;
    const now = this.#o.clock.now();
    let left = false;
    for (const entry of entries) {
      if (this.#tracked.has(entry.id) || entry.status !== 'pending') continue;
      if (entry.nextAttemptAt > now || this.#tracked.size >= MAX_TRACKED) left = true;
      else void this.#enqueue(entry);
    }
    this.#pump();
    if (left) {
      this.#backlog = true;
      this.wake();
    }
  }

  /** The store may hold new due entries: the loop runs a pass now instead of sleeping. */
  wake(): void {
    this.#wakeRequested = true;
    this.#sleeper?.();
  }

  /**
   * One pass over everything due at `clock.now()` that is not already queued
   * or in flight: attempts each entry (within the concurrency limits) and
   * resolves once all those attempts are recorded. Returns how many attempts
   * were made. Throws when the store cannot be read (the loop logs and retries
   * instead); attempt failures are recorded, never thrown.
   */
  async deliverDue(): Promise<number> {
    let attempted = 0;
    for (;;) {
      const { jobs, more } = await this.#collectInTurn();
      attempted += (await Promise.all(jobs)).filter(Boolean).length;
      if (!more || jobs.length === 0) return attempted;
    }
  }

  /**
   * Stops taking work: the loop ends, queued entries stay pending in the
   * store, attempts in flight finish (each within its timeout) and are
   * recorded; then every notifier is closed. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stopNow();
    return this.#stopped;
  }

  /** Sets the outbox gauges from the store; called at scrape time. */
  async sampleGauges(): Promise<void> {
    const stats = await this.#o.store.outboxStats();
    this.#o.metrics.outboxPending.set(stats.pending);
    this.#o.metrics.outboxOldestPendingAge.set(
      stats.oldestPendingAt === null
        ? 0
        : Math.max(0, this.#o.clock.now() - stats.oldestPendingAt) / 1000,
    );
  }

  async #stopNow(): Promise<void> {
    this.#stopping = true;
    this.#sleeper?.();
    await this.#loop;
    await this.#passes;
    for (const queue of this.#queues.values()) {
      for (const job of queue) {
        this.#tracked.delete(job.entry.id);
        job.done(false);
      }
    }
    this.#queues.clear();
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
    for (const hold of this.#holds) clearTimeout(hold);
    this.#holds.clear();
    for (const notifier of this.#o.notifiers.values()) {
      try {
        await notifier.close?.();
      } catch (err) {
        this.#log.warn({ err, channel: notifier.channel }, 'closing a notifier failed');
      }
    }
  }

  async #runLoop(): Promise<void> {
    while (!this.#stopping) {
      this.#wakeRequested = false;
      let waitMs: number;
      try {
        const { more } = await this.#collectInTurn();
        if (more && this.#tracked.size < MAX_TRACKED) continue;
        waitMs = await this.#untilNextDue();
      } catch (err) {
        this.#log.error({ err }, 'outbox pass failed; retrying');
        waitMs = STORE_RETRY_MS;
      }
      if (this.#stopping) break;
      if (waitMs > 0 && !this.#wakeRequested) await this.#sleep(waitMs);
    }
  }

  /** How long the loop may sleep: until the next entry not yet queued is due. */
  async #untilNextDue(): Promise<number> {
    const next = await this.#o.store.nextDueAt();
    const now = this.#o.clock.now();
    let wait = MAX_IDLE_WAIT_MS;
    // A due time already past belongs to an entry queued or in flight (the
    // pass just queued everything due) unless nothing is: then new entries
    // arrived meanwhile. The retries scheduled here are known separately,
    // since a queued entry hides them from nextDueAt.
    if (next !== null && next > now) wait = next - now;
    else if (next !== null && this.#tracked.size === 0) wait = 0;
    for (const at of this.#retryTimes) wait = Math.min(wait, at - now);
    return Math.min(Math.max(wait, 0), MAX_IDLE_WAIT_MS);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#sleeper?.(), ms);
      timer.unref();
      this.#sleeper = () => {
        clearTimeout(timer);
        this.#sleeper = null;
        resolve();
      };
    });
  }

  /** A pass, after the previous one has finished. */
  #collectInTurn(): Promise<Collected> {
    const pass = this.#passes.then(() => this.#collect());
    this.#passes = pass.catch(() => undefined);
    return pass;
  }

  async #collect(): Promise<Collected> {
    const room = Math.min(FETCH_BATCH, MAX_TRACKED - this.#tracked.size);
    if (this.#stopping || room <= 0) return { jobs: [], more: false };
    const now = this.#o.clock.now();
    // Queued and in-flight entries are still pending and due, and come first
    // when older: asking for that many more rows than are tracked always
    // leaves room for `room` new ones, whatever channel they are for.
    const limit = this.#tracked.size + room;
    this.#collecting = true;
    let due: OutboxEntry[];
    try {
      due = await this.#o.store.dueNotifications(now, limit);
    } finally {
      this.#collecting = false;
      for (const id of this.#releasedWhileCollecting.splice(0)) this.#tracked.delete(id);
    }
    this.#forgetRetriesUntil(now);
    this.#backlog = due.length === limit;
    const jobs: Promise<boolean>[] = [];
    for (const entry of due) {
      if (jobs.length >= room) break;
      if (!this.#tracked.has(entry.id)) jobs.push(this.#enqueue(entry));
    }
    this.#pump();
    return { jobs, more: due.length === limit };
  }

  #forgetRetriesUntil(now: number): void {
    let kept = 0;
    for (const at of this.#retryTimes) if (at > now) this.#retryTimes[kept++] = at;
    this.#retryTimes.length = kept;
  }

  #enqueue(entry: OutboxEntry): Promise<boolean> {
    this.#tracked.add(entry.id);
    return new Promise<boolean>((done) => {
      const queue = this.#queues.get(entry.channel);
      if (queue === undefined) this.#queues.set(entry.channel, [{ entry, done }]);
      else queue.push({ entry, done });
    });
  }

  /** Starts queued jobs while slots are free, taking channels in turn. */
  #pump(): void {
    while (!this.#stopping && this.#running < this.#o.concurrency) {
      const job = this.#nextJob();
      if (job === undefined) return;
      this.#start(job);
    }
  }

  #nextJob(): Job | undefined {
    for (const [channel, queue] of this.#queues) {
      if ((this.#runningByChannel.get(channel) ?? 0) >= this.#perChannelLimit) continue;
      const job = queue.shift();
      // Re-inserting moves the channel to the end: the next slot goes to another one.
      this.#queues.delete(channel);
      if (queue.length > 0) this.#queues.set(channel, queue);
      if (job !== undefined) return job;
    }
    return undefined;
  }

  #start(job: Job): void {
    const { channel } = job.entry;
    this.#running++;
    this.#runningByChannel.set(channel, (this.#runningByChannel.get(channel) ?? 0) + 1);
    const attempt = this.#attempt(job.entry)
      .catch((err: unknown) => {
        // Only a bug gets here (#attempt records every failure); the entry stays pending.
        this.#log.error({ err, channel }, 'delivery attempt crashed');
        this.#release(job.entry.id);
      })
      .finally(() => {
        this.#running--;
        const left = (this.#runningByChannel.get(channel) ?? 1) - 1;
        if (left === 0) this.#runningByChannel.delete(channel);
        else this.#runningByChannel.set(channel, left);
        this.#inFlight.delete(attempt);
        job.done(true);
        this.#pump();
        if (this.#backlog || this.#retryScheduled) {
          this.#retryScheduled = false;
          this.wake();
        }
      });
    this.#inFlight.add(attempt);
  }

  /** Sends one entry and records the outcome; never throws. */
  async #attempt(entry: OutboxEntry): Promise<void> {
    const { channel } = entry;
    const notifier = this.#o.notifiers.get(channel);
    const kind = notifier?.kind ?? 'none';
    let outcome: DeliveryOutcome;
    if (notifier === undefined) {
      outcome = {
        ok: false,
        at: this.#o.clock.now(),
        error: `no notifier named "${channel}" in alerting.notifiers (removed from the config?); not retried`,
        nextAttemptAt: null,
      };
    } else {
      const stopTimer = this.#o.metrics.notificationDuration.startTimer({ notifier: kind });
      const timeoutMs = this.#o.timeoutMsFor(channel);
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        // The race keeps the slot bounded by the timeout even if a notifier ignores its signal.
        await untilAborted(notifier.send(entry.payload, signal), signal);
        outcome = { ok: true, at: this.#o.clock.now() };
      } catch (err) {
        const timedOut = signal.aborted && err === signal.reason;
        outcome = this.#failure(
          entry,
          timedOut ? new Error(`channel ${channel}: timed out after ${timeoutMs} ms`) : err,
        );
      } finally {
        stopTimer();
      }
    }
    this.#count(entry, kind, outcome);
    await this.#record(entry, outcome);
  }

  #failure(entry: OutboxEntry, err: unknown): DeliveryOutcome {
    const at = this.#o.clock.now();
    const error = err instanceof Error ? err.message : String(err);
    const attempts = entry.attempts + 1;
    if (attempts >= this.#o.maxAttempts) return { ok: false, at, error, nextAttemptAt: null };
    const base = Math.min(this.#o.initialBackoffMs * 2 ** (attempts - 1), this.#o.maxBackoffMs);
    const delay = Math.round(base * (1 + JITTER * (2 * this.#random() - 1)));
    return { ok: false, at, error, nextAttemptAt: at + delay };
  }

  #count(entry: OutboxEntry, kind: string, outcome: DeliveryOutcome): void {
    const { channel } = entry;
    const context = { channel, notificationId: entry.payload.id, attempt: entry.attempts + 1 };
    if (outcome.ok) {
      this.#o.metrics.notificationsSent.inc({ notifier: kind, channel });
      this.#log.debug(context, 'notification delivered');
      return;
    }
    const final = outcome.nextAttemptAt === null;
    this.#o.metrics.notificationsFailed.inc({ notifier: kind, channel, final: String(final) });
    if (final) {
      this.#log.error({ ...context, error: outcome.error }, 'notification failed for good');
    } else {
      this.#retryTimes.push(outcome.nextAttemptAt as number);
      this.#retryScheduled = true;
      this.#log.warn(
        { ...context, error: outcome.error, nextAttemptAt: outcome.nextAttemptAt },
        'notification failed; will retry',
      );
    }
  }

  /**
   * Records the outcome, with whatever other outcomes are waiting, once the
   * write before has finished. If the store refuses, the entries stay pending
   * there and are attempted again later (a resend, if one was delivered):
   * their ids are held for STORE_RETRY_MS first so a failing store does not
   * turn into a resend loop. Resolves once written or held; never throws.
   */
  #record(entry: OutboxEntry, outcome: DeliveryOutcome): Promise<void> {
    return new Promise((written) => {
      this.#toRecord.push({ id: entry.id, outcome, entry, written });
      if (!this.#recording) void this.#writeRecords();
    });
  }

  async #writeRecords(): Promise<void> {
    this.#recording = true;
    while (this.#toRecord.length > 0) {
      const batch = this.#toRecord;
      this.#toRecord = [];
      try {
        await this.#o.store.recordDeliveries(batch.map(({ id, outcome }) => ({ id, outcome })));
        for (const r of batch) this.#release(r.id);
      } catch (err) {
        for (const { entry, outcome } of batch) {
          this.#log.error(
            {
              err,
              channel: entry.channel,
              notificationId: entry.payload.id,
              delivered: outcome.ok,
            },
            'recording a delivery attempt failed; the entry stays pending',
          );
        }
        this.#hold(batch.map((r) => r.id));
      }
      for (const r of batch) r.written();
    }
    this.#recording = false;
  }

  /** Keeps `ids` tracked (so no pass queues them) for STORE_RETRY_MS, then lets the loop retry them. */
  #hold(ids: readonly string[]): void {
    const hold = setTimeout(() => {
      this.#holds.delete(hold);
      for (const id of ids) this.#release(id);
      this.#backlog = true;
      this.wake();
    }, STORE_RETRY_MS);
    hold.unref();
    this.#holds.add(hold);
  }

  #release(id: string): void {
    if (this.#collecting) this.#releasedWhileCollecting.push(id);
    else this.#tracked.delete(id);
  }
}
