/** Workflows: definitions, schedules, validation and the runner. */
export type {
  CallbackTaskDefinition,
  CatchUpPolicy,
  ChoiceTaskDefinition,
  RunTaskDefinition,
  TaskContext,
  TaskDefinition,
  WorkflowDefinition,
  WorkflowSchedule,
} from './definition.js';
export {
  CURRENT_SLOT_GRACE_MS,
  DEFAULT_MAX_CATCH_UP,
  checkSchedule,
  dueSlots,
  isSlot,
  nextSlot,
  previousSlot,
  slotsBetween,
} from './schedule.js';
export { validateWorkflows } from './validate.js';
export {
  MAX_BACKFILL_SLOTS,
  WorkflowRunner,
  type CallbackResult,
  type DeadlineEvent,
  type TriggerOptions,
  type WorkflowRunnerOptions,
} from './runner.js';
