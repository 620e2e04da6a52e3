/** Shared parts of the fault tests (test/faults-*.test.ts): figures, stored values, waiting. */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { HotStore } from '../../src/core/store.js';

/** What a fault test reports: readings acknowledged to clients, found in the store, and lost. */
export interface FaultFigures {
  fault: string;
  acknowledged: number;
  stored: number;
  lost: number;
  /** Acknowledged readings stored more than once (QoS 1 redelivery); absent when not counted. */
  duplicates?: number;
}

/** Prints one JSON line docs/reliability.md quotes its figures from. */
export function reportFigures(figures: FaultFigures): void {
  console.log(`fault figures ${JSON.stringify(figures)}`);
}

/** How many times each value of `sensorId` is in the hot store. */
export async function storedCounts(
  store: HotStore,
  sensorId: string,
): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  let cursor: string | null = null;
  do {
    const page = await store.queryReadings({
      sensorId,
      limit: 10_000,
      ...(cursor === null ? {} : { cursor }),
    });
    for (const r of page.items) {
      const value = r.value as number;
      counts.set(value, (counts.get(value) ?? 0) + 1);
    }
    cursor = page.nextCursor;
  } while (cursor !== null);
  return counts;
}

/** Figures for acknowledged values against the stored counts. */
export function figuresFor(
  fault: string,
  acknowledged: readonly number[],
  counts: ReadonlyMap<number, number>,
): FaultFigures {
  let stored = 0;
  let duplicates = 0;
  for (const value of acknowledged) {
    const n = counts.get(value) ?? 0;
    if (n > 0) stored += 1;
    if (n > 1) duplicates += 1;
  }
  return {
    fault,
    acknowledged: acknowledged.length,
    stored,
    lost: acknowledged.length - stored,
    duplicates,
  };
}

/** Polls `condition` every 50 ms until it holds; rejects naming `what` after `limitMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  limitMs = 30_000,
): Promise<void> {
  const giveUpAt = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what} after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A TCP port nothing listens on now (the OS picks it; a later bind may still race). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
