/**
 * Readiness: whether this Canopy can do its work now, as opposed to liveness
 * (`/healthz`: the process answers). Each check is a cheap async probe of one
 * dependency that throws (or rejects) with the reason it is not ready; checks
 * run concurrently, each bounded by a timeout so a hung dependency reads as
 * "not ready" rather than hanging the probe.
 */

import type { Bus } from '../core/bus.js';

export interface ReadinessCheck {
  /** e.g. `hot-store`, `lake`, `mqtt-client`. */
  name: string;
  /** Resolves when ready; throws with the reason otherwise. */
  probe(): Promise<void>;
}

export interface ReadinessResult {
  name: string;
  ok: boolean;
  /** Why the check failed; absent when ok. */
  reason?: string;
}

export const READINESS_TIMEOUT_MS = 2_000;

async function runCheck(check: ReadinessCheck, timeoutMs: number): Promise<ReadinessResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([check.probe(), timeout]);
    return { name: check.name, ok: true };
  } catch (err) {
    return {
      name: check.name,
      ok: false,
      reason: err instanceof Error ? err.message : String(err),
    };
  } finally {
    clearTimeout(timer);
  }
}

export async function checkReadiness(
  checks: readonly ReadinessCheck[],
  timeoutMs = READINESS_TIMEOUT_MS,
): Promise<{ ready: boolean; checks: ReadinessResult[] }> {
  const results = await Promise.all(checks.map((c) => runCheck(c, timeoutMs)));
  return { ready: results.every((r) => r.ok), checks: results };
}

/**
 * The bus check (for a NATS or Kafka bus; the in-process bus is always
 * there): the broker answers and the stream and consumer, or the topic, exist.
 */
export function busReadiness(bus: Bus): ReadinessCheck {
  return { name: 'bus', probe: () => bus.ping() };
}
