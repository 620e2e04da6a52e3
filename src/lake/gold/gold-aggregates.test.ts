import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GOLD_COLUMNS,
  GOLD_WINDOW_MS,
  buildDeviceSummary,
  buildGoldPartition,
  type BuildGoldOptions,
} from './gold-aggregates.js';

const DATE = '2026-03-15';
const NEXT = '2026-03-16';
const DAY_START = Date.parse(`${DATE}T00:00:00Z`);
const NEXT_START = Date.parse(`${NEXT}T00:00:00Z`);
const HOUR = 3_600_000;
const TOL = 1e-9;

interface Row {
  sensorId: string;
  sensorType: string | null;
  location: string | null;
  eventTime: number;
  value: number | null;
  isAnomaly: boolean;
  imputed: boolean;
}

let dir: string;
let instance: DuckDBInstance;
let conn: DuckDBConnection;

/** Writes rows as a silver file: every silver column, sorted like silver, one COPY. */
async function writeSilver(file: string, rows: readonly Row[]): Promise<string> {
  mkdirSync(path.dirname(file), { recursive: true });
  const json = `${file}.ndjson`;
  writeFileSync(json, rows.map((r) => JSON.stringify(r)).join('\n'));
  await conn.run(
    `COPY (
       SELECT sensorId AS sensor_id, sensorType AS sensor_type, location,
              epoch_ms(eventTime) AS event_time, value, 'u' AS unit, NULL::DOUBLE AS anomaly_score,
              epoch_ms(eventTime + 1000) AS ingest_time, 'sim' AS source, 'b1' AS batch_id,
              row_number() OVER () AS seq, isAnomaly AS is_anomaly,
              CASE WHEN isAnomaly THEN ['range'] ELSE []::VARCHAR[] END AS anomaly_reasons,
              imputed, 'bronze.parquet' AS source_file,
              epoch_ms(0) AS processing_time, 'test' AS pipeline_version
       FROM read_json('${json}', columns = {sensorId: 'VARCHAR', sensorType: 'VARCHAR',
            location: 'VARCHAR', eventTime: 'BIGINT', value: 'DOUBLE', isAnomaly: 'BOOLEAN',
            imputed: 'BOOLEAN'})
       ORDER BY sensor_id, event_time)
     TO '${file}' (FORMAT parquet, COMPRESSION zstd)`,
  );
  rmSync(json);
  return file;
}

type GoldRow = Record<string, unknown>;

/** Reads a gold file with timestamps as epoch ms and counts as numbers. */
async function readGold(file: string, tsColumns: string[] = []): Promise<GoldRow[]> {
  const extra = tsColumns.map((c) => `, epoch_ms(${c}) AS ${c}_ms`).join('');
  const reader = await conn.runAndReadAll(`SELECT *${extra} FROM read_parquet('${file}')`);
  return (reader.getRowObjectsJS() as GoldRow[]).map((row) =>
    Object.fromEntries(
      Object.entries(row).map(([k, v]) => [k, typeof v === 'bigint' ? Number(v) : v]),
    ),
  );
}

// ---- Independent oracle: plain arithmetic over the generated rows. ----

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

function stats(rows: readonly Row[]) {
  const values = rows.flatMap((r) => (r.value === null ? [] : [r.value]));
  const sorted = [...values].sort((a, b) => a - b);
  const n = values.length;
  const mean = n === 0 ? null : values.reduce((a, b) => a + b, 0) / n;
  const stddev =
    n < 2 ? null : Math.sqrt(values.reduce((a, b) => a + (b - mean!) ** 2, 0) / (n - 1));
  return {
    reading_count: rows.length,
    value_count: n,
    anomaly_count: rows.filter((r) => r.isAnomaly).length,
    avg: mean,
    min: n === 0 ? null : sorted[0]!,
    max: n === 0 ? null : sorted[n - 1]!,
    stddev,
    p50: quantile(sorted, 0.5),
    p95: quantile(sorted, 0.95),
    p99: quantile(sorted, 0.99),
  };
}

/** The latest row's non-null value of a column, as the carried type/location. */
function latest(rows: readonly Row[], pick: (r: Row) => string | null): string | null {
  const byTime = [...rows].sort((a, b) => b.eventTime - a.eventTime);
  return byTime.map(pick).find((v) => v !== null) ?? null;
}

function groupBy<K extends string>(rows: readonly Row[], key: (r: Row) => K): Map<K, Row[]> {
  const out = new Map<K, Row[]>();
  for (const r of rows) {
    const k = key(r);
    const list = out.get(k) ?? [];
    list.push(r);
    out.set(k, list);
  }
  return out;
}

/** Compares numbers to TOL (relative above 1), everything else exactly. */
function expectRow(actual: GoldRow, expected: Record<string, unknown>, where: string): void {
  for (const [k, e] of Object.entries(expected)) {
    const a = actual[k];
    if (typeof e === 'number' && typeof a === 'number') {
      expect(Math.abs(a - e), `${where} ${k}: ${a} vs ${e}`).toBeLessThanOrEqual(
        TOL * Math.max(1, Math.abs(e)),
      );
    } else {
      expect(a, `${where} ${k}`).toEqual(e);
    }
  }
}

// ---- Fixtures ----

const intervals: Record<string, number> = { t1: 60_000, t2: 60_000, h1: 30_000, p1: 7_000 };
const DEFAULT_INTERVAL = 120_000;

/** Deterministic PRNG (mulberry32) so the fixture is the same on every run. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Several sensors, locations and types over three hours, with gaps, nulls,
 * anomalies, imputed rows, a sensor reporting faster than configured (health
 * capped), one with an interval that does not divide five minutes, one with
 * no type, one that moves location, and a row on the next date.
 */
function generatedRows(): Row[] {
  const rand = prng(42);
  const sensors: { id: string; type: string | null; loc: string | null; every: number }[] = [
    { id: 't1', type: 'temperature', loc: 'greenhouse', every: 60_000 },
    { id: 't2', type: 'temperature', loc: 'greenhouse', every: 20_000 },
    { id: 'h1', type: 'humidity', loc: 'greenhouse', every: 30_000 },
    { id: 'h2', type: 'humidity', loc: 'shed', every: 120_000 },
    { id: 'p1', type: 'pressure', loc: 'shed', every: 7_000 },
    { id: 'x1', type: null, loc: null, every: 90_000 },
  ];
  const rows: Row[] = [];
  for (const s of sensors) {
    for (let t = DAY_START + 2 * HOUR; t < DAY_START + 5 * HOUR; t += s.every) {
      if (rand() < 0.1) continue; // a gap: no row at all
      const jitter = Math.floor(rand() * 1000);
      const value = rand() < 0.08 ? null : Math.round((20 + 10 * rand()) * 1000) / 1000 + 0.1;
      const moved = s.id === 'h2' && t >= DAY_START + 4 * HOUR;
      rows.push({
        sensorId: s.id,
        sensorType: s.type,
        location: moved ? 'cellar' : s.loc,
        eventTime: t + jitter,
        value,
        isAnomaly: rand() < 0.1,
        imputed: value !== null && rand() < 0.05,
      });
    }
  }
  rows.push(
    { ...rows[0]!, eventTime: DAY_START + 24 * HOUR - 1, value: 33 },
    { ...rows[0]!, eventTime: NEXT_START + 5 * HOUR, value: 99 },
  );
  return rows;
}

let generated: Row[];
let silverToday: string;
let silverNext: string;

function options(outDir: string, silverFiles = [silverToday]): BuildGoldOptions {
  return {
    conn,
    silverFiles,
    date: DATE,
    sensorIntervals: intervals,
    defaultIntervalMs: DEFAULT_INTERVAL,
    outDir,
  };
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'canopy-gold-'));
  instance = await DuckDBInstance.create(':memory:');
  conn = await instance.connect();
  generated = generatedRows();
  // The today file deliberately holds one next-date row: gold must ignore it.
  silverToday = await writeSilver(
    path.join(dir, 'silver', `date=${DATE}`, 'silver.parquet'),
    generated,
  );
  silverNext = await writeSilver(path.join(dir, 'silver', `date=${NEXT}`, 'silver.parquet'), [
    { ...generated[5]!, eventTime: NEXT_START + HOUR, value: 7, isAnomaly: true },
    { ...generated[5]!, eventTime: NEXT_START + 2 * HOUR, value: null, isAnomaly: false },
  ]);
});

afterAll(() => {
  conn?.closeSync();
  instance?.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

describe('buildGoldPartition', () => {
  it('matches hand-worked numbers for one sensor, including the 10:05:00.000 boundary', async () => {
    const at = (hh: number, mm: number, ss = 0, ms = 0) =>
      Date.parse(`${DATE}T${hh}:${String(mm).padStart(2, '0')}:00Z`) + ss * 1000 + ms;
    const base = {
      sensorId: 'hand',
      sensorType: 'temperature',
      location: 'lab',
      isAnomaly: false,
      imputed: false,
    };
    const rows: Row[] = [
      { ...base, eventTime: at(10, 0), value: 1 },
      { ...base, eventTime: at(10, 1), value: 2, imputed: true },
      { ...base, eventTime: at(10, 2), value: null },
      { ...base, eventTime: at(10, 3), value: 4 },
      { ...base, eventTime: at(10, 4), value: 10, isAnomaly: true },
      { ...base, eventTime: at(10, 4, 59, 999), value: 7 },
      { ...base, eventTime: at(10, 5), value: 100 },
    ];
    const file = await writeSilver(path.join(dir, 'hand', 'silver.parquet'), rows);
    const report = await buildGoldPartition({
      ...options(path.join(dir, 'hand-out'), [file]),
      sensorIntervals: { hand: 60_000 },
    });

    const windows = await readGold(report.sensor5min.file, ['window_start']);
    expect(windows.map((w) => w.window_start_ms)).toEqual([at(10, 0), at(10, 5)]);
    // Values 1, 2, 4, 10, 7 (the null is excluded): sorted 1 2 4 7 10, mean 4.8,
    // squared deviations 14.44 + 7.84 + 0.64 + 4.84 + 27.04 = 54.8, /4 = 13.7.
    // p95: position 0.95·4 = 3.8 → 7 + 0.8·(10−7) = 9.4; p99: 3.96 → 9.88.
    // Health: 4 good values (the anomaly and the null don't count) of 5 expected.
    expectRow(
      windows[0]!,
      {
        sensor_id: 'hand',
        sensor_type: 'temperature',
        location: 'lab',
        reading_count: 6,
        value_count: 5,
        anomaly_count: 1,
        avg: 4.8,
        min: 1,
        max: 10,
        stddev: Math.sqrt(13.7),
        p50: 4,
        p95: 9.4,
        p99: 9.88,
        expected_count: 5,
        health_pct: 80,
      },
      '10:00',
    );
    // The reading at exactly 10:05:00.000 opens the next window on its own.
    expectRow(
      windows[1]!,
      {
        reading_count: 1,
        value_count: 1,
        anomaly_count: 0,
        avg: 100,
        min: 100,
        max: 100,
        stddev: null,
        p50: 100,
        p95: 100,
        p99: 100,
        health_pct: 20,
      },
      '10:05',
    );

    const hourly = await readGold(report.locationHourly.file, ['hour_start']);
    expect(hourly).toHaveLength(1);
    expectRow(
      hourly[0]!,
      {
        location: 'lab',
        hour_start_ms: at(10, 0),
        sensor_type: 'temperature',
        sensor_count: 1,
        reading_count: 7,
        value_count: 6,
        anomaly_count: 1,
        avg: 124 / 6,
        min: 1,
        max: 100,
      },
      'hourly',
    );

    const daily = await readGold(report.dailySummary.file);
    expect(daily).toHaveLength(1);
    expectRow(
      daily[0]!,
      {
        sensor_id: 'hand',
        reading_count: 7,
        avg: 124 / 6,
        min: 1,
        max: 100,
        anomaly_count: 1,
        missing_count: 1,
        imputed_count: 1,
      },
      'daily',
    );
  });

  it('matches an independent recomputation of every gold table, row by row', async () => {
    const report = await buildGoldPartition(options(path.join(dir, 'oracle')));
    const today = generated.filter((r) => r.eventTime >= DAY_START && r.eventTime < NEXT_START);
    const cmp = (a: string | null, b: string | null) =>
      a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1;

    // sensor_5min
    const windowOf = (r: Row) => Math.floor(r.eventTime / GOLD_WINDOW_MS) * GOLD_WINDOW_MS;
    const bySensorWindow = groupBy(today, (r) => `${r.sensorId}|${windowOf(r)}`);
    const expected5 = [...bySensorWindow.values()]
      .map((rows) => {
        const interval = intervals[rows[0]!.sensorId] ?? DEFAULT_INTERVAL;
        const expectedCount = GOLD_WINDOW_MS / interval;
        const good = rows.filter((r) => r.value !== null && !r.isAnomaly).length;
        return {
          sensor_id: rows[0]!.sensorId,
          window_start_ms: windowOf(rows[0]!),
          sensor_type: latest(rows, (r) => r.sensorType),
          location: latest(rows, (r) => r.location),
          ...stats(rows),
          expected_count: expectedCount,
          health_pct: Math.min(100, (good / expectedCount) * 100),
        };
      })
      .sort((a, b) => cmp(a.sensor_id, b.sensor_id) || a.window_start_ms - b.window_start_ms);
    const actual5 = await readGold(report.sensor5min.file, ['window_start']);
    expect(report.sensor5min.rows).toBe(expected5.length);
    expect(actual5).toHaveLength(expected5.length);
    expect(Object.keys(actual5[0]!).slice(0, GOLD_COLUMNS.sensor_5min.length)).toEqual([
      ...GOLD_COLUMNS.sensor_5min,
    ]);
    expected5.forEach((e, i) => expectRow(actual5[i]!, e, `sensor_5min ${i}`));
    // The fixture exercises the cap, partial health and single-value windows.
    expect(actual5.some((r) => r.health_pct === 100)).toBe(true);
    expect(actual5.some((r) => (r.health_pct as number) < 100)).toBe(true);
    expect(actual5.some((r) => r.stddev === null)).toBe(true);

    // location_hourly
    const hourOf = (r: Row) => Math.floor(r.eventTime / HOUR) * HOUR;
    const byLocHour = groupBy(today, (r) => `${r.location}|${hourOf(r)}|${r.sensorType}`);
    const expectedH = [...byLocHour.values()]
      .map((rows) => {
        const s = stats(rows);
        return {
          location: rows[0]!.location,
          hour_start_ms: hourOf(rows[0]!),
          sensor_type: rows[0]!.sensorType,
          sensor_count: new Set(rows.map((r) => r.sensorId)).size,
          reading_count: s.reading_count,
          value_count: s.value_count,
          anomaly_count: s.anomaly_count,
          avg: s.avg,
          min: s.min,
          max: s.max,
        };
      })
      .sort(
        (a, b) =>
          cmp(a.location, b.location) ||
          a.hour_start_ms - b.hour_start_ms ||
          cmp(a.sensor_type, b.sensor_type),
      );
    const actualH = await readGold(report.locationHourly.file, ['hour_start']);
    expect(report.locationHourly.rows).toBe(expectedH.length);
    expect(actualH).toHaveLength(expectedH.length);
    expectedH.forEach((e, i) => expectRow(actualH[i]!, e, `location_hourly ${i}`));
    expect(actualH.some((r) => (r.sensor_count as number) > 1)).toBe(true);

    // daily_summary
    const expectedD = [...groupBy(today, (r) => r.sensorId).values()]
      .map((rows) => {
        const s = stats(rows);
        return {
          sensor_id: rows[0]!.sensorId,
          sensor_type: latest(rows, (r) => r.sensorType),
          location: latest(rows, (r) => r.location),
          reading_count: s.reading_count,
          avg: s.avg,
          min: s.min,
          max: s.max,
          anomaly_count: s.anomaly_count,
          missing_count: s.reading_count - s.value_count,
          imputed_count: rows.filter((r) => r.imputed).length,
        };
      })
      .sort((a, b) => cmp(a.sensor_id, b.sensor_id));
    const actualD = await readGold(report.dailySummary.file, ['date']);
    expect(report.dailySummary.rows).toBe(expectedD.length);
    expect(actualD).toHaveLength(expectedD.length);
    expectedD.forEach((e, i) => expectRow(actualD[i]!, { ...e, date_ms: DAY_START }, `daily ${i}`));
    expect(actualD.find((r) => r.sensor_id === 'h2')?.location).toBe('cellar');
  });

  it('puts a reading at exactly a window or hour start into the window that starts there', async () => {
    const base = {
      sensorId: 'edge',
      sensorType: 'light',
      location: 'lab',
      isAnomaly: false,
      imputed: false,
    };
    const t = (iso: string) => Date.parse(`${DATE}T${iso}Z`);
    const file = await writeSilver(path.join(dir, 'edge', 'silver.parquet'), [
      { ...base, eventTime: t('10:04:59.999'), value: 1 },
      { ...base, eventTime: t('10:05:00.000'), value: 2 },
      { ...base, eventTime: t('10:59:59.999'), value: 3 },
      { ...base, eventTime: t('11:00:00.000'), value: 4 },
    ]);
    const report = await buildGoldPartition(options(path.join(dir, 'edge-out'), [file]));
    const windows = await readGold(report.sensor5min.file, ['window_start']);
    expect(windows.map((w) => [w.window_start_ms, w.min])).toEqual([
      [t('10:00:00.000'), 1],
      [t('10:05:00.000'), 2],
      [t('10:55:00.000'), 3],
      [t('11:00:00.000'), 4],
    ]);
    const hourly = await readGold(report.locationHourly.file, ['hour_start']);
    expect(hourly.map((h) => [h.hour_start_ms, h.reading_count])).toEqual([
      [t('10:00:00.000'), 3],
      [t('11:00:00.000'), 1],
    ]);
  });

  it('gives byte-identical files on rerun', async () => {
    const first = await buildGoldPartition(options(path.join(dir, 'run-1')));
    const second = await buildGoldPartition(options(path.join(dir, 'run-2')));
    for (const k of ['sensor5min', 'locationHourly', 'dailySummary'] as const) {
      expect(sha256(second[k].file), k).toBe(sha256(first[k].file));
      expect(second[k].rows).toBe(first[k].rows);
    }
  });

  it('writes empty, typed files when there is no silver', async () => {
    const report = await buildGoldPartition(options(path.join(dir, 'empty'), []));
    expect(report.sensor5min.rows).toBe(0);
    expect(report.locationHourly.rows).toBe(0);
    expect(report.dailySummary.rows).toBe(0);
    expect(await readGold(report.sensor5min.file)).toEqual([]);
  });

  it('rejects a malformed date and a non-positive interval', async () => {
    await expect(
      buildGoldPartition({ ...options(path.join(dir, 'bad')), date: "2026-03-15' OR 1=1" }),
    ).rejects.toThrow(/date/);
    await expect(
      buildGoldPartition({ ...options(path.join(dir, 'bad')), sensorIntervals: { t1: 0 } }),
    ).rejects.toThrow(/t1/);
    await expect(
      buildGoldPartition({ ...options(path.join(dir, 'bad')), defaultIntervalMs: Number.NaN }),
    ).rejects.toThrow(/defaultIntervalMs/);
  });
});

describe('buildDeviceSummary', () => {
  it('matches an independent recomputation over every date, byte-identical on rerun', async () => {
    const files = [silverNext, silverToday];
    const report = await buildDeviceSummary({ conn, silverFiles: files, outDir: dir + '/dev-1' });
    const nextRows: Row[] = [
      { ...generated[5]!, eventTime: NEXT_START + HOUR, value: 7, isAnomaly: true },
      { ...generated[5]!, eventTime: NEXT_START + 2 * HOUR, value: null, isAnomaly: false },
    ];
    const all = [...generated, ...nextRows];
    const expected = [...groupBy(all, (r) => r.sensorId).values()]
      .map((rows) => {
        const s = stats(rows);
        const times = rows.map((r) => r.eventTime);
        return {
          sensor_id: rows[0]!.sensorId,
          sensor_type: latest(rows, (r) => r.sensorType),
          location: latest(rows, (r) => r.location),
          first_event_time_ms: Math.min(...times),
          last_event_time_ms: Math.max(...times),
          total_readings: s.reading_count,
          avg: s.avg,
          min: s.min,
          max: s.max,
          anomaly_count: s.anomaly_count,
          anomaly_pct: (s.anomaly_count / s.reading_count) * 100,
        };
      })
      .sort((a, b) => (a.sensor_id < b.sensor_id ? -1 : 1));
    const actual = await readGold(report.file, ['first_event_time', 'last_event_time']);
    expect(report.rows).toBe(expected.length);
    expect(actual).toHaveLength(expected.length);
    expected.forEach((e, i) => expectRow(actual[i]!, e, `device ${i}`));

    const again = await buildDeviceSummary({
      conn,
      silverFiles: [...files].reverse(),
      outDir: dir + '/dev-2',
    });
    expect(sha256(again.file)).toBe(sha256(report.file));
  });
});
