import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.js';
import { TokenBuckets } from './token-bucket.js';

describe('TokenBuckets', () => {
  it('allows a burst, then earns tokens back at the rate, per key', () => {
    const clock = new ManualClock(0);
    const buckets = new TokenBuckets({ perSecond: 2, burst: 3 }, clock);
    expect([1, 2, 3, 4].map(() => buckets.take('a'))).toEqual([true, true, true, false]);
    expect(buckets.take('b')).toBe(true);
    clock.advance(499);
    expect(buckets.take('a')).toBe(false);
    clock.advance(1);
    expect(buckets.take('a')).toBe(true);
    expect(buckets.take('a')).toBe(false);
    clock.advance(60_000);
    expect([1, 2, 3, 4].map(() => buckets.take('a'))).toEqual([true, true, true, false]);
  });

  it('keeps only buckets that are not full again', () => {
    const clock = new ManualClock(0);
    const buckets = new TokenBuckets({ perSecond: 1, burst: 2 }, clock);
    for (let i = 0; i < 1_000; i += 1) buckets.take(`idle-${i}`);
    clock.advance(2_000);
    buckets.take('busy');
    buckets.take('busy');
    // The 1 024th take sweeps: the idle buckets are full again, busy is empty.
    for (let i = 0; i < 22; i += 1) buckets.take('other');
    expect(buckets.size).toBe(2);
    expect(buckets.take('busy')).toBe(false);
  });
});
