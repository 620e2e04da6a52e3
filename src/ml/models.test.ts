import { describe, expect, it } from 'vitest';
import { isCanopyError } from '../core/errors.js';
import { featureNames, featureRow, gapAround } from './features.js';
import type { SeriesFrame } from './frame.js';
import { RandomForest } from './forest.js';
import {
  createModel,
  deserializeModel,
  serializeModel,
  type ImputationModel,
  type TrainingSet,
} from './models.js';
import { Rng } from './random.js';
import { trainingSet } from './training.js';

const HOUR = 3_600_000;

/** v(t) = 2t + 1 for t in 0..99, with 40..45 missing. */
function rampFrame(): SeriesFrame {
  const values = Float64Array.from({ length: 100 }, (_, t) =>
    t >= 40 && t <= 45 ? NaN : 2 * t + 1,
  );
  return { startMs: 0, stepMs: HOUR, measures: ['ramp'], values: [values] };
}

function fitted(kind: 'mean' | 'locf' | 'linear' | 'forest', train: TrainingSet, maxGapSteps = 48) {
  const model = createModel(kind, { maxGapSteps, forest: { trees: 20, seed: 3 } });
  model.fit(train);
  return model;
}

describe('baselines on a linear ramp (oracle by hand)', () => {
  const frame = rampFrame();
  const series = frame.values[0]!;
  const train = trainingSet(frame, 0, { maxRows: 1000, maxGapSteps: 10, seed: 1 });
  const gapRows = [40, 41, 42, 43, 44, 45].map((t) => featureRow(frame, 0, gapAround(series, t)));
  const values = (model: ImputationModel) => model.predict(gapRows).map((p) => p.value!);

  it('trains on every known value when there are fewer than maxRows', () => {
    expect(train.targets).toHaveLength(94);
    expect(train.features).toEqual(featureNames(frame, 0));
  });

  it('linear interpolation is exact inside the gap', () => {
    expect(values(fitted('linear', train))).toEqual([81, 83, 85, 87, 89, 91]);
  });

  it('last value carried forward repeats the value at step 39, errors 2·1 … 2·6', () => {
    const predicted = values(fitted('locf', train));
    expect(predicted).toEqual([79, 79, 79, 79, 79, 79]);
    const errors = predicted.map((p, i) => Math.abs(p - (2 * (40 + i) + 1)));
    expect(errors.reduce((a, b) => a + b) / 6).toBe(7); // a·(L+1)/2 with a = 2, L = 6
  });

  it('mean predicts the mean of the known values everywhere', () => {
    let sum = 0;
    for (let t = 0; t < 100; t++) if (t < 40 || t > 45) sum += 2 * t + 1;
    for (const v of values(fitted('mean', train))) expect(v).toBeCloseTo(sum / 94, 10);
  });

  it('falls back to the existing neighbour at the series edges', () => {
    const edge = Float64Array.from([NaN, NaN, 5, 7, NaN]);
    const f: SeriesFrame = { ...frame, values: [edge] };
    const rows = [0, 4].map((t) => featureRow(f, 0, gapAround(edge, t)));
    const tr = trainingSet(f, 0, { maxRows: 10, maxGapSteps: 1, seed: 1 });
    expect(
      fitted('locf', tr)
        .predict(rows)
        .map((p) => p.value),
    ).toEqual([5, 7]);
    expect(
      fitted('linear', tr)
        .predict(rows)
        .map((p) => p.value),
    ).toEqual([5, 7]);
  });

  it('a baseline reports its RMSE on the training rows as its uncertainty', () => {
    const model = fitted('locf', train);
    let squares = 0;
    train.rows.forEach((row, i) => {
      const estimate = Number.isNaN(row.before) ? row.after : row.before;
      squares += (estimate - train.targets[i]!) ** 2;
    });
    const expected = Math.sqrt(squares / train.rows.length);
    expect(expected).toBeGreaterThan(0);
    expect(model.predict(gapRows)[0]!.uncertainty).toBeCloseTo(expected, 10);
  });
});

describe('the maximum-gap rule', () => {
  it('leaves gaps longer than maxGapSteps missing, for every kind', () => {
    const frame = rampFrame(); // the gap is 6 steps long
    const train = trainingSet(frame, 0, { maxRows: 1000, maxGapSteps: 5, seed: 1 });
    const row = featureRow(frame, 0, gapAround(frame.values[0]!, 42));
    for (const kind of ['mean', 'locf', 'linear', 'forest'] as const) {
      expect(fitted(kind, train, 5).predict([row])).toEqual([{ value: null, uncertainty: null }]);
      expect(fitted(kind, train, 6).predict([row])[0]!.value).not.toBeNull();
    }
  });
});

/**
 * Two co-located measures over 60 days, hourly: x follows a daily sinusoid
 * plus noise, y = 3x + 5 plus a little noise. Every 7th step of x is missing.
 */
function sinusoidFrame(): SeriesFrame {
  const rng = new Rng(11);
  const n = 24 * 60;
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    x[t] = 10 * Math.sin((2 * Math.PI * t) / 24) + 2 * (rng.next() - 0.5);
    y[t] = 3 * x[t]! + 5 + 0.2 * (rng.next() - 0.5);
  }
  return { startMs: 0, stepMs: HOUR, measures: ['x', 'y'], values: [x, y] };
}

describe('forest on a daily sinusoid with a correlated measure', () => {
  it('beats the mean by far and linear interpolation on day-long gaps', () => {
    const frame = sinusoidFrame();
    const truth = Float64Array.from(frame.values[0]!);
    // hide x in two 24-step gaps, train on the rest
    const hidden = [...Array(24).keys()].flatMap((i) => [300 + i, 900 + i]);
    const x = frame.values[0]!;
    for (const t of hidden) x[t] = NaN;
    const train = trainingSet(frame, 0, { maxRows: 2000, maxGapSteps: 48, seed: 2 });
    const rows = hidden.map((t) => featureRow(frame, 0, gapAround(x, t)));
    const mae = (kind: 'mean' | 'linear' | 'forest'): number => {
      const predicted = fitted(kind, train).predict(rows);
      return (
        predicted.reduce((s, p, i) => s + Math.abs(p.value! - truth[hidden[i]!]!), 0) / rows.length
      );
    };
    const forest = mae('forest');
    // the mean of a sinusoid of amplitude 10 misses by 2·10/π ≈ 6.4 on average
    expect(mae('mean')).toBeGreaterThan(5);
    expect(forest).toBeLessThan(mae('mean') / 4);
    expect(forest).toBeLessThan(mae('linear') / 2);
  });

  it('gives a spread of the trees as uncertainty, and is deterministic for a seed', () => {
    const frame = sinusoidFrame();
    const train = trainingSet(frame, 0, { maxRows: 500, maxGapSteps: 24, seed: 2 });
    const row = featureRow(frame, 0, gapAround(frame.values[0]!, 100, 95, 110));
    const a = fitted('forest', train).predict([row])[0]!;
    const b = fitted('forest', train).predict([row])[0]!;
    expect(a).toEqual(b);
    expect(a.uncertainty).toBeGreaterThan(0);
  });
});

describe('RandomForest', () => {
  it('learns a step function exactly, sending NaN features the way the data says', () => {
    const rows = [...Array(200).keys()].map((i) => [i % 2 === 0 ? i : NaN]);
    const targets = rows.map((r) => (Number.isNaN(r[0]!) ? 7 : r[0]! < 100 ? 1 : 4));
    const forest = RandomForest.train(rows, targets, {
      trees: 5,
      maxDepth: 4,
      minLeaf: 1,
      featureFraction: 1,
      bins: 16,
      seed: 1,
    });
    const predict = (x: number) => forest.treePredictions([x]);
    expect(predict(10)).toEqual([1, 1, 1, 1, 1]);
    expect(predict(150)).toEqual([4, 4, 4, 4, 4]);
    expect(predict(NaN)).toEqual([7, 7, 7, 7, 7]);
  });
});

describe('serialisation', () => {
  const frame = sinusoidFrame();
  const train = trainingSet(frame, 0, { maxRows: 300, maxGapSteps: 24, seed: 2 });
  const rows = [50, 51, 52].map((t) =>
    featureRow(frame, 0, gapAround(frame.values[0]!, t, 50, 52)),
  );
  const meta = {
    name: 'x-forest',
    measure: 'x',
    features: train.features,
    trainingRows: train.rows.length,
    seed: 3,
  };

  it('round-trips every kind through JSON with the same predictions', () => {
    for (const kind of ['mean', 'locf', 'linear', 'forest'] as const) {
      const model = fitted(kind, train, 24);
      const json = serializeModel(model, { ...meta, trainedAt: new Date(0) });
      expect(json).toMatchObject({
        format: 'canopy.imputation-model',
        kind,
        measure: 'x',
        maxGapSteps: 24,
        trainingRows: 300,
        trainedAt: '1970-01-01T00:00:00.000Z',
      });
      const back = deserializeModel(JSON.parse(JSON.stringify(json)));
      expect(back.meta.version).toBe(json.version);
      expect(back.model.predict(rows)).toEqual(model.predict(rows));
    }
  });

  it('versions by content: same training, same version whenever trained; new data, new version', () => {
    const a = serializeModel(fitted('forest', train, 24), { ...meta, trainedAt: new Date(0) });
    const b = serializeModel(fitted('forest', train, 24), { ...meta, trainedAt: new Date(1e12) });
    expect(a.version).toMatch(/^[0-9a-f]{16}$/);
    expect(b.version).toBe(a.version);
    const other = trainingSet(frame, 0, { maxRows: 300, maxGapSteps: 24, seed: 9 });
    const c = serializeModel(fitted('forest', other, 24), { ...meta, trainedAt: new Date(0) });
    expect(c.version).not.toBe(a.version);
  });

  it('refuses what is not a model', () => {
    for (const bad of [
      null,
      { format: 'other' },
      { format: 'canopy.imputation-model', formatVersion: 1, kind: 'svm' },
    ]) {
      let caught: unknown;
      try {
        deserializeModel(bad);
      } catch (err) {
        caught = err;
      }
      expect(isCanopyError(caught, 'CANOPY_IMPUTATION_MODEL_INVALID')).toBe(true);
    }
  });
});
