import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { runBronzeCompaction } from './bronze-compaction.js';
import { runBronzeExport } from './bronze-export.js';
import { lakeEngineSettings } from './engine.js';
import { runSilverJob } from './silver-job.js';
import { newReading } from '../../test/helpers/readings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-bronze-compact-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.UTC(2026, 10, 20, 8); // 08:00; readings over 08:00–10:59
const clock = new ManualClock(Date.UTC(2026, 10, 20, 11, 30)); // 08 and 09 ended over an hour ago, 10 not

/** Oracle: the bronze rows by seq, and the files, read with plain SQL. */
async function bronze(lakeRoot: string): Promise<{ seqs: number[]; rows: number }> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(lakeRoot, 'bronze/readings/**/*.parquet');
    const rows = (
      await conn.runAndReadAll(`SELECT seq FROM read_parquet('${glob}') ORDER BY seq`)
    ).getRows();
    return { seqs: rows.map((r) => Number(r[0])), rows: rows.length };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

async function silverRows(lake: LocalObjectStore): Promise<unknown[][]> {
  await runSilverJob({
    lake,
    workDir: dir,
    ranges: { byType: { temperature: { min: -40, max: 60 } }, bySensor: {} },
    zscore: { window: 60, minHistory: 10, threshold: 3 },
    deviceScoreThreshold: 0.5,
    clock,
    logger: silentLogger(),
  });
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    // Everything but the lineage column, which names the bronze file a row came from.
    const file = lake.localPath('silver/readings/date=2026-11-20/part-0.parquet');
    return (
      await conn.runAndReadAll(
        `SELECT * EXCLUDE (source_file) FROM read_parquet('${file}') ORDER BY sensor_id, event_time`,
      )
    ).getRows();
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe('bronze compaction', () => {
  it('merges each closed hour into one file holding every row once, heals a pass that died before its deletes, and changes nothing downstream', async () => {
    const lakeRoot = path.join(dir, 'lake');
    const lake = new LocalObjectStore({ root: lakeRoot });
    const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
    await store.open();
    // Six exports, like six housekeeping ticks, each touching all three hours.
    for (let batch = 0; batch < 6; batch++) {
      await store.append(
        Array.from({ length: 30 }, (_, i) =>
          newReading({
            sensorId: `s-${i % 3}`,
            eventTime: T0 + (i % 3) * 3_600_000 + batch * 60_000 + Math.floor(i / 3) * 1_000,
            value: 20 + ((i * 7) % 5),
          }),
        ),
        [],
      );
      await runBronzeExport({ store, lake, workDir: dir, logger: silentLogger() });
    }
    await store.close();
    const before = await bronze(lakeRoot);
    expect(before.rows).toBe(180);
    const silverBefore = await silverRows(lake);
    const files = async (hour: string) =>
      (await lake.list(`bronze/readings/date=2026-11-20/hour=${hour}/`)).map((o) =>
        path.basename(o.key),
      );
    expect(await files('08')).toHaveLength(6);

    const engine = lakeEngineSettings(256, dir);
    const options = {
      lake,
      workDir: dir,
      clock,
      logger: silentLogger(),
      closedAfterMs: 3_600_000,
      engine,
    };
    // While another lake job holds the engine memory, the pass leaves everything to the next one.
    const releaseBusy = await engine.budget.take(100);
    expect(await runBronzeCompaction(options)).toEqual({
      partitions: [],
      filesMerged: 0,
      deferred: 2,
    });
    expect(await files('08')).toHaveLength(6);
    releaseBusy();
    const report = await runBronzeCompaction(options);
    expect(report).toEqual({
      partitions: ['date=2026-11-20/hour=08', 'date=2026-11-20/hour=09'],
      filesMerged: 12,
      deferred: 0,
    });
    expect(await files('08')).toEqual([expect.stringMatching(/^compact-\d{20}-\d{20}\.parquet$/)]);
    expect(await files('10')).toHaveLength(6); // 10:00–10:59 ended less than an hour ago: still open
    expect(await bronze(lakeRoot)).toEqual(before);
    expect(await runBronzeCompaction(options)).toEqual({
      partitions: [],
      filesMerged: 0,
      deferred: 0,
    });

    // A pass that died after its upload but before its deletes leaves inputs beside the output.
    const [compacted] = await lake.list('bronze/readings/date=2026-11-20/hour=09/');
    const leftover = path.join(
      lakeRoot,
      'bronze/readings/date=2026-11-20/hour=09/part-00000000000000000001-1.parquet',
    );
    copyFileSync(lake.localPath(compacted!.key), leftover);
    expect((await bronze(lakeRoot)).rows).toBe(180 + 60); // the hour holds 60 rows
    expect((await runBronzeCompaction(options)).filesMerged).toBe(1);
    expect(await bronze(lakeRoot)).toEqual(before);
    const [again] = await lake.list('bronze/readings/date=2026-11-20/hour=09/');
    expect(again).toMatchObject({ key: compacted!.key, etag: compacted!.etag }); // same name, same bytes

    // Silver rebuilt from the compacted bronze has the same rows (lineage aside).
    expect(await silverRows(lake)).toEqual(silverBefore);
  });
});
