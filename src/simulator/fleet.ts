/**
 * A simulated sensor fleet: fixed sensors (type, unit, location, interval)
 * whose readings follow daily cycles with gaussian noise, plus injected
 * anomalies with a ground-truth label.
 *
 * Every reading is a pure function of (seed, sensor, slot): slot k of a sensor
 * is the reading due at `start + k * intervalMs`. Nothing is carried from one
 * reading to the next, so `readingsAt(t)` for any t, an iterator over a range
 * and a second process with the same seed all agree, and continuous mode can
 * resume anywhere. Anomalies that span several readings (drift, stuck,
 * dropout) are laid out per block of slots, again from the seed alone.
 *
 * Daily cycles follow UTC (both sites are in the UK): light is exactly 0
 * outside 06:00–20:00 UTC unless an anomaly is injected.
 */
import { BUILT_IN_SENSOR_TYPES } from '../core/sensor-types.js';
import { Rng, hash32 } from './prng.js';

export const SENSOR_TYPES = [
  'temperature',
  'humidity',
  'pressure',
  'vibration',
  'soil_moisture',
  'light',
  'co2',
] as const;
export type SensorType = (typeof SENSOR_TYPES)[number];

export const ANOMALY_KINDS = ['spike', 'drift', 'stuck', 'dropout', 'null'] as const;
/**
 * - spike: one value far outside normal; about half of them beyond the physical range.
 * - drift: the sensor ramps away from the truth over 30–120 readings (0.5–2 min at 1 Hz).
 * - stuck: the sensor repeats one value for 10–40 readings.
 * - dropout: no reading at all for 10–30 slots.
 * - null: a known-missing value (`value: null`).
 */
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

/** Unit, ranges and display precision of each simulated type. */
export interface SensorTypeSpec {
  unit: string;
  /** Physical range: a value outside cannot be a true measurement. From `core/sensor-types`. */
  physicalMin: number;
  physicalMax: number;
  /** Where normal readings live (a few noisy ones may stray slightly). */
  typicalMin: number;
  typicalMax: number;
  /** Decimals the value is rounded to. */
  decimals: number;
}

function spec(
  type: SensorType,
  typicalMin: number,
  typicalMax: number,
  decimals: number,
): SensorTypeSpec {
  const builtIn = BUILT_IN_SENSOR_TYPES[type];
  if (builtIn === undefined) throw new Error(`no built-in sensor type ${type}`);
  return {
    unit: builtIn.unit,
    physicalMin: builtIn.range.min,
    physicalMax: builtIn.range.max,
    typicalMin,
    typicalMax,
    decimals,
  };
}

export const SENSOR_TYPE_SPECS: Readonly<Record<SensorType, SensorTypeSpec>> = {
  temperature: spec('temperature', 18, 26, 2),
  humidity: spec('humidity', 35, 75, 1),
  pressure: spec('pressure', 990, 1035, 2),
  vibration: spec('vibration', 0.3, 3, 3),
  soil_moisture: spec('soil_moisture', 22, 72, 1),
  light: spec('light', 0, 20_000, 0),
  co2: spec('co2', 400, 1200, 0),
};

export const SITES = ['kew', 'wakehurst'] as const;
export const FLOORS = ['floor-1', 'floor-2'] as const;
export const ZONES = ['zone-a', 'zone-b', 'zone-c'] as const;
/** `site/floor/zone`, 2 × 2 × 3 = 12 locations. */
export const LOCATIONS: readonly string[] = SITES.flatMap((site) =>
  FLOORS.flatMap((floor) => ZONES.map((zone) => `${site}/${floor}/${zone}`)),
);

/** A sensor's fixed metadata, enough for the platform to register it. */
export interface SimSensor {
  /** e.g. `sim-temperature-01`, `sim-soil-moisture-02` (ids avoid `_`, which sensor ids may not hold). */
  id: string;
  type: SensorType;
  unit: string;
  location: string;
  intervalMs: number;
  physicalMin: number;
  physicalMax: number;
}

/** The wire form of DESIGN §2, with the fields in its order. */
export interface FleetReading {
  sensor_id: string;
  sensor_type: SensorType;
  value: number | null;
  unit: string;
  timestamp: string;
  location: string;
  anomaly_score: number;
}

/** A reading with its ground truth: which anomaly (if any) was injected. */
export interface GeneratedReading {
  reading: FleetReading;
  /** Never 'dropout': a dropout emits no reading. */
  injected: AnomalyKind | null;
}

/** One slot of one sensor: a reading, or a dropout (reading null). */
export interface Sample {
  sensor: SimSensor;
  /** Event time of the slot, epoch ms. */
  time: number;
  reading: FleetReading | null;
  injected: AnomalyKind | null;
}

export interface FleetOptions {
  /** Number of sensors, spread round-robin over the 7 types and 12 locations. Default 50. */
  sensors?: number;
  /** Seed of every random draw. Default 1. */
  seed?: number;
  /** Event time of slot 0, epoch ms. Default 0, so slots fall on multiples of the interval. */
  start?: number;
  /** Interval between two readings of one sensor, ms. Default 1000. */
  intervalMs?: number;
  /**
   * Expected fraction of emitted readings that carry an injected anomaly
   * (spike, drift, stuck, null). On top, about anomalyRate / 10 of all slots
   * are dropouts (no reading). Default 0.02. Accurate up to about 0.15; above,
   * multi-reading anomalies saturate and the realised rate falls short.
   */
  anomalyRate?: number;
}

export interface RangeOptions {
  /** First event time included, epoch ms. Default: the fleet's `start`. */
  from?: number;
  /** First event time excluded, epoch ms. Default: no end. */
  to?: number;
  /** Stop after this many items. Default: no limit. */
  count?: number;
}

export interface Fleet {
  readonly sensors: readonly SimSensor[];
  readonly seed: number;
  readonly start: number;
  readonly intervalMs: number;
  readonly anomalyRate: number;
  /** Every sensor's slot containing t, dropouts included. */
  samplesAt(t: number): Sample[];
  /** Every sensor's reading for the slot containing t (timestamp = slot start); dropouts left out. */
  readingsAt(t: number): GeneratedReading[];
  /** Slots in time order (then sensor order), dropouts included; `count` counts samples. */
  samples(range?: RangeOptions): Generator<Sample>;
  /** Readings in time order (then sensor order); `count` counts readings. */
  readings(range?: RangeOptions): Generator<GeneratedReading>;
}

// Purposes of the derived random streams; distinct so that draws never overlap.
const SALT_PARAMS = 1;
const SALT_SITE = 2;
const SALT_NOISE = 3;
const SALT_EVENT = 4;
const SALT_EPISODE = 5;
const SALT_BURST = 6;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Multi-reading anomalies are placed at most one per block of this many slots. */
const EPISODE_BLOCK = 600;

interface EpisodeKind {
  kind: 'drift' | 'stuck' | 'dropout';
  /**
   * Share of the anomaly rate, in readings. The weights of all kinds but
   * dropout sum to 1; dropouts come on top (they emit no reading).
   */
  weight: number;
  minLen: number;
  maxLen: number;
}

// Lengths are kept short: the spread of the realised rate over a window grows
// with the episode length (≈ ±0.17 points over 100k readings at rate 0.02).
const EPISODE_KINDS: readonly EpisodeKind[] = [
  { kind: 'drift', weight: 0.1, minLen: 30, maxLen: 120 },
  { kind: 'stuck', weight: 0.15, minLen: 10, maxLen: 40 },
  { kind: 'dropout', weight: 0.1, minLen: 10, maxLen: 30 },
];
const SPIKE_WEIGHT = 0.55;
const NULL_WEIGHT = 0.2;

/** Share of injected readings whose device score is high (> 0.5); the rest the device missed. */
const DETECTED_SHARE = 0.88;

interface SensorModel {
  sensor: SimSensor;
  index: number;
  spec: SensorTypeSpec;
  offset: number;
  amplitude: number;
  phaseHours: number;
  noise: number;
  lightFactor: number;
  waterPeriod: number;
  waterOffset: number;
  moistTop: number;
  moistBottom: number;
  co2Base: number;
  vibrationBase: number;
  siteOffset: number;
  sitePhase1: number;
  sitePhase2: number;
}

interface Episode {
  kind: EpisodeKind['kind'];
  startSlot: number;
  length: number;
  /** Drift only: signed size of the ramp at its end, in the type's unit. */
  driftSize: number;
}

function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}

function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  const r = Math.round(value * f) / f;
  return r === 0 ? 0 : r; // no -0 in JSON-bound values
}

function checkPositiveInt(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

/**
 * Builds a fleet. Sensor i gets type `SENSOR_TYPES[i % 7]` and location
 * `LOCATIONS[i % 12]`; the composition depends only on `sensors`, the values
 * on `seed`. Throws RangeError on invalid options.
 */
export function createFleet(options: FleetOptions = {}): Fleet {
  const count = options.sensors ?? 50;
  const seed = Math.trunc(options.seed ?? 1);
  const start = options.start ?? 0;
  const intervalMs = options.intervalMs ?? 1000;
  const anomalyRate = options.anomalyRate ?? 0.02;
  checkPositiveInt('sensors', count);
  checkPositiveInt('intervalMs', intervalMs);
  if (!Number.isFinite(start)) throw new RangeError(`start must be finite, got ${start}`);
  if (!(anomalyRate >= 0 && anomalyRate <= 1)) {
    throw new RangeError(`anomalyRate must be within 0..1, got ${anomalyRate}`);
  }

  const perType = new Map<SensorType, number>();
  const models: SensorModel[] = [];
  for (let index = 0; index < count; index++) {
    const type = SENSOR_TYPES[index % SENSOR_TYPES.length] as SensorType;
    const location = LOCATIONS[index % LOCATIONS.length] as string;
    const n = (perType.get(type) ?? 0) + 1;
    perType.set(type, n);
    const typeSpec = SENSOR_TYPE_SPECS[type];
    const sensor: SimSensor = {
      id: `sim-${type.replace(/_/g, '-')}-${String(n).padStart(2, '0')}`,
      type,
      unit: typeSpec.unit,
      location,
      intervalMs,
      physicalMin: typeSpec.physicalMin,
      physicalMax: typeSpec.physicalMax,
    };
    const p = new Rng(hash32(seed, index, SALT_PARAMS));
    // Sensors of one site share the weather, so pressure moves together there.
    const site = new Rng(
      hash32(seed, SITES.indexOf(location.split('/')[0] as (typeof SITES)[number]), SALT_SITE),
    );
    const waterPeriod = p.range(36, 72) * HOUR;
    models.push({
      sensor,
      index,
      spec: typeSpec,
      offset: p.range(-1, 1),
      amplitude: p.range(0.85, 1.1),
      phaseHours: p.range(-0.75, 0.75),
      noise: p.range(0.8, 1.2),
      lightFactor: p.range(0.55, 1),
      waterPeriod,
      waterOffset: p.range(0, waterPeriod),
      moistTop: p.range(60, 70),
      moistBottom: p.range(25, 35),
      co2Base: p.range(410, 450),
      vibrationBase: p.range(0.6, 1.1),
      siteOffset: site.range(-4, 4),
      sitePhase1: site.range(0, 2 * Math.PI),
      sitePhase2: site.range(0, 2 * Math.PI),
    });
  }

  // Slot shares: dropouts take d = rate × w; every other kind takes
  // rate × w × (1 − d) of the slots, which is rate × w of the emitted readings.
  const dropoutShare = anomalyRate * (EPISODE_KINDS.find((k) => k.kind === 'dropout')?.weight ?? 0);
  const slotShare = (kind: AnomalyKind, weight: number): number =>
    kind === 'dropout' ? dropoutShare : anomalyRate * weight * (1 - dropoutShare);
  // Per-block probability of each multi-reading kind, so that its expected
  // slot share is as above. Saturates (scaled to sum 1) at high rates.
  const episodeProbs = EPISODE_KINDS.map(
    (k) => (slotShare(k.kind, k.weight) * EPISODE_BLOCK) / ((k.minLen + k.maxLen) / 2),
  );
  const probSum = episodeProbs.reduce((a, b) => a + b, 0);
  if (probSum > 1) episodeProbs.forEach((p, i) => (episodeProbs[i] = p / probSum));
  const episodeShare = EPISODE_KINDS.reduce(
    (acc, k, i) => acc + ((episodeProbs[i] ?? 0) * (k.minLen + k.maxLen)) / 2 / EPISODE_BLOCK,
    0,
  );
  // Single-reading kinds only fire outside episodes; scale them up to compensate.
  const outside = Math.max(1e-9, 1 - episodeShare);
  const pSpike = Math.min(1, slotShare('spike', SPIKE_WEIGHT) / outside);
  const pNull = Math.min(1 - pSpike, slotShare('null', NULL_WEIGHT) / outside);

  function slotOf(t: number): number {
    return Math.floor((t - start) / intervalMs);
  }

  function episodeAt(m: SensorModel, slot: number): Episode | null {
    const block = Math.floor(slot / EPISODE_BLOCK);
    const r = new Rng(hash32(seed, m.index, block, SALT_EPISODE));
    const u = r.next();
    let acc = 0;
    for (let i = 0; i < EPISODE_KINDS.length; i++) {
      const k = EPISODE_KINDS[i] as EpisodeKind;
      acc += episodeProbs[i] ?? 0;
      if (u >= acc) continue;
      const length = r.int(k.minLen, k.maxLen);
      const startSlot = block * EPISODE_BLOCK + r.int(0, EPISODE_BLOCK - length);
      if (slot < startSlot || slot >= startSlot + length) return null;
      const span = m.spec.typicalMax - m.spec.typicalMin;
      const driftSize = (r.chance(0.5) ? 1 : -1) * span * r.range(1, 2.5);
      return { kind: k.kind, startSlot, length, driftSize };
    }
    return null;
  }

  /** The true value of a slot, noise included; depends on (seed, sensor, slot) only. */
  function normalValue(m: SensorModel, slot: number): number {
    const t = start + slot * intervalMs;
    const g = new Rng(hash32(seed, m.index, slot, SALT_NOISE));
    const utcHour = mod(t, DAY) / HOUR;
    const h = utcHour + m.phaseHours;
    const daily = Math.sin((2 * Math.PI * (h - 9)) / 24); // peaks at 15:00
    switch (m.sensor.type) {
      case 'temperature':
        return 22 + 0.7 * m.offset + 3 * m.amplitude * daily + 0.15 * m.noise * g.gaussian();
      case 'humidity':
        return 55 + 5 * m.offset - 12 * m.amplitude * daily + 0.8 * m.noise * g.gaussian();
      case 'pressure':
        return (
          1013 +
          m.siteOffset +
          0.5 * m.offset +
          5 * Math.sin((2 * Math.PI * t) / (127 * HOUR) + m.sitePhase1) +
          2 * Math.sin((2 * Math.PI * t) / (27 * HOUR) + m.sitePhase2) +
          0.15 * m.noise * g.gaussian()
        );
      case 'vibration': {
        const working = h >= 6 && h < 20 ? Math.sin((Math.PI * (h - 6)) / 14) : 0;
        const minute = Math.floor(t / 60_000);
        const b = new Rng(hash32(seed, m.index, minute, SALT_BURST));
        let burst = 0;
        if (b.chance(0.15)) {
          const from = b.int(0, 45);
          const length = b.int(5, 15);
          const second = mod(t, 60_000) / 1000;
          if (second >= from && second < from + length) burst = b.range(0.8, 1.6);
        }
        const v = m.vibrationBase + 0.3 * working + burst + 0.08 * m.noise * g.gaussian();
        return Math.max(0.05, v);
      }
      case 'soil_moisture': {
        const dried = mod(t - m.waterOffset, m.waterPeriod) / m.waterPeriod;
        return m.moistTop - (m.moistTop - m.moistBottom) * dried + 0.2 * m.noise * g.gaussian();
      }
      case 'light': {
        // Pure UTC hour, so "night" is the same for every sensor.
        if (utcHour < 6 || utcHour >= 20) return 0;
        const sun = Math.sin((Math.PI * (utcHour - 6)) / 14);
        const clouds = 0.9 + 0.1 * Math.cos((2 * Math.PI * t) / (2.7 * HOUR) + m.sitePhase1);
        return Math.max(0, 20_000 * m.lightFactor * sun * clouds * (1 + 0.02 * g.gaussian()));
      }
      case 'co2': {
        const occupied = h >= 7 && h < 19 ? Math.sin((Math.PI * (h - 7)) / 12) : 0;
        return m.co2Base + 650 * m.amplitude * occupied + 12 * m.noise * g.gaussian();
      }
    }
  }

  function spikeValue(m: SensorModel, normal: number, r: Rng): number {
    const s = m.spec;
    const span = s.typicalMax - s.typicalMin;
    if (r.chance(0.5)) {
      // Beyond the physical range: what a failing ADC or a loose wire reports.
      return r.chance(0.7)
        ? s.physicalMax + span * r.range(0.1, 1)
        : s.physicalMin - span * r.range(0.1, 1);
    }
    // Within the range but far from normal: head for the side with more room,
    // so the spike is not clamped back next to a normal value (light at night).
    const size = span * r.range(3, 6);
    const up = r.chance(0.5) ? normal + size <= s.physicalMax : normal - size < s.physicalMin;
    const v = up ? normal + size : normal - size;
    return Math.min(s.physicalMax, Math.max(s.physicalMin, v));
  }

  function score(r: Rng, injected: boolean): number {
    if (!injected) return round(0.25 * r.next() ** 2, 3);
    return round(r.chance(DETECTED_SHARE) ? r.range(0.6, 0.98) : r.range(0.05, 0.45), 3);
  }

  function sampleOf(m: SensorModel, slot: number): Sample {
    const time = start + slot * intervalMs;
    const r = new Rng(hash32(seed, m.index, slot, SALT_EVENT));
    const episode = episodeAt(m, slot);
    let injected: AnomalyKind | null = null;
    let value: number | null;
    if (episode !== null) {
      injected = episode.kind;
      if (episode.kind === 'dropout') return { sensor: m.sensor, time, reading: null, injected };
      if (episode.kind === 'stuck') {
        value = normalValue(m, episode.startSlot);
      } else {
        const progress = (slot - episode.startSlot + 1) / episode.length;
        value = normalValue(m, slot) + episode.driftSize * progress;
      }
    } else {
      const u = r.next();
      if (u < pSpike) {
        injected = 'spike';
        value = spikeValue(m, normalValue(m, slot), r);
      } else if (u < pSpike + pNull) {
        injected = 'null';
        value = null;
      } else {
        value = normalValue(m, slot);
      }
    }
    const reading: FleetReading = {
      sensor_id: m.sensor.id,
      sensor_type: m.sensor.type,
      value: value === null ? null : round(value, m.spec.decimals),
      unit: m.sensor.unit,
      timestamp: new Date(time).toISOString(),
      location: m.sensor.location,
      anomaly_score: score(r, injected !== null),
    };
    return { sensor: m.sensor, time, reading, injected };
  }

  function* samples(range: RangeOptions = {}): Generator<Sample> {
    const from = range.from ?? start;
    const limit = range.count ?? Infinity;
    let produced = 0;
    if (limit <= 0) return;
    for (let slot = Math.ceil((from - start) / intervalMs); ; slot++) {
      const time = start + slot * intervalMs;
      if (range.to !== undefined && time >= range.to) return;
      for (const m of models) {
        yield sampleOf(m, slot);
        if (++produced >= limit) return;
      }
    }
  }

  function* readings(range: RangeOptions = {}): Generator<GeneratedReading> {
    const limit = range.count ?? Infinity;
    let produced = 0;
    if (limit <= 0) return;
    for (const s of samples({ ...range, count: undefined })) {
      if (s.reading === null) continue;
      yield { reading: s.reading, injected: s.injected };
      if (++produced >= limit) return;
    }
  }

  return {
    sensors: models.map((m) => m.sensor),
    seed,
    start,
    intervalMs,
    anomalyRate,
    samplesAt: (t) => {
      const slot = slotOf(t);
      return models.map((m) => sampleOf(m, slot));
    },
    readingsAt: (t) => {
      const slot = slotOf(t);
      const out: GeneratedReading[] = [];
      for (const m of models) {
        const s = sampleOf(m, slot);
        if (s.reading !== null) out.push({ reading: s.reading, injected: s.injected });
      }
      return out;
    },
    samples,
    readings,
  };
}
