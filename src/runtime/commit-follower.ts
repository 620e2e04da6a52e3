/**
 * What a process without the process role learns of commits: alerting (jobs
 * role) and the dashboard's live feed (api role) are told of every committed
 * group by the pipeline when it runs in the same process; elsewhere this
 * follower reads the hot store's new readings and dead letters by seq and
 * id, every `intervalMs`, and tells the same listeners.
 *
 * Contract: listeners see every reading committed after `start()` once, in
 * seq order, in pages of at most PAGE rows, with the number of dead letters
 * committed alongside as `rejected`; commits made while no follower ran are
 * not replayed (a restart starts at the store's commit position). Readings
 * purged before they were read are missed: the purge keeps the hot window,
 * far longer than the interval.
 */
import type { HotStore } from '../core/store.js';
import type { Logger } from '../observability/logger.js';
import type { CommitListener } from './pipeline.js';

const PAGE = 10_000;

export interface CommitFollowerOptions {
  store: Pick<HotStore, 'readingsAfter' | 'deadLettersAfter' | 'commitPosition'>;
  logger: Logger;
  intervalMs: number;
}

export class CommitFollower {
  private readonly listeners: CommitListener[] = [];
  private seq = 0n;
  private deadLetterId = 0n;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | undefined;
  private failing = false;

  constructor(private readonly o: CommitFollowerOptions) {}

  onCommit(listener: CommitListener): void {
    this.listeners.push(listener);
  }

  /** Starts at the store's current commit position. Throws what the store throws. */
  async start(): Promise<void> {
    const position = await this.o.store.commitPosition();
    this.seq = position.seq;
    this.deadLetterId = position.deadLetterId;
    this.timer = setInterval(() => void this.poll(), this.o.intervalMs);
    this.timer.unref();
  }

  /** One round: reads until caught up. Overlapping calls share the round in progress. */
  poll(): Promise<void> {
    this.polling ??= this.catchUp().finally(() => (this.polling = undefined));
    return this.polling;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.polling;
  }

  private tell(readings: Parameters<CommitListener>[0], rejected: number): void {
    for (const listener of this.listeners) {
      try {
        listener(readings, rejected);
      } catch (err) {
        this.o.logger.error({ err }, 'a commit listener failed');
      }
    }
  }

  private async catchUp(): Promise<void> {
    try {
      for (;;) {
        const [readings, deadLetters] = await Promise.all([
          this.o.store.readingsAfter(this.seq, PAGE),
          this.o.store.deadLettersAfter(this.deadLetterId, PAGE),
        ]);
        if (readings.length === 0 && deadLetters.length === 0) break;
        const lastReading = readings[readings.length - 1];
        if (lastReading !== undefined) this.seq = lastReading.seq;
        const lastLetter = deadLetters[deadLetters.length - 1];
        if (lastLetter !== undefined) this.deadLetterId = lastLetter.id;
        this.tell(readings, deadLetters.length);
        if (readings.length < PAGE && deadLetters.length < PAGE) break;
      }
      if (this.failing) this.o.logger.info('following the hot store again');
      this.failing = false;
    } catch (err) {
      // One line per failure streak; the next round retries from the same position.
      if (!this.failing) this.o.logger.warn({ err }, 'could not read new commits; retrying');
      this.failing = true;
    }
  }
}
