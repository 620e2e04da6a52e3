/**
 * The landing folder and idempotency keys in a whole Canopy: a file dropped
 * in `<dataDir>/landing` shows up in GET /api/data and is moved to
 * `processed/`; the same file dropped again adds nothing; a POST /api/data
 * repeated with its Idempotency-Key answers the first body and stores once.
 */
import { existsSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.dispose();
});

const T0 = Date.UTC(2026, 10, 22, 8, 0, 0);

async function readingsOf(app: TestApp, sensorId: string): Promise<unknown[]> {
  const res = await app.api.inject({
    method: 'GET',
    url: `/api/data?sensor_id=${sensorId}&limit=10000`,
  });
  expect(res.statusCode).toBe(200);
  return res.json<{ data: unknown[] }>().data;
}

/** Writes under a temporary name, then renames: how a writer should drop a file. */
function dropFile(folder: string, name: string, body: string): void {
  const temp = path.join(folder, `${name}.part`);
  writeFileSync(temp, body);
  renameSync(temp, path.join(folder, name));
}

describe('landing folder in a running Canopy', () => {
  it('ingests a dropped file once, even when it is dropped twice', async () => {
    const app = await startTestApp({ landing: { settleMs: 0, scanIntervalMs: 200 } });
    apps.push(app);
    const landing = path.join(app.dataDir, 'landing');
    expect(existsSync(landing)).toBe(true);
    const csv = [
      'timestamp,sensor_id,value',
      ...Array.from({ length: 25 }, (_, i) => `${T0 + i * 60_000},drop-1,${i}`),
    ].join('\n');

    dropFile(landing, 'first.csv', csv);
    await expect.poll(() => readingsOf(app, 'drop-1'), { timeout: 15_000 }).toHaveLength(25);
    await expect
      .poll(() => readdirSync(path.join(landing, 'processed')), { timeout: 15_000 })
      .toEqual(['first.csv']);

    dropFile(landing, 'again.csv', csv);
    await expect
      .poll(() => readdirSync(path.join(landing, 'processed')).sort(), { timeout: 15_000 })
      .toEqual(['again.csv', 'first.csv']);
    expect(await readingsOf(app, 'drop-1')).toHaveLength(25);
    const metrics = await app.api.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toContain('canopy_landing_files_total{outcome="processed"} 2');
    expect(metrics.body).toContain('canopy_ingest_duplicates_total{source="landing"} 1');
  });

  it('answers a repeated POST /api/data with the same Idempotency-Key with the first body, storing once', async () => {
    const app = await startTestApp({ landing: { enabled: false } });
    apps.push(app);
    const payload = JSON.stringify([
      { sensor_id: 'idem-1', timestamp: T0, value: 1 },
      { sensor_id: 'idem-1', timestamp: T0 + 1000, value: 'oops' },
      { sensor_id: 'idem-1', timestamp: T0 + 2000, value: 3 },
    ]);
    const post = (key?: string) =>
      app.api.inject({
        method: 'POST',
        url: '/api/data',
        headers: {
          'content-type': 'application/json',
          ...(key === undefined ? {} : { 'idempotency-key': key }),
        },
        payload,
      });

    const first = await post('order-42');
    expect(first.statusCode).toBe(400);
    expect(first.json()).toMatchObject({ accepted: 2, rejected: [{ index: 1 }] });
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const replay = await post('order-42');
    expect(replay.statusCode).toBe(400);
    expect(replay.json()).toEqual(first.json());
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(await readingsOf(app, 'idem-1')).toHaveLength(2);
    const letters = await app.api.inject({ method: 'GET', url: '/api/deadletters?limit=100' });
    expect(letters.json<{ data: unknown[] }>().data).toHaveLength(1);

    // Without a key, or with another one, the request is stored again.
    expect((await post()).statusCode).toBe(400);
    expect((await post('order-43')).statusCode).toBe(400);
    expect(await readingsOf(app, 'idem-1')).toHaveLength(6);

    const bad = await post('x'.repeat(256));
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'CANOPY_API_BAD_REQUEST' } });
  });
});
