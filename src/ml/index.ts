export {
  featureNames,
  featureRow,
  gapAround,
  missingRows,
  stepsPerDay,
  type FeatureRow,
  type GapContext,
} from './features.js';
export {
  frameFromReadings,
  frameLength,
  headOfFrame,
  type FrameReading,
  type SeriesFrame,
} from './frame.js';
export {
  DEFAULT_FOREST_OPTIONS,
  FOREST_IMPLEMENTATION,
  RandomForest,
  type ForestJson,
  type ForestOptions,
} from './forest.js';
export {
  createModel,
  DEFAULT_MAX_GAP_STEPS,
  deserializeModel,
  MODEL_KINDS,
  modelVersion,
  serializeModel,
  type Imputation,
  type ImputationModel,
  type ModelKind,
  type ModelMetadata,
  type ModelOptions,
  type SerializedModel,
  type TrainingSet,
} from './models.js';
export {
  listModels,
  loadModel,
  modelKey,
  MODELS_PREFIX,
  saveModel,
  type StoredModelInfo,
} from './model-store.js';
export {
  evaluate,
  formatReport,
  hiddenSteps,
  hideForScenario,
  MIN_KNOWN_VALUES,
  scenarioGapSteps,
  SCENARIOS,
  type EvaluationOptions,
  type EvaluationReport,
  type MeasureResult,
  type Scenario,
  type ScenarioResult,
  type Score,
} from './evaluate.js';
export { DEFAULT_MAX_TRAINING_ROWS, trainingSet, type TrainingRowOptions } from './training.js';
export { Rng } from './random.js';
