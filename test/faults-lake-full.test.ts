/**
 * Fault (d): the lake's disk fills. A configured quota (`lake.maxBytes`)
 * stands in for a full disk: the bronze export fails cleanly with
 * CANOPY_LAKE_FULL, nothing unexported is purged, the `job-failed` alert opens
 * and the failure is counted; once space returns (a filler file deleted by
 * hand, as an operator would) the next pass exports every reading to bronze
 * exactly once and the alert resolves.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { reportFigures } from './helpers/faults.js';

const HOUR_MS = 3_600_000;
/** Space left in the lake above the filler: the small hour's file fits, the large hour's does not. */
const HEADROOM_BYTES = 20_000;
const FILLER_BYTES = 1_000_000;
const LARGE_HOUR_READINGS = 5_000;

const apps: TestApp[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.dispose();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface BronzeCounts {
  rows: number;
  distinctSeqs: number;
  distinctKeys: number;
  files: number;
}

/** Counts bronze rows a second way: DuckDB over the Parquet files themselves. */
async function bronzeCounts(lakeRoot: string): Promise<BronzeCounts> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(lakeRoot, 'bronze/readings/**/*.parquet');
    const rows = (
      await conn.runAndReadAll(
        `SELECT count(*), count(DISTINCT seq), count(DISTINCT (sensor_id, event_time)), count(DISTINCT filename)
         FROM read_parquet('${glob}', filename = true)`,
      )
    ).getRows();
    const [n, seqs, keys, files] = (rows[0] ?? []).map(Number);
    return { rows: n!, distinctSeqs: seqs!, distinctKeys: keys!, files: files! };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

async function metric(app: TestApp, pattern: RegExp): Promise<number> {
  const text = (await app.api.inject({ method: 'GET', url: '/metrics' })).body;
  const match = pattern.exec(text);
  return match ? Number(match[1]) : 0;
}

/** Seeded-looking but deterministic values that Parquet cannot compress away. */
function value(i: number): number {
  return Math.sin(i * 12.9898) * 43_758.5453;
}

describe('fault (d): the lake is full', () => {
  it('fails the export cleanly with an alert, purges nothing unexported, and exports every reading exactly once when space returns', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-lake-full-'));
    dirs.push(dataDir);
    const lakeRoot = path.join(dataDir, 'lake');
    mkdirSync(lakeRoot, { recursive: true });
    // Another occupant of the lake's space (counted when the store first writes).
    const filler = path.join(lakeRoot, 'filler.bin');
    writeFileSync(filler, Buffer.alloc(FILLER_BYTES));

    const app = await startTestApp(
      {
        workflows: { enabled: false },
        // Every reading below is past the hot window: the purge would delete it once exported.
        store: { retentionHours: 1 },
        // No timer pass during the test: housekeeping is driven by hand.
        lake: { maxBytes: FILLER_BYTES + HEADROOM_BYTES, exportIntervalMs: 3_600_000 },
      },
      dataDir,
    );
    apps.push(app);

    // Two event hours: one reading in the earlier (a small file, which fits),
    // many in the later (a file larger than what is left), so the first
    // attempt leaves a partial batch in bronze, the case the retry must not duplicate.
    const smallHour = Math.floor((Date.now() - 5 * HOUR_MS) / HOUR_MS) * HOUR_MS;
    const largeHour = smallHour + 2 * HOUR_MS;
    const readings = [
      { sensor_id: 'lf-small', value: value(0), timestamp: smallHour + 1_000 },
      ...Array.from({ length: LARGE_HOUR_READINGS }, (_, i) => ({
        sensor_id: `lf-${i % 10}`,
        value: value(i + 1),
        timestamp: largeHour + Math.floor(i / 10) * 1_000,
      })),
    ];
    let acknowledged = 0;
    for (let i = 0; i < readings.length; i += 1_000) {
      const chunk = readings.slice(i, i + 1_000);
      const res = await app.api.inject({
        method: 'POST',
        url: '/api/data',
        payload: chunk,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.statusCode).toBe(200);
      acknowledged += chunk.length;
    }
    expect(await app.store.countReadings()).toBe(acknowledged);

    // The export step fails by name.
    const failure = await app.housekeeping.step('export').then(
      () => null,
      (err: unknown) => err,
    );
    expect(failure).toMatchObject({ code: 'CANOPY_LAKE_FULL', status: 507 });
    // The rest of the pass: the purge must keep every unexported reading.
    await app.housekeeping.runOnce();
    expect(await app.store.getExportWatermark()).toBe(0n);
    expect(await app.store.countReadings()).toBe(acknowledged);
    const partial = await bronzeCounts(lakeRoot);
    expect(partial).toMatchObject({ rows: 1, files: 1 });
    expect(await metric(app, /^canopy_housekeeping_failures_total\{step="export"\} (\d+)$/m)).toBe(
      2,
    );

    // The job-failed starter rule opened an alert for the export.
    const alerting = app.alerting!;
    await alerting.service.flush();
    const exportAlert = () =>
      alerting.service
        .activeAlerts()
        .find((a) => a.ruleId === 'job-failed' && a.subject.includes('housekeeping-export'));
    // Two failed passes: open, then escalated by the second.
    expect(exportAlert()?.state).toMatch(/^(open|escalated)$/);
    expect(exportAlert()!.summary).toContain('lake.maxBytes');

    // Space returns: the filler is deleted by hand, behind the store's back.
    rmSync(filler);
    await app.housekeeping.runOnce();

    const bronze = await bronzeCounts(lakeRoot);
    expect(bronze).toEqual({
      rows: acknowledged,
      distinctSeqs: acknowledged,
      distinctKeys: acknowledged,
      files: 2,
    });
    expect(await app.store.getExportWatermark()).toBe(BigInt(acknowledged));
    // Exported and past the hot window: now, and only now, purged.
    expect(await app.store.countReadings()).toBe(0);
    await alerting.service.flush();
    expect(exportAlert()).toBeUndefined();

    const lost = acknowledged - bronze.distinctKeys;
    reportFigures({
      fault: 'lake-full',
      acknowledged,
      stored: bronze.rows,
      lost,
      duplicates: bronze.rows - bronze.distinctKeys,
    });
    expect(lost).toBe(0);
  });
});
