/**
 * Fault (c): the external MQTT broker stops under load and comes back.
 *
 * The test runs its own Mosquitto (a child process on a free port, with
 * persistence in a temp folder; the machine's broker on 1883 is not
 * touched), a Canopy whose MQTT client source subscribes to it with a
 * persistent session, and a publisher sending QoS 1 readings. It stops the
 * broker (SIGTERM: Mosquitto saves its queues), checks that the source
 * retries with growing delays, restarts the broker on the same port, and
 * checks that every reading the broker acknowledged to the publisher is
 * stored once publishing ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { startCanopy, type CanopyApp } from '../src/runtime/app.js';
import { testConfig, wholeApp } from './helpers/app.js';
import { figuresFor, freePort, reportFigures, storedCounts, waitFor } from './helpers/faults.js';
import { captureLines } from './helpers/logs.js';
import { portOpen } from './helpers/services.js';

const workDir = mkdtempSync(path.join(tmpdir(), 'canopy-fault-broker-'));
const running: ChildProcess[] = [];
let app: CanopyApp | undefined;

afterAll(async () => {
  await app?.stop();
  for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(workDir, { recursive: true, force: true });
});

/** Starts Mosquitto with the test's config and resolves once its port answers. */
async function startMosquitto(configFile: string, port: number): Promise<ChildProcess> {
  const child = spawn('mosquitto', ['-c', configFile], { stdio: 'ignore' });
  running.push(child);
  await waitFor(`mosquitto on port ${port}`, () => portOpen(port));
  return child;
}

describe('fault (c): the external MQTT broker stops', () => {
  it('reconnects with backoff and stores every reading the broker acknowledged', async () => {
    const port = await freePort();
    const configFile = path.join(workDir, 'mosquitto.conf');
    writeFileSync(
      configFile,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        // Run as root, Mosquitto would switch to its own user, which cannot write the temp folder.
        `user ${userInfo().username}`,
        'persistence true',
        `persistence_location ${workDir}/`,
        // Unbounded queue for Canopy's session while it reconnects: the broker must not drop.
        'max_queued_messages 0',
        // At most this many messages are sent to Canopy and not yet PUBACKed (see duplicates below).
        'max_inflight_messages 20',
        '',
      ].join('\n'),
    );
    let broker = await startMosquitto(configFile, port);

    const logs = captureLines();
    const config = testConfig({
      workflows: { enabled: false },
      http: { enabled: false },
      mqtt: {
        embedded: { enabled: false },
        client: {
          enabled: true,
          url: `mqtt://127.0.0.1:${port}`,
          clientId: `canopy-fault-${port}`,
          topics: ['faults/#'],
          cleanSession: false,
        },
      },
    });
    app = await startCanopy(config, {
      logger: createLogger('info', false, { destination: logs.stream }),
    });
    const started = wholeApp(app);

    let committed = 0;
    started.pipeline.onCommit((readings) => (committed += readings.length));
    const acknowledged: number[] = [];
    const base = Date.now() - 60_000;
    let publishing = true;
    const publisher = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId: `fault-publisher-${port}`,
      reconnectPeriod: 200,
    });
    publisher.on('error', () => undefined);
    const load = (async () => {
      let next = 0;
      const inFlight = new Set<Promise<void>>();
      while (publishing) {
        // Publishing far faster than Canopy commits would only grow the broker's queue.
        if (!publisher.connected || acknowledged.length - committed > 200) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const value = next++;
        const p = publisher
          .publishAsync(
            'faults/broker',
            JSON.stringify({ sensor_id: 'fault-broker', value, timestamp: base + value }),
            { qos: 1 },
          )
          .then(
            () => void acknowledged.push(value),
            () => undefined,
          )
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 20) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    })();

    const storedNow = async (): Promise<number> =>
      (await storedCounts(started.store, 'fault-broker')).size;
    await waitFor('500 readings stored before the outage', async () => (await storedNow()) >= 500);

    broker.kill('SIGTERM');
    await new Promise((resolve) => broker.once('exit', resolve));
    const reconnects = (): Record<string, unknown>[] =>
      logs.lines.filter((l) => l.msg === 'reconnecting to the MQTT broker');
    // Three failed attempts while the broker is down: 1 s, then 2 s, then 4 s apart.
    await waitFor('three reconnect attempts', () => reconnects().length >= 3);
    expect(reconnects().map((l) => l.nextDelayMs)).toEqual([2_000, 4_000, 8_000]);

    const ackedBeforeRestart = acknowledged.length;
    broker = await startMosquitto(configFile, port);
    await waitFor('the source to reconnect', () =>
      logs.lines.some((l) => l.msg === 'MQTT client reconnected'),
    );
    await waitFor(
      '500 more acknowledged readings after the restart',
      () => acknowledged.length >= ackedBeforeRestart + 500,
    );
    publishing = false;
    await load;
    await publisher.endAsync();

    const wanted = new Set(acknowledged);
    // Redelivered messages arrive after the restart; a reading missing past the wait is lost.
    await waitFor('every acknowledged reading stored', async () => {
      const counts = await storedCounts(started.store, 'fault-broker');
      return [...wanted].every((v) => counts.has(v));
    }).catch(() => undefined);
    const figures = figuresFor(
      'external MQTT broker stopped and restarted',
      acknowledged,
      await storedCounts(started.store, 'fault-broker'),
    );
    reportFigures(figures);
    expect(figures.lost).toBe(0);
    expect(figures.acknowledged).toBeGreaterThanOrEqual(1_000);
    // QoS 1 is at least once: messages Canopy committed and PUBACKed but whose PUBACK the
    // broker had not processed when it stopped are sent again; their content keys store them once.
    expect(figures.duplicates).toBe(0);
  }, 120_000);
});
