import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewReading } from '../core/store.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { BRONZE_READINGS_PREFIX, runBronzeExport } from './bronze-export.js';
import { newReading } from '../../test/helpers/readings.js';

const HOUR = 3_600_000;
const T0 = Date.UTC(2026, 10, 22, 9, 15);

let dir: string;
let store: DuckDbHotStore;
let lake: LocalObjectStore;

function reading(sensorId: string, eventTime: number, value: number | null): NewReading {
  return newReading({
    sensorId,
    location: 'kew/floor-1/zone-a',
    eventTime,
    value,
    ingestTime: T0 + 3 * HOUR,
  });
}

/** Oracle: every bronze row, read back with plain DuckDB over the lake folder. */
async function bronzeRows(): Promise<string[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(dir, 'lake', BRONZE_READINGS_PREFIX, '**', '*.parquet');
    const result = await conn.runAndReadAll(
      `SELECT sensor_id, epoch_ms(event_time), value, seq, date, hour FROM read_parquet('${glob}', hive_partitioning = true, hive_types_autocast = false) ORDER BY seq`,
    );
    return result.getRows().map((r) => r.map(String).join('|'));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

/** What bronze must hold for the rows in the hot store: the same rows, partitioned by event time. */
async function expectedRows(): Promise<string[]> {
  const rows = (await store.queryReadings({ limit: 10_000 })).items.sort((a, b) =>
    Number(a.seq - b.seq),
  );
  return rows.map((r) => {
    const iso = new Date(r.eventTime).toISOString();
    return [r.sensorId, r.eventTime, r.value, r.seq, iso.slice(0, 10), iso.slice(11, 13)]
      .map(String)
      .join('|');
  });
}

beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'canopy-bronze-'));
  store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
  await store.open();
  lake = new LocalObjectStore({ root: path.join(dir, 'lake') });
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('bronze export', () => {
  it('moves every row past the watermark into event-time partitions, in batches, exactly once', async () => {
    const rows = [];
    for (let i = 0; i < 30; i++)
      rows.push(reading(`s-${i % 3}`, T0 + i * 6 * 60_000, i % 7 === 0 ? null : 20 + i));
    rows.push(reading('late', T0 - 30 * 24 * HOUR, 1)); // a late reading lands in its own old partition
    await store.append(rows, []);

    const report = await runBronzeExport({
      store,
      lake,
      workDir: dir,
      logger: silentLogger(),
      maxRowsPerBatch: 7,
    });
    expect(report).toMatchObject({ batches: 5, rows: 31, watermark: 31n });
    expect(report.partitions).toEqual([
      'date=2026-10-23/hour=09',
      'date=2026-11-22/hour=09',
      'date=2026-11-22/hour=10',
      'date=2026-11-22/hour=11',
      'date=2026-11-22/hour=12',
    ]);
    expect(await bronzeRows()).toEqual(await expectedRows());
    expect(await store.getExportWatermark()).toBe(31n);

    // Nothing new: a second run writes nothing.
    expect(
      await runBronzeExport({ store, lake, workDir: dir, logger: silentLogger() }),
    ).toMatchObject({ batches: 0, rows: 0, files: [] });

    // New rows, one of them late, go out in the next run only.
    await store.append([reading('s-0', T0 + 4 * HOUR, 99), reading('s-1', T0 - HOUR, 98)], []);
    const next = await runBronzeExport({ store, lake, workDir: dir, logger: silentLogger() });
    expect(next).toMatchObject({
      rows: 2,
      partitions: ['date=2026-11-22/hour=08', 'date=2026-11-22/hour=13'],
    });
    expect(await bronzeRows()).toEqual(await expectedRows());
  });

  it('after a crash between upload and watermark, re-exports over the same names without duplicates', async () => {
    await store.append(
      Array.from({ length: 12 }, (_, i) => reading('s', T0 + i * 10 * 60_000, i)),
      [],
    );
    // An interrupted attempt: files uploaded (one of them a stray extra part), watermark not moved.
    const crashDir = mkdtempSync(path.join(dir, 'crash-'));
    const batch = await store.exportReadings(0n, 100, crashDir);
    for (const p of batch!.partitions) {
      const prefix = `${BRONZE_READINGS_PREFIX}date=${p.date}/hour=${p.hour}/part-${'1'.padStart(20, '0')}-`;
      await lake.putFile(`${prefix}0.parquet`, p.path);
      await lake.putFile(`${prefix}7.parquet`, p.path);
    }
    expect(await store.getExportWatermark()).toBe(0n);
    // More rows arrived before the restart.
    await store.append([reading('s', T0 + 2 * HOUR + 1, 100)], []);

    const report = await runBronzeExport({ store, lake, workDir: dir, logger: silentLogger() });
    expect(report.watermark).toBe(13n);
    expect(await bronzeRows()).toEqual(await expectedRows());
    expect(
      (await lake.list(BRONZE_READINGS_PREFIX)).some((o) => o.key.endsWith('-7.parquet')),
    ).toBe(false);
  });

  it('lets the hot-store purge remove exported rows only', async () => {
    await store.append([reading('old', T0 - 48 * HOUR, 1), reading('old', T0 - 47 * HOUR, 2)], []);
    expect(await store.purge(T0)).toBe(0); // not exported yet: kept
    await runBronzeExport({ store, lake, workDir: dir, logger: silentLogger() });
    await store.append([reading('old', T0 - 46 * HOUR, 3)], []); // late, not exported yet
    expect(await store.purge(T0)).toBe(2);
    expect((await store.queryReadings({ limit: 10 })).items.map((r) => r.value)).toEqual([3]);
  });
});
