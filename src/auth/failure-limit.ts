/**
 * Failed-authentication throttle per client address (`auth.failureLimit`).
 *
 * After `maxFailures` refused credentials from one address within
 * `windowMs`, further authentication attempts from it are refused without
 * checking them until the window that started with its first failure ends
 * (HTTP 429 CANOPY_AUTH_THROTTLED with `Retry-After`; MQTT CONNACK "not
 * authorized"). Successful attempts are not counted, and neither are the
 * refused ones: the window does not move while an address is throttled.
 *
 * Memory is bounded: at most `maxTrackedAddresses` addresses are kept.
 * Entries live in a Map in the order their windows started (an address whose
 * window ended is moved to the end when it fails again), so ended windows
 * are always at the front and are dropped first; when every tracked window
 * is still open, the oldest is dropped. An attacker with more addresses than
 * the cap can thus free an address early, which the per-request rate limit
 * and the cost of the password hash still bound. Time comes from the
 * injected clock.
 */
import type { Clock } from '../core/clock.js';

export interface AuthFailureLimit {
  /** Failures one address may have within `windowMs` before it is throttled. */
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked at once (oldest window dropped beyond it). */
  maxTrackedAddresses: number;
}

interface Window {
  startedAt: number;
  failures: number;
}

/** `::ffff:10.0.0.1` (IPv4 on a dual-stack socket) and `10.0.0.1` are one client. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class AuthFailureLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly limit: AuthFailureLimit,
    private readonly clock: Clock,
  ) {}

  /** Milliseconds until `address` may try again; 0 when it may try now. */
  retryAfterMs(address: string): number {
    const key = normalizeAddress(address);
    const w = this.windows.get(key);
    if (w === undefined) return 0;
    const left = w.startedAt + this.limit.windowMs - this.clock.now();
    if (left <= 0) {
      this.windows.delete(key);
      return 0;
    }
    return w.failures >= this.limit.maxFailures ? left : 0;
  }

  /** Counts one refused credential from `address`. */
  recordFailure(address: string): void {
    const key = normalizeAddress(address);
    const now = this.clock.now();
    const w = this.windows.get(key);
    if (w !== undefined && now - w.startedAt < this.limit.windowMs) {
      w.failures += 1;
      return;
    }
    this.windows.delete(key);
    this.dropEnded(now);
    while (this.windows.size >= this.limit.maxTrackedAddresses) {
      const oldest = this.windows.keys().next().value as string;
      this.windows.delete(oldest);
    }
    this.windows.set(key, { startedAt: now, failures: 1 });
  }

  /** Addresses tracked now (for tests and the memory bound). */
  get trackedCount(): number {
    return this.windows.size;
  }

  private dropEnded(now: number): void {
    for (const [key, w] of this.windows) {
      if (now - w.startedAt < this.limit.windowMs) return;
      this.windows.delete(key);
    }
  }
}
