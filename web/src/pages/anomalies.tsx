/**
 * Anomalies: a timeline scatter of flagged readings (time × value, one colour
 * per reason), filterable by sensor, type and reason, with the list below.
 */
import { useMemo } from 'preact/hooks';
import type uPlot from 'uplot';
import { getJson } from '../api.js';
import { Chart } from '../components/chart.js';
import { RangePicker } from '../components/range-picker.js';
import { Empty, Loaded, TableWrap } from '../components/states.js';
import { formatTime, formatValue } from '../format.js';
import { rangeFromParams, withFixedRange, withPreset, type TimeRange } from '../ranges.js';
import { useResource } from '../resource.js';
import { href, navigate } from '../router.js';
import { PALETTE } from '../theme.js';
import type { AnomaliesResponse, Sensor } from '../types.js';

const LIMIT = 5000;
const LISTED = 200;

export function AnomaliesPage({ params }: { params: URLSearchParams }) {
  const key = params.toString();
  const range = useMemo(() => rangeFromParams(params, '24h'), [key]);
  const sensor = params.get('sensor') ?? '';
  const type = params.get('type') ?? '';
  const reason = params.get('reason') ?? '';
  const sensors = useResource(
    (signal) => getJson<{ data: Sensor[] }>('/api/sensors', {}, signal),
    [],
  );
  const anomalies = useResource(
    (signal) => {
      const current = range.preset === null ? range : rangeFromParams(params, '24h');
      return getJson<AnomaliesResponse>(
        '/api/anomalies',
        {
          from: new Date(current.from).toISOString(),
          to: new Date(current.to).toISOString(),
          sensor,
          type,
          reason,
          limit: LIMIT,
        },
        signal,
      );
    },
    [key],
    range.preset === null ? undefined : 30_000,
  );
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value === '') next.delete(name);
    else next.set(name, value);
    navigate('/anomalies', next);
  };
  const types = [
    ...new Set(
      (sensors.data?.data ?? []).map((s) => s.sensor_type).filter((t): t is string => !!t),
    ),
  ].sort();
  const sensorIds = (sensors.data?.data ?? [])
    .filter((s) => type === '' || s.sensor_type === type)
    .map((s) => s.sensor_id)
    .sort();
  const reasons = anomalies.data?.reasons ?? [];

  return (
    <section aria-labelledby="anomalies-title">
      <h1 id="anomalies-title">Anomalies</h1>
      <form class="controls" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>
          Type{' '}
          <select value={type} onChange={(e) => set('type', e.currentTarget.value)}>
            <option value="">All types</option>
            {types.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Sensor{' '}
          <select value={sensor} onChange={(e) => set('sensor', e.currentTarget.value)}>
            <option value="">All sensors</option>
            {sensorIds.map((id) => (
              <option key={id}>{id}</option>
            ))}
          </select>
        </label>
        <label>
          Reason{' '}
          <select value={reason} onChange={(e) => set('reason', e.currentTarget.value)}>
            <option value="">All reasons</option>
            {[...new Set([...reasons, ...(reason ? [reason] : [])])].map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
      </form>
      <RangePicker
        idPrefix="anomalies"
        range={range}
        onPreset={(p) => navigate('/anomalies', withPreset(params, p))}
        onFixed={(from, to) => navigate('/anomalies', withFixedRange(params, from, to))}
      />
      <Loaded resource={anomalies} what="the anomalies">
        {(data) => <AnomalyView data={data} mixedTypes={type === ''} range={range} />}
      </Loaded>
    </section>
  );
}

function AnomalyView({
  data,
  mixedTypes,
  range,
}: {
  data: AnomaliesResponse;
  mixedTypes: boolean;
  range: TimeRange;
}) {
  // A preset range moves with each refresh; the axis shows the range as of this answer.
  const xRange = useMemo<[number, number]>(() => {
    if (range.preset === null) return [range.from, range.to];
    const now = Date.now();
    return [now - (range.to - range.from), now];
  }, [data, range]);
  const chart = useMemo(() => {
    const items = data.items
      .filter((a) => a.value !== null)
      .map((a) => ({ ...a, t: Date.parse(a.timestamp) }))
      .sort((a, b) => a.t - b.t);
    const reasons = [...new Set(items.map((a) => a.reasons[0] ?? 'unknown'))].sort();
    const xs = items.map((a) => a.t);
    const columns = reasons.map((r) =>
      items.map((a) => ((a.reasons[0] ?? 'unknown') === r ? a.value : null)),
    );
    const series: uPlot.Series[] = reasons.map((r, i) => {
      const color = PALETTE[(i + 2) % PALETTE.length]!;
      return {
        label: r,
        stroke: color,
        paths: () => null,
        points: { show: true, size: 7, stroke: color, fill: color },
      };
    });
    return { data: [xs, ...columns] as uPlot.AlignedData, series, count: items.length };
  }, [data]);

  if (data.items.length === 0)
    return (
      <Empty title="No anomalies in this range.">
        Widen the range or clear a filter. Anomalies are readings flagged by the range, z-score or
        device-score checks; the simulator injects some (<code>simulator.anomalyRate</code>).
      </Empty>
    );
  const listed = [...data.items]
    .sort((a, b) => b.timestamp.localeCompare(a.timestamp))
    .slice(0, LISTED);
  return (
    <>
      <Chart
        title={mixedTypes ? 'Flagged readings (values of mixed units)' : 'Flagged readings'}
        data={chart.data}
        series={chart.series}
        xRange={xRange}
        pointCount={chart.count}
      />
      {data.truncated ? (
        <p class="muted">
          Showing the newest {data.items.length} anomalies; narrow the range or filter to see all.
        </p>
      ) : null}
      <h2>Latest {Math.min(LISTED, data.items.length)}</h2>
      <TableWrap label="Anomalies">
        <table class="data-table">
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Sensor</th>
              <th scope="col">Type</th>
              <th scope="col">Location</th>
              <th scope="col" class="num">
                Value
              </th>
              <th scope="col">Reasons</th>
            </tr>
          </thead>
          <tbody>
            {listed.map((a) => (
              <tr key={`${a.sensor_id}@${a.timestamp}`}>
                <td>{formatTime(a.timestamp)}</td>
                <th scope="row">
                  <a href={href('/trends', { sensor: a.sensor_id })}>{a.sensor_id}</a>
                </th>
                <td>{a.sensor_type ?? '—'}</td>
                <td>{a.location ?? '—'}</td>
                <td class="num">{formatValue(a.value)}</td>
                <td>{a.reasons.join(', ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
    </>
  );
}
