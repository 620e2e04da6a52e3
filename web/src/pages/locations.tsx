/**
 * Locations: a heatmap of one measure by site, floor and zone (the parts of
 * a sensor's `location`). Each cell is a link to that location's sensors on
 * the trends page.
 */
import { useMemo } from 'preact/hooks';
import { getJson } from '../api.js';
import { Empty, Loaded } from '../components/states.js';
import { formatAgo, formatValue } from '../format.js';
import { useResource } from '../resource.js';
import { href, navigate } from '../router.js';
import type { LocationCell, LocationsResponse, Sensor } from '../types.js';

export function LocationsPage({ params }: { params: URLSearchParams }) {
  const sensors = useResource(
    (signal) => getJson<{ data: Sensor[] }>('/api/sensors', {}, signal),
    [],
  );
  return (
    <section aria-labelledby="locations-title">
      <h1 id="locations-title">Locations</h1>
      <Loaded resource={sensors} what="the sensor list">
        {(list) => {
          const measures = [
            ...new Set(list.data.map((s) => s.sensor_type).filter((t): t is string => !!t)),
          ].sort();
          if (measures.length === 0)
            return (
              <Empty title="No measures yet.">
                Start the simulator with <code>canopy simulate</code> (or <code>npm start</code>);
                each sensor type becomes a measure you can map here.
              </Empty>
            );
          const chosen = params.get('measure');
          const measure =
            chosen && measures.includes(chosen)
              ? chosen
              : measures.includes('temperature')
                ? 'temperature'
                : measures[0]!;
          return <Heatmap measure={measure} measures={measures} />;
        }}
      </Loaded>
    </section>
  );
}

function Heatmap({ measure, measures }: { measure: string; measures: string[] }) {
  const cells = useResource(
    (signal) => getJson<LocationsResponse>('/api/locations', { measure }, signal),
    [measure],
    15_000,
  );
  return (
    <>
      <form class="controls" onSubmit={(e) => e.preventDefault()}>
        <label>
          Measure{' '}
          <select
            value={measure}
            onChange={(e) =>
              navigate('/locations', new URLSearchParams({ measure: e.currentTarget.value }))
            }
          >
            {measures.map((m) => (
              <option key={m} value={m}>
                {m}
              </option>
            ))}
          </select>
        </label>
      </form>
      <Loaded resource={cells} what="the locations">
        {(data) =>
          data.cells.length === 0 ? (
            <Empty title={`No ${measure} readings with a location.`}>
              Give sensors a <code>location</code> such as <code>site-a/floor-1/zone-2</code> (in
              the reading or the sensors section of the config) to place them on this map.
            </Empty>
          ) : (
            <Grid data={data} />
          )
        }
      </Loaded>
    </>
  );
}

const NONE = '—';

/** Colour of a value between lo and hi: cool blue through green to warm red. */
function heat(value: number, lo: number, hi: number): string {
  const t = hi > lo ? (value - lo) / (hi - lo) : 0.5;
  const hue = 220 - 220 * Math.min(1, Math.max(0, t));
  return `hsl(${hue.toFixed(0)} 70% 72%)`;
}

function Grid({ data }: { data: LocationsResponse }) {
  const { sites, lo, hi } = useMemo(() => {
    const bySite = new Map<string, LocationCell[]>();
    for (const cell of data.cells) {
      const site = cell.site ?? cell.location;
      bySite.set(site, [...(bySite.get(site) ?? []), cell]);
    }
    const values = data.cells.map((c) => c.value).filter((v): v is number => v !== null);
    return {
      sites: [...bySite].sort(([a], [b]) => a.localeCompare(b)),
      lo: Math.min(...values),
      hi: Math.max(...values),
    };
  }, [data]);
  const unit = data.unit;

  return (
    <>
      <p
        class="scale"
        aria-label={`Colour scale from ${formatValue(lo, unit)} to ${formatValue(hi, unit)}`}
      >
        <span>{formatValue(lo, unit)}</span>
        <span class="scale-bar" aria-hidden="true" />
        <span>{formatValue(hi, unit)}</span>
      </p>
      {sites.map(([site, cells]) => {
        const floors = [...new Set(cells.map((c) => c.floor ?? NONE))].sort();
        const zones = [...new Set(cells.map((c) => c.zone ?? NONE))].sort();
        const at = (floor: string, zone: string) =>
          cells.find((c) => (c.floor ?? NONE) === floor && (c.zone ?? NONE) === zone);
        return (
          <div key={site} class="heatmap-site">
            <h2>{site}</h2>
            <div class="table-wrap">
              <table class="heatmap">
                <caption class="visually-hidden">
                  Mean latest {data.measure} at {site} by floor (rows) and zone (columns)
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Floor</th>
                    {zones.map((z) => (
                      <th key={z} scope="col">
                        {z}
                      </th>
                    ))}
                  </tr>
                </thead>
                <tbody>
                  {floors.map((floor) => (
                    <tr key={floor}>
                      <th scope="row">{floor}</th>
                      {zones.map((zone) => {
                        const cell = at(floor, zone);
                        if (!cell) return <td key={zone} class="heat-empty" />;
                        const style =
                          cell.value === null
                            ? undefined
                            : { background: heat(cell.value, lo, hi) };
                        return (
                          <td key={zone} class="heat-cell" style={style}>
                            <a
                              href={href('/trends', {
                                type: data.measure,
                                location: cell.location,
                              })}
                              title={`${cell.location}: ${cell.sensors.length} sensor(s), last seen ${formatAgo(cell.last_seen)}`}
                            >
                              <span class="heat-value">{formatValue(cell.value, unit)}</span>
                              <span class="heat-meta">
                                {cell.sensors.length} sensor{cell.sensors.length === 1 ? '' : 's'}
                              </span>
                            </a>
                          </td>
                        );
                      })}
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        );
      })}
    </>
  );
}
