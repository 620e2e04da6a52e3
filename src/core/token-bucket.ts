/**
 * Token buckets per key: each key may spend `burst` tokens at once and earns
 * `perSecond` back, up to `burst`. Time comes from the injected clock.
 */
import type { Clock } from './clock.js';

export interface TokenBucketLimit {
  /** Tokens earned per second. */
  perSecond: number;
  /** Most tokens a key holds: how many it may spend at once after a quiet spell. */
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Takes between two sweeps for full buckets. */
const PRUNE_EVERY = 1_024;

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private takes = 0;

  constructor(
    private readonly limit: TokenBucketLimit,
    private readonly clock: Clock,
  ) {}

  /** Spends one token of `key`; false (and nothing spent) when it has none. */
  take(key: string): boolean {
    const now = this.clock.now();
    if (++this.takes % PRUNE_EVERY === 0) this.prune(now);
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.limit.burst, updatedAt: now };
      this.buckets.set(key, bucket);
    } else {
      const earned = (Math.max(0, now - bucket.updatedAt) / 1000) * this.limit.perSecond;
      bucket.tokens = Math.min(this.limit.burst, bucket.tokens + earned);
      bucket.updatedAt = now;
    }
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /**
   * Drops the buckets that are full again (idle for burst / perSecond
   * seconds): they hold nothing a fresh bucket would not. Keeping a bucket
   * across reconnects is what stops a client from earning a new burst by
   * reconnecting; pruning only full ones keeps that while bounding the map.
   */
  private prune(now: number): void {
    const refillMs = (this.limit.burst / this.limit.perSecond) * 1000;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.updatedAt >= refillMs) this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
