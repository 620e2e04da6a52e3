/**
 * Imputation speed on the UCI air-quality file (13 measures, hourly, about
 * 9,400 steps), the work of the daily workflow's train and predict steps:
 *
 * - training: one forest per measure on `DEFAULT_MAX_TRAINING_ROWS` rows with
 *   the default gap rule, timed over all measures; the figure is the mean
 *   per forest, limit 10 s (the workflow trains in a worker thread, so this
 *   is time to a fresh model, not time the ingest path waits);
 * - prediction: 10 % of each measure's known values hidden at random (the
 *   evaluation's `random` scenario), then features built and values predicted
 *   for every hidden row, as the worker does; rows per second against the
 *   linear-interpolation baseline doing the same rows in the same run (the
 *   forest must stay within 50× of it, i.e. ≥ 0.02 × its rate).
 *
 * Verification: every hidden row whose gap is within the maximum is filled
 * with a finite value by both methods.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { readFrame } from '../../src/cli/impute.js';
import {
  createModel,
  DEFAULT_MAX_GAP_STEPS,
  DEFAULT_MAX_TRAINING_ROWS,
  featureRow,
  gapAround,
  hideForScenario,
  trainingSet,
  type ImputationModel,
  type SeriesFrame,
} from '../../src/ml/index.js';
import { repoRoot } from '../lib/load-process.js';
import { figure, type Scenario } from '../lib/types.js';

const DATASET = path.join(repoRoot, '..', 'shared', 'datasets', 'air-quality-uci.csv');
const SEED = 1;
const ROUNDS = 3;

function hidden(frame: SeriesFrame, measures: number[]): SeriesFrame & { hidden: number[][] } {
  const hiddenSteps = hideForScenario(frame, 'random', SEED, measures);
  const values = frame.values.map((series, m) => {
    const copy = Float64Array.from(series);
    for (const t of hiddenSteps[m]!) copy[t] = NaN;
    return copy;
  });
  return { ...frame, values, hidden: hiddenSteps };
}

interface Timed<T> {
  ms: number;
  value: T;
}

function timed<T>(work: () => T): Timed<T> {
  const start = process.hrtime.bigint();
  const value = work();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

/**
 * Features and predictions for every hidden row of every measure. Returns
 * the rows filled with a finite value and those the gap rule allows (a
 * hidden value inside a long real gap of the file is rightly left missing).
 */
function predictAll(
  frame: ReturnType<typeof hidden>,
  models: ImputationModel[],
): { filled: number; fillable: number } {
  let filled = 0;
  let fillable = 0;
  frame.measures.forEach((_, m) => {
    const series = frame.values[m]!;
    const rows = frame.hidden[m]!.map((t) => featureRow(frame, m, gapAround(series, t)));
    fillable += rows.filter((r) => r.gapLength <= DEFAULT_MAX_GAP_STEPS).length;
    for (const p of models[m]!.predict(rows))
      if (p.value !== null && Number.isFinite(p.value)) filled++;
  });
  return { filled, fillable };
}

export const imputation: Scenario = {
  name: 'imputation',
  title: 'Imputation on the air-quality file: forest training time and rows imputed per second',
  run() {
    readFileSync(DATASET); // a clear error when the dataset is not beside the repository
    const config = loadConfig({ env: {} }).config;
    const frame = readFrame(config, DATASET, 'air-quality-uci');
    const measures = frame.measures.map((_, m) => m);
    const visible = hidden(frame, measures);

    const training = timed(() =>
      measures.map((m) => {
        const train = trainingSet(visible, m, {
          maxRows: DEFAULT_MAX_TRAINING_ROWS,
          maxGapSteps: DEFAULT_MAX_GAP_STEPS,
          seed: SEED,
        });
        const model = createModel('forest', { forest: { seed: SEED } });
        model.fit(train);
        return model;
      }),
    );
    const forests = training.value;
    const linear = measures.map((m) => {
      const model = createModel('linear');
      model.fit(
        trainingSet(visible, m, {
          maxRows: DEFAULT_MAX_TRAINING_ROWS,
          maxGapSteps: DEFAULT_MAX_GAP_STEPS,
          seed: SEED,
        }),
      );
      return model;
    });

    const hiddenRows = visible.hidden.reduce((n, steps) => n + steps.length, 0);
    // Best of ROUNDS, alternating, so a disturbance falls on either side.
    let forestMs = Infinity;
    let linearMs = Infinity;
    let forestFilled = 0;
    let linearFilled = 0;
    let fillable = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const f = timed(() => predictAll(visible, forests));
      const l = timed(() => predictAll(visible, linear));
      forestMs = Math.min(forestMs, f.ms);
      linearMs = Math.min(linearMs, l.ms);
      forestFilled = f.value.filled;
      linearFilled = l.value.filled;
      fillable = f.value.fillable;
    }
    const forestRate = Math.round((hiddenRows / forestMs) * 1000);
    const linearRate = Math.round((hiddenRows / linearMs) * 1000);
    const ok = forestFilled === fillable && linearFilled === fillable;
    const msPerModel = Math.round(training.ms / measures.length);
    return Promise.resolve({
      figures: [
        figure(
          'imputation/predict-forest',
          forestRate,
          { name: 'linear interpolation on the same rows', value: linearRate },
          { kind: 'ratio', min: 0.02, text: '≥ 0.02 × linear interpolation (within 50×)' },
          ok,
        ),
        figure(
          'imputation/train-forest',
          msPerModel,
          { name: 'limit', value: 10_000 },
          { kind: 'max', max: 10_000, text: '< 10 s per forest' },
          ok,
          'ms',
        ),
      ],
      verification: {
        ackedReadings: hiddenRows,
        storedReadings: forestFilled,
        deadLetters: 0,
        errors: ok ? 0 : 1,
        ok,
        summary: `${hiddenRows} hidden values, ${fillable} within the gap rule; forest filled ${forestFilled}, linear ${linearFilled}`,
      },
      runs: [],
      parameters: {
        dataset: 'air-quality-uci.csv',
        steps: frame.values[0]!.length,
        measures: frame.measures.length,
        hiddenRows,
        trainingRowsPerMeasure: DEFAULT_MAX_TRAINING_ROWS,
        maxGapSteps: DEFAULT_MAX_GAP_STEPS,
        trainingMs: Math.round(training.ms),
        fillable,
        forestPredictMs: Math.round(forestMs),
        linearPredictMs: Math.round(linearMs),
        rounds: ROUNDS,
      },
    });
  },
};
