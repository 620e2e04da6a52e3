import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../test/helpers/random.js';
import { emptyChanges } from '../core/alerts.js';
import {
  MIN,
  MemoryAlertStore,
  T0,
  counter,
  makeEngine,
  reading,
  rules,
} from './engine.fixture.js';
import type { EngineReading, KnownSensor } from './engine.js';

const known = (sensorId: string, location: string | null, lastSeenAt: number | null = T0) =>
  ({ sensorId, sensorType: 'temperature', location, lastSeenAt }) satisfies KnownSensor;

describe('AlertEngine: no-data rules', () => {
  const silence = rules([
    { id: 'silent', kind: 'no-data', after: '5m', notify: { open: ['chat'] } },
  ]);

  it('folds a whole silent location into one alert, and reports lone silent sensors', () => {
    const engine = makeEngine(silence);
    const store = new MemoryAlertStore();
    engine.restore(
      [],
      [],
      [known('a', 'gh/1'), known('b', 'gh/1'), known('c', 'gh/1'), known('d', 'gh/2')],
      T0,
    );
    store.apply(engine.tick(T0 + 5 * MIN));
    expect(store.events).toEqual([]);
    store.apply(engine.tick(T0 + 5 * MIN + 1));
    const subjects = engine
      .activeAlerts()
      .map((a) => a.subject)
      .sort();
    expect(subjects).toEqual(['location:gh/1', 'sensor:d']);
    expect(engine.activeAlerts().find((a) => a.subject === 'location:gh/1')).toMatchObject({
      severity: 'warning',
      state: 'open',
      location: 'gh/1',
      sensorId: null,
      summary: 'no reading from any of the 3 sensor(s) at gh/1 for more than 5m',
    });
    // Ticking again opens nothing new.
    store.apply(engine.tick(T0 + 6 * MIN));
    expect(store.kinds()).toEqual(['opened', 'opened']);

    // A reading from one sensor resolves the location alert at once; the rest then alert one by one.
    store.apply(
      engine.evaluate([reading('a', null, T0 + 7 * MIN, { location: 'gh/1' })], T0 + 7 * MIN),
    );
    expect(engine.activeAlerts().map((a) => a.subject)).toEqual(['sensor:d']);
    store.apply(engine.tick(T0 + 7 * MIN + 1));
    expect(
      engine
        .activeAlerts()
        .map((a) => a.subject)
        .sort(),
    ).toEqual(['sensor:b', 'sensor:c', 'sensor:d']);
    store.apply(engine.evaluate([reading('d', 20, T0 + 8 * MIN)], T0 + 8 * MIN));
    expect(engine.activeAlerts().some((a) => a.subject === 'sensor:d')).toBe(false);
    expect(store.events.at(-1)).toMatchObject({ kind: 'resolved', note: 'reading from d' });
  });

  it('raises one sensor alert when only one sensor of a location is silent', () => {
    const engine = makeEngine(silence);
    engine.restore([], [], [known('a', 'gh/1'), known('b', 'gh/1'), known('c', 'gh/1')], T0);
    engine.evaluate([reading('a', 1, T0 + 3 * MIN), reading('c', 1, T0 + 3 * MIN)], T0 + 3 * MIN);
    engine.tick(T0 + 6 * MIN);
    expect(engine.activeAlerts().map((a) => a.subject)).toEqual(['sensor:b']);
    expect(engine.activeAlerts()[0]!.summary).toBe('no reading from b for more than 5m (gh/1)');
  });

  it('per: location raises only whole-location alerts; a never-seen sensor counts from restore', () => {
    const engine = makeEngine(
      rules([
        { id: 'silent', kind: 'no-data', after: '5m', per: 'location', severity: 'critical' },
      ]),
    );
    const store = new MemoryAlertStore();
    engine.restore(
      [],
      [],
      [known('a', 'gh/1', null), known('b', 'gh/2', null), known('c', null)],
      T0,
    );
    store.apply(engine.evaluate([reading('b', 1, T0 + 2 * MIN)], T0 + 2 * MIN));
    store.apply(engine.tick(T0 + 6 * MIN));
    expect(engine.activeAlerts().map((a) => [a.subject, a.state])).toEqual([
      ['location:gh/1', 'escalated'],
    ]);
    expect(store.kinds()).toEqual(['opened', 'escalated']);
  });
});

describe('AlertEngine: pipeline rules', () => {
  it('dead-letter rate over a sliding window, with a minimum count', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'dlq',
          kind: 'pipeline',
          signal: 'dead-letter-rate',
          above: 0.2,
          window: '1m',
          minMessages: 10,
        },
      ]),
    );
    const store = new MemoryAlertStore();
    engine.restore([], [], [], T0);
    store.apply(engine.observe({ kind: 'ingest', at: T0, accepted: 6, rejected: 3 }));
    expect(engine.activeAlerts()).toHaveLength(0);
    store.apply(engine.observe({ kind: 'ingest', at: T0 + 10_000, accepted: 5, rejected: 3 }));
    // 6 of 17 rejected.
    const [alert] = engine.activeAlerts();
    expect(alert).toMatchObject({
      subject: 'pipeline:dead-letter-rate',
      severity: 'critical',
      state: 'escalated',
      threshold: 0.2,
      labels: { signal: 'dead-letter-rate', rule: 'dlq' },
    });
    expect(alert!.value).toBeCloseTo(6 / 17);
    store.apply(engine.tick(T0 + 59_999));
    expect(engine.activeAlerts()).toHaveLength(1);
    // The first group leaves the window: 8 readings are too few to judge.
    store.apply(engine.tick(T0 + 60_000));
    expect(engine.activeAlerts()).toHaveLength(0);
    expect(store.kinds()).toEqual(['opened', 'escalated', 'resolved']);
    engine.snapshot();
    store.apply(engine.tick(T0 + 71_000));
    expect(engine.snapshot()).toEqual([]);
  });

  it('job failures open per name (filtered by names) and the next success resolves', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'jobs',
          kind: 'pipeline',
          signal: 'job-failed',
          severity: 'warning',
          names: ['export'],
        },
      ]),
    );
    const store = new MemoryAlertStore();
    store.apply(engine.observe({ kind: 'job', name: 'compact', ok: false, at: T0 }));
    expect(engine.activeAlerts()).toHaveLength(0);
    store.apply(
      engine.observe({ kind: 'job', name: 'export', ok: false, at: T0, error: 'disk full' }),
    );
    store.apply(engine.observe({ kind: 'job', name: 'export', ok: false, at: T0 + MIN }));
    expect(engine.activeAlerts()).toHaveLength(1);
    expect(engine.activeAlerts()[0]).toMatchObject({
      subject: 'pipeline:job-failed:export',
      state: 'open',
      summary: 'job export failed: disk full',
    });
    store.apply(engine.observe({ kind: 'job', name: 'export', ok: true, at: T0 + 2 * MIN }));
    expect(engine.activeAlerts()).toHaveLength(0);
    expect(store.kinds()).toEqual(['opened', 'resolved']);
  });

  it('quality and deadline signals open and resolve per suite / workflow', () => {
    const engine = makeEngine(
      rules([
        { id: 'q', kind: 'pipeline', signal: 'quality-failed', escalateAfter: '10m' },
        { id: 'd', kind: 'pipeline', signal: 'deadline-missed' },
      ]),
    );
    const store = new MemoryAlertStore();
    store.apply(
      engine.observe({
        kind: 'quality',
        suite: 'silver',
        ok: false,
        at: T0,
        failedExpectations: 2,
      }),
    );
    store.apply(
      engine.observe({
        kind: 'deadline',
        workflow: 'daily',
        missed: true,
        at: T0,
        slot: '2026-06-01',
      }),
    );
    const bySubject = new Map(engine.activeAlerts().map((a) => [a.subject, a]));
    expect(bySubject.get('pipeline:quality-failed:silver')).toMatchObject({
      state: 'open',
      value: 2,
    });
    expect(bySubject.get('pipeline:deadline-missed:daily')).toMatchObject({
      state: 'escalated',
      summary: 'workflow daily missed its deadline (slot 2026-06-01)',
    });
    store.apply(engine.tick(T0 + 10 * MIN));
    expect(engine.activeAlerts().find((a) => a.ruleId === 'q')!.state).toBe('escalated');
    store.apply(
      engine.observe({
        kind: 'quality',
        suite: 'silver',
        ok: true,
        at: T0 + 11 * MIN,
        failedExpectations: 0,
      }),
    );
    store.apply(
      engine.observe({ kind: 'deadline', workflow: 'daily', missed: false, at: T0 + 11 * MIN }),
    );
    expect(engine.activeAlerts()).toHaveLength(0);
  });

  it('ingest-stopped counts from restore and resolves on the next accepted reading', () => {
    const engine = makeEngine(
      rules([{ id: 'stopped', kind: 'pipeline', signal: 'ingest-stopped', after: '2m' }]),
    );
    engine.restore([], [], [], T0);
    engine.tick(T0 + 2 * MIN);
    expect(engine.activeAlerts()).toHaveLength(0);
    engine.tick(T0 + 2 * MIN + 1);
    expect(engine.activeAlerts()[0]!.subject).toBe('pipeline:ingest-stopped');
    engine.observe({ kind: 'ingest', at: T0 + 3 * MIN, accepted: 0, rejected: 4 });
    expect(engine.activeAlerts()).toHaveLength(1);
    engine.observe({ kind: 'ingest', at: T0 + 4 * MIN, accepted: 1, rejected: 0 });
    expect(engine.activeAlerts()).toHaveLength(0);
    // Resolved by hand while still silent: stays resolved until readings arrive.
    engine.tick(T0 + 7 * MIN);
    const id = engine.activeAlerts()[0]!.id;
    engine.act(id, { kind: 'resolve', actor: 'ana' }, T0 + 7 * MIN);
    engine.tick(T0 + 8 * MIN);
    expect(engine.activeAlerts()).toHaveLength(0);
    engine.evaluate([reading('s', 1, T0 + 9 * MIN)], T0 + 9 * MIN);
    engine.tick(T0 + 12 * MIN);
    expect(engine.activeAlerts()).toHaveLength(1);
  });
});

describe('AlertEngine: escalation tiers, reminders, snooze, routes', () => {
  const tiered = rules([
    {
      id: 'down',
      kind: 'pipeline',
      signal: 'job-failed',
      notify: {
        tiers: [
          { after: '0s', channels: ['chat'] },
          { after: '10m', channels: ['pager'] },
          { after: '30m', channels: ['phone'] },
        ],
        reminderEvery: '5m',
      },
    },
  ]);
  const fail = { kind: 'job', name: 'export', ok: false, at: T0 } as const;

  it('notifies later tiers after their delay while unacknowledged', () => {
    const engine = makeEngine(tiered);
    const store = new MemoryAlertStore();
    store.apply(engine.observe(fail));
    expect(store.sent()).toEqual(['escalated:chat']);
    store.apply(engine.tick(T0 + 9 * MIN));
    store.apply(engine.tick(T0 + 10 * MIN));
    const tier2 = store.events.filter((e) => e.kind === 'tier-notified');
    expect(tier2.map((e) => e.at)).toEqual([T0 + 10 * MIN]);
    expect([...store.outbox.values()].find((o) => o.channel === 'pager')!.payload.tier).toBe(2);
    expect(engine.activeAlerts()[0]!.tier).toBe(2);
    store.apply(engine.tick(T0 + 29 * MIN));
    expect(store.sent().filter((s) => s.startsWith('tier-notified'))).toEqual([
      'tier-notified:pager',
    ]);
    store.apply(engine.tick(T0 + 30 * MIN));
    expect(store.sent().filter((s) => s.startsWith('tier-notified'))).toEqual([
      'tier-notified:pager',
      'tier-notified:phone',
    ]);
    // Reminders count from the last notification: 5m after each tick that told someone.
    expect(store.events.filter((e) => e.kind === 'reminder').map((e) => (e.at - T0) / MIN)).toEqual(
      [9, 29],
    );
  });

  it('stops tiers at acknowledgement', () => {
    const engine = makeEngine(tiered);
    const store = new MemoryAlertStore();
    store.apply(engine.observe(fail));
    store.apply(
      engine.act(engine.activeAlerts()[0]!.id, { kind: 'acknowledge', actor: 'a' }, T0 + MIN),
    );
    for (let m = 2; m <= 60; m += 1) store.apply(engine.tick(T0 + m * MIN));
    expect(store.kinds()).toEqual(['opened', 'escalated', 'acknowledged']);
  });

  it('snooze pauses reminders and tiers until it expires', () => {
    const engine = makeEngine(tiered);
    const store = new MemoryAlertStore();
    store.apply(engine.observe(fail));
    const id = engine.activeAlerts()[0]!.id;
    store.apply(
      engine.act(id, { kind: 'snooze', actor: 'a', until: T0 + 20 * MIN, note: 'on it' }, T0 + MIN),
    );
    expect(store.events.at(-1)).toMatchObject({
      kind: 'snoozed',
      fromState: 'escalated',
      toState: 'escalated',
      note: 'on it',
    });
    for (let m = 2; m < 20; m += 1) store.apply(engine.tick(T0 + m * MIN));
    expect(store.kinds()).toEqual(['opened', 'escalated', 'snoozed']);
    store.apply(engine.tick(T0 + 20 * MIN));
    expect(engine.activeAlerts()[0]!.snoozedUntil).toBeNull();
    expect(store.sent().slice(1)).toEqual(['tier-notified:pager']);
    store.apply(engine.tick(T0 + 25 * MIN));
    expect(store.kinds().at(-1)).toBe('reminder');
  });

  it('routes events to channels by severity, labels and event kind', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'hot',
          kind: 'reading',
          labels: { team: 'plants' },
          warning: { above: 30 },
          critical: { above: 40 },
          escalate: { consecutive: 1 },
          notify: { open: ['chat'] },
        },
      ]),
      {
        routes: [
          { severity: ['critical'], events: ['escalated', 'resolved'], channels: ['pager'] },
          { labels: { team: 'plants' }, events: ['opened'], channels: ['chat', 'plants-mail'] },
          { labels: { team: 'pumps' }, events: ['opened'], channels: ['pumps-mail'] },
        ],
      },
    );
    const store = new MemoryAlertStore();
    store.apply(engine.evaluate([reading('a', 35, T0)], T0));
    expect(store.sent()).toEqual(['opened:chat', 'opened:plants-mail']);
    store.apply(engine.evaluate([reading('a', 45, T0 + 1)], T0 + 1));
    expect(store.sent().slice(2)).toEqual([
      'severity-raised:chat',
      'severity-raised:plants-mail',
      'escalated:pager',
    ]);
    store.apply(engine.evaluate([reading('a', 20, T0 + 2)], T0 + 2));
    expect(store.sent().slice(5).sort()).toEqual([
      'resolved:chat',
      'resolved:pager',
      'resolved:plants-mail',
    ]);
  });
});

describe('AlertEngine: restart', () => {
  const set = rules([
    {
      id: 'temp',
      kind: 'reading',
      warning: { above: 30 },
      critical: { above: 40 },
      open: { consecutive: 2 },
      escalate: { consecutive: 2 },
      clear: { consecutive: 2 },
      notify: { open: ['chat'], reminderEvery: '3m' },
    },
    {
      id: 'jump',
      kind: 'reading',
      warning: { rateOfChange: { above: 15, per: '1m' } },
      clear: { consecutive: 3 },
    },
    { id: 'silent', kind: 'no-data', after: '4m' },
  ]);

  it('continues after restore from the stored alerts, states and sensors as if uninterrupted', () => {
    const rnd = seededRandom(42);
    const sensors = ['a', 'b', 'c', 'd'];
    const steps: { t: number; readings: EngineReading[] }[] = [];
    for (let i = 0; i < 300; i += 1) {
      const t = T0 + i * 30_000;
      // `d` goes silent for a while across the restart.
      const readings = sensors
        .filter((id) => rnd() < 0.7 && (id !== 'd' || i < 100 || i > 200))
        .map((id) => reading(id, Math.round(rnd() * 50), t - 2_000, { location: 'gh/1' }));
      steps.push({ t, readings });
    }
    const run = (
      engine: ReturnType<typeof makeEngine>,
      store: MemoryAlertStore,
      from: number,
      to: number,
    ) => {
      for (const s of steps.slice(from, to)) {
        store.apply(engine.evaluate(s.readings, s.t));
        store.apply(engine.tick(s.t + 1));
      }
    };
    const initial = sensors.map((id) => known(id, 'gh/1'));

    const whole = makeEngine(set, { newId: counter() });
    const wholeStore = new MemoryAlertStore();
    whole.restore([], [], initial, T0);
    run(whole, wholeStore, 0, steps.length);

    const ids = counter();
    const first = makeEngine(set, { newId: ids });
    const store = new MemoryAlertStore();
    first.restore([], [], initial, T0);
    const half = 150;
    run(first, store, 0, half);
    store.apply({ ...emptyChanges(), subjectStates: first.snapshot() });
    const lastSeen = new Map<string, number>();
    for (const s of steps.slice(0, half)) for (const r of s.readings) lastSeen.set(r.sensorId, s.t);
    const second = makeEngine(set, { newId: ids });
    second.restore(
      store.active(),
      store.subjectStates(),
      sensors.map((id) => known(id, 'gh/1', lastSeen.get(id) ?? T0)),
      steps[half]!.t,
    );
    run(second, store, half, steps.length);

    expect(store.events).toEqual(wholeStore.events);
    expect([...store.outbox.keys()]).toEqual([...wholeStore.outbox.keys()]);
    expect(second.activeAlerts()).toEqual(whole.activeAlerts());
    expect(wholeStore.kinds().filter((k) => k === 'opened').length).toBeGreaterThan(5);
    expect([...wholeStore.alerts.values()].filter((a) => a.ruleId === 'silent')).toHaveLength(1);
    expect(
      [...wholeStore.alerts.values()].filter((a) => a.ruleId === 'jump').length,
    ).toBeGreaterThan(0);
    expect(new Set(wholeStore.kinds())).toEqual(
      new Set([
        'opened',
        'resolved',
        'severity-raised',
        'severity-lowered',
        'escalated',
        'reminder',
        'de-escalated',
      ]),
    );
  });
});
