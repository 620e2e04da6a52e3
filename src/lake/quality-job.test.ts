import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { NewReading } from '../core/store.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { runBronzeExport } from './bronze-export.js';
import { runQualityJob } from './quality-job.js';
import { newReading } from '../../test/helpers/readings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-quality-job-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('quality job', () => {
  it('fails the bronze suite on bad rows, lists them, and deletes nothing', async () => {
    const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
    await store.open();
    const t = Date.UTC(2026, 10, 20, 9);
    const rows: NewReading[] = Array.from({ length: 100 }, (_, i) =>
      newReading({
        sensorId: `s-${i % 5}`,
        eventTime: t + i * 60_000,
        // Two nulls (2 % > the 1 % bound) and one value beyond the physical range.
        value: i === 10 || i === 20 ? null : i === 30 ? 120 : 20,
      }),
    );
    const nextDay: NewReading[] = Array.from({ length: 50 }, (_, i) =>
      newReading({ sensorId: `s-${i % 5}`, eventTime: t + 86_400_000 + i * 60_000, value: 21 }),
    );
    await store.append([...rows, ...nextDay], []);
    const lake = new LocalObjectStore({ root: path.join(dir, 'lake') });
    await runBronzeExport({ store, lake, workDir: dir, logger: silentLogger() });
    await store.close();
    const before = (await lake.list('bronze/')).map((o) => o.etag);

    const [bronze, ...others] = await runQualityJob({ lake, logger: silentLogger() });
    expect(others).toEqual([]); // no silver yet: its suite does not run
    expect(bronze?.success).toBe(false);
    const failed = Object.fromEntries(
      bronze!.results.filter((r) => !r.success).map((r) => [r.expectation, r.failing_rows.length]),
    );
    expect(failed).toEqual({
      expect_column_values_to_be_between_per_group: 1,
      expect_column_null_fraction_to_be_at_most: 2,
    });
    expect((await lake.list('bronze/')).map((o) => o.etag)).toEqual(before);

    // One date at a time: the bad rows are all on the 20th.
    const byDate = async (date: string) =>
      (await runQualityJob({ lake, logger: silentLogger(), date })).map((r) => [
        r.suite,
        r.success,
        r.results[0]?.observed.element_count,
      ]);
    expect(await byDate('2026-11-20')).toEqual([['bronze_readings', false, 100]]);
    expect(await byDate('2026-11-21')).toEqual([['bronze_readings', true, 50]]);
    expect(await byDate('2026-11-22')).toEqual([]);
  });
});
