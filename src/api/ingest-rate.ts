/**
 * Committed readings over time, in memory: a ring of per-second counts (for
 * the current rate) and a ring of per-minute counts (for the last hour's
 * history). Only totals are kept, no per-sensor or per-source labels, so the
 * memory is fixed whatever the fleet. Counts start when the process does.
 *
 * Each slot remembers which second (or minute) it holds, so a slot left over
 * from an earlier lap of the ring reads as zero: no timer is needed to clear
 * slots while nothing is committed.
 */

/** Seconds averaged for `perSecond`. */
export const RATE_WINDOW_SECONDS = 10;
/** Minutes returned by `perMinute`, the current (partial) one included. */
export const HISTORY_MINUTES = 60;

const SECOND_MS = 1_000;
const MINUTE_MS = 60_000;

class Ring {
  private readonly counts: Float64Array;
  private readonly keys: Float64Array;

  constructor(private readonly size: number) {
    this.counts = new Float64Array(size);
    this.keys = new Float64Array(size).fill(-1);
  }

  add(key: number, count: number): void {
    const slot = key % this.size;
    if (this.keys[slot] !== key) {
      this.keys[slot] = key;
      this.counts[slot] = 0;
    }
    this.counts[slot]! += count;
  }

  get(key: number): number {
    const slot = key % this.size;
    return this.keys[slot] === key ? this.counts[slot]! : 0;
  }
}

export class IngestRate {
  // One lap longer than what is read, so the slot being filled never holds a slot still read.
  private readonly seconds = new Ring(RATE_WINDOW_SECONDS + 2);
  private readonly minutes = new Ring(HISTORY_MINUTES + 1);

  /** `count` readings committed at `now` (epoch ms). */
  add(count: number, now: number): void {
    if (count <= 0) return;
    this.seconds.add(Math.floor(now / SECOND_MS), count);
    this.minutes.add(Math.floor(now / MINUTE_MS), count);
  }

  /** Mean readings per second over the last RATE_WINDOW_SECONDS whole seconds before `now`. */
  perSecond(now: number): number {
    const current = Math.floor(now / SECOND_MS);
    let total = 0;
    for (let s = current - RATE_WINDOW_SECONDS; s < current; s++) total += this.seconds.get(s);
    return total / RATE_WINDOW_SECONDS;
  }

  /** `[minute start epoch ms, count]` for the last HISTORY_MINUTES minutes, oldest first. */
  perMinute(now: number): [number, number][] {
    const current = Math.floor(now / MINUTE_MS);
    const out: [number, number][] = [];
    for (let m = current - HISTORY_MINUTES + 1; m <= current; m++)
      out.push([m * MINUTE_MS, this.minutes.get(m)]);
    return out;
  }
}
