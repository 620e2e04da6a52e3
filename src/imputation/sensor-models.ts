/**
 * Imputation of a stored sensor's missing readings: one model per sensor,
 * whose features (src/ml/features.ts) come from a frame of the sensor and
 * the other sensors at its location, on the sensor's own time grid.
 *
 * Contracts:
 * - Grid: steps of `stepMs` aligned to the epoch; a reading lands on the
 *   nearest step (devices jitter). A measured value wins over a missing one
 *   in the same step, and among measured values the later one wins.
 * - The frame's measures are sensor ids, sorted, the target among them, so
 *   a model's feature names say which co-located sensors it was trained on;
 *   when that set changes, the model is retrained (`modelMatches`).
 * - Pure functions of their input (plus the seed), so training and
 *   prediction can run in a worker thread from plain data.
 */
import { createHash } from 'node:crypto';
import {
  createModel,
  featureNames,
  featureRow,
  gapAround,
  MIN_KNOWN_VALUES,
  serializeModel,
  trainingSet,
  type ImputationModel,
  type ModelKind,
  type ModelMetadata,
  type SerializedModel,
  type SeriesFrame,
} from '../ml/index.js';
import type { HistoryReading } from './lake-io.js';

/** A frame in a form that survives JSON: NaN as null. */
export interface FrameJson {
  startMs: number;
  stepMs: number;
  measures: string[];
  values: (number | null)[][];
}

export function frameToJson(frame: SeriesFrame): FrameJson {
  return {
    startMs: frame.startMs,
    stepMs: frame.stepMs,
    measures: [...frame.measures],
    values: frame.values.map((series) => Array.from(series, (v) => (Number.isNaN(v) ? null : v))),
  };
}

export function frameFromJson(json: FrameJson): SeriesFrame {
  return {
    startMs: json.startMs,
    stepMs: json.stepMs,
    measures: json.measures,
    values: json.values.map((series) => Float64Array.from(series, (v) => v ?? NaN)),
  };
}

/** The step index of `eventTime` on the frame's grid (nearest step). */
export function stepOf(frame: Pick<SeriesFrame, 'startMs' | 'stepMs'>, eventTime: number): number {
  return Math.round((eventTime - frame.startMs) / frame.stepMs);
}

/**
 * The frame of `measures` (sensor ids) over [fromMs, toMs) on a grid of
 * `stepMs`, from readings of those sensors (others are ignored).
 */
export function gridFrame(
  readings: readonly HistoryReading[],
  measures: readonly string[],
  stepMs: number,
  fromMs: number,
  toMs: number,
): SeriesFrame {
  const startMs = Math.floor(fromMs / stepMs) * stepMs;
  const length = Math.max(2, Math.ceil((toMs - startMs) / stepMs));
  const sorted = [...measures].sort();
  const index = new Map(sorted.map((m, i) => [m, i]));
  const values = sorted.map(() => new Float64Array(length).fill(NaN));
  const frame = { startMs, stepMs, measures: sorted, values };
  for (const r of readings) {
    const m = index.get(r.sensorId);
    const t = stepOf(frame, r.eventTime);
    if (m === undefined || t < 0 || t >= length || r.value === null) continue;
    // Readings come sorted by time, so a later measured value overwrites.
    values[m]![t] = r.value;
  }
  return frame;
}

/**
 * The sensor's step: its configured interval, else the median distance
 * between its consecutive readings (at least a second), else a minute.
 */
export function sensorStep(
  intervalMs: number | null,
  readings: readonly HistoryReading[],
  sensorId: string,
): number {
  if (intervalMs !== null && intervalMs > 0) return intervalMs;
  const times = readings.filter((r) => r.sensorId === sensorId).map((r) => r.eventTime);
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++)
    if (times[i]! > times[i - 1]!) gaps.push(times[i]! - times[i - 1]!);
  if (gaps.length === 0) return 60_000;
  gaps.sort((a, b) => a - b);
  return Math.max(1_000, gaps[Math.floor(gaps.length / 2)]!);
}

/** A lake-safe model name for a sensor: `sensor-<id>`, with a hash suffix when the id had to change. */
export function sensorModelName(sensorId: string): string {
  const safe = sensorId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 100);
  if (safe === sensorId) return `sensor-${safe}`;
  const hash = createHash('sha256').update(sensorId).digest('hex').slice(0, 10);
  return `sensor-${safe}-${hash}`;
}

export function maxGapStepsFor(maxGapMs: number, stepMs: number): number {
  return Math.max(1, Math.floor(maxGapMs / stepMs));
}

/** What a current model for the sensor must look like. */
export interface ModelWanted {
  name: string;
  kind: ModelKind;
  features: string[];
  maxGapSteps: number;
  /** A model trained before this (epoch ms) is too old. */
  trainedAfter: number;
}

/**
 * Whether a stored model still serves: same features (co-located sensors),
 * gap rule and kind (or the fallback kind `linear` for a forest wanted) and
 * recent enough.
 */
export function modelMatches(meta: ModelMetadata, wanted: ModelWanted): boolean {
  return (
    meta.name === wanted.name &&
    (meta.kind === wanted.kind || (wanted.kind === 'forest' && meta.kind === 'linear')) &&
    meta.maxGapSteps === wanted.maxGapSteps &&
    Date.parse(meta.trainedAt) >= wanted.trainedAfter &&
    meta.features.length === wanted.features.length &&
    meta.features.every((f, i) => f === wanted.features[i])
  );
}

export function wantedFeatures(frame: SeriesFrame, sensorId: string): string[] {
  return featureNames(frame, frame.measures.indexOf(sensorId));
}

export interface TrainJob {
  sensorId: string;
  name: string;
  kind: ModelKind;
  frame: FrameJson;
  maxGapSteps: number;
  maxRows: number;
  seed: number;
  trainedAt: number;
}

/**
 * Trains the sensor's model on its measured values. A sensor with fewer
 * than MIN_KNOWN_VALUES of them gets a `linear` model instead of a forest
 * (interpolation needs no history); one with none gets no model (null).
 */
export function trainSensorModel(job: TrainJob): SerializedModel | null {
  const frame = frameFromJson(job.frame);
  const m = frame.measures.indexOf(job.sensorId);
  const train = trainingSet(frame, m, {
    maxRows: job.maxRows,
    maxGapSteps: job.maxGapSteps,
    seed: job.seed,
  });
  if (train.rows.length === 0) return null;
  const kind: ModelKind =
    job.kind === 'forest' && train.rows.length < MIN_KNOWN_VALUES ? 'linear' : job.kind;
  const model = createModel(kind, { maxGapSteps: job.maxGapSteps, forest: { seed: job.seed } });
  model.fit(train);
  return serializeModel(model, {
    name: job.name,
    measure: job.sensorId,
    features: train.features,
    trainingRows: train.rows.length,
    seed: job.seed,
    trainedAt: new Date(job.trainedAt),
  });
}

/** One sensor's share of a prediction step's input. */
export interface PredictionTarget {
  sensorId: string;
  model: { name: string; version: string };
  frame: FrameJson;
  /** Event times (epoch ms) of the readings to fill. */
  eventTimes: number[];
}

export interface Prediction {
  sensorId: string;
  eventTime: number;
  /** Null: not filled (the gap is longer than the model's maximum). */
  value: number | null;
  uncertainty: number | null;
  model: string;
  modelVersion: string;
}

/** Predicts the target's readings with its (loaded) model. */
export function predictTarget(
  target: PredictionTarget,
  model: ImputationModel,
  meta: Pick<ModelMetadata, 'name' | 'version'>,
): Prediction[] {
  const frame = frameFromJson(target.frame);
  const m = frame.measures.indexOf(target.sensorId);
  const series = frame.values[m]!;
  // Every target step is missing, whatever else shares its step on the grid.
  for (const eventTime of target.eventTimes) series[stepOf(frame, eventTime)] = NaN;
  const rows = target.eventTimes.map((eventTime) =>
    featureRow(frame, m, gapAround(series, stepOf(frame, eventTime))),
  );
  return model.predict(rows).map((p, i) => ({
    sensorId: target.sensorId,
    eventTime: target.eventTimes[i]!,
    value: p.value,
    uncertainty: p.uncertainty,
    model: meta.name,
    modelVersion: meta.version,
  }));
}
