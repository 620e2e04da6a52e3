/**
 * The one conformance suite every `Warehouse` adapter runs (DuckDB file,
 * PostgreSQL). It tests the contract in `core/warehouse.ts` only, reading the
 * tables back through the harness's own SQL, never through the adapter.
 *
 * Contract details fixed here so that every adapter agrees:
 * - Cells round-trip exactly: doubles bit for bit, timestamps to the
 *   millisecond (a day window is the half-open UTC day), 64-bit integers up
 *   to 2^53 − 1, nulls as nulls.
 * - Replacing a window touches no row of another window or table.
 * - A failed load (here: a duplicate grain key in the last table of the
 *   window, after the earlier tables were already rewritten in the
 *   transaction) leaves every table and the ledger exactly as before.
 * - `location_hourly`'s grain treats a null location or sensor type as a
 *   value of its own.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isCanopyError } from '../../core/errors.js';
import {
  DIM_SENSORS_LEDGER_KEY,
  WAREHOUSE_TABLES,
  type Warehouse,
  type WarehouseRow,
  type WindowLoad,
} from '../../core/warehouse.js';
import type { WarehouseHarness } from './warehouse-harness.fixture.js';

const D1 = '2026-11-20';
const D2 = '2026-11-21';
const T1 = Date.parse(`${D1}T00:00:00Z`);
const T2 = Date.parse(`${D2}T00:00:00Z`);

function sensor5min(sensorId: string, windowStart: number, avg: number | null): WarehouseRow {
  return {
    sensor_id: sensorId,
    window_start: windowStart,
    sensor_type: 'temperature',
    location: null,
    reading_count: 5,
    value_count: avg === null ? 0 : 5,
    anomaly_count: 1,
    avg,
    min: avg === null ? null : avg - 1e-300,
    max: avg === null ? null : -avg,
    stddev: null,
    p50: 0.1 + 0.2,
    p95: Number.MAX_VALUE,
    p99: Number.MIN_VALUE,
    expected_count: 10 / 3,
    health_pct: 100,
  };
}

function locationHourly(location: string | null, hourStart: number, n: number): WarehouseRow {
  return {
    location,
    hour_start: hourStart,
    sensor_type: null,
    sensor_count: 2,
    reading_count: n,
    value_count: n,
    anomaly_count: 0,
    avg: 1.5,
    min: 1,
    max: 2,
  };
}

function dailySummary(sensorId: string, date: string, count: number): WarehouseRow {
  return {
    sensor_id: sensorId,
    date,
    sensor_type: 'humidity',
    location: 'kew/bed-2',
    reading_count: count,
    avg: 21 + 1 / 7,
    min: -40,
    max: 85.5,
    anomaly_count: 0,
    missing_count: Number.MAX_SAFE_INTEGER,
    imputed_count: 0,
  };
}

function deviceSummary(sensorId: string, total: number): WarehouseRow {
  return {
    sensor_id: sensorId,
    sensor_type: 'temperature',
    location: 'kew',
    first_event_time: T1 + 1,
    last_event_time: T2 + 86_399_999,
    total_readings: total,
    avg: 20,
    min: 19,
    max: 21,
    anomaly_count: 1,
    anomaly_pct: 100 / total,
  };
}

/** A day's load: rows at both edges of the day, a null location, a null average. */
function dayLoad(date: string, start: number, version: number): WindowLoad {
  return {
    window: { kind: 'day', date },
    fingerprint: `${date}-v${version}`,
    rows: {
      gold_sensor_5min: [
        sensor5min('a', start, 20 + version),
        sensor5min('a', start + 86_100_000, null),
        sensor5min('b', start + 300_000, -3.5),
      ],
      gold_location_hourly: [
        locationHourly(null, start, version),
        locationHourly('kew', start + 82_800_000, 3),
      ],
      gold_daily_summary: [dailySummary('a', date, version), dailySummary('b', date, 7)],
    },
  };
}

function sensorRow(id: string, location: string | null, lastSeen: number | null): WarehouseRow {
  return {
    sensor_id: id,
    sensor_type: 'temperature',
    unit: 'C',
    location,
    interval_ms: 60_000,
    origin: 'config',
    first_seen: lastSeen === null ? null : T1,
    last_seen: lastSeen,
  };
}

const GOLD_TABLES = WAREHOUSE_TABLES.map((t) => t.name);

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isCanopyError(err) ? err.code : err).toBe(code);
}

export interface WarehouseGaps {
  /** Why the adapter lets two rows of location_hourly share a grain with a null in it, if it does. */
  nullGrainUnenforced?: string;
}

export function describeWarehouseConformance(
  name: string,
  harness: () => Promise<WarehouseHarness>,
  gaps: WarehouseGaps = {},
): void {
  describe(`Warehouse conformance: ${name}`, () => {
    let h: WarehouseHarness | undefined;
    afterEach(async () => {
      await h?.cleanup();
      h = undefined;
    });

    /** Opens a warehouse, runs `work`, closes it. */
    async function withWarehouse<T>(work: (w: Warehouse) => Promise<T>): Promise<T> {
      const w = h!.make();
      await w.open();
      try {
        return await work(w);
      } finally {
        await w.close();
      }
    }

    async function dumpAll(): Promise<Record<string, WarehouseRow[]>> {
      const out: Record<string, WarehouseRow[]> = {};
      for (const table of GOLD_TABLES) out[table] = await h!.dump(table);
      return out;
    }

    function sorted(rows: readonly WarehouseRow[]): WarehouseRow[] {
      return [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
    }

    it('creates its tables idempotently, empty, and refuses a newer schema version', async () => {
      h = await harness();
      await withWarehouse(async (w) => expect(await w.ledger()).toEqual(new Map()));
      await withWarehouse(async (w) => expect(await w.ledger()).toEqual(new Map())); // reopen: DDL again
      for (const table of GOLD_TABLES) expect(await h.dump(table)).toEqual([]);
      await h.exec(
        `UPDATE ${h.table('warehouse_meta')} SET value = '99' WHERE key = 'schema_version'`,
      );
      await expectCode(h.make().open(), 'CANOPY_WAREHOUSE_UNAVAILABLE');
    });

    it('round-trips every cell exactly and records the fingerprint', async () => {
      h = await harness();
      const d1 = dayLoad(D1, T1, 1);
      const all: WindowLoad = {
        window: { kind: 'all' },
        fingerprint: 'devices-v1',
        rows: { gold_device_summary: [deviceSummary('a', 3), deviceSummary('b', 7)] },
      };
      await withWarehouse(async (w) => {
        await w.replaceWindow(d1);
        await w.replaceWindow(all);
        expect(await w.ledger()).toEqual(
          new Map([
            [`date=${D1}`, `${D1}-v1`],
            ['all', 'devices-v1'],
          ]),
        );
      });
      expect(await h.dump('gold_sensor_5min')).toEqual(sorted(d1.rows.gold_sensor_5min!));
      expect(await h.dump('gold_location_hourly')).toEqual(sorted(d1.rows.gold_location_hourly!));
      expect(await h.dump('gold_daily_summary')).toEqual(sorted(d1.rows.gold_daily_summary!));
      expect(await h.dump('gold_device_summary')).toEqual(sorted(all.rows.gold_device_summary!));
    });

    it('replaces one window and leaves every other window untouched; a replay changes nothing', async () => {
      h = await harness();
      await withWarehouse(async (w) => {
        await w.replaceWindow(dayLoad(D1, T1, 1));
        await w.replaceWindow(dayLoad(D2, T2, 1));
        await w.replaceWindow({
          window: { kind: 'all' },
          fingerprint: 'd',
          rows: { gold_device_summary: [deviceSummary('a', 3)] },
        });
      });
      const before = await dumpAll();
      await withWarehouse((w) => w.replaceWindow(dayLoad(D2, T2, 1)));
      expect(await dumpAll()).toEqual(before);

      const d1v2 = dayLoad(D1, T1, 2);
      await withWarehouse((w) => w.replaceWindow(d1v2));
      const after = await dumpAll();
      const d2 = dayLoad(D2, T2, 1);
      expect(after.gold_sensor_5min).toEqual(
        sorted([...d1v2.rows.gold_sensor_5min!, ...d2.rows.gold_sensor_5min!]),
      );
      expect(after.gold_location_hourly).toEqual(
        sorted([...d1v2.rows.gold_location_hourly!, ...d2.rows.gold_location_hourly!]),
      );
      expect(after.gold_daily_summary).toEqual(
        sorted([...d1v2.rows.gold_daily_summary!, ...d2.rows.gold_daily_summary!]),
      );
      expect(after.gold_device_summary).toEqual(before.gold_device_summary);

      // An empty day empties only that day.
      await withWarehouse((w) =>
        w.replaceWindow({
          window: { kind: 'day', date: D1 },
          fingerprint: 'empty',
          rows: { gold_sensor_5min: [], gold_location_hourly: [], gold_daily_summary: [] },
        }),
      );
      expect(await h.dump('gold_sensor_5min')).toEqual(sorted(d2.rows.gold_sensor_5min!));
    });

    it('rolls a failed window back whole: earlier tables, the ledger and other windows keep their rows', async () => {
      h = await harness();
      await withWarehouse(async (w) => {
        await w.replaceWindow(dayLoad(D1, T1, 1));
        await w.replaceWindow(dayLoad(D2, T2, 1));
      });
      const before = await dumpAll();
      // The duplicate grain key sits in the last table of the window, so the
      // first two tables were already deleted and reinserted when it fails.
      const broken = dayLoad(D1, T1, 5);
      const daily = broken.rows.gold_daily_summary!;
      const failing: WindowLoad = {
        ...broken,
        rows: { ...broken.rows, gold_daily_summary: [...daily, daily[0]!] },
      };
      await withWarehouse(async (w) => {
        await expectCode(w.replaceWindow(failing), 'CANOPY_WAREHOUSE_LOAD_FAILED');
        expect((await w.ledger()).get(`date=${D1}`)).toBe(`${D1}-v1`);
        // The warehouse stays usable after the failure.
        await w.replaceWindow(dayLoad(D2, T2, 1));
      });
      expect(await dumpAll()).toEqual(before);
    });

    it(`enforces location_hourly's grain${gaps.nullGrainUnenforced ? ` (gap: ${gaps.nullGrainUnenforced})` : ', a null location or type being a group of its own'}`, async () => {
      h = await harness();
      const load = dayLoad(D1, T1, 1);
      const hourly = load.rows.gold_location_hourly!;
      const typed = { ...hourly[1]!, sensor_type: 'humidity' };
      const withHourly = (rows: WarehouseRow[]): WindowLoad => ({
        ...load,
        rows: { ...load.rows, gold_location_hourly: rows },
      });
      await withWarehouse(async (w) => {
        await expectCode(
          w.replaceWindow(withHourly([...hourly, typed, typed])),
          'CANOPY_WAREHOUSE_LOAD_FAILED',
        );
        if (gaps.nullGrainUnenforced === undefined) {
          await expectCode(
            w.replaceWindow(withHourly([...hourly, hourly[0]!])),
            'CANOPY_WAREHOUSE_LOAD_FAILED',
          );
        }
        // Same hour and null type, but a location of its own: a different group.
        await w.replaceWindow(withHourly([...hourly, { ...hourly[0]!, location: 'elsewhere' }]));
      });
      expect(await h.dump('gold_location_hourly')).toHaveLength(3);
    });

    it('refuses a load that breaks the contract before touching anything', async () => {
      h = await harness();
      await withWarehouse(async (w) => {
        await w.replaceWindow(dayLoad(D1, T1, 1));
        const good = dayLoad(D1, T1, 2);
        const rows = good.rows;
        for (const bad of [
          // a row of the next day's first millisecond
          { ...good, rows: { ...rows, gold_sensor_5min: [sensor5min('a', T2, 1)] } },
          { ...good, rows: { ...rows, gold_daily_summary: [dailySummary('a', D2, 1)] } },
          { ...good, rows: { gold_sensor_5min: [], gold_location_hourly: [] } },
          { ...good, rows: { ...rows, gold_device_summary: [] } },
          { ...good, rows: { ...rows, gold_sensor_5min: [{ sensor_id: 'a' }] } },
          { ...good, rows: { ...rows, gold_daily_summary: [dailySummary('a', D1, 1.5)] } },
          { ...good, window: { kind: 'day', date: '2026-02-30' } },
        ] as WindowLoad[]) {
          await expectCode(w.replaceWindow(bad), 'CANOPY_WAREHOUSE_LOAD_FAILED');
        }
        expect((await w.ledger()).get(`date=${D1}`)).toBe(`${D1}-v1`);
      });
      const d1 = dayLoad(D1, T1, 1);
      expect(await h.dump('gold_sensor_5min')).toEqual(sorted(d1.rows.gold_sensor_5min!));
    });

    it('merges sensors through staging: inserts new ids, updates changed rows, never duplicates', async () => {
      h = await harness();
      const first = [sensorRow('a', 'kew', null), sensorRow('b', 'kew', T2)];
      await withWarehouse(async (w) => {
        expect(await w.mergeSensors(first, 'f1')).toEqual({ staged: 2, inserted: 2, updated: 0 });
        expect(await w.mergeSensors(first, 'f1')).toEqual({ staged: 2, inserted: 0, updated: 0 });
      });
      expect(await h.dump('dim_sensors')).toEqual(first);

      // 'a' moved and has data now, 'c' is new, 'b' is not given: kept as it was.
      const second = [sensorRow('a', 'wakehurst', T2 + 5), sensorRow('c', null, null)];
      await withWarehouse(async (w) => {
        expect(await w.mergeSensors(second, 'f2')).toEqual({ staged: 2, inserted: 1, updated: 1 });
        expect((await w.ledger()).get(DIM_SENSORS_LEDGER_KEY)).toBe('f2');
        await expectCode(
          w.mergeSensors([sensorRow('d', null, null), sensorRow('d', 'x', null)], 'f3'),
          'CANOPY_WAREHOUSE_LOAD_FAILED',
        );
      });
      expect(await h.dump('dim_sensors')).toEqual([second[0], first[1], second[1]]);
    });
  });
}
