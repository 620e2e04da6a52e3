import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import type { NewReading } from '../core/store.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { runBronzeExport } from './bronze-export.js';
import { runGoldJob } from './gold-job.js';
import {
  dirtySilverDates,
  runSilverJob,
  SILVER_PIPELINE_VERSION,
  type SilverJobOptions,
} from './silver-job.js';
import { newReading } from '../../test/helpers/readings.js';
import { writeImputations } from '../imputation/lake-io.js';

const DAY1 = Date.UTC(2026, 10, 20);
const DAY2 = Date.UTC(2026, 10, 21);

interface Lakehouse {
  dir: string;
  store: DuckDbHotStore;
  lake: LocalObjectStore;
}

const opened: Lakehouse[] = [];

async function lakehouse(): Promise<Lakehouse> {
  const dir = mkdtempSync(path.join(tmpdir(), 'canopy-silver-job-'));
  const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
  await store.open();
  const l = { dir, store, lake: new LocalObjectStore({ root: path.join(dir, 'lake') }) };
  opened.push(l);
  return l;
}

function jobOptions(l: Lakehouse): SilverJobOptions {
  return {
    lake: l.lake,
    workDir: l.dir,
    ranges: { byType: { temperature: { min: -40, max: 85 } }, bySensor: {} },
    zscore: { window: 60, minHistory: 10, threshold: 3 },
    deviceScoreThreshold: 0.5,
    clock: new ManualClock(Date.UTC(2026, 10, 22, 12)),
    logger: silentLogger(),
  };
}

function reading(
  sensorId: string,
  eventTime: number,
  value: number | null,
  ingestTime = DAY2 + 86_400_000,
): NewReading {
  return newReading({ sensorId, eventTime, value, ingestTime });
}

/** Every reading of two days: a steady series per sensor with a spike, a null and an out-of-range value. */
function twoDays(): NewReading[] {
  const rows: NewReading[] = [];
  for (const [day, base] of [
    [DAY1, 20],
    [DAY2, 21],
  ] as const) {
    for (let i = 0; i < 48; i++) {
      for (const s of ['a', 'b']) {
        const v =
          i === 40
            ? base + 30
            : i === 41
              ? null
              : i === 42 && s === 'b'
                ? 200
                : base + (i % 4) * 0.1;
        rows.push(reading(s, day + i * 1_800_000, v));
      }
    }
  }
  return rows;
}

/** Every row of a gold table, as text, excluding nothing: gold carries no processing time. */
async function goldRows(l: Lakehouse, table: string): Promise<string[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(l.dir, 'lake', 'gold', table, '**', '*.parquet');
    const rows = await conn.runAndReadAll(`SELECT * FROM read_parquet('${glob}') ORDER BY ALL`);
    return rows.getRows().map((r) => r.map(String).join('|'));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

async function silverRows(l: Lakehouse): Promise<string[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(l.dir, 'lake', 'silver/readings/**/*.parquet');
    const rows = await conn.runAndReadAll(
      `SELECT sensor_id, epoch_ms(event_time), value, is_anomaly, anomaly_reasons::VARCHAR FROM read_parquet('${glob}') ORDER BY ALL`,
    );
    return rows.getRows().map((r) => r.map(String).join('|'));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

beforeEach(() => {
  opened.length = 0;
});
afterEach(async () => {
  for (const l of opened) {
    await l.store.close();
    rmSync(l.dir, { recursive: true, force: true });
  }
});

describe('silver job', () => {
  it('builds each date once, skips unchanged dates, and merges late data like a run that saw it all at once', async () => {
    const all = twoDays();
    const late = all.filter((r) => r.eventTime % 7_200_000 === 0 && r.eventTime < DAY2); // a quarter of day 1
    const onTime = all.filter((r) => !late.includes(r));

    // Incremental: on-time data, silver, then late data (plus a re-sent duplicate), silver again.
    const inc = await lakehouse();
    await inc.store.append(onTime, []);
    await runBronzeExport({
      store: inc.store,
      lake: inc.lake,
      workDir: inc.dir,
      logger: silentLogger(),
    });
    const first = await runSilverJob(jobOptions(inc));
    expect(first.map((r) => r.date)).toEqual(['2026-11-20', '2026-11-21']);
    expect(await dirtySilverDates(inc.lake)).toEqual([]);
    expect(await runSilverJob(jobOptions(inc))).toEqual([]); // nothing changed: nothing rebuilt
    // --date rebuilds one date on demand, to the same bytes; a date with no bronze is refused.
    const etags = async () => (await inc.lake.list('silver/')).map((o) => o.etag);
    const before = await etags();
    const forced = await runSilverJob({ ...jobOptions(inc), dates: ['2026-11-21'] });
    expect(forced.map((r) => r.date)).toEqual(['2026-11-21']);
    expect(await etags()).toEqual(before);
    await expect(runSilverJob({ ...jobOptions(inc), dates: ['2026-11-23'] })).rejects.toMatchObject(
      { code: 'CANOPY_JOB_BAD_DATE' },
    );
    await runGoldJob({
      lake: inc.lake,
      workDir: inc.dir,
      sensorIntervals: {},
      defaultIntervalMs: 1_800_000,
      logger: silentLogger(),
    });

    await inc.store.append([...late, { ...late[0]!, ingestTime: late[0]!.ingestTime + 1 }], []);
    await runBronzeExport({
      store: inc.store,
      lake: inc.lake,
      workDir: inc.dir,
      logger: silentLogger(),
    });
    // Day 1 has new rows; day 2 uses day 1 as z-score history, so it is rebuilt too.
    expect(await dirtySilverDates(inc.lake)).toEqual(['2026-11-20', '2026-11-21']);
    const second = await runSilverJob(jobOptions(inc));
    expect(second.find((r) => r.date === '2026-11-20')).toMatchObject({
      rows: 96,
      duplicatesDropped: 1,
      missing: 2,
    });

    // All at once.
    const once = await lakehouse();
    await once.store.append(all, []);
    await runBronzeExport({
      store: once.store,
      lake: once.lake,
      workDir: once.dir,
      logger: silentLogger(),
    });
    await runSilverJob(jobOptions(once));

    // Gold, incrementally (once before the late data arrived, once after) and all at once.
    const goldOptions = (l: Lakehouse) => ({
      lake: l.lake,
      workDir: l.dir,
      sensorIntervals: {},
      defaultIntervalMs: 1_800_000,
      logger: silentLogger(),
    });
    await runGoldJob(goldOptions(inc));
    expect((await runGoldJob(goldOptions(inc))).dates).toEqual([]); // silver unchanged since: nothing rebuilt
    const forcedGold = await runGoldJob({ ...goldOptions(inc), dates: ['2026-11-20'] });
    expect(forcedGold.dates.map((d) => d.date)).toEqual(['2026-11-20']);
    await expect(runGoldJob({ ...goldOptions(inc), dates: ['2026-11-31'] })).rejects.toMatchObject({
      code: 'CANOPY_JOB_BAD_DATE',
    });
    await runGoldJob(goldOptions(once));
    for (const table of ['sensor_5min', 'location_hourly', 'daily_summary', 'device_summary']) {
      expect(await goldRows(inc, table), table).toEqual(await goldRows(once, table));
    }
    expect(await goldRows(inc, 'daily_summary')).toHaveLength(4);

    const incremental = await silverRows(inc);
    expect(incremental).toHaveLength(192);
    expect(incremental).toEqual(await silverRows(once));
    expect(incremental.filter((r) => r.includes('|true|'))).not.toHaveLength(0);
  });

  it('records bronze keys as lineage and writes the anomalies partition', async () => {
    const l = await lakehouse();
    await l.store.append(twoDays(), []);
    await runBronzeExport({ store: l.store, lake: l.lake, workDir: l.dir, logger: silentLogger() });
    const [day1] = await runSilverJob(jobOptions(l));
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    try {
      const silver = path.join(l.dir, 'lake', 'silver/readings/date=2026-11-20/part-0.parquet');
      const anomalies = path.join(
        l.dir,
        'lake',
        'anomalies/readings/date=2026-11-20/part-0.parquet',
      );
      const lineage = (
        await conn.runAndReadAll(
          `SELECT DISTINCT source_file, pipeline_version FROM read_parquet('${silver}')`,
        )
      ).getRows();
      expect(
        lineage.every(
          ([file, version]) =>
            String(file).startsWith('bronze/readings/date=2026-11-20/hour=') &&
            version === SILVER_PIPELINE_VERSION,
        ),
      ).toBe(true);
      const flagged = Number(
        (
          await conn.runAndReadAll(
            `SELECT count(*) FROM read_parquet('${silver}') WHERE is_anomaly`,
          )
        ).getRows()[0]![0],
      );
      const inAnomalies = Number(
        (
          await conn.runAndReadAll(`SELECT count(*) FROM read_parquet('${anomalies}')`)
        ).getRows()[0]![0],
      );
      expect(inAnomalies).toBe(flagged);
      expect(day1?.anomalies).toBe(flagged);
      expect(flagged).toBeGreaterThanOrEqual(3); // the spikes of a and b, and b's 200
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  });

  it('fills null readings from imputation files after the flags, the earliest file winning, and marks the date dirty', async () => {
    const l = await lakehouse();
    await l.store.append(twoDays(), []);
    await runBronzeExport({ store: l.store, lake: l.lake, workDir: l.dir, logger: silentLogger() });
    await runSilverJob(jobOptions(l));
    const nullAt = DAY2 + 41 * 1_800_000; // both sensors' null of day 2
    const imputed = (sensorId: string, value: number, model: string) => ({
      sensorId,
      eventTime: nullAt,
      value,
      uncertainty: 0.25,
      model,
      modelVersion: 'v1',
    });
    // Run "b-…" predicts both; run "a-…" (an earlier name) predicts sensor a again, and a
    // value for a reading that has one, which must not replace it.
    await writeImputations(
      l.lake,
      l.dir,
      '2026-11-21',
      'b-run',
      [imputed('a', 21.5, 'late'), imputed('b', 22.5, 'late')],
      DAY2,
    );
    await writeImputations(
      l.lake,
      l.dir,
      '2026-11-21',
      'a-run',
      [imputed('a', 21.25, 'early'), { ...imputed('a', 99, 'early'), eventTime: DAY2 }],
      DAY2,
    );
    expect(await dirtySilverDates(l.lake)).toEqual(['2026-11-21']);
    const [report] = await runSilverJob(jobOptions(l));
    expect(report).toMatchObject({ date: '2026-11-21', missing: 0, imputed: 2 });

    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    try {
      const glob = path.join(l.dir, 'lake', 'silver/readings/date=2026-11-21/*.parquet');
      const rows = await conn.runAndReadAll(
        `SELECT sensor_id, epoch_ms(event_time), value, imputed, imputation_model,
                imputation_uncertainty, is_anomaly
           FROM read_parquet('${glob}')
          WHERE imputed OR epoch_ms(event_time) = ${DAY2} ORDER BY ALL`,
      );
      expect(rows.getRows().map((r) => r.map(String).join('|'))).toEqual([
        `a|${DAY2}|21|false|null|null|false`,
        `a|${nullAt}|21.25|true|early@v1|0.25|false`,
        `b|${DAY2}|21|false|null|null|false`,
        `b|${nullAt}|22.5|true|late@v1|0.25|false`,
      ]);
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  });
});
