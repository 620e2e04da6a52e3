/**
 * Pre-generated payloads: realistic readings from the simulator's seeded
 * fleet (DESIGN §2 wire form, 50 sensors by default), encoded before any
 * timing starts so that generation is never measured.
 *
 * Every reading of every set is distinct: the fleet is walked once, set after
 * set, so (sensor_id, timestamp) never repeats within a load process. Event
 * times end in the recent past (within the hot window, never in the future).
 */
import { createFleet } from '../../src/simulator/index.js';
import type { LoadParams } from './protocol.js';

export interface Unit {
  payload: Buffer;
  readings: number;
}

export interface PayloadSets {
  sets: Map<string, Unit[]>;
  readings: number;
  bytes: number;
}

const INTERVAL_MS = 1000;

export function generatePayloads(params: LoadParams): PayloadSets {
  const total = params.sets.reduce((sum, s) => sum + s.units * params.readingsPerUnit, 0);
  // Dropouts leave slots without a reading: leave room so the last slot is still in the past.
  const span = Math.ceil((total / params.sensors) * 1.1 + 60) * INTERVAL_MS;
  const fleet = createFleet({
    sensors: params.sensors,
    seed: params.seed,
    intervalMs: INTERVAL_MS,
    start: Math.floor((Date.now() - span) / INTERVAL_MS) * INTERVAL_MS,
  });
  const source = fleet.readings({ count: total });
  const next = (): object => {
    const item = source.next();
    if (item.done) throw new Error('the fleet ran out of readings');
    return item.value.reading;
  };

  const sets = new Map<string, Unit[]>();
  let bytes = 0;
  for (const spec of params.sets) {
    if (spec.encoding === 'json-object' && params.readingsPerUnit !== 1) {
      throw new Error('json-object payloads carry exactly one reading');
    }
    const units: Unit[] = new Array<Unit>(spec.units);
    for (let u = 0; u < spec.units; u++) {
      let text: string;
      if (spec.encoding === 'json-object') {
        text = JSON.stringify(next());
      } else {
        const batch: object[] = new Array<object>(params.readingsPerUnit);
        for (let i = 0; i < params.readingsPerUnit; i++) batch[i] = next();
        text =
          spec.encoding === 'json-array'
            ? JSON.stringify(batch)
            : batch.map((r) => JSON.stringify(r)).join('\n') + '\n';
      }
      const payload = Buffer.from(text);
      bytes += payload.length;
      units[u] = { payload, readings: params.readingsPerUnit };
    }
    sets.set(spec.name, units);
  }
  return { sets, readings: total, bytes };
}
