/**
 * Sensor trends: line charts per sensor or per type over a chosen range. The
 * request asks for about one point per pixel of chart width, so the server
 * downsamples wide ranges; zooming (drag across a chart, or the buttons)
 * fetches the narrower range again at full resolution.
 */
import { useMemo, useRef } from 'preact/hooks';
import { getJson } from '../api.js';
import { Chart } from '../components/chart.js';
import { RangePicker } from '../components/range-picker.js';
import { Empty, Loaded } from '../components/states.js';
import { formatDuration } from '../format.js';
import { rangeFromParams, withFixedRange, withPreset, type TimeRange } from '../ranges.js';
import { useResource } from '../resource.js';
import { navigate } from '../router.js';
import { buildSeriesCharts } from '../series-chart.js';
import type { Sensor, SeriesResponse } from '../types.js';

const MAX_POINTS = 5000;
/** Sensors one /api/series request may chart. */
const MAX_SERIES = 50;

export function TrendsPage({ params }: { params: URLSearchParams }) {
  const sensors = useResource(
    (signal) => getJson<{ data: Sensor[] }>('/api/sensors', {}, signal),
    [],
  );
  return (
    <section aria-labelledby="trends-title">
      <h1 id="trends-title">Sensor trends</h1>
      <Loaded resource={sensors} what="the sensor list">
        {(list) =>
          list.data.length === 0 ? (
            <Empty title="No sensors yet.">
              Start the simulator with <code>canopy simulate</code> (or <code>npm start</code>), or
              send readings to <code>POST /api/data</code>; their sensors appear here.
            </Empty>
          ) : (
            <Trends params={params} sensors={list.data} />
          )
        }
      </Loaded>
    </section>
  );
}

function Trends({ params, sensors }: { params: URLSearchParams; sensors: Sensor[] }) {
  const types = useMemo(
    () => [...new Set(sensors.map((s) => s.sensor_type).filter((t): t is string => !!t))].sort(),
    [sensors],
  );
  const chosenSensors = params.getAll('sensor');
  const type = chosenSensors.length > 0 ? null : (params.get('type') ?? types[0] ?? null);
  const location = params.get('location');
  const key = params.toString();
  const range = useMemo(() => rangeFromParams(params, '1h'), [key]);
  const chartArea = useRef<HTMLDivElement>(null);

  const ofType = useMemo(
    () =>
      type === null
        ? []
        : sensors
            .filter((s) => s.sensor_type === type && (!location || s.location === location))
            .map((s) => s.sensor_id)
            .sort(),
    [sensors, type, location],
  );
  // The server charts at most MAX_SERIES sensors a request: a larger type is cut to its first ones.
  const capped = chosenSensors.length === 0 && ofType.length > MAX_SERIES;

  const series = useResource(
    (signal) => {
      const current = range.preset === null ? range : rangeFromParams(params, '1h');
      const width = chartArea.current?.clientWidth ?? window.innerWidth;
      const points = Math.min(MAX_POINTS, Math.max(100, Math.round(width / 50) * 50));
      const what = capped
        ? { sensor: ofType.slice(0, MAX_SERIES) }
        : chosenSensors.length > 0
          ? { sensor: chosenSensors.slice(0, MAX_SERIES) }
          : { type: type ?? undefined, location: location ?? undefined };
      return getJson<SeriesResponse>(
        '/api/series',
        {
          ...what,
          from: new Date(current.from).toISOString(),
          to: new Date(current.to).toISOString(),
          points,
        },
        signal,
      );
    },
    [key, type],
    range.preset === null ? undefined : 30_000,
  );

  const go = (next: URLSearchParams) => navigate('/trends', next);
  // A fixed range remembers the preset it came from (`base`), for "Reset zoom".
  const zoomTo = (from: number, to: number) => {
    const next = withFixedRange(params, from, to);
    next.set('base', range.preset ?? params.get('base') ?? '1h');
    go(next);
  };
  const shift = (r: TimeRange, fraction: number) => {
    const span = r.to - r.from;
    zoomTo(r.from + span * fraction, r.to + span * fraction);
  };
  const scale = (r: TimeRange, factor: number) => {
    const middle = (r.from + r.to) / 2;
    const half = ((r.to - r.from) * factor) / 2;
    zoomTo(middle - half, middle + half);
  };
  const reset = () => go(withPreset(params, params.get('base') ?? '1h'));

  const locations = useMemo(
    () =>
      [
        ...new Set(
          sensors
            .filter((s) => type === null || s.sensor_type === type)
            .map((s) => s.location)
            .filter((l): l is string => !!l),
        ),
      ].sort(),
    [sensors, type],
  );
  const sensorsOfType = sensors.filter(
    (s) => (type === null || s.sensor_type === type) && (!location || s.location === location),
  );

  return (
    <>
      <form class="controls" onSubmit={(e) => e.preventDefault()} aria-label="What to chart">
        <label>
          Type{' '}
          <select
            value={type ?? ''}
            onChange={(e) => {
              const next = new URLSearchParams(params);
              next.delete('sensor');
              next.delete('location');
              next.set('type', e.currentTarget.value);
              go(next);
            }}
          >
            {chosenSensors.length > 0 ? <option value="">(chosen sensors)</option> : null}
            {types.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Location{' '}
          <select
            value={location ?? ''}
            disabled={chosenSensors.length > 0}
            onChange={(e) => {
              const next = new URLSearchParams(params);
              if (e.currentTarget.value === '') next.delete('location');
              else next.set('location', e.currentTarget.value);
              go(next);
            }}
          >
            <option value="">All locations</option>
            {locations.map((l) => (
              <option key={l} value={l}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label>
          Sensor{' '}
          <select
            value={chosenSensors.length === 1 ? chosenSensors[0] : ''}
            onChange={(e) => {
              const next = new URLSearchParams(params);
              next.delete('sensor');
              if (e.currentTarget.value === '') {
                if (type) next.set('type', type);
              } else {
                next.delete('type');
                next.delete('location');
                next.set('sensor', e.currentTarget.value);
              }
              go(next);
            }}
          >
            <option value="">
              {chosenSensors.length > 1 ? `${chosenSensors.length} sensors` : 'All of the type'}
            </option>
            {(chosenSensors.length > 0 ? sensors : sensorsOfType).map((s) => (
              <option key={s.sensor_id} value={s.sensor_id}>
                {s.sensor_id}
              </option>
            ))}
          </select>
        </label>
      </form>
      <RangePicker
        idPrefix="trends"
        range={range}
        onPreset={(p) => go(withPreset(params, p))}
        onFixed={zoomTo}
      />
      <div class="toolbar" role="group" aria-label="Zoom and pan">
        <button type="button" onClick={() => shift(range, -0.5)}>
          ← Earlier
        </button>
        <button type="button" onClick={() => scale(range, 0.5)}>
          Zoom in
        </button>
        <button type="button" onClick={() => scale(range, 2)}>
          Zoom out
        </button>
        <button type="button" onClick={() => shift(range, 0.5)}>
          Later →
        </button>
        <button type="button" onClick={reset} disabled={range.preset !== null}>
          Reset zoom
        </button>
        <span class="muted hint">
          Drag across a chart to zoom into that time; double-click to reset.
        </span>
      </div>
      {capped ? (
        <p class="muted" role="status">
          {type} has {ofType.length} sensors; charting the first {MAX_SERIES}. Choose a location to
          narrow it.
        </p>
      ) : null}
      <div ref={chartArea}>
        <Loaded resource={series} what="the series">
          {(data) => <SeriesCharts data={data} onSelect={zoomTo} onReset={reset} />}
        </Loaded>
      </div>
    </>
  );
}

function SeriesCharts({
  data,
  onSelect,
  onReset,
}: {
  data: SeriesResponse;
  onSelect: (from: number, to: number) => void;
  onReset: () => void;
}) {
  const charts = useMemo(() => buildSeriesCharts(data), [data]);
  const xRange = useMemo<[number, number]>(
    () => [Date.parse(data.from), Date.parse(data.to)],
    [data],
  );
  const total = charts.reduce((n, c) => n + c.pointCount, 0);
  if (data.series.length === 0 || total === 0)
    return (
      <Empty title="No readings in this range.">
        Choose a wider range, or check that the sensors report: the overview shows when each was
        last seen.
      </Empty>
    );
  return (
    <>
      <p class="muted" role="status">
        {data.series.length} series,{' '}
        {data.downsampled
          ? `downsampled to ${formatDuration(data.bucketMs)} buckets (mean line, min–max band for one sensor)`
          : 'every reading'}
        . Imputed values are hollow amber circles.
      </p>
      {charts.map((c) => (
        <Chart
          key={c.key}
          title={c.title}
          data={c.data}
          series={c.series}
          {...(c.bands ? { bands: c.bands } : {})}
          {...(c.unit ? { yLabel: c.unit } : {})}
          pointCount={c.pointCount}
          xRange={xRange}
          onSelectRange={onSelect}
          onReset={onReset}
        />
      ))}
    </>
  );
}
