/**
 * The warehouse load (`canopy jobs run warehouse-load`): the gold tables and
 * the `dim_sensors` dimension, from the lake into the configured `Warehouse`.
 *
 * Windows. Each event date of the per-date gold tables is one window, the
 * all-time device summary another. A window is loaded whole by
 * `Warehouse.replaceWindow` (delete its rows, insert the partition's, record
 * the fingerprint, in one transaction), so a rerun, a crash half-way or a
 * late-data rebuild of one date can never duplicate or mix rows.
 *
 * Change detection. The warehouse's own ledger keeps, per window, a
 * fingerprint of the gold objects it was loaded from (their etags). A
 * window whose objects still have the recorded fingerprint is skipped, also
 * after a gold rebuild that came out byte-identical; `date` forces one date,
 * `full` every window. Only
 * complete gold is loaded: a date whose silver changed since its gold was
 * built (`dirtyGoldDates`) is being rebuilt, and its files may be half from
 * each build, so it is reported as pending and left as it is.
 *
 * Dates no longer in the lake (gold retention) keep their warehouse rows: the
 * warehouse is where history outlives the lake. The dimension is merged, not
 * replaced, for the same reason.
 *
 * Reading: gold Parquet is read with a private DuckDB (withLakeEngine),
 * straight from a local lake or from objects downloaded to a temp folder
 * when the lake is remote.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { CanopyError } from '../core/errors.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import type { SensorRecord } from '../core/store.js';
import {
  DIM_SENSORS_LEDGER_KEY,
  DIM_SENSORS_TABLE,
  GOLD_WAREHOUSE_TABLES,
  windowKey,
  windowTables,
  type GoldWarehouseTable,
  type SensorMergeReport,
  type Warehouse,
  type WarehouseRow,
  type WarehouseTableSpec,
  type WarehouseWindow,
} from '../core/warehouse.js';
import type { Logger } from '../observability/logger.js';
import { isEventDate, localCopy, withLakeEngine, type LakeEngineSettings } from './engine.js';
import { dirtyGoldDates } from './gold-job.js';

export interface WarehouseLoadOptions {
  lake: ObjectStore;
  /** An opened warehouse; the caller closes it. */
  warehouse: Warehouse;
  /** Where remote gold objects are downloaded (a temp folder inside it, removed afterwards). */
  workDir: string;
  /** Sensors from the config, as the registry describes them (`SensorRegistry.configRecords()`). */
  configuredSensors: readonly SensorRecord[];
  /** Unit and expected interval per sensor type, for sensors known only from their data. */
  typeDefaults: Readonly<
    Record<string, { unit?: string | undefined; intervalMs?: number | undefined }>
  >;
  /** Load only this event date, whatever the ledger says (`YYYY-MM-DD`). */
  date?: string | undefined;
  /** Reload every window and the dimension, whatever the ledger says. */
  full?: boolean | undefined;
  logger: Logger;
  /** Bounds the job's DuckDB; default DEFAULT_LAKE_ENGINE. */
  engine?: LakeEngineSettings;
}

export interface WarehouseWindowReport {
  window: string;
  rows: Partial<Record<GoldWarehouseTable, number>>;
}

export interface WarehouseLoadReport {
  warehouse: string;
  /** Windows replaced in this run, with the rows each table got. */
  loaded: WarehouseWindowReport[];
  /** Windows whose gold is unchanged since their last load. */
  skipped: string[];
  /** Dates whose gold is being rebuilt (silver changed since): loaded once the gold job has run. */
  pending: string[];
  /** Rows inserted per table in this run (`dim_sensors`: rows staged for the merge). */
  rows: Record<string, number>;
  /** The dimension merge; null when it was skipped (its inputs unchanged) or not asked for (`date`). */
  sensors: SensorMergeReport | null;
}

/** One loadable window: where its gold objects are and their fingerprint. */
interface GoldWindow {
  window: WarehouseWindow;
  objects: Map<GoldWarehouseTable, ObjectInfo>;
  fingerprint: string;
}

const GOLD_PREFIX = 'gold/';
const DEVICE_SUMMARY_KEY = 'gold/device_summary/part-0.parquet';
const MANIFEST = /^gold\/_manifests\/date=(\d{4}-\d{2}-\d{2})\.json$/;

/** Lake key of a per-date gold table's file (`gold_sensor_5min` → `gold/sensor_5min/date=D/part-0.parquet`). */
function goldKey(table: string, date: string): string {
  return `gold/${table.replace(/^gold_/, '')}/date=${date}/part-0.parquet`;
}

function fingerprint(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/**
 * Every complete gold window in the lake: the dates with a manifest and all
 * three files (minus those pending a rebuild), and the device summary.
 */
async function goldWindows(
  lake: ObjectStore,
): Promise<{ windows: GoldWindow[]; pending: string[] }> {
  const objects = new Map((await lake.list(GOLD_PREFIX)).map((o) => [o.key, o]));
  const dirty = new Set(await dirtyGoldDates(lake));
  const windows: GoldWindow[] = [];
  const pending: string[] = [];
  for (const key of objects.keys()) {
    const date = MANIFEST.exec(key)?.[1];
    if (date === undefined) continue;
    const window: WarehouseWindow = { kind: 'day', date };
    const files = new Map<GoldWarehouseTable, ObjectInfo>();
    for (const spec of windowTables(window)) {
      const file = objects.get(goldKey(spec.name, date));
      if (file) files.set(spec.name as GoldWarehouseTable, file);
    }
    if (dirty.has(date) || files.size !== windowTables(window).length) {
      pending.push(date);
      continue;
    }
    windows.push({
      window,
      objects: files,
      fingerprint: fingerprint([...files.values()].map((f) => f.etag)),
    });
  }
  windows.sort((a, b) => (windowKey(a.window) < windowKey(b.window) ? -1 : 1));
  const devices = objects.get(DEVICE_SUMMARY_KEY);
  if (devices) {
    windows.push({
      window: { kind: 'all' },
      objects: new Map([['gold_device_summary', devices]]),
      fingerprint: fingerprint([devices.etag]),
    });
  }
  return { windows, pending: pending.sort() };
}

/** The SELECT list that reads a gold file into `WarehouseRow` cells (see `WarehouseValue`). */
function cellExpressions(spec: WarehouseTableSpec): string {
  return spec.columns
    .map((c) => {
      const name = `"${c.name}"`;
      switch (c.type) {
        case 'timestamp':
          return `epoch_ms(${name})`;
        case 'date':
          return `strftime(${name}, '%Y-%m-%d')`;
        case 'bigint':
          return `CAST(${name} AS BIGINT)`;
        case 'double':
          return `CAST(${name} AS DOUBLE)`;
        case 'text':
          return `CAST(${name} AS VARCHAR)`;
      }
    })
    .join(', ');
}

async function readGoldFile(
  conn: DuckDBConnection,
  spec: WarehouseTableSpec,
  file: string,
): Promise<WarehouseRow[]> {
  const reader = await conn.runAndReadAll(
    `SELECT ${cellExpressions(spec)} FROM read_parquet($1, hive_partitioning = false)`,
    [file],
  );
  return reader.getRows().map((values) => {
    const row: Record<string, string | number | null> = {};
    spec.columns.forEach((c, i) => {
      const v = values[i];
      row[c.name] =
        v === null || v === undefined
          ? null
          : typeof v === 'bigint'
            ? Number(v)
            : (v as string | number);
    });
    return row;
  });
}

/**
 * One `dim_sensors` row per sensor known from the config or the device
 * summary. Config wins for what it sets (type, unit, location, interval);
 * the data fills the rest, and the sensor type's defaults the unit and
 * interval; `first_seen`/`last_seen` are the device summary's event times.
 */
export function sensorDimensionRows(
  configured: readonly SensorRecord[],
  devices: readonly WarehouseRow[],
  typeDefaults: WarehouseLoadOptions['typeDefaults'],
): WarehouseRow[] {
  const byId = new Map(devices.map((d) => [d.sensor_id as string, d]));
  const ids = new Set([...configured.map((c) => c.sensorId), ...byId.keys()]);
  const config = new Map(configured.map((c) => [c.sensorId, c]));
  return [...ids].sort().map((id) => {
    const c = config.get(id);
    const d = byId.get(id);
    const sensorType = c?.sensorType ?? (d?.sensor_type as string | null | undefined) ?? null;
    const defaults = sensorType === null ? undefined : typeDefaults[sensorType];
    return {
      sensor_id: id,
      sensor_type: sensorType,
      unit: c?.unit ?? defaults?.unit ?? null,
      location: c?.location ?? (d?.location as string | null | undefined) ?? null,
      interval_ms: c?.intervalMs ?? defaults?.intervalMs ?? null,
      origin: c ? 'config' : 'discovered',
      first_seen: d?.first_event_time ?? null,
      last_seen: d?.last_event_time ?? null,
    };
  });
}

function badDate(message: string): CanopyError {
  return new CanopyError('CANOPY_JOB_BAD_DATE', message);
}

/**
 * Loads every changed gold window, then merges the sensor dimension. Throws
 * CANOPY_JOB_BAD_DATE for a bad `date`, and CANOPY_WAREHOUSE_LOAD_FAILED
 * when a window fails: windows loaded before it stay loaded (and are skipped
 * by the next run), the failed one keeps its previous rows.
 */
export async function runWarehouseLoad(
  options: WarehouseLoadOptions,
): Promise<WarehouseLoadReport> {
  const { lake, warehouse, logger } = options;
  if (options.date !== undefined && !isEventDate(options.date)) {
    throw badDate(
      `--date must be a calendar day as YYYY-MM-DD, got ${JSON.stringify(options.date)}`,
    );
  }
  const { windows, pending } = await goldWindows(lake);
  const ledger = await warehouse.ledger();
  const report: WarehouseLoadReport = {
    warehouse: `${warehouse.kind} ${warehouse.location}`,
    loaded: [],
    skipped: [],
    pending,
    rows: Object.fromEntries([...GOLD_WAREHOUSE_TABLES, DIM_SENSORS_TABLE].map((t) => [t.name, 0])),
    sensors: null,
  };

  let selected = windows;
  if (options.date !== undefined) {
    const date = options.date;
    selected = windows.filter((w) => w.window.kind === 'day' && w.window.date === date);
    if (selected.length === 0) {
      throw badDate(
        pending.includes(date)
          ? `the gold of ${date} is being rebuilt (its silver changed); run the gold job first`
          : `the lake has no gold for ${date}`,
      );
    }
  }
  const forced = options.full === true || options.date !== undefined;
  const toLoad = selected.filter((w) => {
    const unchanged = ledger.get(windowKey(w.window)) === w.fingerprint;
    if (unchanged && !forced) report.skipped.push(windowKey(w.window));
    return forced || !unchanged;
  });
  const devicesWindow = windows.find((w) => w.window.kind === 'all');
  const dimFingerprint = fingerprint([
    devicesWindow?.fingerprint ?? null,
    options.configuredSensors,
    options.typeDefaults,
  ]);
  const loadDimension =
    options.date === undefined &&
    (options.full === true || ledger.get(DIM_SENSORS_LEDGER_KEY) !== dimFingerprint);
  if (toLoad.length === 0 && !loadDimension) return report;

  mkdirSync(options.workDir, { recursive: true });
  const work = mkdtempSync(path.join(options.workDir, 'warehouse-'));
  try {
    await withLakeEngine(async (conn) => {
      for (const gold of toLoad) {
        const rows: Partial<Record<GoldWarehouseTable, WarehouseRow[]>> = {};
        const counts: WarehouseWindowReport['rows'] = {};
        for (const spec of windowTables(gold.window)) {
          const name = spec.name as GoldWarehouseTable;
          const file = await localCopy(lake, gold.objects.get(name)!.key, work);
          rows[name] = await readGoldFile(conn, spec, file);
          counts[name] = rows[name].length;
          report.rows[name] = (report.rows[name] ?? 0) + rows[name].length;
        }
        await warehouse.replaceWindow({ window: gold.window, rows, fingerprint: gold.fingerprint });
        const windowReport = { window: windowKey(gold.window), rows: counts };
        logger.info(windowReport, 'warehouse window loaded');
        report.loaded.push(windowReport);
      }
      if (loadDimension) {
        const devices = devicesWindow
          ? await readGoldFile(
              conn,
              GOLD_WAREHOUSE_TABLES.find((t) => t.name === 'gold_device_summary')!,
              await localCopy(lake, devicesWindow.objects.get('gold_device_summary')!.key, work),
            )
          : [];
        const dimRows = sensorDimensionRows(
          options.configuredSensors,
          devices,
          options.typeDefaults,
        );
        report.sensors = await warehouse.mergeSensors(dimRows, dimFingerprint);
        report.rows[DIM_SENSORS_TABLE.name] = dimRows.length;
        logger.info(report.sensors, 'warehouse sensor dimension merged');
      }
    }, options.engine);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return report;
}
