/**
 * Fault (e): graceful shutdown under load. `app.stop()` is called while
 * HTTP clients post batches and an MQTT client publishes at QoS 1; it must
 * finish within `shutdownTimeoutMs`, every acknowledged reading must be in
 * the store afterwards (reopened by a second start on the same data folder),
 * and a request that reaches the API while it closes is answered 503, not
 * dropped. A second case gives stopping 1 ms: `stop()` fails with
 * CANOPY_SHUTDOWN_TIMEOUT at the deadline instead of waiting on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp } from './helpers/app.js';
import { figuresFor, reportFigures, storedCounts, waitFor } from './helpers/faults.js';

const dataDirs: string[] = [];
afterAll(() => {
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/** How an HTTP request sent during the test ended. */
type Outcome = 'acknowledged' | 'unavailable' | 'refused' | 'dropped' | 'other';

describe('fault (e): graceful shutdown', () => {
  it('drains in-flight work within the deadline; acknowledged = stored; late requests get 503', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-fault-shutdown-'));
    dataDirs.push(dataDir);
    const overrides = { workflows: { enabled: false }, shutdownTimeoutMs: 20_000 };
    const app = await startTestApp(overrides, dataDir);
    const base = Date.now() - 60_000;

    const ackedHttp: number[] = [];
    const outcomes: Record<Outcome, number> = {
      acknowledged: 0,
      unavailable: 0,
      refused: 0,
      dropped: 0,
      other: 0,
    };
    let stopping = false;
    let sentDuringStop = 0;
    let withoutRetryAfter = 0;
    const unavailableCodes = new Set<string>();
    let nextBatch = 0;
    const httpWorker = async (): Promise<void> => {
      // Until a request is refused at connect: the listener is closed, nothing more can arrive.
      for (;;) {
        const batch = nextBatch++;
        const values = Array.from({ length: 50 }, (_, k) => batch * 50 + k);
        if (stopping) sentDuringStop += 1;
        try {
          const res = await fetch(`http://127.0.0.1:${app.httpPort}/api/data`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(
              values.map((v) => ({ sensor_id: 'shutdown-http', value: v, timestamp: base + v })),
            ),
          });
          const body = await res.text();
          if (res.status === 503) {
            // Every 503 tells the client when to come back.
            if (res.headers.get('retry-after') === null) withoutRetryAfter += 1;
            unavailableCodes.add((JSON.parse(body) as { error: { code: string } }).error.code);
          }
          if (res.status === 200) {
            outcomes.acknowledged += 1;
            ackedHttp.push(...values);
          } else if (res.status === 503) {
            outcomes.unavailable += 1;
            // A client told 503 backs off before it tries again.
            await new Promise((r) => setTimeout(r, 500));
          } else outcomes.other += 1;
        } catch (err) {
          const cause = (err as { cause?: { code?: string; syscall?: string } }).cause;
          // Refused or reset while connecting: no request reached the API.
          if (cause?.code === 'ECONNREFUSED' || cause?.syscall === 'connect') {
            outcomes.refused += 1;
            return;
          }
          outcomes.dropped += 1;
          if (!stopping) throw err;
        }
      }
    };

    const ackedMqtt: number[] = [];
    const publisher = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.mqttPort}`, {
      clientId: 'shutdown-publisher',
      reconnectPeriod: 0,
    });
    publisher.on('error', () => undefined);
    const disconnected = new Promise<void>((resolve) => publisher.once('close', resolve));
    const mqttLoad = (async () => {
      const inFlight = new Set<Promise<void>>();
      for (let value = 0; publisher.connected; value++) {
        const p = publisher
          .publishAsync(
            'iot/data',
            JSON.stringify({ sensor_id: 'shutdown-mqtt', value, timestamp: base + value }),
            { qos: 1 },
          )
          .then(
            () => void ackedMqtt.push(value),
            () => undefined,
          )
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 20) await Promise.race([...inFlight, disconnected]);
      }
      // No PUBACK can come once the connection is gone: the publishes still open were not acknowledged.
      publisher.end(true);
    })();

    const httpLoad = Promise.all(Array.from({ length: 4 }, () => httpWorker()));
    await waitFor('load to build up', () => ackedMqtt.length >= 1_000 && ackedHttp.length >= 5_000);
    stopping = true;
    // Rejects with CANOPY_SHUTDOWN_TIMEOUT past shutdownTimeoutMs.
    await app.stop();
    await Promise.all([httpLoad, mqttLoad]);

    const reopened = await startTestApp(overrides, dataDir);
    try {
      const http = figuresFor(
        'graceful shutdown (HTTP)',
        ackedHttp,
        await storedCounts(reopened.store, 'shutdown-http'),
      );
      const mqttFigures = figuresFor(
        'graceful shutdown (MQTT)',
        ackedMqtt,
        await storedCounts(reopened.store, 'shutdown-mqtt'),
      );
      reportFigures(http);
      reportFigures(mqttFigures);
      console.log(
        `shutdown HTTP outcomes ${JSON.stringify({ ...outcomes, sentDuringStop, unavailableCodes: [...unavailableCodes] })}`,
      );
      expect(withoutRetryAfter).toBe(0);
      expect([http.lost, http.duplicates, mqttFigures.lost, mqttFigures.duplicates]).toEqual([
        0, 0, 0, 0,
      ]);
      expect(outcomes.dropped).toBe(0);
      expect(outcomes.other).toBe(0);
      expect(sentDuringStop).toBeGreaterThan(0);
    } finally {
      await reopened.stop();
    }
  }, 120_000);

  it('answers requests that arrive while the API closes 503 CANOPY_API_SHUTTING_DOWN with Retry-After', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-fault-closing-'));
    dataDirs.push(dataDir);
    const app = await startTestApp({ workflows: { enabled: false } }, dataDir);
    const url = `http://127.0.0.1:${app.httpPort}/api/sensors`;
    expect((await fetch(url)).status).toBe(200);
    const stopped = app.stop();
    // The API keeps its listener open while requests keep coming, answering each 503.
    let answer: Response | undefined;
    for (let attempt = 0; attempt < 1_000 && answer === undefined; attempt++) {
      const res = await fetch(url);
      if (res.status === 503) answer = res;
      else await res.arrayBuffer();
    }
    await stopped;
    expect(answer?.headers.get('retry-after')).toBe('1');
    expect(answer?.headers.get('connection')).toBe('close');
    expect(await answer?.json()).toMatchObject({ error: { code: 'CANOPY_API_SHUTTING_DOWN' } });
  });

  it('fails with CANOPY_SHUTDOWN_TIMEOUT when stopping outlasts shutdownTimeoutMs', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-fault-deadline-'));
    dataDirs.push(dataDir);
    // Closing the stores alone takes longer than 1 ms.
    const app = await startTestApp(
      { workflows: { enabled: false }, shutdownTimeoutMs: 1 },
      dataDir,
    );
    await expect(app.stop()).rejects.toMatchObject({ code: 'CANOPY_SHUTDOWN_TIMEOUT' });
  });
});
