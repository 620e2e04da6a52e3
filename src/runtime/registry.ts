/**
 * The sensor registry: what Canopy knows about each sensor, from config and
 * from first sight. It fills `sensor_type`, `unit` and `location` on readings
 * that omit them, and answers the physical range the range check uses.
 *
 * Precedence for a range: the sensor's own `range`, then its type's in
 * config `sensorTypes`, then the built-in type. For unit: the reading's own,
 * then the sensor's, then its type's.
 */
import type { Reading } from '../core/reading.js';
import { BUILT_IN_SENSOR_TYPES, type PhysicalRange } from '../core/sensor-types.js';
import type { SensorRecord } from '../core/store.js';
import type { SensorConfig, SensorTypeConfig } from '../config/schema.js';

export class SensorRegistry {
  private readonly configured = new Map<string, SensorConfig>();
  private readonly types = new Map<
    string,
    {
      unit?: string | undefined;
      range?: PhysicalRange | undefined;
      intervalMs?: number | undefined;
    }
  >();
  /** Sensor ids already persisted in the store's sensors table. */
  private readonly known = new Set<string>();

  constructor(
    sensors: readonly SensorConfig[],
    sensorTypes: Readonly<Record<string, SensorTypeConfig>>,
  ) {
    for (const [name, builtIn] of Object.entries(BUILT_IN_SENSOR_TYPES))
      this.types.set(name, { ...builtIn });
    for (const [name, override] of Object.entries(sensorTypes)) {
      this.types.set(name, { ...this.types.get(name), ...stripUndefined(override) });
    }
    for (const sensor of sensors) this.configured.set(sensor.id, sensor);
  }

  /** Records for every configured sensor, to upsert at start. */
  configRecords(): SensorRecord[] {
    return [...this.configured.values()].map((s) => ({
      sensorId: s.id,
      sensorType: s.type ?? null,
      unit: s.unit ?? (s.type ? this.types.get(s.type)?.unit : undefined) ?? null,
      location: s.location ?? null,
      origin: 'config',
      intervalMs: s.intervalMs ?? (s.type ? this.types.get(s.type)?.intervalMs : undefined) ?? null,
      firstSeen: null,
    }));
  }

  markKnown(sensorIds: Iterable<string>): void {
    for (const id of sensorIds) this.known.add(id);
  }

  /** Unit and expected interval of every known type (built in, with config `sensorTypes` over it). */
  typeDefaults(): Record<string, { unit?: string | undefined; intervalMs?: number | undefined }> {
    return Object.fromEntries(
      [...this.types].map(([name, t]) => [name, { unit: t.unit, intervalMs: t.intervalMs }]),
    );
  }

  /** Expected interval per configured sensor (its own, else its type's), ms. */
  intervals(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [id, sensor] of this.configured) {
      const interval =
        sensor.intervalMs ?? (sensor.type ? this.types.get(sensor.type)?.intervalMs : undefined);
      if (interval !== undefined) out[id] = interval;
    }
    return out;
  }

  /** Every configured range, by type and by sensor: what the lake's SQL flags against. */
  ranges(): { byType: Record<string, PhysicalRange>; bySensor: Record<string, PhysicalRange> } {
    const byType: Record<string, PhysicalRange> = {};
    for (const [name, type] of this.types) if (type.range) byType[name] = type.range;
    const bySensor: Record<string, PhysicalRange> = {};
    for (const [id, sensor] of this.configured) if (sensor.range) bySensor[id] = sensor.range;
    return { byType, bySensor };
  }

  rangeFor = (sensorId: string, sensorType: string | null): PhysicalRange | undefined => {
    const own = this.configured.get(sensorId)?.range;
    if (own) return own;
    return sensorType ? this.types.get(sensorType)?.range : undefined;
  };

  /**
   * Fills missing descriptive fields in place, and returns a record to
   * persist when this is the first reading of an unknown sensor.
   */
  enrich(reading: Reading): SensorRecord | undefined {
    const sensor = this.configured.get(reading.sensorId);
    if (sensor) {
      reading.sensorType ??= sensor.type ?? null;
      reading.location ??= sensor.location ?? null;
      reading.unit ??= sensor.unit ?? null;
    }
    if (reading.unit === null && reading.sensorType !== null) {
      reading.unit = this.types.get(reading.sensorType)?.unit ?? null;
    }
    if (this.known.has(reading.sensorId)) return undefined;
    this.known.add(reading.sensorId);
    return {
      sensorId: reading.sensorId,
      sensorType: reading.sensorType,
      unit: reading.unit,
      location: reading.location,
      origin: 'discovered',
      intervalMs: reading.sensorType
        ? (this.types.get(reading.sensorType)?.intervalMs ?? null)
        : null,
      firstSeen: reading.eventTime,
    };
  }

  /** True when the sensor is configured or already registered (it adds no new label value). */
  isRegistered(sensorId: string): boolean {
    return this.known.has(sensorId) || this.configured.has(sensorId);
  }

  /** Distinct sensor ids registered so far (configured ones included once persisted). */
  get registeredCount(): number {
    return this.known.size;
  }

  /** Forget that a sensor was persisted (its upsert failed), so the next reading retries it. */
  forget(sensorId: string): void {
    this.known.delete(sensorId);
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
