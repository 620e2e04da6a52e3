/** Alerting: the rule language, the evaluator, the service that stores its changes, and notifiers. */
export {
  compileCondition,
  compileRule,
  compileRules,
  locationUnder,
  type CompiledCondition,
  type CompiledNoDataRule,
  type CompiledNotify,
  type CompiledPipelineRule,
  type CompiledReadingRule,
  type CompiledRule,
  type ConditionInput,
  type ConfiguredBounds,
  type Hold,
  type LeafMatch,
  type SensorBounds,
  type SensorSelector,
} from './compile.js';
export {
  AlertEngine,
  readingSummary,
  type AlertAction,
  type AlertEngineOptions,
  type EngineReading,
  type KnownSensor,
  type PipelineEvent,
} from './engine.js';
export { AlertService, type AlertServiceOptions } from './service.js';
export * from './rules/index.js';
export * from './notifiers/index.js';
export { OutboxDispatcher, type OutboxDispatcherOptions } from './outbox.js';
