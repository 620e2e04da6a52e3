import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../test/helpers/random.js';
import { isCanopyError } from '../core/errors.js';
import { MIN, MemoryAlertStore, T0, makeEngine, reading, rules } from './engine.fixture.js';
import type { EngineReading } from './engine.js';

const conservatoryRules = rules([
  {
    id: 'soil-moisture',
    kind: 'reading',
    labels: { team: 'plants' },
    select: { sensorTypes: ['soil_moisture'] },
    warning: { below: 25 },
    critical: { below: 15 },
    clear: { consecutive: 2 },
    notify: {
      open: ['chat'],
      tiers: [{ after: '0s', channels: ['webhook', 'email'] }],
      reminderEvery: '10m',
    },
  },
]);

const moisture = (value: number, t: number): EngineReading =>
  reading('plant-07', value, t, {
    sensorType: 'soil_moisture',
    location: 'conservatory/bench-1',
    unit: '%',
  });

describe('AlertEngine: the conservatory case', () => {
  it('opens, raises, escalates to tier 1, reminds until acknowledged, and resolves once per channel', () => {
    const store = new MemoryAlertStore();
    const engine = makeEngine(conservatoryRules, { publicUrl: 'https://canopy.example/' });
    const at = (m: number) => T0 + m * MIN;
    const feed = (value: number, m: number) =>
      store.apply(engine.evaluate([moisture(value, at(m))], at(m)));

    feed(20, 0);
    expect(store.kinds()).toEqual(['opened']);
    const [alert] = engine.activeAlerts();
    expect(alert).toMatchObject({
      severity: 'warning',
      state: 'open',
      subject: 'sensor:plant-07',
      value: 20,
      threshold: 25,
      labels: {
        team: 'plants',
        sensor_id: 'plant-07',
        sensor_type: 'soil_moisture',
        location: 'conservatory/bench-1',
        rule: 'soil-moisture',
      },
    });
    expect(store.sent()).toEqual(['opened:chat']);

    feed(12.1, 1);
    expect(store.kinds()).toEqual(['opened', 'severity-raised']);
    expect(engine.activeAlerts()[0]!.summary).toBe(
      'soil moisture at plant-07 is 12.1 %, below the critical bound 15 (conservatory/bench-1)',
    );
    feed(12, 2);
    expect(engine.activeAlerts()[0]!.state).toBe('open');
    feed(11, 3);
    expect(store.kinds()).toEqual(['opened', 'severity-raised', 'escalated']);
    const escalated = engine.activeAlerts()[0]!;
    expect(escalated).toMatchObject({ state: 'escalated', tier: 1, escalatedAt: at(3) });
    expect(escalated.notifiedChannels.sort()).toEqual(['chat', 'email', 'webhook']);
    const tierOne = [...store.outbox.values()].filter((o) => o.payload.event === 'escalated');
    expect(tierOne.map((o) => o.channel).sort()).toEqual(['email', 'webhook']);
    const entry = tierOne[0]!;
    expect(entry.id).toBe(`${entry.eventId}:${entry.channel}`);
    expect(entry.payload).toMatchObject({
      id: entry.id,
      event: 'escalated',
      tier: 1,
      actor: 'system',
      at: new Date(at(3)).toISOString(),
      alert: {
        id: escalated.id,
        state: 'escalated',
        severity: 'critical',
        url: `https://canopy.example/alerts/${escalated.id}`,
      },
    });

    // Reminders every 10 minutes from the last notification, with no data arriving.
    store.apply(engine.tick(at(12)));
    expect(store.kinds().at(-1)).toBe('escalated');
    store.apply(engine.tick(at(13)));
    expect(store.kinds().at(-1)).toBe('reminder');
    store.apply(engine.tick(at(20)));
    store.apply(engine.tick(at(23)));
    const reminders = store.events.filter((e) => e.kind === 'reminder');
    expect(reminders.map((e) => e.at)).toEqual([at(13), at(23)]);
    expect(
      store
        .sent()
        .filter((s) => s.startsWith('reminder:'))
        .sort(),
    ).toEqual([
      'reminder:chat',
      'reminder:chat',
      'reminder:email',
      'reminder:email',
      'reminder:webhook',
      'reminder:webhook',
    ]);

    store.apply(engine.act(escalated.id, { kind: 'acknowledge', actor: 'ana' }, at(25)));
    expect(engine.activeAlerts()[0]).toMatchObject({
      state: 'acknowledged',
      acknowledgedBy: 'ana',
      acknowledgedAt: at(25),
    });
    const ackEvent = store.events.at(-1)!;
    expect(ackEvent).toMatchObject({ kind: 'acknowledged', actor: 'ana', fromState: 'escalated' });
    const before = store.events.length;
    for (let m = 26; m <= 90; m += 1) store.apply(engine.tick(at(m)));
    expect(store.events.length).toBe(before);

    // Still critical after acknowledgement: stays acknowledged.
    feed(10, 91);
    feed(30, 92);
    expect(engine.activeAlerts()).toHaveLength(1);
    feed(31, 93);
    expect(engine.activeAlerts()).toHaveLength(0);
    const resolved = store.events.at(-1)!;
    expect(resolved).toMatchObject({ kind: 'resolved', fromState: 'acknowledged', value: 31 });
    const resolvedSent = store.sent().filter((s) => s.startsWith('resolved:'));
    expect(resolvedSent.sort()).toEqual(['resolved:chat', 'resolved:email', 'resolved:webhook']);
    expect(store.states.size).toBe(0);
  });
});

describe('AlertEngine: reading rules', () => {
  it('holds `open` for a duration in event time, and a good reading restarts it', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'hot',
          kind: 'reading',
          warning: { above: 30 },
          open: { consecutive: 1, for: '5m' },
        },
      ]),
    );
    const store = new MemoryAlertStore();
    const feed = (v: number, m: number) =>
      store.apply(engine.evaluate([reading('s1', v, T0 + m * MIN)], T0 + m * MIN + 500));
    feed(31, 0);
    feed(32, 2);
    feed(20, 3);
    feed(33, 4);
    feed(33, 8);
    expect(store.kinds()).toEqual([]);
    feed(34, 9);
    expect(store.kinds()).toEqual(['opened']);
    expect(engine.activeAlerts()[0]!.openedAt).toBe(T0 + 9 * MIN + 500);
  });

  it('combines leaves with all (AND) and any (OR); the first matching leaf sets value and threshold', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'combo',
          kind: 'reading',
          critical: { all: [{ above: 30 }, { anomaly: true, reasons: ['zscore'] }] },
          warning: { any: [{ below: 0 }, { above: 35 }] },
        },
      ]),
    );
    const severityAfter = (r: EngineReading) => {
      const e = makeEngine(engine.ruleSet());
      e.evaluate([r], r.eventTime);
      return e.activeAlerts()[0]?.severity ?? 'ok';
    };
    expect(severityAfter(reading('a', 31, T0))).toBe('ok');
    expect(
      severityAfter(reading('a', 31, T0, { isAnomaly: true, anomalyReasons: ['range'] })),
    ).toBe('ok');
    expect(
      severityAfter(reading('a', 31, T0, { isAnomaly: true, anomalyReasons: ['range', 'zscore'] })),
    ).toBe('critical');
    expect(severityAfter(reading('a', 36, T0))).toBe('warning');
    expect(severityAfter(reading('a', -1, T0))).toBe('warning');
    expect(severityAfter(reading('a', 10, T0))).toBe('ok');
    engine.evaluate([reading('a', 31, T0, { isAnomaly: true, anomalyReasons: ['zscore'] })], T0);
    expect(engine.activeAlerts()[0]).toMatchObject({ value: 31, threshold: 30 });
  });

  it('resolves bounds by precedence: sensor, longest location prefix, sensor type, rule', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'temp',
          kind: 'reading',
          warning: { above: 30 },
          overrides: [
            { sensorType: 'temperature', warning: { above: 40 } },
            { location: 'gh', warning: { above: 50 } },
            { location: 'gh/1', warning: { above: 60 } },
            { sensor: 's9', warning: { above: 70 } },
          ],
        },
      ]),
    );
    const thresholdFor = (id: string, type: string, location: string | null, value: number) => {
      const e = makeEngine(engine.ruleSet());
      e.evaluate([reading(id, value, T0, { sensorType: type, location })], T0);
      return e.activeAlerts()[0]?.threshold ?? null;
    };
    expect(thresholdFor('s1', 'temperature', 'gh/1/a', 59)).toBeNull();
    expect(thresholdFor('s1', 'temperature', 'gh/1/a', 61)).toBe(60);
    expect(thresholdFor('s1', 'temperature', 'gh/2', 51)).toBe(50);
    expect(thresholdFor('s9', 'temperature', 'gh/1', 65)).toBeNull();
    expect(thresholdFor('s9', 'temperature', 'gh/1', 71)).toBe(70);
    expect(thresholdFor('s2', 'temperature', null, 41)).toBe(40);
    expect(thresholdFor('s2', 'temperature', 'gh2', 41)).toBe(40);
    expect(thresholdFor('s3', 'humidity', 'gh2', 31)).toBe(30);
  });

  it('falls back to configured bands ({min, max} as below/above) per sensor and type', () => {
    const asked: string[] = [];
    const engine = makeEngine(
      rules([{ id: 'bands', kind: 'reading', configuredBounds: true, warning: { above: 35 } }]),
      {
        bounds: (id, type) => {
          asked.push(`${id}/${type}`);
          return id === 'cold' ? { critical: { min: 10 } } : { critical: { min: 5, max: 40 } };
        },
      },
    );
    const store = new MemoryAlertStore();
    store.apply(engine.evaluate([reading('s1', 36, T0)], T0));
    store.apply(engine.evaluate([reading('s1', 45, T0 + 1)], T0 + 1));
    store.apply(engine.evaluate([reading('cold', 8, T0 + 2)], T0 + 2));
    store.apply(engine.evaluate([reading('cold', 9, T0 + 3)], T0 + 3));
    const bySensor = new Map(engine.activeAlerts().map((a) => [a.sensorId, a]));
    expect(bySensor.get('s1')).toMatchObject({ severity: 'critical', threshold: 40 });
    expect(bySensor.get('cold')).toMatchObject({ severity: 'critical', threshold: 10, value: 8 });
    // Resolution is cached per sensor.
    expect(asked).toEqual(['s1/temperature', 'cold/temperature']);
  });

  it('needs `clear.consecutive` good readings in a row to resolve (hysteresis)', () => {
    const engine = makeEngine(
      rules([{ id: 'hot', kind: 'reading', warning: { above: 30 }, clear: { consecutive: 2 } }]),
    );
    const store = new MemoryAlertStore();
    const values = [31, 20, 31, 20];
    values.forEach((v, i) => store.apply(engine.evaluate([reading('s', v, T0 + i)], T0 + i)));
    expect(engine.activeAlerts()).toHaveLength(1);
    store.apply(engine.evaluate([reading('s', 20, T0 + 9)], T0 + 9));
    expect(store.kinds()).toEqual(['opened', 'resolved']);
  });

  it('lowers critical to warning and de-escalates after `clear` non-critical readings; re-escalates after acknowledgement', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'hot',
          kind: 'reading',
          warning: { above: 30 },
          critical: { above: 40 },
          clear: { consecutive: 2 },
        },
      ]),
    );
    const store = new MemoryAlertStore();
    let t = T0;
    const feed = (...values: number[]) => {
      for (const v of values) {
        t += MIN;
        store.apply(engine.evaluate([reading('s', v, t)], t));
      }
    };
    feed(41, 42, 43);
    expect(store.kinds()).toEqual(['opened', 'escalated']);
    feed(35);
    expect(engine.activeAlerts()[0]!.state).toBe('escalated');
    feed(35);
    expect(store.kinds()).toEqual(['opened', 'escalated', 'severity-lowered', 'de-escalated']);
    expect(engine.activeAlerts()[0]).toMatchObject({
      state: 'open',
      severity: 'warning',
      escalatedAt: null,
    });

    // Acknowledged while critical, no de-escalation: stays acknowledged.
    feed(45, 45, 45);
    expect(engine.activeAlerts()[0]!.state).toBe('escalated');
    store.apply(engine.act(engine.activeAlerts()[0]!.id, { kind: 'acknowledge', actor: 'ana' }, t));
    feed(45, 45, 45, 45);
    expect(engine.activeAlerts()[0]!.state).toBe('acknowledged');
    // After a de-escalation a new escalation makes it escalated again.
    feed(35, 35);
    expect(engine.activeAlerts()[0]).toMatchObject({ state: 'acknowledged', severity: 'warning' });
    feed(45, 45);
    expect(engine.activeAlerts()[0]).toMatchObject({ state: 'acknowledged', severity: 'critical' });
    feed(45);
    expect(engine.activeAlerts()[0]!.state).toBe('escalated');
    expect(store.kinds()).toEqual([
      'opened',
      'escalated',
      'severity-lowered',
      'de-escalated',
      'severity-raised',
      'escalated',
      'acknowledged',
      'severity-lowered',
      'severity-raised',
      'escalated',
    ]);
  });

  it('judges rate of change against the previous reading of the sensor', () => {
    const engine = makeEngine(
      rules([{ id: 'jump', kind: 'reading', warning: { rateOfChange: { above: 5, per: '1m' } } }]),
    );
    const store = new MemoryAlertStore();
    store.apply(engine.evaluate([reading('s', 20, T0)], T0));
    store.apply(engine.evaluate([reading('other', 90, T0 + MIN)], T0 + MIN));
    store.apply(engine.evaluate([reading('s', 24, T0 + 2 * MIN)], T0 + 2 * MIN));
    expect(engine.activeAlerts()).toHaveLength(0);
    store.apply(engine.evaluate([reading('s', 30, T0 + 2.5 * MIN)], T0 + 2.5 * MIN));
    expect(engine.activeAlerts()).toHaveLength(1);
    expect(engine.activeAlerts()[0]).toMatchObject({ sensorId: 's', value: 12, threshold: 5 });
    expect(engine.activeAlerts()[0]!.summary).toBe(
      'temperature at s changes by 12 per 1m, above the warning bound 5',
    );
  });

  it('keeps a per-sensor window of flagged readings for anomalyRate', () => {
    const engine = makeEngine(
      rules([
        {
          id: 'flaky',
          kind: 'reading',
          warning: { anomalyRate: { above: 0.3, window: '10m', minReadings: 5 } },
        },
      ]),
    );
    const flags = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
    const opened: number[] = [];
    // The oracle: share of flagged readings with event time in (t - 10m, t].
    const expected: number[] = [];
    flags.forEach((f, i) => {
      const t = T0 + i * 2 * MIN;
      const inWindow = flags.slice(0, i + 1).filter((_, j) => T0 + j * 2 * MIN > t - 10 * MIN);
      const share = inWindow.reduce((s, x) => s + x, 0) / inWindow.length;
      if (inWindow.length >= 5 && share > 0.3) expected.push(i);
      const changes = engine.evaluate(
        [reading('s', 1, t, { isAnomaly: f === 1, anomalyReasons: f === 1 ? ['zscore'] : [] })],
        t,
      );
      if (changes.events.some((e) => e.kind === 'opened')) opened.push(i);
    });
    // With clear 1, each run of breaching readings is one alert, opened at its first reading.
    const firstBreaches = expected.filter((i, k) => k === 0 || expected[k - 1] !== i - 1);
    expect(opened).toEqual(firstBreaches);
    expect(opened).toEqual([4, 12]);
  });

  it('skips null values for reading rules', () => {
    const engine = makeEngine(rules([{ id: 'hot', kind: 'reading', warning: { above: 30 } }]));
    const changes = engine.evaluate([reading('s', null, T0)], T0);
    expect(changes.events).toEqual([]);
    expect(engine.snapshot()).toEqual([]);
  });

  it('counts alerts opened over a random sequence like a straightforward scan does', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = seededRandom(seed);
      const values = Array.from({ length: 400 }, () => Math.round(rnd() * 50));
      const engine = makeEngine(
        rules([
          {
            id: 'r',
            kind: 'reading',
            warning: { above: 30 },
            critical: { above: 40 },
            open: { consecutive: 2 },
            escalate: { consecutive: 3 },
            clear: { consecutive: 2 },
          },
        ]),
      );
      const store = new MemoryAlertStore();
      values.forEach((v, i) => store.apply(engine.evaluate([reading('s', v, T0 + i)], T0 + i)));
      const oracle = referenceScan(values);
      expect(store.kinds().filter((k) => k === 'opened')).toHaveLength(oracle.opened);
      expect(store.kinds().filter((k) => k === 'escalated')).toHaveLength(oracle.escalated);
      expect(store.kinds().filter((k) => k === 'resolved')).toHaveLength(oracle.resolved);
      expect(engine.activeAlerts().length).toBe(oracle.active ? 1 : 0);
    }
  });
});

/** The reading-rule state machine for one sensor, written out plainly (open 2, escalate 3, clear 2). */
function referenceScan(values: number[]) {
  let opened = 0;
  let escalated = 0;
  let resolved = 0;
  let active = false;
  let severity: 'warning' | 'critical' = 'warning';
  let armed = false;
  let breach = 0;
  let crit = 0;
  let nonCrit = 0;
  let ok = 0;
  for (const v of values) {
    const level = v > 40 ? 'critical' : v > 30 ? 'warning' : 'ok';
    breach = level === 'ok' ? 0 : breach + 1;
    crit = level === 'critical' ? crit + 1 : 0;
    nonCrit = level === 'critical' ? 0 : nonCrit + 1;
    ok = level === 'ok' ? ok + 1 : 0;
    if (!active) {
      if (breach >= 2) {
        active = true;
        opened += 1;
        severity = level === 'critical' ? 'critical' : 'warning';
        armed = true;
        if (level === 'critical' && crit >= 3) {
          escalated += 1;
          armed = false;
        }
      }
    } else if (ok >= 2) {
      active = false;
      resolved += 1;
    } else {
      if (level === 'critical') severity = 'critical';
      if (severity === 'critical' && level !== 'critical' && nonCrit >= 2) {
        severity = 'warning';
        armed = true;
      }
      if (level === 'critical' && armed && crit >= 3) {
        escalated += 1;
        armed = false;
      }
    }
  }
  return { opened, escalated, resolved, active };
}

describe('AlertEngine: actions', () => {
  const set = rules([{ id: 'hot', kind: 'reading', warning: { above: 30 } }]);

  it('throws CANOPY_ALERT_NOT_FOUND and CANOPY_ALERT_INVALID_TRANSITION', () => {
    const engine = makeEngine(set);
    engine.evaluate([reading('s', 31, T0)], T0);
    const id = engine.activeAlerts()[0]!.id;
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return isCanopyError(err) ? err.code : 'other';
      }
      return 'none';
    };
    expect(code(() => engine.act('nope', { kind: 'acknowledge', actor: 'a' }, T0))).toBe(
      'CANOPY_ALERT_NOT_FOUND',
    );
    expect(code(() => engine.act(id, { kind: 'snooze', actor: 'a', until: T0 }, T0 + 1))).toBe(
      'CANOPY_ALERT_INVALID_TRANSITION',
    );
    engine.act(id, { kind: 'acknowledge', actor: 'a' }, T0 + 1);
    expect(code(() => engine.act(id, { kind: 'acknowledge', actor: 'a' }, T0 + 2))).toBe(
      'CANOPY_ALERT_INVALID_TRANSITION',
    );
    const resolved = engine.act(id, { kind: 'resolve', actor: 'bo', note: 'fixed' }, T0 + 3);
    expect(resolved.events[0]).toMatchObject({
      kind: 'resolved',
      actor: 'bo',
      note: 'fixed',
      fromState: 'acknowledged',
      toState: 'resolved',
    });
    expect(code(() => engine.act(id, { kind: 'resolve', actor: 'a' }, T0 + 4))).toBe(
      'CANOPY_ALERT_NOT_FOUND',
    );
  });

  it('resolves the alerts of removed or disabled rules with note `rule removed`', () => {
    const two = rules([
      { id: 'hot', kind: 'reading', warning: { above: 30 }, notify: { open: ['chat'] } },
      { id: 'cold', kind: 'reading', warning: { below: 0 } },
    ]);
    const engine = makeEngine(two);
    const store = new MemoryAlertStore();
    store.apply(engine.evaluate([reading('a', 31, T0), reading('b', -1, T0)], T0));
    expect(engine.activeAlerts()).toHaveLength(2);
    store.apply(
      engine.setRules(
        rules([
          { id: 'hot', kind: 'reading', warning: { above: 30 }, enabled: false },
          { id: 'cold', kind: 'reading', warning: { below: 0 } },
        ]),
        T0 + 1,
      ),
    );
    expect(engine.activeAlerts().map((a) => a.ruleId)).toEqual(['cold']);
    expect(store.events.at(-1)).toMatchObject({ kind: 'resolved', note: 'rule removed' });
    expect(store.sent()).toEqual(['opened:chat', 'resolved:chat']);
    store.apply(
      engine.setRules(
        rules([
          {
            id: 'cold',
            kind: 'reading',
            select: { sensorTypes: ['humidity'] },
            warning: { below: 0 },
          },
        ]),
        T0 + 2,
      ),
    );
    expect(store.events.at(-1)).toMatchObject({
      kind: 'resolved',
      note: 'sensor no longer selected',
    });
    store.apply(engine.evaluate([reading('h', -1, T0 + 3, { sensorType: 'humidity' })], T0 + 3));
    expect(engine.activeAlerts()).toHaveLength(1);
    store.apply(engine.setRules(rules([]), T0 + 4));
    expect(engine.activeAlerts()).toHaveLength(0);
    expect(engine.ruleSet()).toEqual({ rules: [] });
  });
});
