/**
 * The dashboard's routes: the built single-page app at `/`, its live event
 * stream, and the read-only endpoints its pages are drawn from. Shapes are
 * documented in docs/api.md ("Dashboard endpoints").
 *
 *   GET /api/live        Server-Sent Events (live.ts)
 *   GET /api/overview    sensors with health, rate, open alerts, freshness
 *   GET /api/series      downsampled readings over a range (series.ts)
 *   GET /api/locations   latest values of a measure per site/floor/zone
 *   GET /api/anomalies   flagged readings over a range (bronze)
 *   GET /api/pipeline    ingest rate, dead letters, lake partitions, workflows, quality
 *   GET /api/plants      the conservatory: plants with their latest readings
 *   GET /, GET /*        the app (static.ts)
 *
 * Everything here reads; nothing writes. Reads of the lake go through the
 * SQL sandbox (lake-reads.ts); the catalogue, which walks every lake file, is
 * cached for CATALOG_TTL_MS and refreshed in the background after that.
 */
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import type { HotStore, SensorSummary } from '../core/store.js';
import type { CatalogTable, QualityHistory } from '../lake/index.js';
import type { Logger } from '../observability/logger.js';
import { sqlString, type LakeQueries } from '../query/index.js';
import { LakeReader, jsonNumber, jsonString, jsonText, sqlList, timeRange } from './lake-reads.js';
import { sensorHealth, type LiveFeed } from './live.js';
import { optionalString, parseLimit, parseTimeParam } from './params.js';
import {
  DEFAULT_POINTS,
  MAX_POINTS,
  MAX_RANGE_MS,
  MAX_SERIES,
  MIN_POINTS,
  querySeries,
} from './series.js';
import { defaultWebDist, registerStaticRoutes } from './static.js';
import { runToWire, type WorkflowApiDeps } from './workflows.js';

/** What the plants API says of a plant beyond its measures. */
export interface PlantRecord {
  /** As in its sensor ids, `plant-<plantId>.<measure>`. */
  plantId: string;
  name: string | null;
  /** Epoch ms. */
  lastWatered: number | null;
  botanist: { name: string | null; email: string | null; phone: string | null } | null;
  /** `recording_taken` of the record, epoch ms. */
  recordedAt: number;
}

export interface DashboardDeps {
  /** The live stream and ingest rate, fed by the pipeline's commits and alert changes. */
  live: LiveFeed;
  clock: Clock;
  /** Length of the hot window (`store.retentionHours`): older readings are read from the lake. */
  hotWindowMs: number;
  /** Plant records kept from the plants poll source (src/sources/plant-directory.ts). */
  plants?: { list(): PlantRecord[] };
  /** The built app; default `web/dist` of the package. */
  webDist?: string;
}

export interface DashboardRouteDeps {
  store: HotStore;
  queries: Pick<LakeQueries, 'run'>;
  catalog: () => Promise<CatalogTable[]>;
  quality: Pick<QualityHistory, 'list' | 'latestBySuite'>;
  workflows?: Pick<WorkflowApiDeps, 'store' | 'workflows'>;
  logger: Logger;
  dashboard: DashboardDeps;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** How long a catalogue read serves overview and pipeline requests before it is refreshed. */
export const CATALOG_TTL_MS = 15_000;
/** How long the sensor registry read for `/api/series` is reused. */
const SENSORS_TTL_MS = 10_000;
/** Runs per workflow that `deadlineMisses` looks at. */
const DEADLINE_LOOKBACK_RUNS = 1_000;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function badRequest(message: string): CanopyError {
  return new CanopyError('CANOPY_API_BAD_REQUEST', message);
}

/** A value that is slow to get: fresh for `ttlMs`, then served while a refresh runs. */
class Cached<T> {
  private value: { at: number; data: T } | undefined;
  private pending: Promise<T> | undefined;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {}

  get(): Promise<T> {
    const now = this.clock.now();
    if (this.value !== undefined && now - this.value.at < this.ttlMs)
      return Promise.resolve(this.value.data);
    this.pending ??= this.load()
      .then((data) => {
        this.value = { at: this.clock.now(), data };
        return data;
      })
      .finally(() => {
        this.pending = undefined;
      });
    if (this.value === undefined) return this.pending;
    this.pending.catch(() => undefined);
    return Promise.resolve(this.value.data);
  }
}

/** `name` given once or repeated (`?sensor=a&sensor=b`), as a list; empty values are skipped. */
function stringList(query: Record<string, unknown>, name: string): string[] {
  const raw = query[name];
  if (raw === undefined) return [];
  const values = Array.isArray(raw) ? raw : [raw];
  if (!values.every((v): v is string => typeof v === 'string'))
    throw badRequest(`${name} must be text`);
  return values.filter((v) => v !== '');
}

/** `from`/`to` with defaults (`to` now, `from` `defaultSpanMs` before `to`); from < to. */
function timeRangeParams(
  q: Record<string, unknown>,
  now: number,
  defaultSpanMs: number,
): { from: number; to: number } {
  const to = parseTimeParam(q, 'to') ?? now;
  const from = parseTimeParam(q, 'from') ?? to - defaultSpanMs;
  if (from >= to) throw badRequest('from must be before to');
  if (to - from > MAX_RANGE_MS)
    throw badRequest(`the range from..to may span at most ${MAX_RANGE_MS / DAY_MS} days`);
  return { from, to };
}

function parsePoints(q: Record<string, unknown>): number {
  const raw = optionalString(q, 'points');
  if (raw === undefined) return DEFAULT_POINTS;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < MIN_POINTS || n > MAX_POINTS)
    throw badRequest(`points must be an integer from ${MIN_POINTS} to ${MAX_POINTS}, got "${raw}"`);
  return n;
}

/** `site/floor/zone`: missing parts are null; parts past the third stay in the zone. */
function splitLocation(location: string): {
  site: string | null;
  floor: string | null;
  zone: string | null;
} {
  const [site, floor, ...zone] = location.split('/');
  return {
    site: site === undefined || site === '' ? null : site,
    floor: floor === undefined || floor === '' ? null : floor,
    zone: zone.length === 0 || zone.join('/') === '' ? null : zone.join('/'),
  };
}

const mean = (values: readonly number[]): number | null =>
  values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;

const DATE_IN_PARTITION = /(?:^|\/)date=(\d{4}-\d{2}-\d{2})/;

/** One entry per (table, date) of the catalogue, bronze hours summed; newest date first. */
function lakePartitions(tables: readonly CatalogTable[]) {
  const byKey = new Map<
    string,
    {
      layer: string;
      table: string;
      date: string | null;
      files: number;
      rows: number | null;
      bytes: number;
    }
  >();
  for (const t of tables) {
    for (const p of t.partitions) {
      const date = DATE_IN_PARTITION.exec(p.partition)?.[1] ?? null;
      const key = `${t.table}\u0000${date ?? ''}`;
      const entry = byKey.get(key);
      if (entry === undefined) {
        byKey.set(key, {
          layer: t.layer,
          table: t.table,
          date,
          files: p.files,
          rows: p.rows,
          bytes: p.bytes,
        });
      } else {
        entry.files += p.files;
        entry.bytes += p.bytes;
        entry.rows = entry.rows === null || p.rows === null ? null : entry.rows + p.rows;
      }
    }
  }
  // Undated tables ('' sorts before every date, so last in descending order).
  return [...byKey.values()].sort(
    (a, b) => (b.date ?? '').localeCompare(a.date ?? '') || a.table.localeCompare(b.table),
  );
}

const PLANT_SENSOR = /^plant-(.+)\.(soil_moisture|temperature)$/;

/** Plant ids in order: numeric ids by number first, then the others as text. */
function comparePlantIds(a: string, b: string): number {
  const an = /^\d+$/.test(a);
  const bn = /^\d+$/.test(b);
  if (an && bn) return Number(a) - Number(b);
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function registerDashboardRoutes(app: FastifyInstance, deps: DashboardRouteDeps): void {
  const { store, dashboard } = deps;
  const { live, clock } = dashboard;
  const lake = new LakeReader(deps.queries);
  const catalog = new Cached(deps.catalog, CATALOG_TTL_MS, clock);
  // Series need the registry only to name a type's sensors and their units: a few seconds
  // old is fine, and listSensors scans the whole hot window.
  const sensorList = new Cached(() => store.listSensors(), SENSORS_TTL_MS, clock);
  const log = deps.logger.child({ component: 'api' });

  /** The catalogue, or null (logged) when the lake cannot be read: pages show what they can. */
  const catalogOrNull = async (): Promise<CatalogTable[] | null> => {
    try {
      return await catalog.get();
    } catch (err) {
      log.warn({ err }, 'could not read the lake catalogue for the dashboard');
      return null;
    }
  };

  // Streams end before the server closes, or `close()` would wait for them.
  app.addHook('preClose', (done) => {
    live.close();
    done();
  });

  app.get('/api/live', async (_request, reply) => {
    live.attach(reply);
    return reply;
  });

  app.get('/api/overview', async () => {
    const [sensors, tables] = await Promise.all([store.listSensors(), catalogOrNull()]);
    const now = clock.now();
    let lastReadingAt: number | null = null;
    let active = 0;
    const rows = sensors.map((s) => {
      const health = sensorHealth(s.lastSeen, s.intervalMs, now);
      if (health === 'ok') active++;
      if (s.lastSeen !== null && (lastReadingAt === null || s.lastSeen > lastReadingAt))
        lastReadingAt = s.lastSeen;
      return {
        sensor_id: s.sensorId,
        sensor_type: s.sensorType,
        location: s.location,
        unit: s.unit,
        interval_ms: s.intervalMs,
        last_value: s.lastValue,
        last_seen: iso(s.lastSeen),
        health,
        anomalies: s.anomalyCount,
      };
    });
    const modified = (table: string): string | null => {
      const found = tables?.find((t) => t.table === table);
      return found === undefined ? null : iso(found.lastModified);
    };
    return {
      time: iso(now),
      activeSensors: active,
      totalSensors: sensors.length,
      readingsPerSecond: live.readingsPerSecond(),
      sensors: rows,
      openAlerts: live.openAlerts(),
      freshness: {
        lastReadingAt: iso(lastReadingAt),
        lastExportAt: modified('bronze/readings'),
        lastSilverAt: modified('silver/readings'),
      },
    };
  });

  app.get('/api/series', async (request) => {
    const q = request.query as Record<string, unknown>;
    const sensorIds = stringList(q, 'sensor');
    const type = optionalString(q, 'type');
    const location = optionalString(q, 'location');
    if (sensorIds.length > 0 === (type !== undefined))
      throw badRequest('give either sensor (repeatable) or type, not both');
    if (sensorIds.length > MAX_SERIES)
      throw badRequest(`at most ${MAX_SERIES} sensors per request, got ${sensorIds.length}`);
    if (location !== undefined && type === undefined)
      throw badRequest('location narrows a type: give it with type');
    const now = clock.now();
    const { from, to } = timeRangeParams(q, now, HOUR_MS);
    return querySeries(
      { store, sensors: () => sensorList.get(), lake, hotWindowMs: dashboard.hotWindowMs, now },
      {
        ...(type === undefined ? { sensorIds } : { type }),
        ...(location === undefined ? {} : { location }),
        from,
        to,
        points: parsePoints(q),
      },
    );
  });

  app.get('/api/locations', async (request) => {
    const q = request.query as Record<string, unknown>;
    const located = (await store.listSensors()).filter(
      (s): s is SensorSummary & { location: string; sensorType: string } =>
        s.location !== null && s.sensorType !== null,
    );
    const measures = [...new Set(located.map((s) => s.sensorType))].sort();
    const measure = optionalString(q, 'measure') ?? measures[0] ?? null;
    const ofMeasure = located.filter((s) => s.sensorType === measure);
    const byLocation = new Map<string, SensorSummary[]>();
    for (const s of ofMeasure)
      byLocation.set(s.location, [...(byLocation.get(s.location) ?? []), s]);
    const cells = [...byLocation.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([location, sensors]) => {
        const seen = sensors.flatMap((s) => (s.lastSeen === null ? [] : [s.lastSeen]));
        return {
          location,
          ...splitLocation(location),
          value: mean(sensors.flatMap((s) => (s.lastValue === null ? [] : [s.lastValue]))),
          sensors: sensors.map((s) => s.sensorId).sort(),
          last_seen: seen.length === 0 ? null : iso(Math.max(...seen)),
        };
      });
    return {
      measure,
      unit: ofMeasure.find((s) => s.unit !== null)?.unit ?? null,
      measures,
      cells,
    };
  });

  app.get('/api/anomalies', async (request) => {
    const q = request.query as Record<string, unknown>;
    const { from, to } = timeRangeParams(q, clock.now(), DAY_MS);
    const sensor = optionalString(q, 'sensor');
    const type = optionalString(q, 'type');
    const reason = optionalString(q, 'reason');
    const limit = parseLimit(q, 1_000, 5_000);
    const [hasBronze] = await lake.has('bronze_readings');
    if (!hasBronze) return { items: [], reasons: [], truncated: false };
    const filters = [
      'is_anomaly',
      timeRange('event_time', from, to, true),
      ...(sensor === undefined ? [] : [`sensor_id IN ${sqlList([sensor])}`]),
      ...(type === undefined ? [] : [`sensor_type IN ${sqlList([type])}`]),
    ];
    const reasonFilter =
      reason === undefined ? [] : [`list_contains(anomaly_reasons, ${sqlString(reason)})`];
    // A reading exported twice (a redone export) shows once: its latest ingest wins.
    const items = await lake.run(
      `SELECT sensor_id, arg_max(sensor_type, ingest_time), arg_max(location, ingest_time),
              epoch_ms(event_time) AS t, arg_max(value, ingest_time), arg_max(anomaly_reasons, ingest_time)
       FROM bronze_readings
       WHERE ${[...filters, ...reasonFilter].join(' AND ')}
       GROUP BY sensor_id, event_time
       ORDER BY event_time DESC, sensor_id
       LIMIT ${limit + 1}`,
    );
    const reasons = await lake.run(
      `SELECT DISTINCT reason FROM (
         SELECT unnest(anomaly_reasons) AS reason FROM bronze_readings WHERE ${filters.join(' AND ')})
       ORDER BY reason`,
    );
    const rows = items.rows.slice(0, limit).reverse();
    return {
      items: rows.map(([sensorId, sensorType, location, t, value, list]) => ({
        sensor_id: jsonText(sensorId),
        sensor_type: jsonString(sensorType),
        location: jsonString(location),
        timestamp: iso(jsonNumber(t)),
        value: jsonNumber(value),
        reasons: Array.isArray(list) ? list.map((r) => jsonText(r)) : [],
      })),
      reasons: reasons.rows.map(([r]) => jsonText(r)),
      truncated: items.rows.length > limit,
    };
  });

  app.get('/api/pipeline', async () => {
    const now = clock.now();
    const since = now - DAY_MS;
    const deadLetters = async () => {
      const [hasDeadLetters] = await lake.has('dead_letters');
      if (!hasDeadLetters) return [];
      const result = await lake.run(
        `SELECT reason, count(*) AS n FROM dead_letters
         WHERE date >= DATE '${new Date(since).toISOString().slice(0, 10)}'
           AND CAST(received_at AS TIMESTAMPTZ) >= to_timestamp(${since / 1000})
         GROUP BY reason ORDER BY n DESC, reason`,
      );
      return result.rows.map(([reason, n]) => ({
        reason: jsonText(reason),
        count: jsonNumber(n) ?? 0,
      }));
    };
    const workflows = async () => {
      const w = deps.workflows;
      if (w === undefined) return { enabled: false, runs: [], deadlineMisses: 0 };
      const [runs, perWorkflow] = await Promise.all([
        w.store.listRuns({ limit: 20 }),
        Promise.all(
          w
            .workflows()
            .map((def) => w.store.listRuns({ workflow: def.name, limit: DEADLINE_LOOKBACK_RUNS })),
        ),
      ]);
      return {
        enabled: true,
        runs: runs.map(runToWire),
        deadlineMisses: perWorkflow.flat().filter((r) => r.deadlineMissed).length,
      };
    };
    const [byReason, tables, workflowPart, suites, runs] = await Promise.all([
      deadLetters(),
      catalogOrNull(),
      workflows(),
      deps.quality.latestBySuite(),
      deps.quality.list(50),
    ]);
    return {
      ingest: { readingsPerSecond: live.readingsPerSecond(), perMinute: live.perMinute() },
      deadLetters: {
        since: iso(since),
        byReason,
        total: byReason.reduce((sum, r) => sum + r.count, 0),
      },
      lake: { partitions: tables === null ? [] : lakePartitions(tables) },
      workflows: workflowPart,
      quality: { suites, runs },
    };
  });

  app.get('/api/plants', async () => {
    const sensors = new Map((await store.listSensors()).map((s) => [s.sensorId, s]));
    const known = new Map((dashboard.plants?.list() ?? []).map((p) => [p.plantId, p]));
    // Plants whose readings are stored but whose record is not in the directory still show.
    const ids = new Set(known.keys());
    for (const id of sensors.keys()) {
      const match = PLANT_SENSOR.exec(id);
      if (match) ids.add(match[1]!);
    }
    return {
      plants: [...ids].sort(comparePlantIds).map((plantId) => {
        const info = known.get(plantId);
        const sensorId = `plant-${plantId}`;
        const moisture = sensors.get(`${sensorId}.soil_moisture`);
        const temperature = sensors.get(`${sensorId}.temperature`);
        return {
          plant_id: plantId,
          sensor_id: sensorId,
          sensors: {
            soil_moisture: `${sensorId}.soil_moisture`,
            temperature: `${sensorId}.temperature`,
          },
          name: info?.name ?? null,
          location: moisture?.location ?? temperature?.location ?? null,
          soil_moisture: moisture?.lastValue ?? null,
          temperature: temperature?.lastValue ?? null,
          last_watered: iso(info?.lastWatered ?? null),
          botanist: info?.botanist ?? null,
          recorded_at: iso(info?.recordedAt ?? null),
        };
      }),
    };
  });

  registerStaticRoutes(app, dashboard.webDist ?? defaultWebDist());
}
