/**
 * The evaluation harness: hide known values, impute them, compare with the
 * truth.
 *
 * For each scenario, every measure gets its own hidden set, drawn from the
 * seed: `random` hides 10 % of the measure's known values; `gap-6h` and
 * `gap-24h` hide contiguous runs of 6 and 24 hours of known values (in steps
 * of the frame), placed at random, not overlapping or touching each other,
 * as many as cover about 10 % of the known values. `device-24h` hides
 * 24-hour runs in every measure at once (a whole-device outage), placed
 * where at least half of the evaluated measures are known, so the
 * co-located sensors cannot help. Then, per measure, each
 * method is trained on what remains visible (the hidden values of every
 * measure are missing, so nothing leaks), imputes the hidden steps, and is
 * scored by MAE and RMSE over the steps the gap rule lets it fill. A hidden
 * run that joins real missing values can grow past maxGapSteps and is then
 * counted as left missing, for every method alike.
 */
import { CanopyError } from '../core/errors.js';
import { featureRow, gapAround } from './features.js';
import { frameLength, type SeriesFrame } from './frame.js';
import type { ForestOptions } from './forest.js';
import { createModel, MODEL_KINDS, type ModelKind } from './models.js';
import { Rng, sampleWithoutReplacement } from './random.js';
import { DEFAULT_MAX_TRAINING_ROWS, trainingSet } from './training.js';

export const SCENARIOS = ['random', 'gap-6h', 'gap-24h', 'device-24h'] as const;
export type Scenario = (typeof SCENARIOS)[number];

const HOUR_MS = 3_600_000;
const HIDDEN_SHARE = 0.1;
/** Measures with fewer known values are not evaluated (too few to train and score). */
export const MIN_KNOWN_VALUES = 100;

export interface EvaluationOptions {
  seed: number;
  scenarios?: readonly Scenario[];
  methods?: readonly ModelKind[];
  /** Default: twice the longest scenario gap (48 steps for hourly data). */
  maxGapSteps?: number;
  maxTrainingRows?: number;
  /** See TrainingRowOptions.deviceOutageShare. */
  deviceOutageShare?: number;
  forest?: Partial<ForestOptions>;
}

export interface Score {
  mae: number;
  rmse: number;
}

export interface MeasureResult {
  measure: string;
  /** Known values hidden. */
  hidden: number;
  /** Hidden values the gap rule let the methods fill (the scored ones). */
  filled: number;
  /** Hidden values left missing by the gap rule. */
  leftMissing: number;
  /** Per method; null when nothing was filled. */
  scores: Partial<Record<ModelKind, Score | null>>;
}

export interface ScenarioResult {
  scenario: Scenario;
  /** Steps per hidden gap (1 for random). */
  gapSteps: number;
  measures: MeasureResult[];
}

export interface EvaluationReport {
  seed: number;
  steps: number;
  stepMs: number;
  maxGapSteps: number;
  methods: ModelKind[];
  /** Measures left out: fewer than MIN_KNOWN_VALUES known values. */
  skipped: string[];
  scenarios: ScenarioResult[];
}

/** Steps a scenario's gaps span on this frame (at least 1). */
export function scenarioGapSteps(scenario: Scenario, stepMs: number): number {
  if (scenario === 'random') return 1;
  const hours = scenario === 'gap-6h' ? 6 : 24; // gap-24h, device-24h
  return Math.max(1, Math.round((hours * HOUR_MS) / stepMs));
}

/**
 * The steps of `series` to hide, ascending. Only known steps are hidden.
 * Gaps: starts are drawn at random and kept when the whole run is known and
 * at least one step away from every run kept so far; drawing stops at the
 * target count or after 50 tries per wanted gap.
 */
export function hiddenSteps(
  series: Float64Array,
  pattern: 'random' | 'gaps',
  gapSteps: number,
  rng: Rng,
): number[] {
  const known: number[] = [];
  for (let t = 0; t < series.length; t++) if (!Number.isNaN(series[t]!)) known.push(t);
  if (pattern === 'random') {
    return sampleWithoutReplacement(known, Math.round(known.length * HIDDEN_SHARE), rng).sort(
      (a, b) => a - b,
    );
  }
  const wanted = Math.max(1, Math.floor((known.length * HIDDEN_SHARE) / gapSteps));
  const taken = new Uint8Array(series.length);
  const hidden: number[] = [];
  let gaps = 0;
  for (let attempt = 0; attempt < wanted * 50 && gaps < wanted; attempt++) {
    const start = rng.int(series.length - gapSteps + 1);
    let fits = true;
    for (let t = Math.max(0, start - 1); t <= Math.min(series.length - 1, start + gapSteps); t++) {
      if (taken[t] === 1) fits = false;
    }
    for (let t = start; t < start + gapSteps && fits; t++) {
      if (Number.isNaN(series[t]!)) fits = false;
    }
    if (!fits) continue;
    for (let t = start; t < start + gapSteps; t++) {
      taken[t] = 1;
      hidden.push(t);
    }
    gaps++;
  }
  return hidden.sort((a, b) => a - b);
}

/**
 * The steps hidden per measure (ascending; empty for measures not listed).
 * Each measure and scenario draws from its own stream of the seed, so
 * running one scenario alone hides what the full run hides.
 */
export function hideForScenario(
  frame: SeriesFrame,
  scenario: Scenario,
  seed: number,
  measures: readonly number[],
): number[][] {
  const gapSteps = scenarioGapSteps(scenario, frame.stepMs);
  const s = SCENARIOS.indexOf(scenario);
  if (scenario === 'device-24h') {
    const mostlyKnown = new Float64Array(frameLength(frame)).map((_, t) => {
      const known = measures.filter((m) => !Number.isNaN(frame.values[m]![t]!)).length;
      return 2 * known >= measures.length ? 0 : NaN;
    });
    const steps = hiddenSteps(mostlyKnown, 'gaps', gapSteps, Rng.derive(seed, s * 1000));
    return frame.values.map((series, m) =>
      measures.includes(m) ? steps.filter((t) => !Number.isNaN(series[t]!)) : [],
    );
  }
  const pattern = scenario === 'random' ? 'random' : 'gaps';
  return frame.values.map((series, m) =>
    measures.includes(m)
      ? hiddenSteps(series, pattern, gapSteps, Rng.derive(seed, s * 1000 + m))
      : [],
  );
}

function score(predicted: readonly number[], truth: readonly number[]): Score | null {
  if (truth.length === 0) return null;
  let abs = 0;
  let sq = 0;
  for (let i = 0; i < truth.length; i++) {
    const e = predicted[i]! - truth[i]!;
    abs += Math.abs(e);
    sq += e * e;
  }
  return { mae: abs / truth.length, rmse: Math.sqrt(sq / truth.length) };
}

/** Runs every scenario on the frame; see the module comment. Deterministic for a seed. */
export function evaluate(frame: SeriesFrame, options: EvaluationOptions): EvaluationReport {
  const scenarios = options.scenarios ?? SCENARIOS;
  const methods = [...(options.methods ?? MODEL_KINDS)];
  const maxGapSteps =
    options.maxGapSteps ?? 2 * Math.max(...scenarios.map((s) => scenarioGapSteps(s, frame.stepMs)));
  if (!Number.isInteger(maxGapSteps) || maxGapSteps < 1) {
    throw new CanopyError('CANOPY_IMPUTATION_BAD_INPUT', 'maxGapSteps must be an integer ≥ 1');
  }
  const evaluated: number[] = [];
  const skipped: string[] = [];
  frame.values.forEach((series, m) => {
    const known = series.reduce((n, v) => (Number.isNaN(v) ? n : n + 1), 0);
    if (known >= MIN_KNOWN_VALUES) evaluated.push(m);
    else skipped.push(frame.measures[m]!);
  });
  if (evaluated.length === 0) {
    throw new CanopyError(
      'CANOPY_IMPUTATION_BAD_INPUT',
      `no measure has ${MIN_KNOWN_VALUES} or more known values to evaluate on`,
    );
  }

  const results = scenarios.map((scenario): ScenarioResult => {
    const gapSteps = scenarioGapSteps(scenario, frame.stepMs);
    const s = SCENARIOS.indexOf(scenario);
    const hidden = hideForScenario(frame, scenario, options.seed, evaluated);
    const visible: SeriesFrame = {
      ...frame,
      values: frame.values.map((series, m) => {
        const copy = Float64Array.from(series);
        for (const t of hidden[m]!) copy[t] = NaN;
        return copy;
      }),
    };
    const measures = evaluated.map((m): MeasureResult => {
      const train = trainingSet(visible, m, {
        maxRows: options.maxTrainingRows ?? DEFAULT_MAX_TRAINING_ROWS,
        maxGapSteps,
        seed: options.seed + s,
        deviceOutageShare: options.deviceOutageShare,
      });
      const rows = hidden[m]!.map((t) => featureRow(visible, m, gapAround(visible.values[m]!, t)));
      const truth = hidden[m]!.map((t) => frame.values[m]![t]!);
      const scores: MeasureResult['scores'] = {};
      let filled = 0;
      for (const kind of methods) {
        const model = createModel(kind, {
          maxGapSteps,
          forest: { seed: options.seed, ...options.forest },
        });
        model.fit(train);
        const predictions = model.predict(rows);
        const predicted: number[] = [];
        const actual: number[] = [];
        predictions.forEach((p, i) => {
          if (p.value === null) return;
          predicted.push(p.value);
          actual.push(truth[i]!);
        });
        filled = actual.length;
        scores[kind] = score(predicted, actual);
      }
      return {
        measure: frame.measures[m]!,
        hidden: rows.length,
        filled,
        leftMissing: rows.length - filled,
        scores,
      };
    });
    return { scenario, gapSteps, measures };
  });
  return {
    seed: options.seed,
    steps: frameLength(frame),
    stepMs: frame.stepMs,
    maxGapSteps,
    methods,
    skipped,
    scenarios: results,
  };
}

/** The report as a fixed-width table: one row per scenario and measure, MAE/RMSE per method. */
export function formatReport(report: EvaluationReport): string {
  const header = [
    'SCENARIO',
    'MEASURE',
    'HIDDEN',
    'FILLED',
    ...report.methods.flatMap((m) => [`${m.toUpperCase()} MAE`, 'RMSE']),
    'BEST',
  ];
  const lines: string[][] = [header];
  for (const s of report.scenarios) {
    for (const r of s.measures) {
      const best = report.methods
        .filter((m) => r.scores[m])
        .reduce<ModelKind | undefined>(
          (a, m) => (a === undefined || r.scores[m]!.mae < r.scores[a]!.mae ? m : a),
          undefined,
        );
      lines.push([
        s.scenario,
        r.measure,
        String(r.hidden),
        String(r.filled),
        ...report.methods.flatMap((m) => {
          const sc = r.scores[m];
          return sc ? [formatNumber(sc.mae), formatNumber(sc.rmse)] : ['-', '-'];
        }),
        best ?? '-',
      ]);
    }
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  const table = lines
    .map((l) =>
      l
        .map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
  const notes = [
    `seed ${report.seed}, ${report.steps} steps of ${report.stepMs / 60000} min, gaps longer than ${report.maxGapSteps} steps left missing`,
  ];
  if (report.skipped.length > 0) {
    notes.push(
      `skipped (fewer than ${MIN_KNOWN_VALUES} known values): ${report.skipped.join(', ')}`,
    );
  }
  return `${table}\n${notes.join('\n')}`;
}

/** Three significant digits, without exponent for ordinary magnitudes. */
function formatNumber(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3);
}
