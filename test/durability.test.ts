/**
 * A reading acknowledged (HTTP 2xx or MQTT PUBACK) is in the store after the
 * process is killed with SIGKILL mid-load and restarted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { reportFigures } from './helpers/faults.js';
import { spawnCanopy } from './helpers/process.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-kill9-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

async function allValues(httpUrl: string, sensorId: string): Promise<Set<number>> {
  const values = new Set<number>();
  let cursor: string | null = null;
  do {
    const url = `${httpUrl}/api/data?sensor_id=${sensorId}&limit=10000${cursor ? `&cursor=${cursor}` : ''}`;
    const page = (await (await fetch(url)).json()) as {
      data: { value: number }[];
      next_cursor: string | null;
    };
    for (const r of page.data) values.add(r.value);
    cursor = page.next_cursor;
  } while (cursor);
  return values;
}

describe('kill -9 durability', () => {
  it('loses no acknowledged reading', async () => {
    const env = { CANOPY_DATA_DIR: dataDir, CANOPY_LOG_LEVEL: 'info' };
    const first = await spawnCanopy(env);
    const base = Date.now() - 60_000;
    const ackedMqtt: number[] = [];
    const ackedHttp: number[] = [];
    let stop = false;

    const client = await mqtt.connectAsync(first.mqttUrl, {
      clientId: 'kill9-publisher',
      reconnectPeriod: 0,
    });
    client.on('error', () => undefined);
    const mqttLoad = (async () => {
      // Up to 50 publishes in flight; record each one whose PUBACK arrived.
      let i = 0;
      const inFlight = new Set<Promise<void>>();
      while (!stop) {
        const n = i++;
        const p = client
          .publishAsync(
            'iot/data',
            JSON.stringify({ sensor_id: 'kill9-mqtt', value: n, timestamp: base + n }),
            { qos: 1 },
          )
          .then(
            () => void ackedMqtt.push(n),
            () => undefined,
          )
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= 50) await Promise.race(inFlight);
      }
    })();
    const httpLoad = (async () => {
      for (let batch = 0; !stop; batch++) {
        const values = Array.from({ length: 100 }, (_, k) => batch * 100 + k);
        const body = values.map((v) => ({
          sensor_id: 'kill9-http',
          value: v,
          timestamp: base + v,
        }));
        try {
          const res = await fetch(`${first.httpUrl}/api/data`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
          if (res.status === 200) ackedHttp.push(...values);
        } catch {
          return; // the server died mid-request: not acknowledged
        }
      }
    })();

    // Let load build up, then kill without warning.
    while (ackedMqtt.length < 2_000 || ackedHttp.length < 5_000)
      await new Promise((r) => setTimeout(r, 50));
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    stop = true;
    client.end(true);
    await Promise.all([mqttLoad, httpLoad]);

    const second = await spawnCanopy(env);
    try {
      const storedMqtt = await allValues(second.httpUrl, 'kill9-mqtt');
      const storedHttp = await allValues(second.httpUrl, 'kill9-http');
      const lostMqtt = ackedMqtt.filter((v) => !storedMqtt.has(v));
      const lostHttp = ackedHttp.filter((v) => !storedHttp.has(v));
      // Read back as distinct values through the API: duplicates are not counted here.
      for (const [fault, acked, lost] of [
        ['kill -9 under load (MQTT)', ackedMqtt, lostMqtt],
        ['kill -9 under load (HTTP)', ackedHttp, lostHttp],
      ] as const)
        reportFigures({
          fault,
          acknowledged: acked.length,
          stored: acked.length - lost.length,
          lost: lost.length,
        });
      expect({ lostMqtt: lostMqtt.length, lostHttp: lostHttp.length }).toEqual({
        lostMqtt: 0,
        lostHttp: 0,
      });
      expect(ackedMqtt.length).toBeGreaterThanOrEqual(2_000);
    } finally {
      second.child.kill('SIGTERM');
      await second.exited;
    }
  }, 90_000);
});
