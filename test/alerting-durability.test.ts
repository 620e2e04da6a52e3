/**
 * The notification outbox survives kill -9: notifications queued while their
 * receiver was down are delivered after a restart, each exactly once, and the
 * restarted process raises no alert a second time.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCanopy, type CanopyProcess } from './helpers/process.js';
import { startWebhookReceiver } from './helpers/receivers.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-outbox-kill9-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const SENSORS = 20;

async function waitUntil(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(canopy: CanopyProcess, name: string): Promise<number> {
  const text = await (await fetch(`${canopy.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? NaN : Number(line.split(' ')[1]);
}

describe('kill -9 with notifications pending in the outbox', () => {
  it('delivers each one once after the restart', async () => {
    const receiver = await startWebhookReceiver();
    receiver.status = 503;
    const configFile = path.join(dataDir, 'canopy.yaml');
    writeFileSync(
      configFile,
      JSON.stringify({
        dataDir,
        alerting: {
          rulesFile: path.join(dataDir, 'rules.yaml'),
          notifiers: { hook: { kind: 'webhook', url: receiver.url } },
          outbox: { initialBackoffMs: 100, maxBackoffMs: 500 },
        },
      }),
    );
    writeFileSync(
      path.join(dataDir, 'rules.yaml'),
      `rules:
  - id: too-hot
    kind: reading
    critical: { above: 50 }
    escalate: { consecutive: 1 }
    notify: { tiers: [{ channels: [hook] }] }
`,
    );
    const env = { CANOPY_LOG_LEVEL: 'info' };
    try {
      const first = await spawnCanopy(env, ['--config', configFile]);
      const now = new Date().toISOString();
      const post = await fetch(`${first.httpUrl}/api/data`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(
          Array.from({ length: SENSORS }, (_, i) => ({
            sensor_id: `oven-${i}`,
            sensor_type: 'temperature',
            value: 90,
            timestamp: now,
          })),
        ),
      });
      expect(post.status).toBe(200);
      // Every notification has been tried at least once, so each is in the outbox, failing.
      await waitUntil(() => receiver.attempts >= SENSORS * 2, 'failed delivery attempts');
      expect(receiver.deliveries).toHaveLength(0);
      first.child.kill('SIGKILL');
      expect(await first.exited).toBe('SIGKILL');

      receiver.status = 200;
      const second = await spawnCanopy(env, ['--config', configFile]);
      try {
        await receiver.waitFor(SENSORS, 30_000);
        // Nothing left to send: any further delivery would have to come from the outbox.
        await waitUntil(
          async () => (await metric(second, 'canopy_alert_outbox_pending')) === 0,
          'an empty outbox',
        );
        expect(receiver.deliveries).toHaveLength(SENSORS);
        const ids = receiver.deliveries.map((d) => d.json.id);
        expect(new Set(ids).size).toBe(SENSORS);
        expect(new Set(receiver.deliveries.map((d) => d.json.alert.id)).size).toBe(SENSORS);
        expect(receiver.deliveries.every((d) => d.json.event === 'escalated')).toBe(true);

        const alerts = (await (
          await fetch(`${second.httpUrl}/api/alerts?state=active&limit=1000`)
        ).json()) as { data: { id: string; state: string }[] };
        expect(alerts.data).toHaveLength(SENSORS);
        expect(alerts.data.every((a) => a.state === 'escalated')).toBe(true);
        for (const alert of alerts.data) {
          const detail = (await (
            await fetch(`${second.httpUrl}/api/alerts/${alert.id}`)
          ).json()) as {
            events: { kind: string }[];
            notifications: { id: string; status: string; attempts: number }[];
          };
          expect(detail.events.map((e) => e.kind)).toEqual(['opened', 'escalated']);
          expect(detail.notifications).toHaveLength(1);
          expect(detail.notifications[0]!.status).toBe('delivered');
          expect(detail.notifications[0]!.attempts).toBeGreaterThanOrEqual(2);
          expect(ids).toContain(detail.notifications[0]!.id);
        }
      } finally {
        second.child.kill('SIGTERM');
        await second.exited;
      }
    } finally {
      await receiver.close();
    }
  }, 90_000);
});
