/**
 * Checks workflow definitions before a runner takes them, and reports every
 * problem at once.
 */
import { CanopyError } from '../core/errors.js';
import type { TaskDefinition, WorkflowDefinition } from './definition.js';
import { checkSchedule } from './schedule.js';

const ID = /^[a-z0-9_-]+$/;

function isNonNegative(value: number | undefined): boolean {
  return value === undefined || (Number.isFinite(value) && value >= 0);
}

function checkTaskNumbers(prefix: string, task: TaskDefinition, problems: string[]): void {
  if (task.retries !== undefined && !(Number.isInteger(task.retries) && task.retries >= 0)) {
    problems.push(`${prefix}: retries must be a whole number ≥ 0, not ${task.retries}`);
  }
  if (!isNonNegative(task.retryBackoffMs)) {
    problems.push(`${prefix}: retryBackoffMs must be ≥ 0, not ${task.retryBackoffMs}`);
  }
  if (task.timeoutMs !== undefined && !(Number.isFinite(task.timeoutMs) && task.timeoutMs > 0)) {
    problems.push(`${prefix}: timeoutMs must be > 0, not ${task.timeoutMs}`);
  }
}

/** Task ids on a dependency cycle (each cycle reported once, by its members in order). */
function findCycles(tasks: readonly TaskDefinition[]): string[][] {
  const deps = new Map(tasks.map((t) => [t.id, (t.dependsOn ?? []).filter((d) => d !== t.id)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[][] = [];
  const stack: string[] = [];
  const visit = (id: string): void => {
    state.set(id, 'visiting');
    stack.push(id);
    for (const dep of deps.get(id) ?? []) {
      if (!deps.has(dep)) continue;
      const seen = state.get(dep);
      if (seen === 'visiting') cycles.push([...stack.slice(stack.indexOf(dep)), dep]);
      else if (seen === undefined) visit(dep);
    }
    stack.pop();
    state.set(id, 'done');
  };
  for (const id of deps.keys()) if (!state.has(id)) visit(id);
  return cycles;
}

function checkWorkflow(def: WorkflowDefinition, problems: string[]): void {
  const where = `workflow '${def.name}'`;
  if (!ID.test(def.name)) {
    problems.push(`${where}: the name must be lower-case letters, digits, '-' or '_'`);
  }
  if (def.tasks.length === 0) problems.push(`${where}: it has no tasks`);
  if (def.deadlineMs !== undefined && !(Number.isFinite(def.deadlineMs) && def.deadlineMs > 0)) {
    problems.push(`${where}: deadlineMs must be > 0, not ${def.deadlineMs}`);
  }
  if (def.schedule !== undefined) {
    const problem = checkSchedule(def.schedule);
    if (problem !== null) problems.push(`${where}: ${problem}`);
    const cap = def.schedule.maxCatchUp;
    if (cap !== undefined && !(Number.isInteger(cap) && cap >= 1)) {
      problems.push(`${where}: maxCatchUp must be a whole number ≥ 1, not ${cap}`);
    }
  }

  const ids = new Set<string>();
  for (const task of def.tasks) {
    if (ids.has(task.id)) problems.push(`${where}: task id '${task.id}' is declared twice`);
    ids.add(task.id);
  }
  const byId = new Map(def.tasks.map((t) => [t.id, t]));
  for (const task of def.tasks) {
    const prefix = `${where}, task '${task.id}'`;
    if (!ID.test(task.id)) {
      problems.push(`${prefix}: the id must be lower-case letters, digits, '-' or '_'`);
    }
    for (const dep of task.dependsOn ?? []) {
      if (dep === task.id) problems.push(`${prefix}: it depends on itself`);
      else if (!byId.has(dep)) problems.push(`${prefix}: it depends on unknown task '${dep}'`);
    }
    checkTaskNumbers(prefix, task, problems);
    if (task.kind === 'choice') {
      const branches = Object.entries(task.branches);
      if (branches.length === 0) problems.push(`${prefix}: a choice needs at least one branch`);
      const claimed = new Map<string, string>();
      for (const [branch, starts] of branches) {
        for (const start of starts) {
          const target = byId.get(start);
          if (target === undefined) {
            problems.push(`${prefix}: branch '${branch}' names unknown task '${start}'`);
          } else if (!(target.dependsOn ?? []).includes(task.id)) {
            problems.push(
              `${prefix}: branch '${branch}' names task '${start}', which does not depend on '${task.id}'`,
            );
          }
          const other = claimed.get(start);
          if (other !== undefined && other !== branch) {
            problems.push(
              `${prefix}: task '${start}' starts both branch '${other}' and branch '${branch}'`,
            );
          }
          claimed.set(start, branch);
        }
      }
    }
  }
  for (const cycle of findCycles(def.tasks)) {
    problems.push(`${where}: dependency cycle ${cycle.join(' → ')}`);
  }
}

/**
 * Throws CanopyError CANOPY_WORKFLOW_INVALID naming every problem (one per
 * line in the message, all of them in `details.problems`): duplicate
 * workflow names or task ids, ids that are not lower-case letters, digits,
 * `-` or `_`, unknown or cyclic dependencies, choice branches naming tasks
 * that are not declared or do not depend on the choice, a bad cron or time
 * zone, and negative retries, backoffs, timeouts or deadlines.
 */
export function validateWorkflows(defs: readonly WorkflowDefinition[]): void {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const def of defs) {
    if (names.has(def.name)) problems.push(`workflow '${def.name}' is declared twice`);
    names.add(def.name);
    checkWorkflow(def, problems);
  }
  if (problems.length > 0) {
    throw new CanopyError(
      'CANOPY_WORKFLOW_INVALID',
      `invalid workflow definitions:\n- ${problems.join('\n- ')}`,
      { details: { problems } },
    );
  }
}
