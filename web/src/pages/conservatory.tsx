/**
 * Conservatory: the plant view of the first reference system — each plant's
 * soil moisture and temperature, when it was last watered, and its botanist.
 */
import { useState } from 'preact/hooks';
import { getJson } from '../api.js';
import { Empty, Loaded } from '../components/states.js';
import { formatAgo, formatTime, formatValue } from '../format.js';
import { useResource } from '../resource.js';
import { href } from '../router.js';
import type { Plant } from '../types.js';

/** Below this soil moisture (%) a plant is shown as thirsty (the starter alert rule warns at 30). */
const THIRSTY_BELOW = 30;

type SortKey = 'name' | 'moisture' | 'watered';

const SORTS: Record<SortKey, (a: Plant, b: Plant) => number> = {
  name: (a, b) => (a.name ?? '').localeCompare(b.name ?? ''),
  moisture: (a, b) => (a.soil_moisture ?? Infinity) - (b.soil_moisture ?? Infinity),
  watered: (a, b) => (a.last_watered ?? '').localeCompare(b.last_watered ?? ''),
};

export function ConservatoryPage() {
  const plants = useResource(
    (signal) => getJson<{ plants: Plant[] }>('/api/plants', {}, signal),
    [],
    30_000,
  );
  const [sort, setSort] = useState<SortKey>('moisture');
  return (
    <section aria-labelledby="conservatory-title">
      <h1 id="conservatory-title">Conservatory</h1>
      <Loaded resource={plants} what="the plants">
        {(data) =>
          data.plants.length === 0 ? (
            <Empty title="No plants yet.">
              Plants come from the polled plants API: <code>npm start</code> (or{' '}
              <code>canopy up --simulate</code>) serves 50 and polls them each minute, or list your
              own endpoint under <code>poll:</code> with <code>format: plants</code>.
            </Empty>
          ) : (
            <>
              <form class="controls" onSubmit={(e) => e.preventDefault()}>
                <label>
                  Sort by{' '}
                  <select value={sort} onChange={(e) => setSort(e.currentTarget.value as SortKey)}>
                    <option value="moisture">Driest first</option>
                    <option value="watered">Longest since watering</option>
                    <option value="name">Name</option>
                  </select>
                </label>
              </form>
              <ul class="plants">
                {[...data.plants].sort(SORTS[sort]).map((p) => (
                  <PlantCard key={String(p.plant_id)} plant={p} />
                ))}
              </ul>
            </>
          )
        }
      </Loaded>
    </section>
  );
}

function PlantCard({ plant: p }: { plant: Plant }) {
  const thirsty = p.soil_moisture !== null && p.soil_moisture < THIRSTY_BELOW;
  const title = p.name ?? `Plant ${p.plant_id}`;
  return (
    <li class={`plant card${thirsty ? ' plant-thirsty' : ''}`}>
      <h2>
        <a
          href={href(
            '/trends',
            new URLSearchParams([
              ['sensor', p.sensors.soil_moisture],
              ['range', '24h'],
            ]),
          )}
        >
          {title}
        </a>
      </h2>
      <p class="muted">
        #{p.plant_id} · <code>{p.sensor_id}</code>
      </p>
      <dl class="facts">
        <dt>Soil moisture</dt>
        <dd>
          <meter
            min={0}
            max={100}
            low={THIRSTY_BELOW}
            high={80}
            optimum={55}
            value={p.soil_moisture ?? 0}
          >
            {formatValue(p.soil_moisture, '%')}
          </meter>{' '}
          {formatValue(p.soil_moisture, '%')}
          {thirsty ? <strong class="text-bad"> thirsty</strong> : null}
        </dd>
        <dt>Temperature</dt>
        <dd>{formatValue(p.temperature, '°C')}</dd>
        <dt>Last watered</dt>
        <dd title={formatTime(p.last_watered)}>{formatAgo(p.last_watered)}</dd>
        <dt>Botanist</dt>
        <dd>
          {p.botanist ? (
            <>
              {p.botanist.name ?? 'unnamed'}
              {p.botanist.email ? (
                <>
                  <a class="botanist-contact" href={`mailto:${p.botanist.email}`}>
                    {p.botanist.email}
                  </a>
                </>
              ) : null}
              {p.botanist.phone ? (
                <>
                  <a class="botanist-contact" href={`tel:${p.botanist.phone}`}>
                    {p.botanist.phone}
                  </a>
                </>
              ) : null}
            </>
          ) : (
            'none recorded'
          )}
        </dd>
        <dt>Recorded</dt>
        <dd title={formatTime(p.recorded_at)}>{formatAgo(p.recorded_at)}</dd>
      </dl>
    </li>
  );
}
