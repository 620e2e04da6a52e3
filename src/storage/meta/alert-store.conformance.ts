/**
 * The one conformance suite every `AlertStore` adapter runs (DuckDB file,
 * PostgreSQL). It tests the contract in `core/alerts.ts` through the store's
 * own methods only, and checks `listAlerts` against a plain in-memory oracle
 * of the documented filter.
 *
 * Contract details the interface comments leave open, fixed here so that
 * every adapter agrees:
 * - Every field round-trips exactly (times, doubles, nulls, JSON); a stored
 *   payload keeps its key order, so a retry serialises to the same bytes.
 * - An event id already stored fails the whole change set.
 * - `state: []` / `severity: []` match no alert (a list is a set to be in).
 *   A location filter with a trailing `/` means the same without it.
 *   `limit` outside 1..1000 rejects with CANOPY_API_BAD_REQUEST.
 * - A (rule, subject) both cleared and saved in one change set ends saved.
 * - `recordDelivery` changes pending entries only; success keeps `lastError`.
 * - `activeAlerts` is ordered by `openedAt`, oldest first.
 *
 * The fixtures (`alertFixture`, `eventFixture`, `outboxFixture`,
 * `payloadFixture`, `changesOf`) are exported for other tests.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  emptyChanges,
  type Alert,
  type AlertChanges,
  type AlertEvent,
  type AlertFilter,
  type AlertStore,
  type NotificationPayload,
  type OutboxEntry,
} from '../../core/alerts.js';
import { isCanopyError, type ErrorCode } from '../../core/errors.js';
import { META_MIGRATIONS, type MetaMigration } from './meta-sql.js';

export interface AlertStoreHarness {
  /**
   * A new, unopened store over the harness's storage. May be called again
   * for the same storage (after the previous store is closed): persistence
   * across restarts is part of the contract.
   */
  make(options?: { migrations?: readonly MetaMigration[] }): AlertStore;
  /** Closes every store the harness made and removes the storage. */
  cleanup(): Promise<void>;
}

/** 2026-11-22T10:00:00Z: the fixtures' "now". */
export const FIXTURE_T0 = Date.UTC(2026, 10, 22, 10, 0, 0, 0);

/** An open warning alert on sensor `s-1` in `greenhouse/1/a`; override anything. */
export function alertFixture(overrides: Partial<Alert> = {}): Alert {
  return {
    id: randomUUID(),
    ruleId: 'too-hot',
    subject: 'sensor:s-1',
    sensorId: 's-1',
    location: 'greenhouse/1/a',
    severity: 'warning',
    state: 'open',
    summary: 'temperature 31.5 °C above 30 °C',
    labels: { sensor_type: 'temperature', location: 'greenhouse/1/a' },
    value: 31.5,
    threshold: 30,
    openedAt: FIXTURE_T0,
    updatedAt: FIXTURE_T0,
    escalatedAt: null,
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
    snoozedUntil: null,
    tier: 0,
    lastNotifiedAt: null,
    notifiedChannels: [],
    ...overrides,
  };
}

/** An `opened` event of a (random) alert; override `alertId` to attach it. */
export function eventFixture(overrides: Partial<AlertEvent> = {}): AlertEvent {
  return {
    id: randomUUID(),
    alertId: randomUUID(),
    at: FIXTURE_T0,
    kind: 'opened',
    actor: 'system',
    fromState: null,
    toState: 'open',
    severity: 'warning',
    note: null,
    value: 31.5,
    ...overrides,
  };
}

/** The payload a notifier would send for `alert`'s `event`. */
export function payloadFixture(
  alert: Alert,
  overrides: Partial<NotificationPayload> = {},
): NotificationPayload {
  return {
    id: randomUUID(),
    event: 'opened',
    at: new Date(alert.updatedAt).toISOString(),
    alert: {
      id: alert.id,
      ruleId: alert.ruleId,
      subject: alert.subject,
      sensorId: alert.sensorId,
      location: alert.location,
      severity: alert.severity,
      state: alert.state,
      summary: alert.summary,
      value: alert.value,
      threshold: alert.threshold,
      labels: alert.labels,
      openedAt: new Date(alert.openedAt).toISOString(),
      url: null,
    },
    tier: null,
    actor: 'system',
    note: null,
    ...overrides,
  };
}

/**
 * A pending entry for channel `log`, due at its creation; `id` is
 * `<eventId>:<channel>` unless overridden.
 */
export function outboxFixture(overrides: Partial<OutboxEntry> = {}): OutboxEntry {
  const eventId = overrides.eventId ?? randomUUID();
  const channel = overrides.channel ?? 'log';
  const alertId = overrides.alertId ?? randomUUID();
  const createdAt = overrides.createdAt ?? FIXTURE_T0;
  return {
    id: `${eventId}:${channel}`,
    alertId,
    eventId,
    channel,
    payload: payloadFixture(alertFixture({ id: alertId })),
    createdAt,
    status: 'pending',
    attempts: 0,
    nextAttemptAt: createdAt,
    deliveredAt: null,
    lastError: null,
    ...overrides,
  };
}

/** A change set with the given parts, the rest empty. */
export function changesOf(parts: Partial<AlertChanges>): AlertChanges {
  return { ...emptyChanges(), ...parts };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await rejection(promise);
  expect(isCanopyError(err, code), String(err)).toBe(true);
}

/** The documented `listAlerts` semantics, over plain objects. */
function oracle(alerts: readonly Alert[], f: AlertFilter): Alert[] {
  const prefix = f.location?.replace(/\/+$/, '');
  return alerts
    .filter((a) => !f.state || f.state.includes(a.state))
    .filter((a) => !f.severity || f.severity.includes(a.severity))
    .filter((a) => f.ruleId === undefined || a.ruleId === f.ruleId)
    .filter((a) => f.sensorId === undefined || a.sensorId === f.sensorId)
    .filter(
      (a) =>
        prefix === undefined ||
        (a.location !== null && (a.location === prefix || a.location.startsWith(`${prefix}/`))),
    )
    .filter((a) => f.to === undefined || a.openedAt < f.to)
    .filter((a) => f.from === undefined || a.resolvedAt === null || a.resolvedAt >= f.from)
    .sort((a, b) => b.openedAt - a.openedAt)
    .slice(0, f.limit);
}

export function describeAlertStoreConformance(
  name: string,
  createHarness: () => Promise<AlertStoreHarness>,
): void {
  describe(`AlertStore conformance: ${name}`, () => {
    let harness: AlertStoreHarness;
    let store: AlertStore;

    beforeEach(async () => {
      harness = await createHarness();
      store = harness.make();
      await store.open();
    });

    afterEach(async () => {
      await harness.cleanup();
    });

    /** Everything the store holds about `alertIds`, read through the contract. */
    async function snapshot(alertIds: readonly string[]) {
      return {
        alerts: await Promise.all(alertIds.map((id) => store.getAlert(id))),
        events: await Promise.all(alertIds.map((id) => store.alertEvents(id))),
        outbox: await Promise.all(alertIds.map((id) => store.alertNotifications(id))),
        active: await store.activeAlerts(),
        listed: await store.listAlerts({ limit: 1000 }),
        subjectStates: await store.subjectStates(),
        stats: await store.outboxStats(),
        nextDue: await store.nextDueAt(),
      };
    }

    it('round-trips every field of alerts, events, outbox entries and subject states', async () => {
      const full = alertFixture({
        subject: 'location:kew/bed-2',
        sensorId: "s-'quoted'; DROP TABLE alerts; --",
        location: 'kew/bed-2',
        severity: 'critical',
        state: 'acknowledged',
        summary: 'Ünïcode ✓ "quotes" \\ backslash\nnew line',
        labels: { sensor_type: 'humidity', location: 'kew/bed-2', 'x.y': '', emoji: '🌱' },
        value: 0.1 + 0.2,
        threshold: -Number.MAX_VALUE,
        openedAt: FIXTURE_T0 + 1,
        updatedAt: FIXTURE_T0 + 6,
        escalatedAt: FIXTURE_T0 + 2,
        acknowledgedAt: FIXTURE_T0 + 3,
        acknowledgedBy: 'ada@example.org',
        resolvedAt: null,
        snoozedUntil: Number.MAX_SAFE_INTEGER,
        tier: 3,
        lastNotifiedAt: FIXTURE_T0 + 5,
        notifiedChannels: ['ops-mail', 'webhook_1'],
      });
      const sparse = alertFixture({
        sensorId: null,
        location: null,
        labels: {},
        value: null,
        threshold: null,
        openedAt: 0,
        updatedAt: 0,
        state: 'resolved',
        resolvedAt: 1,
      });
      const opened = eventFixture({ alertId: full.id, at: full.openedAt, value: 1e-300 });
      const acked = eventFixture({
        alertId: full.id,
        at: full.acknowledgedAt ?? 0,
        kind: 'acknowledged',
        actor: 'ada@example.org',
        fromState: 'escalated',
        toState: 'acknowledged',
        severity: 'critical',
        note: 'on it — 🔧',
        value: null,
      });
      const payload = payloadFixture(full, {
        event: 'acknowledged',
        tier: 2,
        actor: 'ada@example.org',
        note: 'on it',
      });
      const entry = outboxFixture({
        alertId: full.id,
        eventId: acked.id,
        channel: 'ops-mail',
        id: `${acked.id}:ops-mail`,
        payload: { ...payload, alert: { ...payload.alert, url: 'https://canopy.example/a/1' } },
        createdAt: FIXTURE_T0 + 3,
        nextAttemptAt: FIXTURE_T0 + 60_000,
        attempts: 4,
        lastError: 'HTTP 503: unavailable',
      });
      const delivered = outboxFixture({
        alertId: full.id,
        status: 'delivered',
        attempts: 1,
        createdAt: FIXTURE_T0 + 4,
        deliveredAt: FIXTURE_T0 + 9,
      });
      const subjectState = {
        ruleId: 'too-hot',
        subject: 'sensor:s-1',
        state: {
          consecutive: 3,
          firstBreachAt: FIXTURE_T0,
          last: { v: -1.25, ok: false },
          n: null,
        },
      };
      await store.apply({
        alerts: [full, sparse],
        events: [opened, acked],
        outbox: [entry, delivered],
        subjectStates: [subjectState],
        clearedSubjectStates: [],
      });

      expect(await store.getAlert(full.id)).toEqual(full);
      expect(await store.getAlert(sparse.id)).toEqual(sparse);
      expect(await store.getAlert(randomUUID())).toBeUndefined();
      expect(await store.activeAlerts()).toEqual([full]);
      expect(await store.listAlerts({ limit: 10 })).toEqual([full, sparse]);
      expect(await store.alertEvents(full.id)).toEqual([opened, acked]);
      const notifications = await store.alertNotifications(full.id);
      expect(notifications).toEqual([entry, delivered]);
      // Same bytes on every retry: the payload keeps its key order.
      expect(JSON.stringify(notifications[0]?.payload)).toBe(JSON.stringify(entry.payload));
      expect(await store.subjectStates()).toEqual([subjectState]);
    });

    it('replaces an alert by id, every column (also back to null)', async () => {
      const first = alertFixture({
        state: 'escalated',
        severity: 'critical',
        escalatedAt: FIXTURE_T0 + 10,
        snoozedUntil: FIXTURE_T0 + 20,
        acknowledgedBy: 'x',
        tier: 1,
        notifiedChannels: ['a'],
        labels: { a: '1' },
      });
      await store.apply(changesOf({ alerts: [first] }));
      const second = alertFixture({
        id: first.id,
        ruleId: 'other',
        subject: 'pipeline:lag',
        sensorId: null,
        location: null,
        summary: 'changed',
        value: null,
        threshold: null,
        updatedAt: FIXTURE_T0 + 30,
        notifiedChannels: ['a', 'b'],
        labels: { b: '2' },
      });
      await store.apply(changesOf({ alerts: [second] }));
      expect(await store.getAlert(first.id)).toEqual(second);
      expect(await store.listAlerts({ limit: 1000 })).toEqual([second]);

      // Replaced twice within one change set: the last one wins.
      const third = { ...second, summary: 'third' };
      const fourth = { ...second, summary: 'fourth', state: 'resolved' as const, resolvedAt: 1 };
      await store.apply(changesOf({ alerts: [third, fourth] }));
      expect(await store.listAlerts({ limit: 1000 })).toEqual([fourth]);
    });

    describe('apply is all or nothing', () => {
      async function seed() {
        const alert = alertFixture();
        const event = eventFixture({ alertId: alert.id });
        const entry = outboxFixture({ alertId: alert.id, eventId: event.id });
        await store.apply({
          alerts: [alert],
          events: [event],
          outbox: [entry],
          subjectStates: [{ ruleId: alert.ruleId, subject: alert.subject, state: { n: 1 } }],
          clearedSubjectStates: [],
        });
        return { alert, event, entry };
      }

      /** A change set that touches every table, plus `broken` somewhere. */
      function bigChange(alert: Alert, broken: Partial<AlertChanges>): AlertChanges {
        const other = alertFixture({ ruleId: 'second' });
        const event = eventFixture({ alertId: other.id });
        return {
          alerts: [{ ...alert, state: 'escalated', tier: 1 }, other, ...(broken.alerts ?? [])],
          events: [eventFixture({ alertId: alert.id }), event, ...(broken.events ?? [])],
          outbox: [
            outboxFixture({ alertId: other.id, eventId: event.id }),
            ...(broken.outbox ?? []),
          ],
          subjectStates: [
            { ruleId: 'second', subject: other.subject, state: { n: 9 } },
            ...(broken.subjectStates ?? []),
          ],
          clearedSubjectStates: [{ ruleId: alert.ruleId, subject: alert.subject }],
        };
      }

      it('leaves nothing of a change set whose last subject state is invalid', async () => {
        const { alert } = await seed();
        const before = await snapshot([alert.id]);
        const invalid = { ruleId: null, subject: 'x', state: {} } as unknown as {
          ruleId: string;
          subject: string;
          state: Record<string, unknown>;
        };
        const change = bigChange(alert, { subjectStates: [invalid] });
        await expect(store.apply(change)).rejects.toThrow();
        const other = change.alerts[1] as Alert;
        expect(await snapshot([alert.id])).toEqual(before);
        expect(await store.getAlert(other.id)).toBeUndefined();
        expect(await store.alertNotifications(other.id)).toEqual([]);
      });

      it('leaves nothing of a change set with an invalid alert state', async () => {
        const { alert } = await seed();
        const before = await snapshot([alert.id]);
        const invalid = alertFixture({ state: 'bogus' as Alert['state'] });
        await expect(store.apply(bigChange(alert, { alerts: [invalid] }))).rejects.toThrow();
        expect(await snapshot([alert.id])).toEqual(before);
      });

      it('fails a change set that repeats a stored event id, and keeps working after', async () => {
        const { alert, event } = await seed();
        const before = await snapshot([alert.id]);
        await expect(
          store.apply(bigChange(alert, { events: [{ ...event, note: 'again' }] })),
        ).rejects.toThrow();
        expect(await snapshot([alert.id])).toEqual(before);

        const next = eventFixture({ alertId: alert.id, at: FIXTURE_T0 + 1 });
        await store.apply(changesOf({ events: [next] }));
        expect(await store.alertEvents(alert.id)).toEqual([event, next]);
      });
    });

    it('inserts an outbox entry once: an id already present is left unchanged', async () => {
      const alert = alertFixture();
      const entry = outboxFixture({ alertId: alert.id });
      await store.apply(changesOf({ alerts: [alert], outbox: [entry] }));
      await store.recordDelivery(entry.id, { ok: true, at: FIXTURE_T0 + 5 });
      const deliveredEntry = {
        ...entry,
        status: 'delivered' as const,
        attempts: 1,
        deliveredAt: FIXTURE_T0 + 5,
      };
      // A replay of the same step (e.g. after a crash) must not resend it.
      await store.apply(changesOf({ outbox: [{ ...entry, channel: 'changed' }] }));
      expect(await store.alertNotifications(alert.id)).toEqual([deliveredEntry]);

      const twice = outboxFixture({ alertId: alert.id, createdAt: FIXTURE_T0 + 1 });
      await store.apply(changesOf({ outbox: [twice, { ...twice, lastError: 'second copy' }] }));
      expect(await store.alertNotifications(alert.id)).toEqual([deliveredEntry, twice]);
      expect((await store.outboxStats()).pending).toBe(1);
    });

    it('activeAlerts returns every alert not resolved, oldest first', async () => {
      const states = ['open', 'escalated', 'acknowledged', 'resolved'] as const;
      const alerts = states.map((state, i) =>
        alertFixture({
          state,
          openedAt: FIXTURE_T0 - i * 1000,
          resolvedAt: state === 'resolved' ? FIXTURE_T0 : null,
        }),
      );
      await store.apply(changesOf({ alerts }));
      expect(await store.activeAlerts()).toEqual([alerts[2], alerts[1], alerts[0]]);
    });

    describe('listAlerts', () => {
      const H = 3_600_000;
      const data: Alert[] = [
        alertFixture({ location: 'greenhouse', openedAt: FIXTURE_T0 }),
        alertFixture({
          location: 'greenhouse/1/a',
          sensorId: 's-2',
          severity: 'critical',
          state: 'escalated',
          openedAt: FIXTURE_T0 + H,
        }),
        alertFixture({
          location: 'greenhouse2',
          ruleId: 'too-cold',
          state: 'resolved',
          openedAt: FIXTURE_T0 + 2 * H,
          resolvedAt: FIXTURE_T0 + 3 * H,
        }),
        alertFixture({
          location: 'greenhouse2/x',
          sensorId: 's-22',
          state: 'acknowledged',
          openedAt: FIXTURE_T0 + 4 * H,
        }),
        alertFixture({
          location: null,
          sensorId: null,
          subject: 'pipeline:lag',
          ruleId: 'lag',
          severity: 'critical',
          openedAt: FIXTURE_T0 - 5 * H,
          state: 'resolved',
          resolvedAt: FIXTURE_T0 - H,
        }),
        alertFixture({ location: 'green', openedAt: FIXTURE_T0 + 5 * H }),
        alertFixture({ location: 'a_b/c', openedAt: FIXTURE_T0 + 6 * H }),
        alertFixture({ location: 'aXb/c', openedAt: FIXTURE_T0 + 7 * H }),
        alertFixture({
          location: 'greenhouse/1',
          sensorId: 's-1',
          state: 'resolved',
          openedAt: FIXTURE_T0 + 8 * H,
          resolvedAt: FIXTURE_T0 + 10 * H,
        }),
      ];

      beforeEach(async () => {
        await store.apply(changesOf({ alerts: data }));
      });

      const filters: [string, AlertFilter][] = [
        ['no filter, newest first', { limit: 1000 }],
        ['limit', { limit: 3 }],
        ['one state', { state: ['resolved'], limit: 1000 }],
        ['several states', { state: ['open', 'acknowledged'], limit: 1000 }],
        ['no state at all', { state: [], limit: 1000 }],
        ['severity', { severity: ['critical'], limit: 1000 }],
        ['both severities', { severity: ['warning', 'critical'], limit: 1000 }],
        ['rule', { ruleId: 'too-cold', limit: 1000 }],
        ['sensor, exactly (s-2 is not s-22)', { sensorId: 's-2', limit: 1000 }],
        ['location prefix on path boundaries', { location: 'greenhouse', limit: 1000 }],
        ['location with a trailing slash', { location: 'greenhouse/', limit: 1000 }],
        ['deeper location', { location: 'greenhouse/1', limit: 1000 }],
        ['location is no pattern', { location: 'a_b', limit: 1000 }],
        ['location no alert has', { location: 'gre', limit: 1000 }],
        ['to: opened strictly before', { to: FIXTURE_T0 + H, limit: 1000 }],
        ['from: resolved at from still counts', { from: FIXTURE_T0 + 3 * H, limit: 1000 }],
        ['from just after a resolution', { from: FIXTURE_T0 + 3 * H + 1, limit: 1000 }],
        [
          'window [from, to)',
          { from: FIXTURE_T0 - 2 * H, to: FIXTURE_T0 + 2 * H + 1, limit: 1000 },
        ],
        [
          'everything together',
          {
            state: ['open', 'escalated', 'resolved'],
            severity: ['warning', 'critical'],
            ruleId: 'too-hot',
            location: 'greenhouse',
            from: FIXTURE_T0,
            to: FIXTURE_T0 + 9 * H,
            limit: 2,
          },
        ],
      ];

      it.each(filters)('%s', async (_, filter) => {
        const expected = oracle(data, filter);
        expect(await store.listAlerts(filter)).toEqual(expected);
      });

      it('the oracle agrees with hand-picked answers', () => {
        const locations = (f: AlertFilter) => oracle(data, f).map((a) => a.location);
        expect(locations({ location: 'greenhouse', limit: 1000 })).toEqual([
          'greenhouse/1',
          'greenhouse/1/a',
          'greenhouse',
        ]);
        expect(
          locations({ from: FIXTURE_T0 + 3 * H + 1, to: FIXTURE_T0 + 5 * H, limit: 9 }),
        ).toEqual(['greenhouse2/x', 'greenhouse/1/a', 'greenhouse']);
      });

      it.each([0, 1001, 1.5])('rejects limit %s with CANOPY_API_BAD_REQUEST', async (limit) => {
        await expectCode(store.listAlerts({ limit }), 'CANOPY_API_BAD_REQUEST');
      });
    });

    it('lists an alert’s events and notifications oldest first, insertion order on ties', async () => {
      const alert = alertFixture();
      const other = alertFixture();
      const late = eventFixture({ alertId: alert.id, at: FIXTURE_T0 + 100, kind: 'resolved' });
      const a = eventFixture({ alertId: alert.id, at: FIXTURE_T0, kind: 'opened' });
      const b = eventFixture({ alertId: alert.id, at: FIXTURE_T0, kind: 'tier-notified' });
      const elsewhere = eventFixture({ alertId: other.id, at: FIXTURE_T0 });
      const oLate = outboxFixture({ alertId: alert.id, createdAt: FIXTURE_T0 + 100 });
      const oA = outboxFixture({ alertId: alert.id, channel: 'z', createdAt: FIXTURE_T0 });
      const oB = outboxFixture({ alertId: alert.id, channel: 'a', createdAt: FIXTURE_T0 });
      await store.apply(changesOf({ alerts: [alert, other], events: [late], outbox: [oLate] }));
      await store.apply(changesOf({ events: [a, b, elsewhere], outbox: [oA, oB] }));
      const c = eventFixture({ alertId: alert.id, at: FIXTURE_T0, kind: 'reminder' });
      await store.apply(changesOf({ events: [c] }));
      expect(await store.alertEvents(alert.id)).toEqual([a, b, c, late]);
      expect(await store.alertEvents(other.id)).toEqual([elsewhere]);
      expect(await store.alertEvents(randomUUID())).toEqual([]);
      expect(await store.alertNotifications(alert.id)).toEqual([oA, oB, oLate]);
      expect(await store.alertNotifications(other.id)).toEqual([]);
    });

    it('dueNotifications: pending and due only, oldest createdAt first, limited; nextDueAt', async () => {
      expect(await store.nextDueAt()).toBeNull();
      expect(await store.dueNotifications(FIXTURE_T0 + 1e9, 10)).toEqual([]);
      const old = outboxFixture({ createdAt: FIXTURE_T0 - 50, nextAttemptAt: FIXTURE_T0 + 30 });
      const dueNow = outboxFixture({ createdAt: FIXTURE_T0 - 10, nextAttemptAt: FIXTURE_T0 });
      const due = outboxFixture({ createdAt: FIXTURE_T0 - 20, nextAttemptAt: FIXTURE_T0 - 20 });
      const later = outboxFixture({ createdAt: FIXTURE_T0 - 100, nextAttemptAt: FIXTURE_T0 + 1 });
      const delivered = outboxFixture({
        createdAt: FIXTURE_T0 - 200,
        nextAttemptAt: FIXTURE_T0 - 200,
        status: 'delivered',
        attempts: 1,
        deliveredAt: FIXTURE_T0 - 150,
      });
      const failed = outboxFixture({
        createdAt: FIXTURE_T0 - 300,
        nextAttemptAt: FIXTURE_T0 - 300,
        status: 'failed',
        attempts: 12,
        lastError: 'gave up',
      });
      await store.apply(changesOf({ outbox: [old, dueNow, due, later, delivered, failed] }));
      expect(await store.dueNotifications(FIXTURE_T0, 10)).toEqual([due, dueNow]);
      expect(await store.dueNotifications(FIXTURE_T0, 1)).toEqual([due]);
      expect(await store.dueNotifications(FIXTURE_T0 + 30, 10)).toEqual([later, old, due, dueNow]);
      expect(await store.nextDueAt()).toBe(FIXTURE_T0 - 20);
    });

    it('recordDelivery counts attempts and delivers, reschedules or gives up', async () => {
      const a = outboxFixture({ createdAt: FIXTURE_T0 });
      const b = outboxFixture({ createdAt: FIXTURE_T0 + 1 });
      const c = outboxFixture({ createdAt: FIXTURE_T0 + 2 });
      await store.apply(changesOf({ outbox: [a, b, c] }));

      await store.recordDelivery(b.id, {
        ok: false,
        at: FIXTURE_T0 + 10,
        error: 'timeout',
        nextAttemptAt: FIXTURE_T0 + 1_000,
      });
      await store.recordDelivery(b.id, {
        ok: false,
        at: FIXTURE_T0 + 1_000,
        error: 'HTTP 502',
        nextAttemptAt: FIXTURE_T0 + 5_000,
      });
      const bRetrying = {
        ...b,
        attempts: 2,
        lastError: 'HTTP 502',
        nextAttemptAt: FIXTURE_T0 + 5_000,
      };
      expect(await store.alertNotifications(b.alertId)).toEqual([bRetrying]);
      expect(await store.dueNotifications(FIXTURE_T0 + 4_999, 10)).toEqual([a, c]);
      expect(await store.nextDueAt()).toBe(FIXTURE_T0);

      await store.recordDelivery(b.id, { ok: true, at: FIXTURE_T0 + 5_001 });
      const bDelivered = {
        ...bRetrying,
        status: 'delivered' as const,
        attempts: 3,
        deliveredAt: FIXTURE_T0 + 5_001,
      };
      expect(await store.alertNotifications(b.alertId)).toEqual([bDelivered]);

      await store.recordDelivery(c.id, {
        ok: false,
        at: FIXTURE_T0 + 20,
        error: 'HTTP 400: bad request',
        nextAttemptAt: null,
      });
      const cFailed = {
        ...c,
        status: 'failed' as const,
        attempts: 1,
        lastError: 'HTTP 400: bad request',
      };
      expect(await store.alertNotifications(c.alertId)).toEqual([cFailed]);
      expect(await store.dueNotifications(FIXTURE_T0 + 1e9, 10)).toEqual([a]);

      // Entries no longer pending, and unknown ids, are left as they are.
      await store.recordDelivery(b.id, {
        ok: false,
        at: FIXTURE_T0 + 6_000,
        error: 'late duplicate',
        nextAttemptAt: FIXTURE_T0 + 7_000,
      });
      await store.recordDelivery(c.id, { ok: true, at: FIXTURE_T0 + 6_000 });
      await store.recordDelivery('no-such-entry', { ok: true, at: FIXTURE_T0 });
      expect(await store.alertNotifications(b.alertId)).toEqual([bDelivered]);
      expect(await store.alertNotifications(c.alertId)).toEqual([cFailed]);
      expect(await store.outboxStats()).toEqual({
        pending: 1,
        failed: 1,
        oldestPendingAt: FIXTURE_T0,
      });
    });

    it('recordDeliveries records like recordDelivery one by one, in order', async () => {
      const outcomes = (ids: readonly string[]) => [
        {
          id: ids[0]!,
          outcome: {
            ok: false as const,
            at: FIXTURE_T0 + 1,
            error: 'HTTP 502',
            nextAttemptAt: FIXTURE_T0 + 900,
          },
        },
        { id: ids[1]!, outcome: { ok: true as const, at: FIXTURE_T0 + 2 } },
        { id: ids[0]!, outcome: { ok: true as const, at: FIXTURE_T0 + 3 } },
        {
          id: ids[2]!,
          outcome: { ok: false as const, at: FIXTURE_T0 + 4, error: 'gone', nextAttemptAt: null },
        },
        // Not pending any more, and unknown: left as they are.
        {
          id: ids[1]!,
          outcome: { ok: false as const, at: FIXTURE_T0 + 5, error: 'late', nextAttemptAt: null },
        },
        { id: 'no-such-entry', outcome: { ok: true as const, at: FIXTURE_T0 + 6 } },
      ];
      const family = (alertId: string) =>
        [0, 1, 2, 3].map((i) => outboxFixture({ alertId, createdAt: FIXTURE_T0 + i }));
      const batched = family('alert-batched');
      const oneByOne = family('alert-one-by-one');
      await store.apply(changesOf({ outbox: [...batched, ...oneByOne] }));

      await store.recordDeliveries([]);
      await store.recordDeliveries(outcomes(batched.map((e) => e.id)));
      for (const r of outcomes(oneByOne.map((e) => e.id)))
        await store.recordDelivery(r.id, r.outcome);

      const strip = (entries: OutboxEntry[]) =>
        entries.map(({ status, attempts, nextAttemptAt, deliveredAt, lastError }) => ({
          status,
          attempts,
          nextAttemptAt,
          deliveredAt,
          lastError,
        }));
      const got = strip(await store.alertNotifications('alert-batched'));
      expect(got).toEqual(strip(await store.alertNotifications('alert-one-by-one')));
      expect(got.map((e) => `${e.status}/${e.attempts}`)).toEqual([
        'delivered/2',
        'delivered/1',
        'failed/1',
        'pending/0',
      ]);
    });

    it('applies a change set with repeated keys as if its rows came one at a time', async () => {
      const first = alertFixture({ summary: 'first', tier: 0 });
      const last = { ...first, summary: 'last', tier: 1 };
      const entry = outboxFixture({ alertId: first.id, channel: 'ops' });
      const state = (n: number) => ({ ruleId: 'r1', subject: 'sensor:a', state: { n } });
      await store.apply(changesOf({ subjectStates: [state(0)] }));
      await store.apply(
        changesOf({
          alerts: [first, last],
          outbox: [entry, { ...entry, channel: 'ignored', attempts: 3 }],
          subjectStates: [state(1), state(2)],
          clearedSubjectStates: [{ ruleId: 'r1', subject: 'sensor:a' }],
        }),
      );
      expect(await store.getAlert(first.id)).toEqual(last);
      expect(await store.listAlerts({ limit: 1000 })).toEqual([last]);
      expect(await store.alertNotifications(first.id)).toEqual([entry]);
      expect(await store.subjectStates()).toEqual([state(2)]);
    });

    it('outboxStats counts pending and failed entries and the oldest pending', async () => {
      expect(await store.outboxStats()).toEqual({ pending: 0, failed: 0, oldestPendingAt: null });
      await store.apply(
        changesOf({
          outbox: [
            outboxFixture({ createdAt: FIXTURE_T0 + 5, nextAttemptAt: FIXTURE_T0 - 1e6 }),
            outboxFixture({ createdAt: FIXTURE_T0 + 3, nextAttemptAt: FIXTURE_T0 + 1e6 }),
            outboxFixture({ createdAt: FIXTURE_T0 + 9 }),
            outboxFixture({ createdAt: FIXTURE_T0, status: 'failed', attempts: 3 }),
            outboxFixture({ createdAt: FIXTURE_T0 - 1, status: 'failed', attempts: 3 }),
            outboxFixture({ createdAt: FIXTURE_T0 - 2, status: 'delivered', attempts: 1 }),
          ],
        }),
      );
      expect(await store.outboxStats()).toEqual({
        pending: 3,
        failed: 2,
        oldestPendingAt: FIXTURE_T0 + 3,
      });
    });

    it('upserts subject states by (rule, subject) and deletes cleared ones', async () => {
      const s = (ruleId: string, subject: string, n: number) => ({
        ruleId,
        subject,
        state: { n, seen: [n] },
      });
      await store.apply(
        changesOf({
          subjectStates: [s('r1', 'sensor:a', 1), s('r1', 'sensor:b', 1), s('r2', 'sensor:a', 1)],
        }),
      );
      await store.apply(
        changesOf({
          subjectStates: [s('r1', 'sensor:a', 2), s('r3', 'sensor:a', 1)],
          clearedSubjectStates: [
            { ruleId: 'r1', subject: 'sensor:b' },
            { ruleId: 'r9', subject: 'sensor:none' },
          ],
        }),
      );
      const sorted = (await store.subjectStates()).sort((x, y) =>
        `${x.ruleId} ${x.subject}`.localeCompare(`${y.ruleId} ${y.subject}`),
      );
      expect(sorted).toEqual([
        s('r1', 'sensor:a', 2),
        s('r2', 'sensor:a', 1),
        s('r3', 'sensor:a', 1),
      ]);

      // Cleared and saved in one step: saved.
      await store.apply(
        changesOf({
          subjectStates: [s('r2', 'sensor:a', 7)],
          clearedSubjectStates: [{ ruleId: 'r2', subject: 'sensor:a' }],
        }),
      );
      expect((await store.subjectStates()).find((x) => x.ruleId === 'r2')).toEqual(
        s('r2', 'sensor:a', 7),
      );
    });

    it('purgeResolved deletes old resolved alerts with their history and finished outbox entries', async () => {
      const before = FIXTURE_T0;
      const gone = alertFixture({ state: 'resolved', resolvedAt: before - 1 });
      const goneToo = alertFixture({ state: 'resolved', resolvedAt: before - 10_000 });
      const recent = alertFixture({ state: 'resolved', resolvedAt: before });
      const active = alertFixture({ state: 'acknowledged', openedAt: before - 1e9 });
      const events = [gone, goneToo, recent, active].map((a) => eventFixture({ alertId: a.id }));
      const outbox = (a: Alert, status: OutboxEntry['status']) =>
        outboxFixture({ alertId: a.id, status, attempts: status === 'pending' ? 0 : 1 });
      const gonePending = outbox(gone, 'pending');
      const kept = [outbox(recent, 'delivered'), outbox(active, 'failed'), gonePending];
      await store.apply(
        changesOf({
          alerts: [gone, goneToo, recent, active],
          events,
          outbox: [
            outbox(gone, 'delivered'),
            outbox(gone, 'failed'),
            outbox(goneToo, 'delivered'),
            ...kept,
          ],
        }),
      );

      expect(await store.purgeResolved(before)).toBe(2);
      expect(await store.getAlert(gone.id)).toBeUndefined();
      expect(await store.getAlert(goneToo.id)).toBeUndefined();
      expect(await store.getAlert(recent.id)).toEqual(recent);
      expect(await store.getAlert(active.id)).toEqual(active);
      expect(await store.alertEvents(gone.id)).toEqual([]);
      expect(await store.alertEvents(goneToo.id)).toEqual([]);
      expect(await store.alertEvents(recent.id)).toEqual([events[2]]);
      expect(await store.alertEvents(active.id)).toEqual([events[3]]);
      // A pending notification is still delivered after its alert went.
      expect(await store.alertNotifications(gone.id)).toEqual([gonePending]);
      expect(await store.alertNotifications(goneToo.id)).toEqual([]);
      expect(await store.alertNotifications(recent.id)).toEqual([kept[0]]);
      expect(await store.alertNotifications(active.id)).toEqual([kept[1]]);
      expect(await store.dueNotifications(FIXTURE_T0, 10)).toEqual([gonePending]);

      expect(await store.purgeResolved(before)).toBe(0);
    });

    it('keeps everything across close and reopen', async () => {
      const alert = alertFixture({ notifiedChannels: ['log'] });
      const event = eventFixture({ alertId: alert.id });
      const entry = outboxFixture({ alertId: alert.id, eventId: event.id });
      const subjectState = { ruleId: alert.ruleId, subject: alert.subject, state: { n: 2 } };
      await store.apply({
        alerts: [alert],
        events: [event],
        outbox: [entry],
        subjectStates: [subjectState],
        clearedSubjectStates: [],
      });
      await store.close();
      await store.close();

      store = harness.make();
      await store.open();
      await store.open();
      expect(await store.getAlert(alert.id)).toEqual(alert);
      expect(await store.alertEvents(alert.id)).toEqual([event]);
      expect(await store.alertNotifications(alert.id)).toEqual([entry]);
      expect(await store.subjectStates()).toEqual([subjectState]);
      // Sequences continue: a new event at the same time sorts after the old one.
      const next = eventFixture({ alertId: alert.id });
      await store.apply(changesOf({ events: [next] }));
      expect(await store.alertEvents(alert.id)).toEqual([event, next]);
    });

    it('runs appended migrations once, and refuses a schema newer than the code', async () => {
      const alert = alertFixture();
      await store.apply(changesOf({ alerts: [alert] }));
      await store.close();

      // A later Canopy appends a migration; a plain CREATE TABLE fails if run twice.
      const newer: MetaMigration[] = [
        ...META_MIGRATIONS,
        {
          version: META_MIGRATIONS.length + 1,
          description: 'a table from the future',
          statements: (d) => [`CREATE TABLE ${d.table('from_the_future')} (id INTEGER)`],
        },
      ];
      for (let i = 0; i < 2; i++) {
        store = harness.make({ migrations: newer });
        await store.open();
        expect(await store.getAlert(alert.id)).toEqual(alert);
        await store.close();
      }

      store = harness.make();
      await expectCode(store.open(), 'CANOPY_META_UNAVAILABLE');
      await expectCode(store.activeAlerts(), 'CANOPY_META_UNAVAILABLE');
    });

    it('rejects calls before open and after close with CANOPY_META_UNAVAILABLE', async () => {
      await store.close();
      await expectCode(store.apply(emptyChanges()), 'CANOPY_META_UNAVAILABLE');
      await expectCode(store.activeAlerts(), 'CANOPY_META_UNAVAILABLE');
      const unopened = harness.make();
      await expectCode(unopened.getAlert('x'), 'CANOPY_META_UNAVAILABLE');
    });
  });
}
