/** The lake path of a running Canopy: housekeeping exports to bronze, then purges the hot window. */
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';

const apps: TestApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.dispose();
});

async function bronzeCount(lakeRoot: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(lakeRoot, 'bronze/readings/**/*.parquet');
    const rows = (
      await conn.runAndReadAll(`SELECT count(*) FROM read_parquet('${glob}')`)
    ).getRows();
    return Number(rows[0]?.[0]);
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe('housekeeping', () => {
  it('exports every acknowledged reading to bronze and purges only exported rows past the hot window', async () => {
    const app = await startTestApp({ store: { retentionHours: 1 } });
    apps.push(app);
    const now = Date.now();
    const body = (sensor: string, ageMs: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({
        sensor_id: sensor,
        value: i,
        timestamp: now - ageMs - i * 1000,
      }));
    const post = (payload: unknown) =>
      app.api.inject({
        method: 'POST',
        url: '/api/data',
        payload: payload as object,
        headers: { 'content-type': 'application/json' },
      });
    expect(
      (await post([...body('old', 3 * 3_600_000, 40), ...body('fresh', 0, 10)])).statusCode,
    ).toBe(200);

    await app.housekeeping.runOnce();
    expect(await bronzeCount(path.join(app.dataDir, 'lake'))).toBe(50);
    // The 40 old readings are outside the 1 h window and exported: purged. The fresh ones stay.
    expect(await app.store.countReadings()).toBe(10);
    expect(await app.store.getExportWatermark()).toBe(50n);

    // A late reading (older than the window) is kept until it is exported, then purged.
    expect((await post(body('late', 5 * 3_600_000, 1))).statusCode).toBe(200);
    expect(await app.store.countReadings()).toBe(11);
    await app.housekeeping.runOnce();
    expect(await bronzeCount(path.join(app.dataDir, 'lake'))).toBe(51);
    expect(await app.store.countReadings()).toBe(10);

    // SQL over history sees the same rows (read-only sandbox over the lake).
    const query = (sql: string) =>
      app.api.inject({ method: 'POST', url: '/api/query', payload: { sql } });
    const counted = await query(
      'SELECT sensor_id, count(*) AS n FROM bronze_readings GROUP BY ALL ORDER BY sensor_id',
    );
    expect(counted.statusCode).toBe(200);
    expect(counted.json()).toMatchObject({
      columns: [{ name: 'sensor_id' }, { name: 'n' }],
      rows: [
        ['fresh', 10],
        ['late', 1],
        ['old', 40],
      ],
      truncated: false,
    });
    for (const sql of [
      'DELETE FROM bronze_readings',
      "SELECT * FROM read_csv('/etc/passwd')",
      'SELECT 1; SELECT 2',
    ]) {
      const refused = await query(sql);
      expect(refused.statusCode).toBe(400);
      expect(refused.json<{ error: { code: string } }>().error.code).toBe('CANOPY_QUERY_REFUSED');
    }

    const metrics = (await app.api.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^canopy_bronze_exported_rows_total 51$/m);
    expect(metrics).toMatch(/^canopy_hot_store_purged_rows_total 41$/m);
  });
});
