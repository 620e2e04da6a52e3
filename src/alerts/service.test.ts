import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { captureLines } from '../../test/helpers/logs.js';
import type { AlertChanges, AlertStore } from '../core/alerts.js';
import { ManualClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import { createLogger, silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { DuckDbMetaStore } from '../storage/meta/duckdb-meta-store.js';
import { MIN, T0, counter, makeEngine, reading, rules } from './engine.fixture.js';
import type { KnownSensor } from './engine.js';
import { AlertService } from './service.js';
import type { RuleSet } from './rules/schema.js';

const hotRules = rules([
  {
    id: 'hot',
    kind: 'reading',
    warning: { above: 30 },
    critical: { above: 40 },
    notify: { open: ['chat'], tiers: [{ after: '0s', channels: ['pager'] }] },
  },
  { id: 'silent', kind: 'no-data', after: '5m' },
]);

const sensors: KnownSensor[] = [
  { sensorId: 's1', sensorType: 'temperature', location: 'gh/1', lastSeenAt: T0 },
];

/** The real store, except that it refuses the first `failures` applies. */
class FlakyStore implements AlertStore {
  attempts = 0;
  constructor(
    private readonly inner: AlertStore,
    public failures: number,
  ) {}
  async apply(changes: AlertChanges): Promise<void> {
    this.attempts += 1;
    if (this.failures > 0) {
      this.failures -= 1;
      throw new Error('disk on fire');
    }
    await this.inner.apply(changes);
  }
  open = () => this.inner.open();
  close = () => this.inner.close();
  activeAlerts = () => this.inner.activeAlerts();
  listAlerts: AlertStore['listAlerts'] = (f) => this.inner.listAlerts(f);
  getAlert: AlertStore['getAlert'] = (id) => this.inner.getAlert(id);
  alertEvents: AlertStore['alertEvents'] = (id) => this.inner.alertEvents(id);
  alertNotifications: AlertStore['alertNotifications'] = (id) => this.inner.alertNotifications(id);
  dueNotifications: AlertStore['dueNotifications'] = (now, limit) =>
    this.inner.dueNotifications(now, limit);
  nextDueAt = () => this.inner.nextDueAt();
  recordDelivery: AlertStore['recordDelivery'] = (id, o) => this.inner.recordDelivery(id, o);
  recordDeliveries: AlertStore['recordDeliveries'] = (r) => this.inner.recordDeliveries(r);
  outboxStats = () => this.inner.outboxStats();
  subjectStates = () => this.inner.subjectStates();
  purgeResolved: AlertStore['purgeResolved'] = (before) => this.inner.purgeResolved(before);
}

describe('AlertService over the DuckDB alert store', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(
    o: {
      set?: RuleSet;
      dir?: string;
      flaky?: number;
      logger?: ReturnType<typeof silentLogger>;
    } = {},
  ) {
    const dir = o.dir ?? (await mkdtemp(path.join(tmpdir(), 'canopy-alert-service-')));
    if (o.dir === undefined) cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const real = new DuckDbMetaStore({ path: path.join(dir, 'meta.duckdb') });
    await real.open();
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await real.close();
    };
    cleanups.push(close);
    const flaky = new FlakyStore(real, o.flaky ?? 0);
    const clock = new ManualClock(T0);
    const metrics = new Metrics({ defaultMetrics: false });
    const engine = makeEngine(o.set ?? hotRules, { newId: counter(`run-${Math.random()}`) });
    const queued = { count: 0 };
    const service = new AlertService({
      store: flaky,
      engine,
      clock,
      metrics,
      logger: o.logger ?? silentLogger(),
      tickMs: 60_000,
      onQueued: () => {
        queued.count += 1;
      },
    });
    cleanups.push(() => service.stop());
    await service.start(sensors);
    return { dir, real, flaky, clock, metrics, service, queued, close };
  }

  const gauge = async (metrics: Metrics, state: string, severity: string) =>
    (await metrics.alerts.get()).values.find(
      (v) => v.labels.state === state && v.labels.severity === severity,
    )?.value;

  it('stores alerts, events and outbox entries, wakes the dispatcher and counts', async () => {
    const { real, clock, metrics, service, queued } = await setup();
    expect(await gauge(metrics, 'open', 'warning')).toBe(0);
    clock.advance(MIN);
    service.readingsCommitted([reading('s1', 35, clock.now())], 0);
    await service.flush();
    const [alert] = await real.activeAlerts();
    expect(alert).toMatchObject({ ruleId: 'hot', state: 'open', severity: 'warning', value: 35 });
    expect((await real.alertEvents(alert!.id)).map((e) => e.kind)).toEqual(['opened']);
    expect((await real.alertNotifications(alert!.id)).map((o) => o.channel)).toEqual(['chat']);
    expect(queued.count).toBe(1);

    for (const v of [45, 46, 47]) {
      clock.advance(MIN);
      service.readingsCommitted([reading('s1', v, clock.now())], 2);
    }
    await service.flush();
    const stored = await real.getAlert(alert!.id);
    expect(stored).toMatchObject({ state: 'escalated', severity: 'critical', tier: 1 });
    expect((await real.alertEvents(alert!.id)).map((e) => e.kind)).toEqual([
      'opened',
      'severity-raised',
      'escalated',
    ]);
    expect((await real.alertNotifications(alert!.id)).map((o) => o.channel)).toEqual([
      'chat',
      'chat',
      'pager',
    ]);
    expect(queued.count).toBe(3);

    expect(await gauge(metrics, 'escalated', 'critical')).toBe(1);
    expect(await gauge(metrics, 'open', 'warning')).toBe(0);
    const events = (await metrics.alertEvents.get()).values;
    const count = (kind: string, severity: string) =>
      events.find((v) => v.labels.kind === kind && v.labels.severity === severity)?.value;
    expect(count('opened', 'warning')).toBe(1);
    expect(count('severity-raised', 'critical')).toBe(1);
    expect(count('escalated', 'critical')).toBe(1);
    const duration = (await metrics.alertEvaluationDuration.get()).values.find(
      (v) => v.metricName === 'canopy_alert_evaluation_duration_seconds_count',
    );
    expect(duration?.value).toBe(4);
  });

  it('acts on alerts: returns the stored alert, and tells resolved from unknown', async () => {
    const { real, clock, service } = await setup();
    service.readingsCommitted([reading('s1', 35, clock.now())], 0);
    await service.flush();
    const [alert] = await real.activeAlerts();
    clock.advance(MIN);
    const acked = await service.act(alert!.id, {
      kind: 'acknowledge',
      actor: 'ana',
      note: 'looking',
    });
    expect(acked).toMatchObject({ state: 'acknowledged', acknowledgedBy: 'ana' });
    expect(await real.getAlert(alert!.id)).toEqual(acked);
    await service.act(alert!.id, { kind: 'resolve', actor: 'ana' });
    const codeOf = async (p: Promise<unknown>) =>
      p.then(
        () => 'none',
        (err: unknown) => (isCanopyError(err) ? err.code : 'other'),
      );
    expect(await codeOf(service.act(alert!.id, { kind: 'acknowledge', actor: 'ana' }))).toBe(
      'CANOPY_ALERT_INVALID_TRANSITION',
    );
    expect(await codeOf(service.act('missing', { kind: 'acknowledge', actor: 'ana' }))).toBe(
      'CANOPY_ALERT_NOT_FOUND',
    );
  });

  it('continues after a restart over the same file: escalation counts carry over', async () => {
    const first = await setup();
    for (const v of [45, 46]) {
      first.clock.advance(MIN);
      first.service.readingsCommitted([reading('s1', v, first.clock.now())], 0);
    }
    await first.service.flush();
    const [alert] = await first.real.activeAlerts();
    expect(alert!.state).toBe('open');
    await first.service.stop();
    await first.close();

    const second = await setup({ dir: first.dir });
    second.clock.set(T0 + 3 * MIN);
    second.service.readingsCommitted([reading('s1', 47, second.clock.now())], 0);
    await second.service.flush();
    expect(await second.real.getAlert(alert!.id)).toMatchObject({ state: 'escalated' });
  });

  it('keeps refused changes in order and retries them first on the next tick', async () => {
    const { stream, lines } = captureLines();
    const logger = createLogger('info', false, { destination: stream });
    const { real, flaky, clock, metrics, service, queued } = await setup({ flaky: 2, logger });
    service.readingsCommitted([reading('s1', 35, clock.now())], 0);
    await service.flush();
    expect(flaky.attempts).toBe(1);
    clock.advance(MIN);
    service.readingsCommitted([reading('s1', 45, clock.now())], 0);
    await service.flush();
    // Queued behind the pending set without another attempt.
    expect(flaky.attempts).toBe(1);
    expect(await real.activeAlerts()).toEqual([]);
    expect(queued.count).toBe(0);

    await service.tick();
    expect(flaky.attempts).toBe(2);
    expect((await metrics.alertApplyFailures.get()).values[0]?.value).toBe(2);
    expect(await real.activeAlerts()).toEqual([]);

    await service.tick();
    const [alert] = await real.activeAlerts();
    expect(alert).toMatchObject({ severity: 'critical', value: 45 });
    expect((await real.alertEvents(alert!.id)).map((e) => e.kind)).toEqual([
      'opened',
      'severity-raised',
    ]);
    expect(queued.count).toBe(2);
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(lines.filter((l) => l.level === 30).map((l) => l.msg)).toContain(
      'the alert store takes changes again',
    );
  });

  it('answers CANOPY_META_UNAVAILABLE when an action cannot be stored, and stores it later', async () => {
    const { real, flaky, service, clock } = await setup();
    service.readingsCommitted([reading('s1', 35, clock.now())], 0);
    await service.flush();
    const [alert] = await real.activeAlerts();
    flaky.failures = 1;
    const err = await service
      .act(alert!.id, { kind: 'acknowledge', actor: 'ana' })
      .catch((e: unknown) => e);
    expect(isCanopyError(err, 'CANOPY_META_UNAVAILABLE')).toBe(true);
    await service.tick();
    expect(await real.getAlert(alert!.id)).toMatchObject({ state: 'acknowledged' });
  });

  it('replaces rules: alerts of removed rules resolve', async () => {
    const { real, service, clock } = await setup();
    service.readingsCommitted([reading('s1', 35, clock.now())], 0);
    await service.flush();
    const [alert] = await real.activeAlerts();
    const next = rules([{ id: 'silent', kind: 'no-data', after: '5m' }]);
    await service.replaceRules(next);
    expect(service.rules()).toBe(next);
    expect(await real.getAlert(alert!.id)).toMatchObject({ state: 'resolved' });
    expect((await real.alertEvents(alert!.id)).at(-1)).toMatchObject({ note: 'rule removed' });
  });

  it('ticks on its timer and persists subject states', async () => {
    const set = rules([
      { id: 'silent', kind: 'no-data', after: '5m' },
      { id: 'hot', kind: 'reading', warning: { above: 30 }, open: { consecutive: 3 } },
    ]);
    const { real, service, clock } = await setup({ set });
    service.readingsCommitted([reading('s2', 35, clock.now())], 0);
    await service.flush();
    expect(await real.subjectStates()).toEqual([]);
    await service.tick();
    expect((await real.subjectStates()).map((s) => s.subject)).toEqual(['sensor:s2']);

    clock.advance(6 * MIN);
    const timed = new AlertService({
      store: real,
      engine: makeEngine(set),
      clock,
      metrics: new Metrics({ defaultMetrics: false }),
      logger: silentLogger(),
      tickMs: 5,
    });
    await service.stop();
    await timed.start(sensors);
    cleanups.push(() => timed.stop());
    await vi.waitFor(async () => {
      expect((await real.activeAlerts()).map((a) => a.subject)).toContain('sensor:s1');
    });
  });
});
