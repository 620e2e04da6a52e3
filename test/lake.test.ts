/** The lake path of a running Canopy: housekeeping exports to bronze, then purges the hot window. */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { S3ObjectStore } from '../src/storage/index.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { S3RVER_CREDENTIALS, startS3rver } from './helpers/s3rver.js';

const execFileAsync = promisify(execFile);
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
    expect((await post('{"not": json')).statusCode).toBe(400); // one dead letter

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
    const letters = await query('SELECT reason, raw FROM dead_letters');
    expect(letters.json()).toMatchObject({ rows: [['INVALID_JSON', '{"not": json']] });
    for (const sql of [
      'DELETE FROM bronze_readings',
      "SELECT * FROM read_csv('/etc/passwd')",
      'SELECT 1; SELECT 2',
    ]) {
      const refused = await query(sql);
      expect(refused.statusCode).toBe(400);
      expect(refused.json<{ error: { code: string } }>().error.code).toBe('CANOPY_QUERY_REFUSED');
    }

    const catalog = await app.api.inject({ method: 'GET', url: '/api/catalog' });
    expect(catalog.json()).toMatchObject({
      tables: [
        { table: 'bronze/readings', layer: 'bronze', rows: 51 },
        { table: 'deadletter', layer: 'deadletter', files: 1, rows: null },
      ],
    });

    const metrics = (await app.api.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^canopy_bronze_exported_rows_total 51$/m);
    expect(metrics).toMatch(/^canopy_hot_store_purged_rows_total 41$/m);
  });
});

describe('an S3 lake (s3rver)', () => {
  it('receives the bronze export, and answers SQL and the catalogue through the local cache, in the server and in canopy query', async () => {
    const s3 = await startS3rver();
    const work = mkdtempSync(path.join(tmpdir(), 'canopy-s3-lake-'));
    try {
      const lakeConfig = {
        bucket: s3.bucket,
        prefix: 'canopy/',
        endpoint: s3.endpoint,
        forcePathStyle: true,
        ...S3RVER_CREDENTIALS,
      };
      const app = await startTestApp({ lake: { kind: 's3', s3: lakeConfig } });
      apps.push(app);
      const t = Date.UTC(2026, 10, 21, 6);
      const payload = Array.from({ length: 30 }, (_, i) => ({
        sensor_id: `s-${i % 3}`,
        value: i,
        timestamp: t + i * 360_000,
      }));
      const res = await app.api.inject({
        method: 'POST',
        url: '/api/data',
        payload,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.statusCode).toBe(200);
      await app.housekeeping.runOnce();

      // Read back through a second client: the objects and their rows.
      const bucket = new S3ObjectStore({ ...lakeConfig, region: 'us-east-1' });
      const objects = await bucket.list('bronze/readings/');
      expect(objects.map((o) => o.key.split('/').slice(2, 4).join('/'))).toEqual([
        'date=2026-11-21/hour=06',
        'date=2026-11-21/hour=07',
        'date=2026-11-21/hour=08',
      ]);
      const files = await Promise.all(
        objects.map(async (o, i) => {
          const file = path.join(work, `${i}.parquet`);
          await bucket.getToFile(o.key, file);
          return file;
        }),
      );
      const db = await DuckDBInstance.create(':memory:');
      const conn = await db.connect();
      const list = files.map((f) => `'${f}'`).join(', ');
      const [count, sum] = (
        await conn.runAndReadAll(`SELECT count(*), sum(value) FROM read_parquet([${list}])`)
      ).getRows()[0]!;
      conn.closeSync();
      db.closeSync();
      expect([Number(count), Number(sum)]).toEqual([30, (29 * 30) / 2]);

      // SQL over the S3 lake reads a local cache of its files, synced before each query.
      const query = (sql: string) =>
        app.api.inject({ method: 'POST', url: '/api/query', payload: { sql } });
      const totals = 'SELECT count(*) AS n, sum(value) AS total FROM bronze_readings';
      const all = await query(totals);
      expect(all.statusCode).toBe(200);
      expect(all.json()).toMatchObject({ rows: [[30, (29 * 30) / 2]] });
      const outside = await query("SELECT * FROM read_csv('/etc/passwd')");
      expect(outside.json<{ error: { code: string } }>().error.code).toBe('CANOPY_QUERY_REFUSED');
      const catalog = await app.api.inject({ method: 'GET', url: '/api/catalog' });
      expect(catalog.json()).toMatchObject({
        tables: [{ table: 'bronze/readings', rows: 30, columns: expect.any(Array) as unknown }],
      });

      // A partition dropped from the bucket (hour 06: values 0..9) leaves the next query.
      await bucket.delete([objects[0]!.key]);
      bucket.close();
      expect((await query(totals)).json()).toMatchObject({ rows: [[20, (29 * 30) / 2 - 45]] });

      // `canopy query` beside the running server, sharing its data folder and so its cache.
      const cli = await execFileAsync(
        process.execPath,
        ['--import', 'tsx', path.join(import.meta.dirname, '../src/cli/main.ts'), 'query', totals],
        {
          cwd: path.join(import.meta.dirname, '..'),
          env: {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? '',
            CANOPY_DATA_DIR: app.dataDir,
            CANOPY_LOG_LEVEL: 'silent',
            CANOPY_LAKE_KIND: 's3',
            CANOPY_LAKE_S3_BUCKET: s3.bucket,
            CANOPY_LAKE_S3_PREFIX: lakeConfig.prefix,
            CANOPY_LAKE_S3_ENDPOINT: s3.endpoint,
            CANOPY_LAKE_S3_FORCE_PATH_STYLE: 'true',
            CANOPY_LAKE_S3_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
            CANOPY_LAKE_S3_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
          },
        },
      );
      expect(JSON.parse(cli.stdout)).toMatchObject({ rows: [[20, (29 * 30) / 2 - 45]] });
    } finally {
      await s3.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
