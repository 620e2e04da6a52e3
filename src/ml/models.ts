/**
 * Imputation models: three baselines and a random forest, behind one
 * interface, with the maximum-gap rule and JSON serialisation.
 *
 * Every model fills every row that the gap rule allows, so methods are
 * always compared on the same values. Fallbacks where a method's own input
 * is missing (a gap at the start or end of the series): last value carried
 * forward uses the first value after the gap, then the training mean; linear
 * interpolation uses whichever neighbour exists, then the training mean.
 *
 * Uncertainty: for the forest, the standard deviation of its trees'
 * predictions for that row (a spread, not a calibrated interval); for a
 * baseline, a constant: the method's root-mean-square error on its own
 * training rows (the synthetic gaps of `trainingRows`).
 */
import { createHash } from 'node:crypto';
import { CanopyError } from '../core/errors.js';
import type { FeatureRow } from './features.js';
import {
  DEFAULT_FOREST_OPTIONS,
  FOREST_IMPLEMENTATION,
  RandomForest,
  type ForestJson,
  type ForestOptions,
} from './forest.js';

export const MODEL_KINDS = ['mean', 'locf', 'linear', 'forest'] as const;
export type ModelKind = (typeof MODEL_KINDS)[number];

/** Gaps longer than this many steps are left missing unless a model is told otherwise. */
export const DEFAULT_MAX_GAP_STEPS = 48;

export interface TrainingSet {
  /** Built with `featureRow` on rows whose true value is known (see `trainingRows`). */
  rows: readonly FeatureRow[];
  /** The true values, finite, one per row. */
  targets: readonly number[];
  /** Names of the row features, in order. */
  features: readonly string[];
}

export interface Imputation {
  /** Null: not filled (the gap is longer than maxGapSteps); the value stays missing. */
  value: number | null;
  /** Null exactly when value is null. */
  uncertainty: number | null;
}

export interface ImputationModel {
  readonly kind: ModelKind;
  readonly maxGapSteps: number;
  /** Throws CANOPY_IMPUTATION_BAD_INPUT on an empty training set. */
  fit(train: TrainingSet): void;
  /** Requires fit (or a loaded model). Rows must carry the features the model was trained on. */
  predict(rows: readonly FeatureRow[]): Imputation[];
  /** Kind-specific learned state, JSON-safe. */
  state(): unknown;
}

export interface ModelOptions {
  maxGapSteps?: number;
  forest?: Partial<ForestOptions>;
}

const NOT_FILLED: Imputation = Object.freeze({ value: null, uncertainty: null });

function mean(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

function firstFinite(...values: number[]): number {
  for (const v of values) if (Number.isFinite(v)) return v;
  return NaN;
}

function requireRows(train: TrainingSet, kind: ModelKind): void {
  if (train.rows.length === 0 || train.rows.length !== train.targets.length) {
    throw new CanopyError(
      'CANOPY_IMPUTATION_BAD_INPUT',
      `${kind} model: the training set needs one or more rows, one target per row`,
    );
  }
}

function rmse(predicted: readonly number[], targets: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < targets.length; i++) s += (predicted[i]! - targets[i]!) ** 2;
  return Math.sqrt(s / targets.length);
}

interface BaselineState {
  mean: number;
  rmse: number;
}

/** The baselines differ only in their point estimate. */
class BaselineModel implements ImputationModel {
  private learned: BaselineState | undefined;

  constructor(
    readonly kind: 'mean' | 'locf' | 'linear',
    readonly maxGapSteps: number,
    state?: BaselineState,
  ) {
    this.learned = state;
  }

  private estimate(row: FeatureRow, trainingMean: number): number {
    if (this.kind === 'mean') return trainingMean;
    if (this.kind === 'locf') return firstFinite(row.before, row.after, trainingMean);
    return firstFinite(row.interpolation, row.before, row.after, trainingMean);
  }

  fit(train: TrainingSet): void {
    requireRows(train, this.kind);
    const m = mean(train.targets);
    const predicted = train.rows.map((row) => this.estimate(row, m));
    this.learned = { mean: m, rmse: rmse(predicted, train.targets) };
  }

  predict(rows: readonly FeatureRow[]): Imputation[] {
    const learned = requireFitted(this.learned, this.kind);
    return rows.map((row) =>
      row.gapLength > this.maxGapSteps
        ? NOT_FILLED
        : { value: this.estimate(row, learned.mean), uncertainty: learned.rmse },
    );
  }

  state(): BaselineState {
    return requireFitted(this.learned, this.kind);
  }
}

interface ForestState {
  /** Training mean: the base when a row has neither neighbour. */
  mean: number;
  forest: ForestJson;
}

/**
 * The forest predicts the residual from the interpolation baseline (value −
 * interpolation, with the same fallbacks), and adds it back: trees are
 * piecewise constant, so learning the departure from a straight line across
 * the gap is much easier for them than learning the level itself.
 */
class ForestModel implements ImputationModel {
  readonly kind = 'forest';
  private learned: ForestState | undefined;
  private forest: RandomForest | undefined;

  constructor(
    readonly maxGapSteps: number,
    private readonly options: ForestOptions,
    state?: ForestState,
  ) {
    if (state !== undefined) this.load(state);
  }

  private load(state: ForestState): void {
    this.learned = state;
    this.forest = RandomForest.fromJSON(state.forest);
  }

  fit(train: TrainingSet): void {
    requireRows(train, 'forest');
    const m = mean(train.targets);
    const residuals = train.rows.map(
      (row, i) => train.targets[i]! - firstFinite(row.interpolation, row.before, row.after, m),
    );
    const forest = RandomForest.train(
      train.rows.map((row) => row.features),
      residuals,
      this.options,
    );
    this.load({ mean: m, forest: forest.toJSON() });
  }

  predict(rows: readonly FeatureRow[]): Imputation[] {
    const learned = requireFitted(this.learned, 'forest');
    const forest = this.forest!;
    const width = learned.forest.thresholds.length;
    return rows.map((row) => {
      if (row.gapLength > this.maxGapSteps) return NOT_FILLED;
      if (row.features.length !== width) {
        throw new CanopyError(
          'CANOPY_IMPUTATION_BAD_INPUT',
          `forest model: trained on ${width} features, row has ${row.features.length}`,
        );
      }
      const base = firstFinite(row.interpolation, row.before, row.after, learned.mean);
      const perTree = forest.treePredictions(row.features);
      const centre = mean(perTree);
      const spread = Math.sqrt(mean(perTree.map((p) => (p - centre) ** 2)));
      return { value: base + centre, uncertainty: spread };
    });
  }

  state(): ForestState {
    return requireFitted(this.learned, 'forest');
  }
}

function requireFitted<T>(state: T | undefined, kind: ModelKind): T {
  if (state === undefined) {
    throw new CanopyError('CANOPY_IMPUTATION_BAD_INPUT', `${kind} model used before fit`);
  }
  return state;
}

/** A new, untrained model of the kind. */
export function createModel(kind: ModelKind, options: ModelOptions = {}): ImputationModel {
  const maxGapSteps = options.maxGapSteps ?? DEFAULT_MAX_GAP_STEPS;
  if (kind === 'forest') {
    return new ForestModel(maxGapSteps, { ...DEFAULT_FOREST_OPTIONS, ...options.forest });
  }
  return new BaselineModel(kind, maxGapSteps);
}

// ---- Serialisation -------------------------------------------------------

export const MODEL_FORMAT = 'canopy.imputation-model';
export const MODEL_FORMAT_VERSION = 1;

export interface ModelMetadata {
  /** Lake-key-safe: letters, digits, `.`, `_`, `-`. */
  name: string;
  /** Content hash; see `modelVersion`. */
  version: string;
  kind: ModelKind;
  /** The measure (sensor type, or sensor id) the model imputes. */
  measure: string;
  features: string[];
  maxGapSteps: number;
  trainingRows: number;
  seed: number;
  /** ISO 8601. */
  trainedAt: string;
  library: { name: string; version: string };
}

export interface SerializedModel extends ModelMetadata {
  format: typeof MODEL_FORMAT;
  formatVersion: typeof MODEL_FORMAT_VERSION;
  state: unknown;
}

const BASELINE_LIBRARY = { name: 'canopy-baselines', version: '1' } as const;

/**
 * The version: the first 16 hex digits of the SHA-256 of the serialised
 * model without `version` and `trainedAt`. Training the same data with the
 * same seed and options gives the same version (saving it again is a no-op
 * in effect); any change in data, options or code output gives a new one.
 */
export function modelVersion(model: Omit<SerializedModel, 'version' | 'trainedAt'>): string {
  const { format, formatVersion, name, kind, measure, features, maxGapSteps } = model;
  const { trainingRows, seed, library, state } = model;
  const content = JSON.stringify({
    format,
    formatVersion,
    name,
    kind,
    measure,
    features,
    maxGapSteps,
    trainingRows,
    seed,
    library,
    state,
  });
  return createHash('sha256').update(content).digest('hex').slice(0, 16);
}

/** The trained model with its metadata, ready to store. */
export function serializeModel(
  model: ImputationModel,
  meta: {
    name: string;
    measure: string;
    features: readonly string[];
    trainingRows: number;
    seed: number;
    trainedAt: Date;
  },
): SerializedModel {
  const body = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    name: meta.name,
    kind: model.kind,
    measure: meta.measure,
    features: [...meta.features],
    maxGapSteps: model.maxGapSteps,
    trainingRows: meta.trainingRows,
    seed: meta.seed,
    library: model.kind === 'forest' ? { ...FOREST_IMPLEMENTATION } : { ...BASELINE_LIBRARY },
    state: model.state(),
  } satisfies Omit<SerializedModel, 'version' | 'trainedAt'>;
  return { ...body, version: modelVersion(body), trainedAt: meta.trainedAt.toISOString() };
}

/** Throws CANOPY_IMPUTATION_MODEL_INVALID unless `json` is a model this version reads. */
export function deserializeModel(json: unknown): {
  model: ImputationModel;
  meta: ModelMetadata;
} {
  const invalid = (why: string): never => {
    throw new CanopyError('CANOPY_IMPUTATION_MODEL_INVALID', `not a readable model: ${why}`);
  };
  if (typeof json !== 'object' || json === null) return invalid('not a JSON object');
  const s = json as Partial<SerializedModel>;
  if (s.format !== MODEL_FORMAT || s.formatVersion !== MODEL_FORMAT_VERSION) {
    return invalid(`format ${String(s.format)} v${String(s.formatVersion)}`);
  }
  if (!MODEL_KINDS.includes(s.kind as ModelKind)) return invalid(`kind ${String(s.kind)}`);
  if (typeof s.maxGapSteps !== 'number' || typeof s.state !== 'object' || s.state === null) {
    return invalid('maxGapSteps or state missing');
  }
  const { format: _format, formatVersion: _formatVersion, state, ...meta } = s as SerializedModel;
  const model =
    meta.kind === 'forest'
      ? new ForestModel(
          meta.maxGapSteps,
          (state as ForestState).forest.options,
          state as ForestState,
        )
      : new BaselineModel(meta.kind, meta.maxGapSteps, state as BaselineState);
  return { model, meta };
}
