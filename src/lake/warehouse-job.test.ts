/**
 * The warehouse load over a real lake (hot store → bronze → silver → gold),
 * against both warehouse adapters. The oracle reads the gold Parquet files
 * with plain DuckDB SQL, independently of the job, and every warehouse row
 * must equal it, column by column (floats to 1e-9).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBDateValue } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { newReading } from '../../test/helpers/readings.js';
import { serviceForTests } from '../../test/helpers/services.js';
import { ManualClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import type { NewReading, SensorRecord } from '../core/store.js';
import {
  GOLD_WAREHOUSE_TABLES,
  type Warehouse,
  type WarehouseRow,
  type WarehouseTableSpec,
  type WindowLoad,
} from '../core/warehouse.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore, S3ObjectStore } from '../storage/index.js';
import { S3RVER_CREDENTIALS, startS3rver } from '../../test/helpers/s3rver.js';
import {
  duckDbHarness,
  postgresHarness,
  type WarehouseHarness,
} from '../storage/warehouse/warehouse-harness.fixture.js';
import { runBronzeExport } from './bronze-export.js';
import { GOLD_COLUMNS } from './gold/index.js';
import { runGoldJob } from './gold-job.js';
import { runSilverJob } from './silver-job.js';
import { runWarehouseLoad, type WarehouseLoadReport } from './warehouse-job.js';

const DAY1 = Date.UTC(2026, 10, 20);
const DAY2 = Date.UTC(2026, 10, 21);
const D1 = '2026-11-20';
const D2 = '2026-11-21';

interface Lakehouse {
  dir: string;
  store: DuckDbHotStore;
  lake: LocalObjectStore;
}

const opened: { lakehouse?: Lakehouse; harness?: WarehouseHarness }[] = [];

afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.harness?.cleanup();
    if (o.lakehouse) {
      await o.lakehouse.store.close();
      rmSync(o.lakehouse.dir, { recursive: true, force: true });
    }
  }
});

async function lakehouse(): Promise<Lakehouse> {
  const dir = mkdtempSync(path.join(tmpdir(), 'canopy-warehouse-job-'));
  const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
  await store.open();
  const l = { dir, store, lake: new LocalObjectStore({ root: path.join(dir, 'lake') }) };
  opened.push({ lakehouse: l });
  return l;
}

/** Two days of three sensors every 10 minutes, with a spike, a null and an out-of-range value. */
function twoDays(): NewReading[] {
  const rows: NewReading[] = [];
  for (const [day, base] of [
    [DAY1, 20],
    [DAY2, 21],
  ] as const) {
    for (let i = 0; i < 144; i++) {
      for (const [s, location] of [
        ['a', 'kew/bed-1'],
        ['b', 'kew/bed-2'],
        ['c', 'kew/bed-2'],
      ] as const) {
        const value =
          i === 100
            ? base + 30
            : i === 101
              ? null
              : i === 102 && s === 'b'
                ? 200
                : base + (i % 7) / 3;
        rows.push(
          newReading({
            sensorId: s,
            location,
            eventTime: day + i * 600_000 + (s === 'c' ? 1 : 0),
            value,
            ingestTime: DAY2 + 86_400_000,
          }),
        );
      }
    }
  }
  return rows;
}

/** Appends readings and runs bronze, silver and (unless told not to) gold over the lake. */
async function ingest(l: Lakehouse, readings: NewReading[], gold = true): Promise<void> {
  await l.store.append(readings, []);
  await runBronzeExport({ store: l.store, lake: l.lake, workDir: l.dir, logger: silentLogger() });
  await runSilverJob({
    lake: l.lake,
    workDir: l.dir,
    ranges: { byType: { temperature: { min: -40, max: 85 } }, bySensor: {} },
    zscore: { window: 60, minHistory: 10, threshold: 3 },
    deviceScoreThreshold: 0.5,
    clock: new ManualClock(Date.UTC(2026, 10, 22, 12)),
    logger: silentLogger(),
  });
  if (!gold) return;
  await runGoldJob({
    lake: l.lake,
    workDir: l.dir,
    sensorIntervals: { a: 600_000 },
    defaultIntervalMs: 300_000,
    logger: silentLogger(),
  });
}

const CONFIGURED: SensorRecord[] = [
  {
    sensorId: 'a',
    sensorType: 'temperature',
    unit: 'C',
    location: 'kew/bed-1',
    origin: 'config',
    intervalMs: 600_000,
    firstSeen: null,
  },
  {
    sensorId: 'z',
    sensorType: 'humidity',
    unit: '%',
    location: 'kew/bed-9',
    origin: 'config',
    intervalMs: null,
    firstSeen: null,
  },
];

/** Opens a warehouse of the harness, runs the load, closes it (DuckDB dumps need the file free). */
async function load(
  h: WarehouseHarness,
  l: Lakehouse,
  options: {
    date?: string;
    full?: boolean;
    configured?: SensorRecord[];
    wrap?: (w: Warehouse) => Warehouse;
  } = {},
): Promise<WarehouseLoadReport> {
  const opened = h.make();
  await opened.open();
  const warehouse = options.wrap ? options.wrap(opened) : opened;
  try {
    return await runWarehouseLoad({
      lake: l.lake,
      warehouse,
      workDir: l.dir,
      configuredSensors: options.configured ?? CONFIGURED,
      typeDefaults: { temperature: { unit: 'C', intervalMs: 300_000 }, humidity: { unit: '%' } },
      date: options.date,
      full: options.full,
      logger: silentLogger(),
    });
  } finally {
    await opened.close();
  }
}

async function dumpAll(h: WarehouseHarness): Promise<Record<string, WarehouseRow[]>> {
  const out: Record<string, WarehouseRow[]> = {};
  for (const t of [...GOLD_WAREHOUSE_TABLES.map((s) => s.name), 'dim_sensors']) {
    out[t] = await h.dump(t);
  }
  return out;
}

/**
 * The oracle: every row of a gold table straight from its Parquet files with
 * `SELECT *`, cells turned into `WarehouseRow` form by their DuckDB value
 * types (not by the job's SQL).
 */
async function goldParquetRows(l: Lakehouse, spec: WarehouseTableSpec): Promise<WarehouseRow[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const dir = spec.name.replace(/^gold_/, '');
    const glob = path.join(l.dir, 'lake', 'gold', dir, '**', '*.parquet');
    const reader = await conn.runAndReadAll(
      `SELECT * FROM read_parquet('${glob}', hive_partitioning = false)`,
    );
    expect(reader.columnNames(), spec.name).toEqual(spec.columns.map((c) => c.name));
    return reader.getRows().map((values) => {
      const row: Record<string, string | number | null> = {};
      spec.columns.forEach((c, i) => {
        const v = values[i] as unknown;
        if (v === null) row[c.name] = null;
        else if (c.type === 'timestamp')
          row[c.name] = Number((v as { micros: bigint }).micros / 1000n);
        else if (c.type === 'date') row[c.name] = (v as DuckDBDateValue).toString();
        else if (typeof v === 'bigint') row[c.name] = Number(v);
        else row[c.name] = v as string | number;
      });
      return row;
    });
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

function keyOf(spec: WarehouseTableSpec, row: WarehouseRow): string {
  return JSON.stringify(spec.key.map((k) => row[k]));
}

/** Same rows by grain key; doubles within 1e-9 (relative above 1), everything else exact. */
function expectRowsMatch(
  spec: WarehouseTableSpec,
  actual: readonly WarehouseRow[],
  expected: readonly WarehouseRow[],
): void {
  expect(actual.length, spec.name).toBe(expected.length);
  const byKey = new Map(actual.map((r) => [keyOf(spec, r), r]));
  for (const want of expected) {
    const got = byKey.get(keyOf(spec, want));
    expect(got, `${spec.name} ${keyOf(spec, want)}`).toBeDefined();
    for (const c of spec.columns) {
      const where = `${spec.name} ${keyOf(spec, want)} ${c.name}`;
      const [g, w] = [got![c.name], want[c.name]];
      if (c.type === 'double' && typeof g === 'number' && typeof w === 'number') {
        expect(Math.abs(g - w), where).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(w)));
      } else {
        expect(g, where).toEqual(w);
      }
    }
  }
}

async function expectWarehouseEqualsGold(h: WarehouseHarness, l: Lakehouse): Promise<void> {
  for (const spec of GOLD_WAREHOUSE_TABLES) {
    const gold = await goldParquetRows(l, spec);
    expect(gold.length, spec.name).toBeGreaterThan(0);
    expectRowsMatch(spec, await h.dump(spec.name), gold);
  }
}

function dayRows(rows: readonly WarehouseRow[], column: string, day: number): WarehouseRow[] {
  return rows.filter((r) => {
    const v = r[column];
    return typeof v === 'string'
      ? Date.parse(`${v}T00:00:00Z`) === day
      : (v as number) >= day && (v as number) < day + 86_400_000;
  });
}

const harnesses: [string, () => Promise<WarehouseHarness>][] = [['DuckDB', duckDbHarness]];
if (await serviceForTests('PostgreSQL', 5432)) harnesses.push(['PostgreSQL', postgresHarness]);

describe.each(harnesses)('warehouse load into %s', (_name, makeHarness) => {
  async function setup(): Promise<{ h: WarehouseHarness; l: Lakehouse }> {
    const l = await lakehouse();
    const h = await makeHarness();
    opened.push({ harness: h });
    await ingest(l, twoDays());
    return { h, l };
  }

  it('loads rows equal to the gold Parquet files, and a second run skips every window and changes nothing', async () => {
    const { h, l } = await setup();
    const first = await load(h, l);
    expect(first.loaded.map((w) => w.window)).toEqual([`date=${D1}`, `date=${D2}`, 'all']);
    expect(first.skipped).toEqual([]);
    expect(first.pending).toEqual([]);
    expect(first.loaded[0]!.rows).toEqual({
      gold_sensor_5min: 432,
      gold_location_hourly: 48,
      gold_daily_summary: 3,
    });
    expect(first.rows).toEqual({
      gold_sensor_5min: 864,
      gold_location_hourly: 96,
      gold_daily_summary: 6,
      gold_device_summary: 3,
      dim_sensors: 4,
    });
    expect(first.sensors).toEqual({ staged: 4, inserted: 4, updated: 0 });
    await expectWarehouseEqualsGold(h, l);
    const before = await dumpAll(h);

    const second = await load(h, l);
    expect(second.loaded).toEqual([]);
    expect(second.skipped).toEqual([`date=${D1}`, `date=${D2}`, 'all']);
    expect(second.sensors).toBeNull();
    expect(await dumpAll(h)).toEqual(before);

    // Forced reloads (one date, then everything) give the same rows again.
    const forced = await load(h, l, { date: D2 });
    expect(forced.loaded.map((w) => w.window)).toEqual([`date=${D2}`]);
    expect(forced.sensors).toBeNull();
    const full = await load(h, l, { full: true });
    expect(full.loaded).toHaveLength(3);
    expect(full.sensors).toEqual({ staged: 4, inserted: 0, updated: 0 });
    expect(await dumpAll(h)).toEqual(before);
  });

  it('replaces only the window whose gold changed with late data, leaving the others untouched', async () => {
    const { h, l } = await setup();
    await load(h, l);
    const before = await dumpAll(h);

    // A late reading for day 1 and a new sensor: day 1's gold and the device summary change.
    await ingest(l, [
      newReading({
        sensorId: 'a',
        location: 'kew/bed-1',
        eventTime: DAY1 + 7_200_000 + 5,
        value: 99,
      }),
      newReading({ sensorId: 'late', location: null, eventTime: DAY1 + 60_000, value: 1 }),
    ]);
    const report = await load(h, l);
    // Day 2 uses day 1 as z-score history, so silver rebuilt it, but its gold came out
    // byte-identical: same etags, same fingerprint, skipped.
    expect(report.loaded.map((w) => w.window)).toEqual([`date=${D1}`, 'all']);
    expect(report.skipped).toEqual([`date=${D2}`]);
    // 'late' is new; 'a' got a reading inside its known time span, so its row is unchanged.
    expect(report.sensors).toEqual({ staged: 5, inserted: 1, updated: 0 });
    await expectWarehouseEqualsGold(h, l);

    const after = await dumpAll(h);
    for (const [table, column] of [
      ['gold_sensor_5min', 'window_start'],
      ['gold_location_hourly', 'hour_start'],
      ['gold_daily_summary', 'date'],
    ] as const) {
      expect(dayRows(after[table]!, column, DAY2), table).toEqual(
        dayRows(before[table]!, column, DAY2),
      );
      expect(dayRows(after[table]!, column, DAY1), table).not.toEqual(
        dayRows(before[table]!, column, DAY1),
      );
    }
  });

  it('keeps the previous rows of a window whose load fails, and loads it on the next run', async () => {
    const { h, l } = await setup();
    await load(h, l);
    const before = await dumpAll(h);
    await ingest(l, [
      newReading({
        sensorId: 'b',
        location: 'kew/bed-2',
        eventTime: DAY1 + 3_600_000 + 7,
        value: 5,
      }),
    ]);

    // Fault injection: the day-1 load gets a duplicate daily_summary row, so it
    // fails inside its transaction, after sensor_5min and location_hourly were
    // already deleted and reinserted.
    const faulty = (w: Warehouse): Warehouse => ({
      kind: w.kind,
      location: w.location,
      open: () => w.open(),
      close: () => w.close(),
      ledger: () => w.ledger(),
      mergeSensors: (rows, fp) => w.mergeSensors(rows, fp),
      replaceWindow: (load: WindowLoad) => {
        const daily = load.rows.gold_daily_summary;
        return w.replaceWindow(
          daily
            ? { ...load, rows: { ...load.rows, gold_daily_summary: [...daily, daily[0]!] } }
            : load,
        );
      },
    });
    const err = await load(h, l, { wrap: faulty }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCanopyError(err, 'CANOPY_WAREHOUSE_LOAD_FAILED')).toBe(true);
    expect(await dumpAll(h)).toEqual(before);

    const retry = await load(h, l);
    expect(retry.loaded.map((w) => w.window)).toEqual([`date=${D1}`, 'all']);
    await expectWarehouseEqualsGold(h, l);
  });

  it('upserts dim_sensors: config over data, changed metadata updated in place, no duplicates', async () => {
    const { h, l } = await setup();
    await load(h, l);
    const dim = await h.dump('dim_sensors');
    expect(dim).toEqual([
      {
        sensor_id: 'a',
        sensor_type: 'temperature',
        unit: 'C',
        location: 'kew/bed-1',
        interval_ms: 600_000,
        origin: 'config',
        first_seen: DAY1,
        last_seen: DAY2 + 143 * 600_000,
      },
      {
        sensor_id: 'b',
        sensor_type: 'temperature',
        unit: 'C',
        location: 'kew/bed-2',
        interval_ms: 300_000,
        origin: 'discovered',
        first_seen: DAY1,
        last_seen: DAY2 + 143 * 600_000,
      },
      {
        sensor_id: 'c',
        sensor_type: 'temperature',
        unit: 'C',
        location: 'kew/bed-2',
        interval_ms: 300_000,
        origin: 'discovered',
        first_seen: DAY1 + 1,
        last_seen: DAY2 + 143 * 600_000 + 1,
      },
      {
        sensor_id: 'z',
        sensor_type: 'humidity',
        unit: '%',
        location: 'kew/bed-9',
        interval_ms: null,
        origin: 'config',
        first_seen: null,
        last_seen: null,
      },
    ]);

    // Sensor 'a' moves in the config; 'z' leaves the config (its row stays).
    const moved = [{ ...CONFIGURED[0]!, location: 'wakehurst/glasshouse' }];
    const report = await load(h, l, { configured: moved });
    expect(report.loaded).toEqual([]);
    expect(report.sensors).toEqual({ staged: 3, inserted: 0, updated: 1 });
    const after = await h.dump('dim_sensors');
    expect(after.map((r) => r.sensor_id)).toEqual(['a', 'b', 'c', 'z']);
    expect(after[0]).toEqual({ ...dim[0], location: 'wakehurst/glasshouse' });
    expect(after.slice(1)).toEqual(dim.slice(1));
  });

  it('leaves a date whose gold is being rebuilt as it is, and loads it once gold has run', async () => {
    const { h, l } = await setup();
    await load(h, l);
    const before = await dumpAll(h);
    const late = [
      newReading({ sensorId: 'a', location: 'kew/bed-1', eventTime: DAY2 + 1, value: 7 }),
    ];
    await ingest(l, late, false); // silver of day 2 changed, its gold not yet rebuilt
    const report = await load(h, l);
    expect(report.pending).toEqual([D2]);
    expect(report.loaded).toEqual([]);
    expect(report.skipped).toEqual([`date=${D1}`, 'all']);
    expect(await dumpAll(h)).toEqual(before);
    const forced = await load(h, l, { date: D2 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCanopyError(forced, 'CANOPY_JOB_BAD_DATE')).toBe(true);

    await ingest(l, [], true);
    const after = await load(h, l);
    expect(after.pending).toEqual([]);
    expect(after.loaded.map((w) => w.window)).toEqual([`date=${D2}`, 'all']);
    await expectWarehouseEqualsGold(h, l);
  });

  it('refuses a malformed --date and a date without gold', async () => {
    const { h, l } = await setup();
    for (const date of ['2026-02-30', '20261120', '2026-11-20T00:00:00Z', '2026-12-01']) {
      const err = await load(h, l, { date }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isCanopyError(err, 'CANOPY_JOB_BAD_DATE'), date).toBe(true);
    }
  });
});

describe('warehouse tables', () => {
  it('have exactly the gold columns, in the gold files’ order', () => {
    expect(
      Object.fromEntries(
        GOLD_WAREHOUSE_TABLES.map((t) => [
          t.name.replace(/^gold_/, ''),
          t.columns.map((c) => c.name),
        ]),
      ),
    ).toEqual(GOLD_COLUMNS);
  });
});

describe('warehouse load from an S3 lake', () => {
  it('downloads the gold objects it needs and loads the same rows as from a local lake', async () => {
    const l = await lakehouse();
    await ingest(l, twoDays());
    const h = await duckDbHarness();
    opened.push({ harness: h });
    const server = await startS3rver();
    const s3 = new S3ObjectStore({
      bucket: server.bucket,
      endpoint: server.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      ...S3RVER_CREDENTIALS,
    });
    try {
      for (const object of [...(await l.lake.list('silver/')), ...(await l.lake.list('gold/'))]) {
        await s3.put(object.key, await l.lake.get(object.key));
      }
      const workDir = path.join(l.dir, 'work');
      const w = h.make();
      await w.open();
      let report: WarehouseLoadReport;
      try {
        report = await runWarehouseLoad({
          lake: s3,
          warehouse: w,
          workDir,
          configuredSensors: CONFIGURED,
          typeDefaults: {},
          logger: silentLogger(),
        });
      } finally {
        await w.close();
      }
      expect(report.loaded.map((x) => x.window)).toEqual([`date=${D1}`, `date=${D2}`, 'all']);
      await expectWarehouseEqualsGold(h, l);
      expect(readdirSync(workDir)).toEqual([]); // the downloads are gone
    } finally {
      s3.close();
      await server.stop();
    }
  });
});
