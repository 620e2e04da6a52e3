/**
 * Alerting end to end, through the whole platform: readings published over
 * MQTT by a real client, rules from a YAML file, notifications delivered to a
 * real HTTP receiver and a real SMTP server, acted on through the HTTP API.
 * Time comes from a ManualClock, and the test drives the alert tick itself,
 * so nothing waits on wall-clock time except real I/O.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { runCanopy } from './helpers/cli.js';
import {
  signatureValid,
  startSmtpReceiver,
  startWebhookReceiver,
  type SmtpReceiver,
  type WebhookReceiver,
} from './helpers/receivers.js';

const NOW = Date.UTC(2026, 10, 29, 8, 0, 0);
const MINUTE = 60_000;
const SECRET = 'conservatory-webhook-secret';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Harness {
  app: TestApp;
  clock: ManualClock;
  client: MqttClient;
  /** Publishes readings at the clock's time, QoS 1 (acknowledged after commit), then waits for evaluation. */
  publish(readings: Record<string, unknown>[]): Promise<void>;
  /** Advances the clock and runs the alert tick and a delivery pass. */
  advance(ms: number): Promise<void>;
  /** Waits for every queued evaluation and delivery. */
  settle(): Promise<void>;
}

async function startHarness(
  rules: string,
  alertingConfig: Record<string, unknown>,
): Promise<Harness> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-alerting-'));
  const rulesFile = path.join(dataDir, 'rules.yaml');
  writeFileSync(rulesFile, rules);
  const clock = new ManualClock(NOW);
  const app = await startTestApp(
    // The tick is driven by the test; an hour keeps the timer out of the way.
    { alerting: { rulesFile, tickMs: 3_600_000, ...alertingConfig } },
    dataDir,
    { clock },
  );
  cleanups.push(() => app.dispose());
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.mqttPort}`, {
    clientId: `alerting-${Math.random()}`,
  });
  cleanups.push(() => client.endAsync());
  const alerting = app.alerting!;
  const settle = async (): Promise<void> => {
    await alerting.service.flush();
    await alerting.dispatcher.deliverDue();
  };
  return {
    app,
    clock,
    client,
    async publish(readings) {
      const timestamp = new Date(clock.now()).toISOString();
      await client.publishAsync(
        'sensors/conservatory',
        JSON.stringify(readings.map((r) => ({ timestamp, ...r }))),
        { qos: 1 },
      );
      await settle();
    },
    async advance(ms) {
      clock.advance(ms);
      await alerting.service.tick();
      await settle();
    },
    settle,
  };
}

const moisture = (value: number) => ({
  sensor_id: 'plant-7',
  sensor_type: 'soil_moisture',
  location: 'conservatory/bench-1',
  value,
});

describe('the conservatory case', () => {
  let webhook: WebhookReceiver;
  let smtp: SmtpReceiver;

  async function conservatory(): Promise<Harness> {
    webhook = await startWebhookReceiver();
    cleanups.push(() => webhook.close());
    smtp = await startSmtpReceiver();
    cleanups.push(() => smtp.close());
    return startHarness(
      `rules:
  - id: plant-moisture
    kind: reading
    select: { sensorTypes: [soil_moisture] }
    warning: { below: 30 }
    critical: { below: 15 }
    clear: { consecutive: 2 }
    notify:
      tiers: [{ channels: [team, botanist] }]
      reminderEvery: 10m
`,
      {
        publicUrl: 'http://canopy.example:3000',
        notifiers: {
          team: { kind: 'webhook', url: webhook.url, secret: SECRET },
          botanist: {
            kind: 'email',
            host: '127.0.0.1',
            port: smtp.port,
            from: 'canopy@example.org',
            to: ['ann@example.org'],
          },
        },
      },
    );
  }

  it('escalates after the third consecutive critical reading, reminds until acknowledged, and resolves once on recovery', async () => {
    const h = await conservatory();

    await h.publish([moisture(40)]);
    await h.advance(MINUTE);
    await h.publish([moisture(25)]); // warning: opens, tells nobody (no `open` channels)
    for (const value of [12, 11]) {
      await h.advance(MINUTE);
      await h.publish([moisture(value)]);
    }
    expect(webhook.deliveries).toHaveLength(0);
    expect(smtp.mails).toHaveLength(0);

    await h.advance(MINUTE);
    await h.publish([moisture(10)]); // third consecutive critical reading
    const [escalated] = await webhook.waitFor(1);
    await smtp.waitFor(1);
    expect(escalated!.json).toMatchObject({
      event: 'escalated',
      alert: { state: 'escalated', severity: 'critical' },
    });
    expect(signatureValid(escalated!, SECRET)).toBe(true);
    expect(escalated!.headers['x-canopy-notification-id']).toBe(escalated!.json.id);
    expect(smtp.mails[0]!.to).toEqual(['ann@example.org']);
    expect(smtp.mails[0]!.raw).toContain('plant-7');
    const alertId = escalated!.json.alert.id;

    // No new data: the reminder still comes, once per interval.
    await h.advance(5 * MINUTE);
    expect(webhook.deliveries).toHaveLength(1);
    await h.advance(5 * MINUTE);
    await webhook.waitFor(2);
    await smtp.waitFor(2);
    expect(webhook.deliveries[1]!.json.event).toBe('reminder');

    const ack = await h.app.api.inject({
      method: 'POST',
      url: `/api/alerts/${alertId}/ack`,
      headers: { 'content-type': 'application/json' },
      payload: { by: 'ann', note: 'watering now' },
    });
    expect(ack.statusCode).toBe(200);
    expect(ack.json()).toMatchObject({ alert: { state: 'acknowledged', acknowledged_by: 'ann' } });
    await h.settle();
    await webhook.waitFor(3);
    expect(webhook.deliveries[2]!.json.event).toBe('acknowledged');

    // Acknowledged: an hour of ticks brings no reminder.
    for (let i = 0; i < 6; i++) await h.advance(10 * MINUTE);
    expect(webhook.deliveries).toHaveLength(3);

    await h.publish([moisture(35)]); // one good reading: not yet clear (hysteresis of 2)
    expect(webhook.deliveries).toHaveLength(3);
    await h.advance(MINUTE);
    await h.publish([moisture(36)]);
    await webhook.waitFor(4);
    await smtp.waitFor(4);
    expect(webhook.deliveries[3]!.json).toMatchObject({
      event: 'resolved',
      alert: { id: alertId, state: 'resolved' },
    });
    await h.advance(MINUTE);
    await h.publish([moisture(37)]);
    await h.advance(30 * MINUTE);
    expect(webhook.deliveries.map((d) => d.json.event)).toEqual([
      'escalated',
      'reminder',
      'acknowledged',
      'resolved',
    ]);
    expect(new Set(webhook.deliveries.map((d) => d.json.id)).size).toBe(4);
    expect(smtp.mails).toHaveLength(4);

    const detail = await h.app.api.inject({ method: 'GET', url: `/api/alerts/${alertId}` });
    expect(detail.statusCode).toBe(200);
    const body = detail.json<{
      alert: { state: string; resolved_at: string };
      events: { kind: string; actor: string }[];
      notifications: { channel: string; status: string }[];
    }>();
    expect(body.alert.state).toBe('resolved');
    expect(body.events.map((e) => e.kind)).toEqual([
      'opened',
      'severity-raised',
      'escalated',
      'reminder',
      'acknowledged',
      'resolved',
    ]);
    expect(body.events.find((e) => e.kind === 'acknowledged')!.actor).toBe('ann');
    expect(body.notifications).toHaveLength(8);
    expect(body.notifications.every((n) => n.status === 'delivered')).toBe(true);

    const metrics = (await h.app.api.inject({ method: 'GET', url: '/metrics' })).body;
    const sample = (series: string) =>
      Number(
        metrics
          .split('\n')
          .find((l) => l.startsWith(`${series} `))
          ?.split(' ')[1],
      );
    expect(sample('canopy_notifications_sent_total{notifier="webhook",channel="team"}')).toBe(4);
    expect(sample('canopy_notifications_sent_total{notifier="email",channel="botanist"}')).toBe(4);
    expect(sample('canopy_alert_events_total{kind="escalated",severity="critical"}')).toBe(1);
    expect(sample('canopy_alerts{state="escalated",severity="critical"}')).toBe(0);
    expect(sample('canopy_alert_outbox_pending')).toBe(0);
  });

  it('the CLI lists and acknowledges alerts of the running Canopy', async () => {
    const h = await conservatory();
    for (let i = 0; i < 3; i++) {
      await h.publish([moisture(5)]);
      await h.advance(MINUTE);
    }
    const url = `http://127.0.0.1:${h.app.httpPort}`;
    const list = await runCanopy(['alerts', 'list', '--url', url, '--json'], {});
    expect(list.code).toBe(0);
    const [alert] = JSON.parse(list.stdout) as { id: string; state: string }[];
    expect(alert).toMatchObject({ state: 'escalated' });

    const ack = await runCanopy(['alerts', 'ack', alert!.id, '--url', url, '--by', 'ann'], {});
    expect(ack.code).toBe(0);
    expect(ack.stdout).toContain('acknowledged');
    const table = await runCanopy(['alerts', 'list', '--url', url, '--state', 'acknowledged'], {});
    expect(table.stdout.trim().split('\n')).toHaveLength(2);
    expect(table.stdout).toContain('plant-moisture');

    const again = await runCanopy(['alerts', 'ack', alert!.id, '--url', url], {});
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('CANOPY_ALERT_INVALID_TRANSITION');
    const nobody = await runCanopy(['alerts', 'list', '--url', 'http://127.0.0.1:9'], {});
    expect(nobody.code).toBe(1);
    expect(nobody.stderr).toContain('CANOPY_API_UNREACHABLE');
  });

  it('lists alerts by state, severity and sensor, and refuses acting on what is not there', async () => {
    const h = await conservatory();
    for (let i = 0; i < 3; i++) {
      await h.publish([moisture(5), { ...moisture(22), sensor_id: 'plant-8' }]);
      await h.advance(MINUTE);
    }
    const list = async (query: string) =>
      (await h.app.api.inject({ method: 'GET', url: `/api/alerts?${query}` })).json<{
        data: { sensor_id: string; state: string; severity: string }[];
      }>().data;
    expect((await list('state=active')).map((a) => a.sensor_id).sort()).toEqual([
      'plant-7',
      'plant-8',
    ]);
    expect(await list('severity=critical')).toMatchObject([
      { sensor_id: 'plant-7', state: 'escalated' },
    ]);
    expect(await list('sensor_id=plant-8')).toMatchObject([{ severity: 'warning', state: 'open' }]);
    expect(await list('location=conservatory')).toHaveLength(2);
    expect(await list('location=conserv')).toHaveLength(0);

    const bad = await h.app.api.inject({ method: 'GET', url: '/api/alerts?state=sleeping' });
    expect(bad.statusCode).toBe(400);
    const missing = await h.app.api.inject({
      method: 'POST',
      url: '/api/alerts/00000000-0000-0000-0000-000000000000/ack',
    });
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: { code: 'CANOPY_ALERT_NOT_FOUND' } });
  });
});

describe('no-data alerts', () => {
  it('raises one alert for a location whose sensors all went silent, and one per silent sensor elsewhere', async () => {
    const h = await startHarness(
      `rules:
  - id: silent
    kind: no-data
    after: 5m
`,
      {},
    );
    const at = (id: string, location: string) => ({
      sensor_id: id,
      sensor_type: 'temperature',
      location,
      value: 20,
    });
    const east = ['e1', 'e2', 'e3'].map((id) => at(id, 'greenhouse/east'));
    const west = ['w1', 'w2'].map((id) => at(id, 'greenhouse/west'));
    await h.publish([...east, ...west]);
    await h.advance(3 * MINUTE);
    await h.publish([west[0]!]);
    await h.advance(3 * MINUTE); // 6 min since the others spoke; 3 since w1

    const active = (
      await h.app.api.inject({ method: 'GET', url: '/api/alerts?state=active' })
    ).json<{ data: { subject: string; rule_id: string }[] }>().data;
    expect(active.map((a) => a.subject).sort()).toEqual(['location:greenhouse/east', 'sensor:w2']);

    await h.publish([west[1]!]);
    const after = (
      await h.app.api.inject({ method: 'GET', url: '/api/alerts?state=active' })
    ).json<{ data: { subject: string }[] }>().data;
    expect(after.map((a) => a.subject)).toEqual(['location:greenhouse/east']);
  });
});

describe('alert rules over the API', () => {
  it('exports YAML that imports back unchanged, and refuses a bad rule naming the rule and the field', async () => {
    const h = await startHarness(
      `rules:
  - id: hot
    kind: reading
    select: { sensorTypes: [temperature] }
    critical: { above: 40 }
`,
      {},
    );
    const exported = await h.app.api.inject({ method: 'GET', url: '/api/alert-rules' });
    expect(exported.statusCode).toBe(200);
    expect(exported.headers['content-type']).toContain('yaml');
    const put = await h.app.api.inject({
      method: 'PUT',
      url: '/api/alert-rules',
      headers: { 'content-type': 'application/yaml' },
      payload: exported.body,
    });
    expect(put.statusCode).toBe(200);
    const again = await h.app.api.inject({ method: 'GET', url: '/api/alert-rules' });
    expect(again.body).toBe(exported.body);

    const inverted = await h.app.api.inject({
      method: 'PUT',
      url: '/api/alert-rules',
      headers: { 'content-type': 'application/yaml' },
      payload: `rules:
  - id: cold
    kind: reading
    warning: { below: 5 }
    critical: { below: 10 }
`,
    });
    expect(inverted.statusCode).toBe(400);
    const error = inverted.json<{ error: { code: string; message: string } }>().error;
    expect(error.code).toBe('CANOPY_ALERT_RULES_INVALID');
    expect(error.message).toContain('cold');
    expect(error.message).toContain('critical.below');
    // The refused set changed nothing.
    const kept = await h.app.api.inject({ method: 'GET', url: '/api/alert-rules' });
    expect(kept.body).toBe(exported.body);

    // New rules apply at once: a hot reading now alerts under the replaced set.
    const json = await h.app.api.inject({
      method: 'PUT',
      url: '/api/alert-rules',
      headers: { 'content-type': 'application/json' },
      payload: {
        rules: [
          {
            id: 'warm',
            kind: 'reading',
            select: { sensorTypes: ['temperature'] },
            critical: { above: 25 },
            escalate: { consecutive: 1 },
          },
        ],
      },
    });
    expect(json.statusCode).toBe(200);
    await h.publish([{ sensor_id: 't1', sensor_type: 'temperature', value: 30 }]);
    const active = (
      await h.app.api.inject({ method: 'GET', url: '/api/alerts?state=active' })
    ).json<{ data: { rule_id: string; state: string }[] }>().data;
    expect(active).toMatchObject([{ rule_id: 'warm', state: 'escalated' }]);
  });
});
