import { describe, expect, it } from 'vitest';
import { deserializeModel, MIN_KNOWN_VALUES, type ModelMetadata } from '../ml/index.js';
import type { HistoryReading } from './lake-io.js';
import {
  frameFromJson,
  frameToJson,
  gridFrame,
  modelMatches,
  predictTarget,
  sensorModelName,
  sensorStep,
  trainSensorModel,
  wantedFeatures,
  type FrameJson,
  type TrainJob,
} from './sensor-models.js';

const MIN = 60_000;
const T0 = Date.UTC(2026, 10, 28);

const reading = (sensorId: string, eventTime: number, value: number | null): HistoryReading => ({
  sensorId,
  eventTime,
  value,
});

describe('gridFrame', () => {
  it('puts jittered readings on the nearest step; a measured value beats a missing one', () => {
    const frame = gridFrame(
      [
        reading('b', T0 + 2_000, 1),
        reading('a', T0 + MIN - 3_000, 5),
        reading('a', T0 + 2 * MIN + 29_000, null),
        reading('a', T0 + 3 * MIN, 7),
        reading('a', T0 + 3 * MIN + 10_000, null),
        reading('other-location', T0, 99),
      ],
      ['b', 'a'],
      MIN,
      T0,
      T0 + 4 * MIN,
    );
    expect(frame.measures).toEqual(['a', 'b']);
    expect(Array.from(frame.values[0]!)).toEqual([NaN, 5, NaN, 7]);
    expect(Array.from(frame.values[1]!)).toEqual([1, NaN, NaN, NaN]);
    const wire = JSON.parse(JSON.stringify(frameToJson(frame))) as FrameJson;
    expect(frameFromJson(wire)).toEqual(frame);
  });

  it('the step is the configured interval, else the median spacing of the sensor', () => {
    const spaced = [0, 10, 20, 35, 45].map((s) => reading('a', T0 + s * 1_000, 1));
    expect(sensorStep(30_000, spaced, 'a')).toBe(30_000);
    expect(sensorStep(null, spaced, 'a')).toBe(10_000);
    expect(sensorStep(null, [], 'a')).toBe(MIN);
  });
});

describe('sensorModelName', () => {
  it('keeps a lake-safe id and disambiguates one that had to change', () => {
    expect(sensorModelName('gh-temp.1')).toBe('sensor-gh-temp.1');
    const slash = sensorModelName('site/a');
    const underscore = sensorModelName('site_a');
    expect(slash).toMatch(/^sensor-site_a-[0-9a-f]{10}$/);
    expect(underscore).toBe('sensor-site_a');
    expect(slash).not.toBe(underscore);
  });
});

describe('modelMatches', () => {
  const frame = gridFrame([], ['a', 'b'], MIN, T0, T0 + 10 * MIN);
  const meta = (overrides: Partial<ModelMetadata>): ModelMetadata => ({
    name: 'sensor-a',
    version: 'v',
    kind: 'forest',
    measure: 'a',
    features: wantedFeatures(frame, 'a'),
    maxGapSteps: 6,
    trainingRows: 100,
    seed: 1,
    trainedAt: new Date(T0).toISOString(),
    library: { name: 'x', version: '1' },
    ...overrides,
  });
  const wanted = {
    name: 'sensor-a',
    kind: 'forest' as const,
    features: wantedFeatures(frame, 'a'),
    maxGapSteps: 6,
    trainedAfter: T0 - 1,
  };

  it('accepts the same model, and the linear fallback where a forest is wanted', () => {
    expect(modelMatches(meta({}), wanted)).toBe(true);
    expect(modelMatches(meta({ kind: 'linear' }), wanted)).toBe(true);
  });

  it('refuses another set of co-located sensors, gap rule, kind or an old model', () => {
    const wider = gridFrame([], ['a', 'b', 'c'], MIN, T0, T0 + 10 * MIN);
    expect(modelMatches(meta({ features: wantedFeatures(wider, 'a') }), wanted)).toBe(false);
    expect(modelMatches(meta({ maxGapSteps: 7 }), wanted)).toBe(false);
    expect(modelMatches(meta({ kind: 'mean' }), wanted)).toBe(false);
    expect(modelMatches(meta({ trainedAt: new Date(T0 - 2).toISOString() }), wanted)).toBe(false);
  });
});

describe('training and prediction', () => {
  /** A straight line with a 3-step gap and a 10-step gap. */
  const line = (t: number) => 2 + 0.5 * t;
  const gaps = new Set([20, 21, 22, ...Array.from({ length: 10 }, (_, i) => 40 + i)]);
  const readings = Array.from({ length: 80 }, (_, t) =>
    reading('a', T0 + t * MIN, gaps.has(t) ? null : line(t)),
  );
  const frame = gridFrame(readings, ['a'], MIN, T0, T0 + 80 * MIN);
  const job = (overrides: Partial<TrainJob>): TrainJob => ({
    sensorId: 'a',
    name: 'sensor-a',
    kind: 'linear',
    frame: frameToJson(frame),
    maxGapSteps: 5,
    maxRows: 500,
    seed: 1,
    trainedAt: T0,
    ...overrides,
  });

  it('predicts with the trained model: exact on the short gap, nothing on the long one', () => {
    const trained = trainSensorModel(job({}))!;
    expect(trained).toMatchObject({ kind: 'linear', measure: 'a', maxGapSteps: 5 });
    const eventTimes = [...gaps].map((t) => T0 + t * MIN);
    const target = {
      sensorId: 'a',
      model: { name: trained.name, version: trained.version },
      frame: frameToJson(frame),
      eventTimes,
    };
    const predictions = predictTarget(target, deserializeModel(trained).model, trained);
    const byStep = new Map(predictions.map((p) => [(p.eventTime - T0) / MIN, p.value]));
    for (const t of [20, 21, 22]) expect(byStep.get(t)).toBeCloseTo(line(t), 9);
    for (let t = 40; t < 50; t++) expect(byStep.get(t)).toBeNull();
  });

  it('falls back to linear with little history, and trains nothing without any', () => {
    const sparse = readings.map((r, t) => (t < MIN_KNOWN_VALUES / 2 ? r : { ...r, value: null }));
    const few = gridFrame(sparse, ['a'], MIN, T0, T0 + 80 * MIN);
    expect(trainSensorModel(job({ kind: 'forest', frame: frameToJson(few) }))?.kind).toBe('linear');
    const none = gridFrame([], ['a'], MIN, T0, T0 + 80 * MIN);
    expect(trainSensorModel(job({ frame: frameToJson(none) }))).toBeNull();
  });
});
