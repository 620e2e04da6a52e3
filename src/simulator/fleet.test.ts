import { describe, expect, it } from 'vitest';
import {
  ANOMALY_KINDS,
  LOCATIONS,
  SENSOR_TYPES,
  SENSOR_TYPE_SPECS,
  createFleet,
  type AnomalyKind,
  type GeneratedReading,
} from './fleet.js';
import { Rng, hash32 } from './prng.js';

const T0 = Date.UTC(2026, 10, 22, 0, 0, 0);
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UNITS: Record<string, string> = {
  temperature: 'C',
  humidity: '%',
  pressure: 'hPa',
  vibration: 'mm/s',
  soil_moisture: '%',
  light: 'lux',
  co2: 'ppm',
};

function take(n: number, seed = 1, from = T0): GeneratedReading[] {
  return [...createFleet({ seed }).readings({ from, count: n })];
}

describe('prng', () => {
  it('repeats a sequence for a seed and draws normals with mean 0 and sd 1', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);

    const g = new Rng(7);
    const n = 50_000;
    const draws = Array.from({ length: n }, () => g.gaussian());
    const mean = draws.reduce((s, x) => s + x, 0) / n;
    const sd = Math.sqrt(draws.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(sd - 1)).toBeLessThan(0.02);
  });

  it('hashes order-sensitively and handles integers beyond 32 bits', () => {
    expect(hash32(1, 2)).not.toBe(hash32(2, 1));
    expect(hash32(2 ** 40)).not.toBe(hash32(0));
    expect(hash32(-1)).toBe(hash32(-1));
  });
});

describe('fleet composition', () => {
  it('has 50 sensors over 7 types and 12 site/floor/zone locations', () => {
    const fleet = createFleet();
    expect(fleet.sensors).toHaveLength(50);
    expect(new Set(fleet.sensors.map((s) => s.type))).toEqual(new Set(SENSOR_TYPES));
    expect(new Set(fleet.sensors.map((s) => s.location))).toEqual(new Set(LOCATIONS));
    expect(LOCATIONS).toHaveLength(12);
    expect(new Set(fleet.sensors.map((s) => s.id)).size).toBe(50);
    for (const s of fleet.sensors) {
      expect(s.id).toMatch(/^sim-[a-z0-9-]+-\d{2}$/);
      expect(s.id).toMatch(/^[A-Za-z0-9._:/-]+$/); // the ingest contract's id alphabet
      expect(s.location).toMatch(/^(kew|wakehurst)\/floor-[12]\/zone-[abc]$/);
      expect(s.unit).toBe(UNITS[s.type]);
      expect(s.intervalMs).toBe(1000);
      expect(s.physicalMin).toBeLessThan(s.physicalMax);
    }
    expect(fleet.sensors[0]?.id).toBe('sim-temperature-01');
    expect(fleet.sensors.find((s) => s.type === 'soil_moisture')?.id).toBe('sim-soil-moisture-01');
  });

  it('takes its size, interval and rate from the options and rejects bad ones', () => {
    const fleet = createFleet({ sensors: 3, intervalMs: 60_000, anomalyRate: 0 });
    expect(fleet.sensors.map((s) => s.type)).toEqual(['temperature', 'humidity', 'pressure']);
    expect(fleet.sensors.every((s) => s.intervalMs === 60_000)).toBe(true);
    expect([...fleet.readings({ from: T0, count: 3000 })].every((g) => g.injected === null)).toBe(
      true,
    );
    expect(() => createFleet({ sensors: 0 })).toThrow(RangeError);
    expect(() => createFleet({ anomalyRate: 1.5 })).toThrow(RangeError);
    expect(() => createFleet({ intervalMs: 0.5 })).toThrow(RangeError);
  });
});

describe('generation', () => {
  it('is deterministic for a seed and differs between seeds', () => {
    const a = take(2000, 1);
    const b = take(2000, 1);
    const c = take(2000, 2);
    expect(b).toEqual(a);
    const values = (rs: GeneratedReading[]): (number | null)[] => rs.map((g) => g.reading.value);
    expect(values(c)).not.toEqual(values(a));
    // A second fleet object computes the same slot without generating the ones before it.
    const t = T0 + 12_345_000;
    expect(createFleet({ seed: 1 }).readingsAt(t)).toEqual(createFleet({ seed: 1 }).readingsAt(t));
  });

  it('readingsAt(t) gives the slot containing t, as the iterator does', () => {
    const fleet = createFleet();
    const t = T0 + 3_600_000;
    const fromIterator = [...fleet.readings({ from: t, to: t + 1000 })];
    expect(fleet.readingsAt(t + 999)).toEqual(fromIterator);
    expect(fleet.samplesAt(t)).toHaveLength(50);
    for (const g of fromIterator) expect(g.reading.timestamp).toBe(new Date(t).toISOString());
  });

  it('walks time in order: slot by slot, sensors in fleet order', () => {
    const fleet = createFleet({ sensors: 4, intervalMs: 250 });
    const samples = [...fleet.samples({ from: T0 + 10, to: T0 + 1010 })];
    // Slots start at T0 + 250, 500, 750, 1000 (the one at T0 is before `from`).
    expect(samples.map((s) => s.time)).toEqual(
      [250, 500, 750, 1000].flatMap((d) => Array<number>(4).fill(T0 + d)),
    );
    expect(samples.slice(0, 4).map((s) => s.sensor.id)).toEqual(fleet.sensors.map((s) => s.id));
  });

  it('injects about 2 % anomalies over 100k readings, of every kind', () => {
    const fleet = createFleet({ seed: 1 });
    const kinds = new Map<AnomalyKind, number>();
    let injected = 0;
    let n = 0;
    let slots = 0;
    let dropouts = 0;
    for (const s of fleet.samples({ from: T0, count: 100_000 })) {
      slots++;
      if (s.injected !== null) kinds.set(s.injected, (kinds.get(s.injected) ?? 0) + 1);
      if (s.reading === null) {
        dropouts++;
        expect(s.injected).toBe('dropout');
        continue;
      }
      n++;
      if (s.injected !== null) injected++;
    }
    const fraction = injected / n;
    expect(fraction).toBeGreaterThanOrEqual(0.015);
    expect(fraction).toBeLessThanOrEqual(0.025);
    for (const kind of ANOMALY_KINDS) expect(kinds.get(kind) ?? 0).toBeGreaterThan(0);
    // Dropouts come on top, about a tenth of the rate.
    expect(dropouts / slots).toBeLessThan(0.006);
  });

  it('follows the wire contract, with types, units and sane values', () => {
    const spike: number[] = [];
    const problems: string[] = [];
    const check = (ok: boolean, what: string, r: unknown): void => {
      if (!ok && problems.length < 10) problems.push(`${what}: ${JSON.stringify(r)}`);
    };
    const keys = [
      'sensor_id',
      'sensor_type',
      'value',
      'unit',
      'timestamp',
      'location',
      'anomaly_score',
    ];
    let outsideTypical = 0;
    let normal = 0;
    let nightLight = 0;
    // 30 hours so every phase of the daily cycles is covered.
    const fleet = createFleet({ seed: 3, intervalMs: 60_000 });
    const readings = [...fleet.readings({ from: T0, to: T0 + 30 * 3_600_000 })];
    expect(readings.length).toBeGreaterThan(50 * 30 * 60 * 0.99);
    for (const { reading: r, injected } of readings) {
      check(Object.keys(r).join() === keys.join(), 'keys', r);
      check(typeof r.sensor_id === 'string' && r.sensor_id !== '', 'sensor_id', r);
      check((SENSOR_TYPES as readonly string[]).includes(r.sensor_type), 'sensor_type', r);
      check(r.unit === UNITS[r.sensor_type], 'unit', r);
      check(ISO.test(r.timestamp), 'timestamp', r);
      check(r.value === null || Number.isFinite(r.value), 'value', r);
      check(r.anomaly_score >= 0 && r.anomaly_score <= 1, 'anomaly_score', r);
      check(/^[a-z]+\/floor-\d\/zone-[a-c]$/.test(r.location), 'location', r);
      const spec = SENSOR_TYPE_SPECS[r.sensor_type];
      if (injected === null) {
        normal++;
        const v = r.value;
        check(
          v !== null && v >= spec.physicalMin && v <= spec.physicalMax,
          'normal value in range',
          r,
        );
        const slack = (spec.typicalMax - spec.typicalMin) * 0.05;
        if (v === null || v < spec.typicalMin - slack || v > spec.typicalMax + slack)
          outsideTypical++;
        check(r.anomaly_score < 0.3, 'normal score low', r);
        const hour = new Date(r.timestamp).getUTCHours();
        if (r.sensor_type === 'light' && (hour < 6 || hour >= 20)) {
          nightLight++;
          check(v === 0, 'light is 0 at night', r);
        }
      } else if (injected === 'spike' && r.value !== null) {
        spike.push((r.value - spec.physicalMin) / (spec.physicalMax - spec.physicalMin));
      } else if (injected === 'null') {
        check(r.value === null, 'null anomaly has value null', r);
      }
    }
    expect(problems).toEqual([]);
    expect(nightLight).toBeGreaterThan(1000);
    expect(outsideTypical / normal).toBeLessThan(0.01);
    // Some spikes go beyond the physical range (a range check must catch them).
    expect(spike.some((x) => x > 1 || x < 0)).toBe(true);
  });

  it('gives injected readings a high device score most of the time', () => {
    let high = 0;
    let injected = 0;
    for (const g of take(100_000, 5)) {
      if (g.injected === null) continue;
      injected++;
      if (g.reading.anomaly_score > 0.5) high++;
    }
    expect(high / injected).toBeGreaterThan(0.8);
  });

  it('stuck sensors repeat one value; light reads 0 at night', () => {
    const fleet = createFleet({ seed: 1 });
    const bySensor = new Map<string, { v: number | null; injected: AnomalyKind | null }[]>();
    for (const s of fleet.samples({ from: T0, count: 200_000 })) {
      const list = bySensor.get(s.sensor.id) ?? [];
      list.push({ v: s.reading?.value ?? null, injected: s.injected });
      bySensor.set(s.sensor.id, list);
    }
    let stuckRuns = 0;
    for (const list of bySensor.values()) {
      for (let i = 1; i < list.length; i++) {
        const prev = list[i - 1];
        const cur = list[i];
        if (prev?.injected === 'stuck' && cur?.injected === 'stuck') {
          expect(cur.v).toBe(prev.v);
          stuckRuns++;
        }
      }
    }
    expect(stuckRuns).toBeGreaterThan(0);
    // T0 is midnight UTC: every light sensor reads exactly 0 unless an anomaly is injected.
    const lights = fleet
      .readingsAt(T0 + 2 * 3_600_000)
      .filter((g) => g.reading.sensor_type === 'light');
    expect(lights.length).toBeGreaterThan(0);
    for (const g of lights) if (g.injected === null) expect(g.reading.value).toBe(0);
  });
});
