import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import type { NewReading } from '../core/store.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { runBronzeExport } from './bronze-export.js';
import { buildCatalog } from './catalog.js';
import { runGoldJob } from './gold-job.js';
import { runSilverJob } from './silver-job.js';
import { newReading } from '../../test/helpers/readings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-catalog-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const T = Date.UTC(2026, 10, 20, 10);
const reading = (eventTime: number, value: number): NewReading =>
  newReading({ eventTime, value, ingestTime: T });

describe('catalogue', () => {
  it('lists tables and partitions with files, bytes, rows and columns, and flags partitions late rows made dirty', async () => {
    const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
    await store.open();
    const lake = new LocalObjectStore({ root: path.join(dir, 'lake') });
    const logger = silentLogger();
    const silver = () =>
      runSilverJob({
        lake,
        workDir: dir,
        logger,
        clock: new ManualClock(T),
        deviceScoreThreshold: 0.5,
        ranges: { byType: {}, bySensor: {} },
        zscore: { window: 60, minHistory: 10, threshold: 3 },
      });
    const gold = () =>
      runGoldJob({ lake, workDir: dir, sensorIntervals: {}, defaultIntervalMs: 60_000, logger });

    await store.append([reading(T, 1), reading(T + 60_000, 2), reading(T + 3_600_000, 3)], []);
    await runBronzeExport({ store, lake, workDir: dir, logger });
    await silver();
    await gold();

    const catalog = await buildCatalog(lake);
    expect(catalog.map((t) => [t.table, t.rows])).toEqual([
      ['anomalies/readings', 0],
      ['bronze/readings', 3],
      ['gold/daily_summary', 1],
      ['gold/device_summary', 1],
      ['gold/location_hourly', 2],
      ['gold/sensor_5min', 2],
      ['silver/readings', 3],
    ]);
    const bronze = catalog.find((t) => t.table === 'bronze/readings')!;
    expect(bronze.partitions.map((p) => [p.partition, p.rows, p.dirty])).toEqual([
      ['date=2026-11-20/hour=10', 2, false],
      ['date=2026-11-20/hour=11', 1, false],
    ]);
    expect(bronze.columns?.map((c) => c.name)).toContain('anomaly_reasons');
    // Partition columns are typed as the views type them, whichever file is newest (here hour=11).
    expect(bronze.columns?.filter((c) => c.name === 'date' || c.name === 'hour')).toEqual([
      { name: 'date', type: 'DATE' },
      { name: 'hour', type: 'INTEGER' },
    ]);
    expect(bronze.bytes).toBe(bronze.partitions.reduce((n, p) => n + p.bytes, 0));

    // A late reading for the 10:00 hour: bronze is dirty for silver until silver runs, then silver for gold.
    await store.append([reading(T + 120_000, 9)], []);
    await runBronzeExport({ store, lake, workDir: dir, logger });
    const dirtyOf = async (table: string) =>
      (await buildCatalog(lake))
        .find((t) => t.table === table)!
        .partitions.filter((p) => p.dirty)
        .map((p) => p.partition);
    expect(await dirtyOf('bronze/readings')).toEqual([
      'date=2026-11-20/hour=10',
      'date=2026-11-20/hour=11',
    ]);
    await silver();
    expect(await dirtyOf('bronze/readings')).toEqual([]);
    expect(await dirtyOf('silver/readings')).toEqual(['date=2026-11-20']);
    await gold();
    expect(await dirtyOf('silver/readings')).toEqual([]);
    await store.close();
  });
});
