import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { AuthFailureLimiter, normalizeAddress } from './failure-limit.js';

const limit = { maxFailures: 3, windowMs: 60_000, maxTrackedAddresses: 4 };

describe('AuthFailureLimiter', () => {
  it('throttles an address after maxFailures within the window, until the window ends', () => {
    const clock = new ManualClock(1_000_000);
    const limiter = new AuthFailureLimiter(limit, clock);
    limiter.recordFailure('10.0.0.1');
    clock.advance(10_000);
    limiter.recordFailure('10.0.0.1');
    expect(limiter.retryAfterMs('10.0.0.1')).toBe(0);
    limiter.recordFailure('10.0.0.1');
    // The window started at the first failure.
    expect(limiter.retryAfterMs('10.0.0.1')).toBe(50_000);
    expect(limiter.retryAfterMs('10.0.0.2')).toBe(0);
    clock.advance(49_999);
    expect(limiter.retryAfterMs('10.0.0.1')).toBe(1);
    clock.advance(1);
    expect(limiter.retryAfterMs('10.0.0.1')).toBe(0);
    // A fresh window: one failure is not enough.
    limiter.recordFailure('10.0.0.1');
    expect(limiter.retryAfterMs('10.0.0.1')).toBe(0);
  });

  it('failures spread over windows longer apart never throttle', () => {
    const clock = new ManualClock(0);
    const limiter = new AuthFailureLimiter(limit, clock);
    for (let i = 0; i < 10; i++) {
      limiter.recordFailure('a');
      limiter.recordFailure('a');
      expect(limiter.retryAfterMs('a')).toBe(0);
      clock.advance(60_000);
    }
  });

  it('keeps at most maxTrackedAddresses, forgetting ended windows first, then the oldest', () => {
    const clock = new ManualClock(0);
    const limiter = new AuthFailureLimiter(limit, clock);
    for (let i = 0; i < 3; i++) limiter.recordFailure('old');
    clock.advance(1);
    for (let i = 0; i < 3; i++) limiter.recordFailure('b');
    for (const a of ['c', 'd', 'e', 'f']) limiter.recordFailure(a);
    expect(limiter.trackedCount).toBe(4);
    // 'old' and 'b' were the oldest windows: dropped to make room.
    expect(limiter.retryAfterMs('old')).toBe(0);
    expect(limiter.retryAfterMs('b')).toBe(0);
    clock.advance(60_000);
    limiter.recordFailure('g');
    // Every other window had ended.
    expect(limiter.trackedCount).toBe(1);
  });

  it('treats an IPv4-mapped IPv6 address as the IPv4 address', () => {
    const limiter = new AuthFailureLimiter(limit, new ManualClock(0));
    limiter.recordFailure('::ffff:192.0.2.7');
    limiter.recordFailure('192.0.2.7');
    limiter.recordFailure('::ffff:192.0.2.7');
    expect(limiter.retryAfterMs('192.0.2.7')).toBe(60_000);
    expect(normalizeAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(normalizeAddress(undefined)).toBe('unknown');
  });
});
