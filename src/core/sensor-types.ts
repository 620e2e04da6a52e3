/**
 * Built-in sensor types: default unit and physical range. A value outside
 * the range cannot be a true measurement (a range anomaly). Config
 * `sensorTypes` and per-sensor `range` override these.
 */
export interface PhysicalRange {
  min: number;
  max: number;
}

export interface BuiltInSensorType {
  unit: string;
  range: PhysicalRange;
}

export const BUILT_IN_SENSOR_TYPES: Readonly<Record<string, BuiltInSensorType>> = {
  temperature: { unit: 'C', range: { min: -40, max: 85 } },
  humidity: { unit: '%', range: { min: 0, max: 100 } },
  pressure: { unit: 'hPa', range: { min: 300, max: 1100 } },
  vibration: { unit: 'mm/s', range: { min: 0, max: 100 } },
  soil_moisture: { unit: '%', range: { min: 0, max: 100 } },
  light: { unit: 'lux', range: { min: 0, max: 150_000 } },
  co2: { unit: 'ppm', range: { min: 0, max: 10_000 } },
};
