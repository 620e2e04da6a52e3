/**
 * `GET /api/series`: readings of some sensors over a range, downsampled on
 * the server so a chart gets at most `points` points per series whatever the
 * range holds.
 *
 * Where readings come from. The range is cut in three parts that never
 * overlap, so no reading is counted twice:
 * 1. before the hot window's edge (`now − hotWindowMs`): silver (the `readings`
 *    view), which outlives restarts and the hot window;
 * 2. inside the hot window, up to the last bronze export: bronze, the lake's
 *    copy of the hot store (exported every minute). Its edge is the newest
 *    `ingest_time` exported: readings are exported in commit order, so every
 *    reading committed by then is in bronze;
 * 3. from there to `to`: the hot store (`queryReadings`), a few minutes of
 *    readings at most while exports run.
 * Parts 1 and 2 are aggregated in SQL, part 3 is paged and folded here. Paging
 * the hot store for a whole day took seconds per sensor (≈ 3 s for 86 400
 * readings) and holds its one reader meanwhile; SQL over the Parquet files
 * aggregates a 50-sensor day in about 2 s on a busy 2-core machine. A reading that
 * arrives late (an event time already covered by bronze) shows once the next
 * export takes it. Without bronze (no export yet), part 3 covers the whole
 * hot window.
 *
 * Downsampling. When every series has at most `points` readings in the range
 * (and all together at most MAX_RAW_READINGS), each reading is a point
 * `[t, v, v, v, imputed ? 1 : 0]` and `bucketMs` is 0. Raw readings inside
 * the hot window are then read from the hot store itself, so values imputed
 * after the export show. Otherwise every series is cut into buckets of
 * `bucketMs = ceil((to − from) / points)` starting at `from`, each point
 * `[bucket start, mean, min, max, imputed readings]` (null values count as
 * readings but not in mean/min/max). Bucket starts are computed the same way
 * in SQL and here (integer arithmetic on epoch ms), so a bucket straddling a
 * part's edge merges its halves exactly (sums and counts are kept, not means).
 */
import type { Json } from '@duckdb/node-api';
import { CanopyError } from '../core/errors.js';
import type { HotStore, ReadingQuery, SensorSummary } from '../core/store.js';
import {
  jsonNumber,
  jsonString,
  jsonText,
  sqlDate,
  sqlList,
  timeRange,
  type LakeReader,
} from './lake-reads.js';

export const MAX_SERIES = 100;
export const MAX_POINTS = 5_000;
export const MIN_POINTS = 10;
export const DEFAULT_POINTS = 1_000;
/** Most readings an answer returns raw, all series together; beyond it, it buckets. */
export const MAX_RAW_READINGS = 20_000;
/** Longest range one request may cover. */
export const MAX_RANGE_MS = 400 * 86_400_000;
/** Readings per `queryReadings` page (the store's maximum). */
const PAGE_SIZE = 10_000;
const SILVER_VIEW = 'readings';
const BRONZE_VIEW = 'bronze_readings';

export interface SeriesRequest {
  /** Exactly one of sensorIds and type. */
  sensorIds?: readonly string[];
  type?: string;
  /** With `type`: only sensors at this location. */
  location?: string;
  from: number;
  to: number;
  points: number;
}

export type SeriesPoint = [number, number | null, number | null, number | null, number];

export interface SeriesResponse {
  from: string;
  to: string;
  bucketMs: number;
  downsampled: boolean;
  series: {
    sensor_id: string;
    sensor_type: string | null;
    unit: string | null;
    points: SeriesPoint[];
  }[];
}

export interface SeriesSources {
  store: Pick<HotStore, 'queryReadings'>;
  /** The sensor registry (`HotStore.listSensors`, which callers may cache: it scans the window). */
  sensors: () => Promise<readonly SensorSummary[]>;
  lake: LakeReader;
  hotWindowMs: number;
  now: number;
}

interface Bucket {
  /** Readings, null values included. */
  rows: number;
  /** Non-null values, their sum, min and max. */
  n: number;
  sum: number;
  min: number;
  max: number;
  imputed: number;
}

/** A time range `[from, to)` of one source. */
interface Span {
  from: number;
  to: number;
}

class Grid {
  constructor(
    readonly from: number,
    readonly bucketMs: number,
  ) {}

  start(t: number): number {
    return this.from + Math.floor((t - this.from) / this.bucketMs) * this.bucketMs;
  }
}

/** One series being built: raw readings until the answer turns to buckets, then buckets. */
class SeriesBuilder {
  sensorType: string | null;
  unit: string | null;
  /** Readings in the range, over every part read so far. */
  count = 0;
  /** Raw readings of the lake, oldest first. */
  lakeRaw: SeriesPoint[] = [];
  /** Raw readings of the hot store, newest first (its pages' order). */
  hotRaw: SeriesPoint[] = [];
  buckets: Map<number, Bucket> | null = null;

  constructor(
    readonly sensorId: string,
    meta: Pick<SensorSummary, 'sensorType' | 'unit'> | undefined,
  ) {
    this.sensorType = meta?.sensorType ?? null;
    this.unit = meta?.unit ?? null;
  }

  toBuckets(grid: Grid): void {
    if (this.buckets !== null) return;
    this.buckets = new Map();
    for (const [t, v, , , imputed] of [...this.lakeRaw, ...this.hotRaw])
      this.add(grid.start(t), v === null ? 0 : 1, v ?? 0, v, v, imputed, 1);
    this.lakeRaw = [];
    this.hotRaw = [];
  }

  add(
    t: number,
    n: number,
    sum: number,
    min: number | null,
    max: number | null,
    imputed: number,
    rows: number,
  ): void {
    const b = this.buckets!.get(t);
    if (b === undefined) {
      this.buckets!.set(t, {
        rows,
        n,
        sum,
        min: min ?? Number.POSITIVE_INFINITY,
        max: max ?? Number.NEGATIVE_INFINITY,
        imputed,
      });
      return;
    }
    b.rows += rows;
    b.n += n;
    b.sum += sum;
    if (min !== null && min < b.min) b.min = min;
    if (max !== null && max > b.max) b.max = max;
    b.imputed += imputed;
  }

  points(): SeriesPoint[] {
    if (this.buckets === null) return [...this.lakeRaw, ...[...this.hotRaw].reverse()];
    return [...this.buckets.entries()]
      .sort(([a], [b]) => a - b)
      .map(([t, b]) =>
        b.n === 0 ? [t, null, null, null, b.imputed] : [t, b.sum / b.n, b.min, b.max, b.imputed],
      );
  }
}

function badRequest(message: string): CanopyError {
  return new CanopyError('CANOPY_API_BAD_REQUEST', message);
}

/** The series a request asks for, sorted by id, with their metadata from the sensor registry. */
function resolveSeries(request: SeriesRequest, sensors: readonly SensorSummary[]): SeriesBuilder[] {
  const byId = new Map(sensors.map((s) => [s.sensorId, s]));
  if (request.sensorIds !== undefined) {
    return [...new Set(request.sensorIds)].sort().map((id) => new SeriesBuilder(id, byId.get(id)));
  }
  const matching = sensors.filter(
    (s) =>
      s.sensorType === request.type &&
      (request.location === undefined || s.location === request.location),
  );
  if (matching.length > MAX_SERIES)
    throw badRequest(
      `type ${request.type} has ${matching.length} sensors${request.location === undefined ? '' : ` at ${request.location}`}; a request may chart at most ${MAX_SERIES}: narrow it with location or list sensors`,
    );
  return matching
    .map((s) => s.sensorId)
    .sort()
    .map((id) => new SeriesBuilder(id, byId.get(id)));
}

const num = (v: Json | undefined): number => jsonNumber(v) ?? 0;

function sensorFilter(series: readonly SeriesBuilder[]): string {
  return `sensor_id IN ${sqlList(series.map((s) => s.sensorId))}`;
}

/**
 * Where bronze ends: the newest ingest time exported among event dates of
 * the hot window (a lower bound of the real one, which only moves readings
 * from bronze to the hot store). Null when bronze holds none.
 */
async function bronzeEnd(lake: LakeReader, edge: number): Promise<number | null> {
  const result = await lake.run(
    `SELECT epoch_ms(max(ingest_time)) FROM ${BRONZE_VIEW} WHERE date >= ${sqlDate(edge)}`,
  );
  return jsonNumber(result.rows[0]?.[0]);
}

export async function querySeries(
  sources: SeriesSources,
  request: SeriesRequest,
): Promise<SeriesResponse> {
  const { from, to, points } = request;
  const { lake } = sources;
  const series = resolveSeries(request, await sources.sensors());
  const grid = new Grid(from, Math.ceil((to - from) / points));
  const response = (bucketed: boolean): SeriesResponse => ({
    from: new Date(from).toISOString(),
    to: new Date(to).toISOString(),
    bucketMs: bucketed ? grid.bucketMs : 0,
    downsampled: bucketed,
    series: series.map((s) => ({
      sensor_id: s.sensorId,
      sensor_type: s.sensorType,
      unit: s.unit,
      points: s.points(),
    })),
  });
  if (series.length === 0) return response(false);

  // The three parts (see the module comment); an empty one has from >= to.
  const edge = sources.now - sources.hotWindowMs;
  const [hasSilver, hasBronze] = await lake.has(SILVER_VIEW, BRONZE_VIEW);
  const silver: Span = { from, to: hasSilver ? Math.min(to, edge) : from };
  const hotFrom = Math.max(from, edge);
  let exported = hotFrom;
  if (hotFrom < to && hasBronze)
    exported = Math.min(to, Math.max(hotFrom, (await bronzeEnd(lake, edge)) ?? hotFrom));
  const bronze: Span = { from: hotFrom, to: exported };
  const tail: Span = { from: exported, to };

  // The lake parts are aggregated first (which counts them too), the tail read as it is;
  // then the counts decide between raw points and buckets.
  const lakeBuckets = new Map<SeriesBuilder, LakeBucket[]>();
  for (const [view, span] of [
    [SILVER_VIEW, silver],
    [BRONZE_VIEW, bronze],
  ] as const) {
    if (span.from >= span.to) continue;
    for (const [s, buckets] of await bucketLake(lake, view, series, grid, span)) {
      s.count += buckets.reduce((n, b) => n + b.rows, 0);
      lakeBuckets.set(s, [...(lakeBuckets.get(s) ?? []), ...buckets]);
    }
  }
  await readHot(sources.store, request, series, tail, (s, p) => {
    s.count++;
    s.hotRaw.push(p);
  });
  const total = series.reduce((n, s) => n + s.count, 0);
  const bucketed = total > MAX_RAW_READINGS || series.some((s) => s.count > points);

  if (bucketed) {
    for (const s of series) {
      s.toBuckets(grid);
      for (const b of lakeBuckets.get(s) ?? [])
        s.add(b.t, b.n, b.sum, b.min, b.max, b.imputed, b.rows);
    }
  } else {
    if (silver.from < silver.to) await rawLake(lake, series, silver);
    // Raw points of the hot window come from the hot store, which has later imputations too.
    if (bronze.from < bronze.to)
      await readHot(sources.store, request, series, bronze, (s, p) => s.hotRaw.push(p));
  }
  return response(bucketed);
}

/**
 * Pages the hot store over `span` (newest first), handing each reading of a
 * requested series to `take`: one query stream per sensor, or one for a type.
 */
async function readHot(
  store: Pick<HotStore, 'queryReadings'>,
  request: SeriesRequest,
  series: readonly SeriesBuilder[],
  span: Span,
  take: (s: SeriesBuilder, point: SeriesPoint) => void,
): Promise<void> {
  if (span.from >= span.to) return;
  const byId = new Map(series.map((s) => [s.sensorId, s]));
  const filters: Omit<ReadingQuery, 'limit'>[] =
    request.sensorIds !== undefined
      ? series.map((s) => ({ sensorId: s.sensorId }))
      : [
          {
            sensorType: request.type,
            ...(request.location === undefined ? {} : { location: request.location }),
          },
        ];
  for (const filter of filters) {
    let cursor: string | undefined;
    do {
      const page = await store.queryReadings({
        ...filter,
        from: span.from,
        to: span.to,
        limit: PAGE_SIZE,
        ...(cursor === undefined ? {} : { cursor }),
      });
      for (const r of page.items) {
        const s = byId.get(r.sensorId);
        if (s === undefined) continue;
        // A sensor missing from the registry (another writer's) takes its metadata from a reading.
        s.sensorType ??= r.sensorType;
        s.unit ??= r.unit;
        take(s, [r.eventTime, r.value, r.value, r.value, r.imputed ? 1 : 0]);
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }
}

/** One bucket as the lake aggregates it. */
interface LakeBucket {
  t: number;
  n: number;
  sum: number;
  min: number | null;
  max: number | null;
  imputed: number;
  rows: number;
}

/** A list cell of a result (DuckDB LIST → JSON array). */
const list = (v: Json | undefined): Json[] => (Array.isArray(v) ? v : []);

/**
 * A lake view's readings of `span` per series, bucketed on `grid` in SQL.
 * One row per sensor holding its buckets as lists, so one query serves
 * every series within the sandbox's row limit.
 */
async function bucketLake(
  lake: LakeReader,
  view: string,
  series: readonly SeriesBuilder[],
  grid: Grid,
  span: Span,
): Promise<Map<SeriesBuilder, LakeBucket[]>> {
  const byId = new Map(series.map((s) => [s.sensorId, s]));
  const { bucketMs } = grid;
  const result = await lake.run(
    `SELECT sensor_id, list(t ORDER BY t), list(n ORDER BY t), list(total ORDER BY t),
            list(lo ORDER BY t), list(hi ORDER BY t), list(imputed ORDER BY t),
            list(readings ORDER BY t), any_value(sensor_type), any_value(unit)
     FROM (
       SELECT sensor_id,
              ${grid.from} + ((epoch_ms(event_time) - ${grid.from}) // ${bucketMs}) * ${bucketMs} AS t,
              count(value) AS n, sum(value) AS total, min(value) AS lo, max(value) AS hi,
              count(*) FILTER (WHERE imputed) AS imputed, count(*) AS readings,
              any_value(sensor_type) AS sensor_type, any_value(unit) AS unit
       FROM ${view}
       WHERE ${sensorFilter(series)} AND ${timeRange('event_time', span.from, span.to, view === BRONZE_VIEW)}
       GROUP BY ALL)
     GROUP BY sensor_id`,
  );
  const out = new Map<SeriesBuilder, LakeBucket[]>();
  for (const [id, ts, ns, sums, mins, maxs, imputed, rows, type, unit] of result.rows) {
    const s = byId.get(jsonText(id))!;
    s.sensorType ??= jsonString(type);
    s.unit ??= jsonString(unit);
    const [nList, sumList, minList, maxList, impList, rowList] = [
      ns,
      sums,
      mins,
      maxs,
      imputed,
      rows,
    ].map(list);
    out.set(
      s,
      list(ts).map((t, i) => ({
        t: num(t),
        n: num(nList![i]),
        sum: num(sumList![i]),
        min: jsonNumber(minList![i]),
        max: jsonNumber(maxList![i]),
        imputed: num(impList![i]),
        rows: num(rowList![i]),
      })),
    );
  }
  return out;
}

/** Silver's readings of `span`, oldest first, as one row per sensor (the counts bound them). */
async function rawLake(
  lake: LakeReader,
  series: readonly SeriesBuilder[],
  span: Span,
): Promise<void> {
  const byId = new Map(series.map((s) => [s.sensorId, s]));
  const result = await lake.run(
    `SELECT sensor_id, list(epoch_ms(event_time) ORDER BY event_time), list(value ORDER BY event_time),
            list(imputed ORDER BY event_time)
     FROM ${SILVER_VIEW}
     WHERE ${sensorFilter(series)} AND ${timeRange('event_time', span.from, span.to)}
     GROUP BY sensor_id`,
  );
  for (const [id, ts, values, imputed] of result.rows) {
    const s = byId.get(jsonText(id))!;
    const valueList = list(values);
    const imputedList = list(imputed);
    list(ts).forEach((t, i) => {
      const v = jsonNumber(valueList[i]);
      s.lakeRaw.push([num(t), v, v, v, imputedList[i] === true ? 1 : 0]);
    });
  }
}
