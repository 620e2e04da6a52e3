/**
 * Observability end to end: a whole Canopy in-process, readings of several
 * sensor types over HTTP, then the metrics, the lake gauges and the readiness
 * probe as an operator's scraper sees them.
 */
import { statfs } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { S3RVER_CREDENTIALS, startS3rver } from './helpers/s3rver.js';

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.dispose();
});

async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The value of one series in the exposition text, or undefined when absent. */
function series(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name + ' '));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('metrics, lake gauges and readiness of a running Canopy', () => {
  it('counts readings by source and bounded sensor type, and samples the lake by layer', async () => {
    const app = await startTestApp({ sensorTypes: { leaf_wetness: { unit: '%' } } });
    apps.push(app);
    const t0 = Date.now() - 60_000;
    const record = (i: number, sensorType: string | undefined) => ({
      sensor_id: `obs-${i % 4}`,
      ...(sensorType === undefined ? {} : { sensor_type: sensorType }),
      value: 20 + (i % 5),
      timestamp: new Date(t0 + i * 1000).toISOString(),
    });
    const types = [
      ...Array<string>(7).fill('temperature'),
      ...Array<string>(5).fill('humidity'),
      ...Array<string>(3).fill('leaf_wetness'),
      ...Array<string>(2).fill('made_up_type'),
    ];
    const body = [...types.map((t, i) => record(i, t)), record(100, undefined)];
    const res = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(200);

    await app.housekeeping.runOnce();
    const text = (await app.api.inject({ method: 'GET', url: '/metrics' })).body;
    const accepted = (type: string) =>
      series(text, `canopy_readings_accepted_total{source="http",sensor_type="${type}"}`);
    expect(accepted('temperature')).toBe(7);
    expect(accepted('humidity')).toBe(5);
    expect(accepted('leaf_wetness')).toBe(3);
    expect(accepted('other')).toBe(2);
    expect(accepted('none')).toBe(1);
    expect(text).not.toContain('made_up_type');
    expect(series(text, 'canopy_hot_store_rows')).toBe(body.length);
    expect(series(text, 'canopy_bronze_exported_rows_total')).toBe(body.length);
    // The bronze export wrote one Parquet file per hour touched; the catalogue reads its footers.
    expect(series(text, 'canopy_lake_rows{layer="bronze"}')).toBe(body.length);
    expect(series(text, 'canopy_lake_files{layer="bronze"}')).toBeGreaterThanOrEqual(1);
    expect(series(text, 'canopy_lake_bytes{layer="bronze"}')).toBeGreaterThan(0);
    expect(series(text, 'canopy_lake_catalog_last_success_timestamp_seconds')).toBeGreaterThan(0);
    expect(text).toMatch(
      /^canopy_http_request_duration_seconds_count\{method="POST",route="\/api\/data",status_code="200"\} 1$/m,
    );
    expect(text).toMatch(/^canopy_process_cpu_seconds_total /m);
    // One message, one latency observation; the disk gauges agree with statfs of the data folder.
    expect(series(text, 'canopy_ingest_latency_seconds_count')).toBe(1);
    const disk = await statfs(app.dataDir);
    expect(series(text, 'canopy_disk_size_bytes{volume="data"}')).toBe(disk.blocks * disk.bsize);
    const free = series(text, 'canopy_disk_free_bytes{volume="data"}')!;
    expect(Math.abs(free - disk.bavail * disk.bsize)).toBeLessThan(0.01 * disk.blocks * disk.bsize);
    expect(series(text, 'canopy_disk_size_bytes{volume="lake"}')).toBe(disk.blocks * disk.bsize);
  });

  it('GET /readyz checks the hot store, the metadata store, the lake and the embedded broker', async () => {
    // No workflows: the housekeeping run they start at once would be exporting from the hot
    // store this test closes under it.
    const app = await startTestApp({ workflows: { enabled: false } });
    apps.push(app);
    const res = await app.api.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      status: 'ready',
      checks: [
        { name: 'hot-store', ok: true },
        { name: 'meta-store', ok: true },
        { name: 'lake', ok: true },
        { name: 'mqtt-broker', ok: true },
      ],
    });
    await app.store.close();
    const closed = await app.api.inject({ method: 'GET', url: '/readyz' });
    expect(closed.statusCode).toBe(503);
    const checks = closed.json<{ checks: { name: string; ok: boolean; reason?: string }[] }>()
      .checks;
    expect(checks.find((c) => c.name === 'hot-store')).toMatchObject({ ok: false });
    expect(checks.find((c) => c.name === 'hot-store')?.reason).toBeTruthy();
    expect(checks.filter((c) => c.ok).map((c) => c.name)).toEqual([
      'meta-store',
      'lake',
      'mqtt-broker',
    ]);
    await app.alerting!.store.close();
    const metaDown = (await app.api.inject({ method: 'GET', url: '/readyz' })).json<{
      checks: { name: string; ok: boolean; reason?: string }[];
    }>().checks;
    expect(metaDown.find((c) => c.name === 'meta-store')).toMatchObject({ ok: false });
  });

  it('GET /readyz reports an S3 lake that stops answering, with the reason', async () => {
    const s3 = await startS3rver();
    try {
      const app = await startTestApp({
        lake: {
          kind: 's3',
          s3: {
            bucket: s3.bucket,
            prefix: 'canopy/',
            endpoint: s3.endpoint,
            forcePathStyle: true,
            ...S3RVER_CREDENTIALS,
          },
        },
      });
      apps.push(app);
      expect((await app.api.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      await s3.stop();
      const res = await app.api.inject({ method: 'GET', url: '/readyz' });
      expect(res.statusCode).toBe(503);
      const checks = res.json<{ checks: { name: string; ok: boolean; reason?: string }[] }>()
        .checks;
      const lake = checks.find((c) => c.name === 'lake');
      expect(lake?.ok).toBe(false);
      expect(lake?.reason).toBeTruthy();
      expect(checks.filter((c) => c.ok).map((c) => c.name)).toEqual([
        'hot-store',
        'meta-store',
        'mqtt-broker',
      ]);
    } finally {
      await s3.stop();
    }
  });

  it('GET /readyz follows the MQTT client source connection to its broker', async () => {
    // Another Canopy's embedded broker plays the external broker, so it can be stopped.
    const broker = await startTestApp({ http: { enabled: false } });
    apps.push(broker);
    const app = await startTestApp({
      mqtt: {
        embedded: { enabled: false },
        client: {
          enabled: true,
          url: `mqtt://127.0.0.1:${broker.mqttPort}`,
          clientId: 'canopy-readyz-test',
          // Canopy's embedded broker (aedes) speaks MQTT 3.1.1 only.
          protocolVersion: 4,
          topics: ['sensors/#'],
          cleanSession: true,
        },
      },
    });
    apps.push(app);
    const readyz = async () => {
      const res = await app.api.inject({ method: 'GET', url: '/readyz' });
      return {
        status: res.statusCode,
        client: res
          .json<{ checks: { name: string; ok: boolean; reason?: string }[] }>()
          .checks.find((c) => c.name === 'mqtt-client'),
      };
    };
    expect(await readyz()).toEqual({ status: 200, client: { name: 'mqtt-client', ok: true } });
    await broker.stop();
    await eventually(async () => (await readyz()).status === 503);
    expect((await readyz()).client).toEqual({
      name: 'mqtt-client',
      ok: false,
      reason: 'not connected to the MQTT broker; reconnecting',
    });
  });
});
