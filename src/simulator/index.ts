/**
 * The simulator: a seeded sensor fleet with injected anomalies, a runner that
 * sends it (or replays a CSV file) to MQTT, HTTP or a folder, and a stand-in
 * for the plant conservatory's HTTP API.
 */
export {
  ANOMALY_KINDS,
  LOCATIONS,
  SENSOR_TYPES,
  SENSOR_TYPE_SPECS,
  createFleet,
  type AnomalyKind,
  type Fleet,
  type FleetOptions,
  type FleetReading,
  type GeneratedReading,
  type RangeOptions,
  type Sample,
  type SensorType,
  type SensorTypeSpec,
  type SimSensor,
} from './fleet.js';
export {
  validateSimulatorOptions,
  type FileTarget,
  type HttpTarget,
  type MqttTarget,
  type SimulatorDeps,
  type SimulatorMode,
  type SimulatorOptions,
  type SimulatorTarget,
} from './options.js';
export { runSimulator, type SimulatorHandle, type SimulatorStats } from './run.js';
export { readLongCsv, type BadRow, type ReplayRow } from './replay.js';
export {
  PLANT_FAULT_KINDS,
  createPlantModel,
  defaultPlantFaults,
  plantAnswer,
  startPlantsServer,
  type Botanist,
  type PlantAnswer,
  type PlantFaults,
  type PlantModel,
  type PlantRecording,
  type PlantsServer,
  type PlantsServerOptions,
} from './plants.js';
export { LONG_CSV_HEADER, toLongCsv, toLongCsvRow, type SimReading } from './wire.js';
export { Rng, hash32 } from './prng.js';
