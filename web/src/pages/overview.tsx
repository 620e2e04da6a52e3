/**
 * Overview: active sensors, readings per second, open alerts by severity,
 * freshness, and each sensor's latest value and health. The figures and the
 * values follow /api/live without a reload.
 */
import { useMemo, useState } from 'preact/hooks';
import { getJson } from '../api.js';
import { Empty, Loaded, TableWrap } from '../components/states.js';
import { formatAgo, formatCount, formatRate, formatTime, formatValue } from '../format.js';
import { useLive } from '../live.js';
import { useResource } from '../resource.js';
import { href } from '../router.js';
import type { LiveReading, LiveStats, Overview, OverviewSensor } from '../types.js';

const HEALTH_TEXT: Record<OverviewSensor['health'], string> = {
  ok: 'OK',
  late: 'Late',
  silent: 'Silent',
  unknown: 'Unknown',
};

/** `plant-2` before `plant-10`. */
const naturalOrder = new Intl.Collator(undefined, { numeric: true });

export function OverviewPage() {
  const overview = useResource(
    (signal) => getJson<Overview>('/api/overview', {}, signal),
    [],
    30_000,
  );
  const [stats, setStats] = useState<LiveStats | null>(null);
  const [latest, setLatest] = useState<Map<string, LiveReading>>(() => new Map());
  const [filter, setFilter] = useState('');

  useLive('stats', setStats);
  useLive('readings', (readings) => {
    setLatest((previous) => {
      const next = new Map(previous);
      for (const r of readings) next.set(r.sensor_id, r);
      return next;
    });
  });

  return (
    <section aria-labelledby="overview-title">
      <h1 id="overview-title">Overview</h1>
      <Loaded resource={overview} what="the overview">
        {(data) => (
          <OverviewBody
            data={data}
            stats={stats}
            latest={latest}
            filter={filter}
            setFilter={setFilter}
          />
        )}
      </Loaded>
    </section>
  );
}

function OverviewBody({
  data,
  stats,
  latest,
  filter,
  setFilter,
}: {
  data: Overview;
  stats: LiveStats | null;
  latest: Map<string, LiveReading>;
  filter: string;
  setFilter: (f: string) => void;
}) {
  const alerts = stats?.openAlerts ?? data.openAlerts;
  const lastReadingAt = useMemo(() => {
    let newest = data.freshness.lastReadingAt;
    for (const r of latest.values())
      if (newest === null || r.timestamp > newest) newest = r.timestamp;
    return newest;
  }, [data, latest]);
  const needle = filter.trim().toLowerCase();
  const sensors = data.sensors
    .filter(
      (s) =>
        needle === '' ||
        s.sensor_id.toLowerCase().includes(needle) ||
        (s.sensor_type ?? '').toLowerCase().includes(needle) ||
        (s.location ?? '').toLowerCase().includes(needle),
    )
    .sort((a, b) => naturalOrder.compare(a.sensor_id, b.sensor_id));

  return (
    <>
      <div class="cards">
        <div class="card">
          <h2>Active sensors</h2>
          <p class="figure" data-testid="active-sensors">
            {formatCount(stats?.activeSensors ?? data.activeSensors)}
            <span class="muted"> / {formatCount(data.totalSensors)}</span>
          </p>
        </div>
        <div class="card">
          <h2>Readings per second</h2>
          <p class="figure" data-testid="readings-per-second">
            {formatRate(stats?.readingsPerSecond ?? data.readingsPerSecond)}
          </p>
        </div>
        <div class="card">
          <h2>Open alerts</h2>
          <p class="figure">
            <a href={href('/alerts', { state: 'active' })}>
              <span class="badge sev-critical">{alerts.critical} critical</span>{' '}
              <span class="badge sev-warning">{alerts.warning} warning</span>{' '}
              <span class="badge sev-info">{alerts.info} info</span>
            </a>
          </p>
        </div>
        <div class="card">
          <h2>Freshness</h2>
          <dl class="facts">
            <dt>Last reading</dt>
            <dd title={formatTime(lastReadingAt)}>{formatAgo(lastReadingAt)}</dd>
            <dt>Last lake export</dt>
            <dd title={formatTime(data.freshness.lastExportAt)}>
              {formatAgo(data.freshness.lastExportAt)}
            </dd>
            <dt>Last silver build</dt>
            <dd title={formatTime(data.freshness.lastSilverAt)}>
              {formatAgo(data.freshness.lastSilverAt)}
            </dd>
          </dl>
        </div>
      </div>

      <h2>Sensors</h2>
      {data.sensors.length === 0 ? (
        <Empty title="No readings yet.">
          Start the simulator with <code>canopy simulate</code> (or run <code>npm start</code>,
          which starts Canopy with simulated sensors), or send readings to{' '}
          <code>POST /api/data</code> or MQTT topic <code>iot/data</code>.
        </Empty>
      ) : (
        <>
          <label class="inline-field">
            Filter sensors{' '}
            <input
              type="search"
              value={filter}
              onInput={(e) => setFilter(e.currentTarget.value)}
              placeholder="id, type or location"
            />
          </label>
          <TableWrap label="Sensors">
            <table class="data-table">
              <caption class="visually-hidden">Latest value and health per sensor</caption>
              <thead>
                <tr>
                  <th scope="col">Sensor</th>
                  <th scope="col">Type</th>
                  <th scope="col">Location</th>
                  <th scope="col" class="num">
                    Latest
                  </th>
                  <th scope="col">Seen</th>
                  <th scope="col">Health</th>
                  <th scope="col" class="num">
                    Anomalies
                  </th>
                </tr>
              </thead>
              <tbody>
                {sensors.map((s) => {
                  const live = latest.get(s.sensor_id);
                  const value = live ? live.value : s.last_value;
                  const seen = live ? live.timestamp : s.last_seen;
                  return (
                    <tr key={s.sensor_id} data-sensor={s.sensor_id}>
                      <th scope="row">
                        <a href={href('/trends', { sensor: s.sensor_id })}>{s.sensor_id}</a>
                      </th>
                      <td>{s.sensor_type ?? '—'}</td>
                      <td>{s.location ?? '—'}</td>
                      <td class="num" data-testid="sensor-value">
                        {formatValue(value, s.unit)}
                        {live?.is_anomaly ? (
                          <span class="badge sev-warning" title="flagged as an anomaly">
                            !
                          </span>
                        ) : null}
                      </td>
                      <td title={formatTime(seen)}>{formatAgo(seen)}</td>
                      <td>
                        <span class={`health health-${live ? 'ok' : s.health}`}>
                          {HEALTH_TEXT[live ? 'ok' : s.health]}
                        </span>
                      </td>
                      <td class="num">{formatCount(s.anomalies)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </TableWrap>
          {sensors.length === 0 ? <p>No sensor matches “{filter}”.</p> : null}
        </>
      )}
    </>
  );
}
