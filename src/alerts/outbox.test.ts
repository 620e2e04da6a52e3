import type { ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AlertStore, NotificationPayload, OutboxEntry } from '../core/alerts.js';
import { ManualClock } from '../core/clock.js';
import { createLogger, silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import {
  FIXTURE_T0,
  alertFixture,
  changesOf,
  outboxFixture,
  payloadFixture,
} from '../storage/meta/alert-store.conformance.js';
import { DuckDbMetaStore } from '../storage/meta/duckdb-meta-store.js';
import { captureLines } from '../../test/helpers/logs.js';
import {
  answerStatus,
  startHttpReceiver,
  type Answer,
  type HttpReceiver,
} from '../../test/helpers/http-receiver.js';
import type { Notifier } from './notifiers/index.js';
import { WebhookNotifier } from './notifiers/webhook.js';
import { OutboxDispatcher, type OutboxDispatcherOptions } from './outbox.js';

const INITIAL_MS = 1_000;
const MAX_MS = 5_000;
const RANDOM = 0.75;

/** The documented schedule, written out independently of the dispatcher. */
function expectedDelay(
  attempt: number,
  initial = INITIAL_MS,
  max = MAX_MS,
  random = RANDOM,
): number {
  return Math.round(Math.min(initial * 2 ** (attempt - 1), max) * (1 + 0.2 * (2 * random - 1)));
}

let store: AlertStore;
let clock: ManualClock;
let metrics: Metrics;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  store = new DuckDbMetaStore({ path: ':memory:' });
  await store.open();
  clock = new ManualClock(FIXTURE_T0);
  metrics = new Metrics({ defaultMetrics: false });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await store.close();
});

async function receiver(answer: Answer): Promise<HttpReceiver> {
  const r = await startHttpReceiver(answer);
  cleanups.push(() => r.close());
  return r;
}

function webhook(channel: string, r: HttpReceiver): WebhookNotifier {
  return new WebhookNotifier({ channel, url: r.url, clock });
}

function dispatcher(
  notifiers: Notifier[],
  overrides: Partial<OutboxDispatcherOptions> = {},
): OutboxDispatcher {
  const d = new OutboxDispatcher({
    store,
    notifiers: new Map(notifiers.map((n) => [n.channel, n])),
    clock,
    metrics,
    logger: silentLogger(),
    maxAttempts: 5,
    initialBackoffMs: INITIAL_MS,
    maxBackoffMs: MAX_MS,
    concurrency: 4,
    timeoutMsFor: () => 5_000,
    random: () => RANDOM,
    ...overrides,
  });
  cleanups.push(() => d.stop());
  return d;
}

/** `count` pending entries for `channel`, created a millisecond apart from `createdAt`, all due then. */
async function seed(
  channel: string,
  count: number,
  createdAt = FIXTURE_T0,
): Promise<OutboxEntry[]> {
  const alert = alertFixture();
  const entries = Array.from({ length: count }, (_, i) =>
    outboxFixture({
      alertId: alert.id,
      channel,
      createdAt: createdAt + i,
      nextAttemptAt: createdAt,
      payload: payloadFixture(alert, { id: `${channel}-${i}-${alert.id}` }),
    }),
  );
  await store.apply(changesOf({ alerts: [alert], outbox: entries }));
  return entries;
}

async function entry(id: string): Promise<OutboxEntry> {
  const all = await Promise.all(
    (await store.listAlerts({ limit: 1000 })).map((a) => store.alertNotifications(a.id)),
  );
  const found = all.flat().find((e) => e.id === id);
  if (found === undefined) throw new Error(`no outbox entry ${id}`);
  return found;
}

async function counter(
  metric: 'notificationsSent' | 'notificationsFailed',
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metrics[metric].get();
  return values
    .filter((v) =>
      Object.entries(labels).every(
        ([k, want]) => (v.labels as Record<string, string | number | undefined>)[k] === want,
      ),
    )
    .reduce((sum, v) => sum + v.value, 0);
}

/** `store`, with some of its methods replaced. */
function storeWith(overrides: Partial<AlertStore>): AlertStore {
  return new Proxy(store, {
    get(target, property) {
      const own = overrides[property as keyof AlertStore];
      if (own !== undefined) return own;
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}

function payloadOf(body: string): NotificationPayload {
  return JSON.parse(body) as NotificationPayload;
}

describe('OutboxDispatcher.deliverDue', () => {
  it('sends each due entry once and records it delivered', async () => {
    const hook = await receiver(answerStatus(204));
    const entries = await seed('ops', 3);
    const d = dispatcher([webhook('ops', hook)]);

    expect(await d.deliverDue()).toBe(3);
    expect(hook.requests.map((r) => payloadOf(r.body))).toEqual(entries.map((e) => e.payload));
    for (const e of entries) {
      expect(await entry(e.id)).toMatchObject({
        status: 'delivered',
        attempts: 1,
        deliveredAt: FIXTURE_T0,
      });
    }
    expect(await counter('notificationsSent', { notifier: 'webhook', channel: 'ops' })).toBe(3);
    const duration = await metrics.notificationDuration.get();
    expect(
      duration.values.find(
        (v) => v.metricName?.endsWith('_count') && v.labels.notifier === 'webhook',
      )?.value,
    ).toBe(3);

    expect(await d.deliverDue()).toBe(0);
    expect(hook.requests).toHaveLength(3);
  });

  it('leaves entries not yet due alone', async () => {
    const hook = await receiver(answerStatus(204));
    const [later] = await seed('ops', 1, FIXTURE_T0 + 60_000);
    const d = dispatcher([webhook('ops', hook)]);
    expect(await d.deliverDue()).toBe(0);
    clock.set(FIXTURE_T0 + 60_000);
    expect(await d.deliverDue()).toBe(1);
    expect((await entry(later!.id)).status).toBe('delivered');
  });

  it('retries a failure on the backoff schedule, with the same id, until it succeeds', async () => {
    let status = 500;
    const hook = await receiver((_req, res: ServerResponse) => {
      res.writeHead(status).end(status === 500 ? 'try later' : '');
    });
    const [e] = await seed('ops', 1);
    const d = dispatcher([webhook('ops', hook)]);

    let due = FIXTURE_T0;
    for (let attempt = 1; attempt <= 3; attempt++) {
      expect(await d.deliverDue()).toBe(1);
      const after = await entry(e!.id);
      due = clock.now() + expectedDelay(attempt);
      expect(after).toMatchObject({ status: 'pending', attempts: attempt, nextAttemptAt: due });
      expect(after.lastError).toContain('500');
      expect(after.lastError).toContain('try later');
      // Not before it is due.
      clock.set(due - 1);
      expect(await d.deliverDue()).toBe(0);
      clock.set(due);
    }
    status = 204;
    expect(await d.deliverDue()).toBe(1);
    expect(await entry(e!.id)).toMatchObject({
      status: 'delivered',
      attempts: 4,
      deliveredAt: due,
    });
    expect(new Set(hook.requests.map((r) => r.headers['x-canopy-notification-id']))).toEqual(
      new Set([e!.payload.id]),
    );
    expect(await counter('notificationsFailed', { channel: 'ops', final: 'false' })).toBe(3);
    expect(await counter('notificationsSent', { channel: 'ops' })).toBe(1);
  });

  it('caps the backoff and gives up after maxAttempts', async () => {
    const hook = await receiver(answerStatus(503, 'down'));
    const [e] = await seed('ops', 1);
    const d = dispatcher([webhook('ops', hook)], {
      maxAttempts: 4,
      maxBackoffMs: 3_000,
      random: () => 0,
    });
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 3; attempt++) {
      const before = clock.now();
      expect(await d.deliverDue()).toBe(1);
      const next = (await entry(e!.id)).nextAttemptAt;
      delays.push(next - before);
      clock.set(next);
    }
    // 1000, 2000, then 4000 capped at 3000; random 0 is the -20 % end of the jitter.
    expect(delays).toEqual([1, 2, 3].map((n) => expectedDelay(n, INITIAL_MS, 3_000, 0)));
    expect(delays).toEqual([800, 1600, 2400]);

    expect(await d.deliverDue()).toBe(1);
    const last = await entry(e!.id);
    expect(last).toMatchObject({ status: 'failed', attempts: 4 });
    expect(last.lastError).toContain('503');
    clock.advance(24 * 3600_000);
    expect(await d.deliverDue()).toBe(0);
    expect(hook.requests).toHaveLength(4);
    expect(await counter('notificationsFailed', { notifier: 'webhook', final: 'false' })).toBe(3);
    expect(await counter('notificationsFailed', { notifier: 'webhook', final: 'true' })).toBe(1);
  });

  it('fails an entry whose channel is no longer configured, for good and at once', async () => {
    const [e] = await seed('removed', 1);
    const d = dispatcher([]);
    expect(await d.deliverDue()).toBe(1);
    const after = await entry(e!.id);
    expect(after).toMatchObject({ status: 'failed', attempts: 1 });
    expect(after.lastError).toContain('no notifier named "removed"');
    expect(
      await counter('notificationsFailed', { notifier: 'none', channel: 'removed', final: 'true' }),
    ).toBe(1);
  });

  it('fails an attempt at the channel timeout and retries it later', async () => {
    const slow = await receiver(() => {
      // never answers
    });
    const [e] = await seed('slow', 1);
    const d = dispatcher([webhook('slow', slow)], { timeoutMsFor: () => 50 });
    expect(await d.deliverDue()).toBe(1);
    const after = await entry(e!.id);
    expect(after).toMatchObject({ status: 'pending', attempts: 1 });
    expect(after.lastError).toContain('timed out');
  });

  it('delivers a working channel while another hangs, the hanging one holding only its own slots', async () => {
    const held: ServerResponse[] = [];
    let release = false;
    const hanging = await receiver((_req, res) => {
      if (release) res.writeHead(204).end();
      else held.push(res);
    });
    const working = await receiver(answerStatus(204));
    // The hanging channel's entries are older: they come first in the due order.
    const stuck = await seed('stuck', 5, FIXTURE_T0 - 1_000);
    const fine = await seed('fine', 6);
    const d = dispatcher([webhook('stuck', hanging), webhook('fine', working)], {
      concurrency: 4,
      timeoutMsFor: () => 60_000,
    });

    const pass = d.deliverDue();
    await working.received(6);
    await vi.waitFor(async () => {
      for (const e of fine) expect((await entry(e.id)).status).toBe('delivered');
    });
    // Per-channel cap: half of the 4 slots; those two are still in flight, unrecorded.
    expect(hanging.requests).toHaveLength(2);
    for (const e of stuck)
      expect(await entry(e.id)).toMatchObject({ status: 'pending', attempts: 0 });

    release = true;
    for (const res of held) res.writeHead(204).end();
    expect(await pass).toBe(11);
    for (const e of stuck) expect((await entry(e.id)).status).toBe('delivered');
    expect(hanging.requests).toHaveLength(5);
  });
});

describe('OutboxDispatcher loop', () => {
  it('delivers promptly on wake(), without waiting for a poll', { timeout: 10_000 }, async () => {
    const hook = await receiver(answerStatus(204));
    const closed = vi.fn(() => Promise.resolve());
    const notifier = webhook('ops', hook);
    let idle!: () => void;
    const looked = new Promise<void>((resolve) => (idle = resolve));
    const d = dispatcher([Object.assign(notifier, { close: closed })], {
      store: storeWith({
        nextDueAt: async () => {
          const next = await store.nextDueAt();
          idle();
          return next;
        },
      }),
    });
    d.start();
    // The first pass found nothing: the loop goes to sleep for its longest
    // idle wait (30 s, beyond this test's timeout), so only wake() gets it going.
    await looked;
    const [e] = await seed('ops', 1);
    d.wake();
    const [request] = await hook.received(1);
    expect(payloadOf(request?.body ?? '')).toEqual(e!.payload);

    await d.stop();
    expect((await entry(e!.id)).status).toBe('delivered');
    expect(closed).toHaveBeenCalledTimes(1);
  });

  it('delivers offered entries without reading the store, recording them in batches', async () => {
    const hook = await receiver(answerStatus(204));
    const reads = { due: 0, next: 0 };
    const batches: number[] = [];
    let idle!: () => void;
    const looked = new Promise<void>((resolve) => (idle = resolve));
    const d = dispatcher([webhook('ops', hook)], {
      store: storeWith({
        dueNotifications: (now, limit) => {
          reads.due += 1;
          return store.dueNotifications(now, limit);
        },
        nextDueAt: async () => {
          reads.next += 1;
          const next = await store.nextDueAt();
          idle();
          return next;
        },
        recordDeliveries: (records) => {
          batches.push(records.length);
          return store.recordDeliveries(records);
        },
      }),
    });
    d.start();
    await looked;
    const before = { ...reads };
    const entries = await seed('ops', 6);
    d.offer(entries);
    d.offer(entries);
    await hook.received(6);
    await vi.waitFor(async () => expect((await store.outboxStats()).pending).toBe(0));
    expect(hook.requests.map((r) => payloadOf(r.body))).toEqual(entries.map((e) => e.payload));
    expect(reads).toEqual(before);
    expect(batches.reduce((a, b) => a + b, 0)).toBe(6);
    for (const e of entries) expect((await entry(e.id)).status).toBe('delivered');
  });

  it('retries on its own timer when a retry falls due', async () => {
    let status = 500;
    const hook = await receiver((_req, res) => res.writeHead(status).end());
    const [e] = await seed('ops', 1);
    // A tiny backoff so the loop's real timer fires soon; the ManualClock is
    // moved past the retry time as the receiver sees the first attempt.
    const d = dispatcher([webhook('ops', hook)], { initialBackoffMs: 20, random: () => 0.5 });
    d.start();
    await vi.waitFor(async () => expect((await entry(e!.id)).attempts).toBe(1));
    status = 204;
    clock.advance(20);
    const [, second] = await hook.received(2);
    expect(second?.headers['x-canopy-notification-id']).toBe(
      hook.requests[0]?.headers['x-canopy-notification-id'],
    );
  });

  it('survives a store failure: logs it and tries again', async () => {
    const hook = await receiver(answerStatus(204));
    const { stream, lines } = captureLines();
    let failures = 1;
    const flaky = storeWith({
      dueNotifications: (now, limit) => {
        if (failures-- > 0) return Promise.reject(new Error('database is locked'));
        return store.dueNotifications(now, limit);
      },
    });
    await seed('ops', 1);
    const d = dispatcher([webhook('ops', hook)], {
      store: flaky,
      logger: createLogger('info', false, { destination: stream }),
    });
    d.start();
    await hook.received(1);
    expect(lines.some((l) => l.msg === 'outbox pass failed; retrying')).toBe(true);
  });

  it('stop() leaves queued entries pending and waits for attempts in flight', async () => {
    const held: ServerResponse[] = [];
    const slow = await receiver((_req, res) => held.push(res));
    const entries = await seed('slow', 3);
    const d = dispatcher([webhook('slow', slow)], { concurrency: 2, timeoutMsFor: () => 60_000 });
    const pass = d.deliverDue();
    await slow.received(1);
    const stopping = d.stop();
    for (const res of held) res.writeHead(204).end();
    await stopping;
    expect(await pass).toBe(1);
    const statuses = await Promise.all(entries.map(async (e) => (await entry(e.id)).status));
    expect(statuses).toEqual(['delivered', 'pending', 'pending']);
  });
});

describe('OutboxDispatcher.sampleGauges', () => {
  it('sets pending count and the oldest pending age from the store', async () => {
    const hook = await receiver(answerStatus(204));
    await seed('ops', 2, FIXTURE_T0 - 5_000);
    await seed('later', 1, FIXTURE_T0 + 1_000);
    const d = dispatcher([webhook('ops', hook)]);
    await d.sampleGauges();
    expect((await metrics.outboxPending.get()).values[0]?.value).toBe(3);
    expect((await metrics.outboxOldestPendingAge.get()).values[0]?.value).toBe(5);

    await d.deliverDue();
    clock.advance(2_000);
    await d.sampleGauges();
    expect((await metrics.outboxPending.get()).values[0]?.value).toBe(1);
    // Only `later` is left, created at T0 + 1 s; now is T0 + 2 s.
    expect((await metrics.outboxOldestPendingAge.get()).values[0]?.value).toBe(1);
  });

  it('reports 0 when nothing is pending', async () => {
    const d = dispatcher([]);
    await d.sampleGauges();
    expect((await metrics.outboxPending.get()).values[0]?.value).toBe(0);
    expect((await metrics.outboxOldestPendingAge.get()).values[0]?.value).toBe(0);
  });
});
