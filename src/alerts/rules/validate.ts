/**
 * Validation of an alert rule set: the zod shape (schema.ts) plus the checks
 * that need the whole set or the configuration.
 *
 * Contract: `validateRuleSet` returns the parsed set (defaults filled in) or
 * throws CANOPY_ALERT_RULES_INVALID whose `details` are `RuleProblem`s — every
 * problem of the set at once, each naming the rule (its id, or `rules[i]`)
 * and the dotted field inside it. Checks that need a rule's parsed form
 * (bands, channels, tiers) run on every rule whose shape is right, so one
 * malformed rule never hides another rule's problems.
 */
import type { z } from 'zod';
import { CanopyError } from '../../core/errors.js';
import type { CanopyConfig } from '../../config/schema.js';
import {
  CONDITION_BRANCHES,
  durationMs,
  noDataRuleSchema,
  pipelineRuleSchema,
  readingRuleSchema,
  ruleSchema,
  type Condition,
  type PipelineSignal,
  type ReadingRule,
  type Rule,
  type RuleSet,
} from './schema.js';

/** What a rule set is checked against: the configured channels and sensor bands. */
export interface RuleContext {
  /** Names of `alerting.notifiers`. */
  channels: ReadonlySet<string>;
  sensors: CanopyConfig['sensors'];
  sensorTypes: CanopyConfig['sensorTypes'];
}

export interface RuleProblem {
  /** The rule's id, `rules[3]` when it has none, or `(root)` for the file itself. */
  rule: string;
  /** Dotted path inside the rule, e.g. `critical.below` or `notify.tiers[1].channels[0]`; empty for the whole rule. */
  field: string;
  message: string;
}

type Path = readonly PropertyKey[];

/** `notify.tiers[1].channels[0]`. */
export function formatField(path: Path): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

/** One line of the error message: `rule "soil-low": critical.below: …`. */
export function formatProblem(p: RuleProblem): string {
  const who = p.rule === '(root)' || p.rule.startsWith('rules[') ? p.rule : `rule "${p.rule}"`;
  return p.field === '' ? `${who}: ${p.message}` : `${who}: ${p.field}: ${p.message}`;
}

/** Throws CANOPY_ALERT_RULES_INVALID listing `problems`; `source` names the file in the message. */
export function rulesInvalid(problems: RuleProblem[], source: string, cause?: unknown): never {
  const count = `${problems.length} problem${problems.length === 1 ? '' : 's'}`;
  throw new CanopyError(
    'CANOPY_ALERT_RULES_INVALID',
    `alert rules ${source} have ${count}:\n  - ${problems.map(formatProblem).join('\n  - ')}`,
    { cause, details: problems },
  );
}

/**
 * Validates a parsed rules document (`{ rules: [...] }`) against the shape
 * and `context`. Throws CANOPY_ALERT_RULES_INVALID listing every problem.
 */
export function validateRuleSet(
  input: unknown,
  context: RuleContext,
  source = '(inline)',
): RuleSet {
  const problems: RuleProblem[] = [];
  const root = (field: string, message: string): void => {
    problems.push({ rule: '(root)', field, message });
  };
  if (!isPlainObject(input)) {
    root('', `expected a mapping with a \`rules\` list, got ${show(input)}`);
    return rulesInvalid(problems, source);
  }
  for (const key of Object.keys(input)) {
    if (key !== 'rules') root(key, 'unknown field; a rules file has only `rules`');
  }
  const rawRules = input.rules ?? [];
  if (!Array.isArray(rawRules)) {
    root('rules', `expected a list of rules, got ${show(rawRules)}`);
    return rulesInvalid(problems, source);
  }

  const rules: Rule[] = [];
  const firstIndexOfId = new Map<string, number>();
  rawRules.forEach((raw: unknown, index) => {
    const rawId = isPlainObject(raw) && typeof raw.id === 'string' && raw.id !== '' ? raw.id : '';
    const name = rawId === '' ? `rules[${index}]` : rawId;
    const add = (path: Path, message: string): void => {
      problems.push({ rule: name, field: formatField(path), message });
    };
    if (rawId !== '') {
      const first = firstIndexOfId.get(rawId);
      if (first === undefined) firstIndexOfId.set(rawId, index);
      else add(['id'], `duplicate id: rules[${first}] has the same id`);
    }
    const parsed = ruleSchema.safeParse(raw);
    if (!parsed.success) {
      for (const d of describeRuleIssues(parsed.error.issues, raw)) add(d.path, d.message);
      return;
    }
    const rule = parsed.data;
    rules.push(rule);
    checkNotify(rule, context, add);
    if (rule.kind === 'reading') checkReadingRule(rule, context, add);
    else if (rule.kind === 'no-data') checkPositive(rule.after, ['after'], add);
    else checkPipelineParameters(rule.signal, raw as Record<string, unknown>, add);
  });

  if (problems.length > 0) return rulesInvalid(problems, source);
  return { rules };
}

type Add = (path: Path, message: string) => void;

function checkNotify(rule: Rule, context: RuleContext, add: Add): void {
  const notify = rule.notify;
  if (notify === undefined) return;
  const known = [...context.channels].sort().join(', ') || '(none configured)';
  const checkChannel = (channel: string, path: Path): void => {
    if (!context.channels.has(channel)) {
      add(path, `unknown channel "${channel}"; configured in alerting.notifiers: ${known}`);
    }
  };
  notify.open.forEach((c, i) => checkChannel(c, ['notify', 'open', i]));
  notify.tiers.forEach((tier, t) => {
    tier.channels.forEach((c, i) => checkChannel(c, ['notify', 'tiers', t, 'channels', i]));
    const previous = notify.tiers[t - 1];
    if (previous !== undefined && durationMs(tier.after) <= durationMs(previous.after)) {
      add(
        ['notify', 'tiers', t, 'after'],
        `must be later than tier ${t}'s after (${previous.after}): tiers escalate in order, got ${tier.after}`,
      );
    }
  });
  if (notify.reminderEvery !== undefined) {
    checkPositive(notify.reminderEvery, ['notify', 'reminderEvery'], add);
  }
}

function checkPositive(duration: string, path: Path, add: Add): void {
  if (durationMs(duration) === 0) add(path, `must be longer than zero, got ${duration}`);
}

function checkReadingRule(rule: ReadingRule, context: RuleContext, add: Add): void {
  const noOwnBand = rule.warning === undefined && rule.critical === undefined;
  if (noOwnBand && rule.overrides.length === 0 && !rule.configuredBounds) {
    add(
      [],
      'no threshold: give `warning`, `critical`, `overrides` or `configuredBounds: true` (use the bands in config sensors / sensorTypes)',
    );
  }
  checkLevels(rule.warning, rule.critical, [], add);
  rule.overrides.forEach((o, i) => {
    if (o.warning === undefined && o.critical === undefined) {
      add(['overrides', i], 'gives neither `warning` nor `critical`');
    }
    checkLevels(o.warning, o.critical, ['overrides', i], add);
  });
  if (rule.configuredBounds && !hasConfiguredBand(context)) {
    add(
      ['configuredBounds'],
      'no sensor or sensor type in the configuration has a `warning` or `critical` band to fall back to; give the rule its own bands or add them to config `sensors` / `sensorTypes`',
    );
  }
}

function hasConfiguredBand(context: RuleContext): boolean {
  const bands = [...context.sensors, ...Object.values(context.sensorTypes)];
  return bands.some((b) => b.warning !== undefined || b.critical !== undefined);
}

/** Checks each level's leaves, then that critical lies outside warning (when both are one band). */
function checkLevels(
  warning: Condition | undefined,
  critical: Condition | undefined,
  base: Path,
  add: Add,
): void {
  if (warning !== undefined) checkCondition(warning, [...base, 'warning'], add);
  if (critical !== undefined) checkCondition(critical, [...base, 'critical'], add);
  if (warning === undefined || critical === undefined) return;
  if (!isBand(warning) || !isBand(critical)) return;
  if (
    warning.below !== undefined &&
    critical.below !== undefined &&
    critical.below > warning.below
  ) {
    add(
      [...base, 'critical', 'below'],
      `critical must be further out than warning: critical below ${critical.below} fires before warning below ${warning.below}; lower critical.below or raise warning.below`,
    );
  }
  if (
    warning.above !== undefined &&
    critical.above !== undefined &&
    critical.above < warning.above
  ) {
    add(
      [...base, 'critical', 'above'],
      `critical must be further out than warning: critical above ${critical.above} fires before warning above ${warning.above}; raise critical.above or lower warning.above`,
    );
  }
}

function isBand(c: Condition): c is { above?: number; below?: number } {
  return 'above' in c || 'below' in c;
}

/** Inverted bands and zero durations anywhere in a (nested) condition. */
function checkCondition(c: Condition, path: Path, add: Add): void {
  if ('all' in c) c.all.forEach((child, i) => checkCondition(child, [...path, 'all', i], add));
  else if ('any' in c) c.any.forEach((child, i) => checkCondition(child, [...path, 'any', i], add));
  else if ('rateOfChange' in c)
    checkPositive(c.rateOfChange.per, [...path, 'rateOfChange', 'per'], add);
  else if ('anomalyRate' in c) {
    checkPositive(c.anomalyRate.window, [...path, 'anomalyRate', 'window'], add);
  } else if (isBand(c) && c.above !== undefined && c.below !== undefined && c.above <= c.below) {
    // The good range is [below, above]; when above <= below it is empty, so every reading breaches.
    add(
      [...path, 'above'],
      `inverted band: above ${c.above} is not higher than below ${c.below}, so every value breaches; the good range is from \`below\` up to \`above\``,
    );
  }
}

/** Which pipeline parameters each signal takes; `required` ones must be given. */
const SIGNAL_PARAMETERS: Record<PipelineSignal, { required: string[]; optional: string[] }> = {
  'dead-letter-rate': { required: ['above', 'window'], optional: ['minMessages'] },
  'ingest-stopped': { required: ['after'], optional: [] },
  'job-failed': { required: [], optional: ['names'] },
  'quality-failed': { required: [], optional: ['names'] },
  'deadline-missed': { required: [], optional: ['names'] },
};
const PIPELINE_PARAMETERS = ['above', 'window', 'minMessages', 'after', 'names'];

/** `minMessages` when not given. */
const DEFAULT_MIN_MESSAGES: unknown = pipelineRuleSchema.shape.minMessages.parse(undefined);

/**
 * Checked on the raw rule. `minMessages` has a default, so an already-parsed
 * rule always carries it: it counts as given only when it differs from the
 * default, which keeps validating a parsed set (an export, the starter set)
 * idempotent.
 */
function checkPipelineParameters(
  signal: PipelineSignal,
  raw: Record<string, unknown>,
  add: Add,
): void {
  const { required, optional } = SIGNAL_PARAMETERS[signal];
  const takes = [...required, ...optional];
  for (const p of required) {
    if (raw[p] === undefined) add([p], `required for signal ${signal}`);
  }
  for (const p of PIPELINE_PARAMETERS) {
    const given = p === 'minMessages' ? raw[p] !== DEFAULT_MIN_MESSAGES : raw[p] !== undefined;
    if (given && raw[p] !== undefined && !takes.includes(p)) {
      add(
        [p],
        `does not apply to signal ${signal} (it takes ${takes.length ? takes.map((t) => `\`${t}\``).join(', ') : 'no parameters'})`,
      );
    }
  }
  for (const p of ['window', 'after']) {
    const v = raw[p];
    if (typeof v === 'string' && takes.includes(p)) checkPositive(v, [p], add);
  }
}

// ---- zod issues → messages a user can act on ----

interface Described {
  path: Path;
  message: string;
}

const KIND_SCHEMAS: Record<string, z.ZodObject> = {
  reading: readingRuleSchema,
  'no-data': noDataRuleSchema,
  pipeline: pipelineRuleSchema,
};

const CONDITION_FORMS =
  'a condition is one of `{ above, below }` (a band), `rateOfChange`, `anomaly`, `anomalyRate`, `all` or `any`';

function describeIssue(issue: z.core.$ZodIssue, raw: unknown, prefix: Path): Described[] {
  const path = [...prefix, ...issue.path];
  const value = lookup(raw, issue.path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: [...path, key],
        message: unknownFieldMessage(
          key,
          value,
          prefix.length === 0 && issue.path.length === 0 ? raw : undefined,
        ),
      }));
    case 'invalid_union':
      if ('discriminator' in issue && issue.discriminator === 'kind') {
        return [
          {
            path,
            message:
              value === undefined
                ? 'required: one of reading, no-data, pipeline'
                : `unknown kind ${show(value)}; one of reading, no-data, pipeline`,
          },
        ];
      }
      return [{ path, message: `${issue.message}; ${CONDITION_FORMS}` }];
    case 'invalid_type':
      if (value === undefined) return [{ path, message: 'required' }];
      if (issue.expected === 'number' && typeof value === 'string') {
        return [
          { path, message: `must be a number, got the text ${show(value)} (remove the quotes)` },
        ];
      }
      return [{ path, message: `must be ${article(issue.expected)}, got ${show(value)}` }];
    case 'too_small':
      if (issue.origin === 'array') {
        const what = path.at(-1) === 'all' || path.at(-1) === 'any' ? 'condition' : 'entry';
        return [{ path, message: `needs at least ${String(issue.minimum)} ${what}` }];
      }
      return [
        {
          path,
          message: `must be ${issue.inclusive ? 'at least' : 'above'} ${String(issue.minimum)}, got ${show(value)}`,
        },
      ];
    case 'too_big':
      return [
        {
          path,
          message: `must be ${issue.inclusive ? 'at most' : 'below'} ${String(issue.maximum)}, got ${show(value)}`,
        },
      ];
    case 'invalid_format':
      return [{ path, message: `must be ${issue.message}, got ${show(value)}` }];
    case 'invalid_value':
      return [
        {
          path,
          message: `must be ${issue.values.map((v) => show(v)).join(' or ')}, got ${show(value)}`,
        },
      ];
    default:
      return [{ path, message: issue.message }];
  }
}

/** Where conditions sit in a rule: `warning`, `critical`, `overrides[i].warning`, …. */
function conditionSlot(path: Path): Path | undefined {
  const [first, index, level] = path;
  if (first === 'warning' || first === 'critical') return [first];
  if (
    first === 'overrides' &&
    typeof index === 'number' &&
    (level === 'warning' || level === 'critical')
  ) {
    return [first, index, level];
  }
  return undefined;
}

/**
 * zod's issues for one rule, except inside conditions: zod reports a failed
 * union through whichever branch it judged closest (often the band), so each
 * condition with a problem is diagnosed afresh by `describeCondition`.
 */
function describeRuleIssues(issues: readonly z.core.$ZodIssue[], raw: unknown): Described[] {
  const out: Described[] = [];
  const slotsDone = new Set<string>();
  for (const issue of issues) {
    const slot = conditionSlot(issue.path);
    if (slot === undefined) {
      out.push(...describeIssue(issue, raw, []));
      continue;
    }
    const key = formatField(slot);
    if (slotsDone.has(key)) continue;
    slotsDone.add(key);
    const described = describeCondition(lookup(raw, slot), slot);
    out.push(...(described.length > 0 ? described : describeIssue(issue, raw, [])));
  }
  return out;
}

/**
 * Every problem of one condition, nested ones included. The branch is the
 * one the condition's fields name; `all` / `any` lists are walked here
 * rather than through zod's union so each child is diagnosed the same way.
 */
function describeCondition(value: unknown, path: Path): Described[] {
  if (!isPlainObject(value)) {
    return [
      {
        path,
        message: `expected a condition such as \`{ below: 30 }\`, got ${show(value)}; ${CONDITION_FORMS}`,
      },
    ];
  }
  const keys = Object.keys(value);
  const branchKeys = keys.filter((k) => k in CONDITION_BRANCHES || k === 'reasons');
  const branches = new Set(
    branchKeys.map((k) => (k === 'below' ? 'above' : k === 'reasons' ? 'anomaly' : k)),
  );
  if (branches.size === 0) {
    if (keys.length === 0) return [{ path, message: `empty condition; ${CONDITION_FORMS}` }];
    return keys.map((key) => ({
      path: [...path, key],
      message: `${unknownFieldMessage(key, value)}; ${CONDITION_FORMS}`,
    }));
  }
  if (branches.size > 1) {
    const named = [...branches].map((b) => (b === 'above' ? '`above`/`below`' : `\`${b}\``));
    return [
      {
        path,
        message: `one condition cannot have both ${named.join(' and ')}; combine conditions with \`all\` (AND) or \`any\` (OR)`,
      },
    ];
  }
  const [branch] = [...branches] as (keyof typeof CONDITION_BRANCHES)[];
  if (branch === 'all' || branch === 'any') {
    const out: Described[] = keys
      .filter((k) => k !== branch)
      .map((k) => ({ path: [...path, k], message: `unknown field next to \`${branch}\`` }));
    const list = value[branch];
    if (!Array.isArray(list)) {
      out.push({
        path: [...path, branch],
        message: `must be a list of conditions, got ${show(list)}`,
      });
    } else if (list.length === 0) {
      out.push({ path: [...path, branch], message: 'needs at least 1 condition' });
    } else {
      list.forEach((child: unknown, i) =>
        out.push(...describeCondition(child, [...path, branch, i])),
      );
    }
    return out;
  }
  const result = CONDITION_BRANCHES[branch as keyof typeof CONDITION_BRANCHES].safeParse(value);
  if (result.success) return [];
  return result.error.issues.flatMap((issue) => describeIssue(issue, value, path));
}

const BOUND_SYNONYMS: Record<string, string> = {
  min: 'below',
  max: 'above',
  lt: 'below',
  gt: 'above',
};

function unknownFieldMessage(key: string, container: unknown, rule?: unknown): string {
  if (
    rule === undefined &&
    isPlainObject(container) &&
    ('above' in container || 'below' in container)
  ) {
    const hint = BOUND_SYNONYMS[key] ? `; did you mean \`${BOUND_SYNONYMS[key]}\`?` : '';
    return `unknown field in a band, which takes only \`above\` and \`below\`${hint}`;
  }
  if (BOUND_SYNONYMS[key]) return `unknown field; bands use \`${BOUND_SYNONYMS[key]}\``;
  const kind = isPlainObject(rule) && typeof rule.kind === 'string' ? rule.kind : undefined;
  const schema = kind === undefined ? undefined : KIND_SCHEMAS[kind];
  if (schema !== undefined) {
    const known = Object.keys(schema.shape);
    const near = known.find(
      (k) => editDistance(k.toLowerCase(), key.toLowerCase()) <= (key.length >= 6 ? 2 : 1),
    );
    return near
      ? `unknown field; did you mean \`${near}\`?`
      : `unknown field; a ${kind} rule takes ${known.map((k) => `\`${k}\``).join(', ')}`;
  }
  return 'unknown field';
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(
        above + 1,
        (row[j - 1] as number) + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

function article(expected: string): string {
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (isPlainObject(value)) return 'a mapping';
  return JSON.stringify(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function lookup(value: unknown, path: Path): unknown {
  let node = value;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** The context of a loaded configuration: its notifier names and sensor bands. */
export function ruleContextOf(
  config: Pick<CanopyConfig, 'alerting' | 'sensors' | 'sensorTypes'>,
): RuleContext {
  return {
    channels: new Set(Object.keys(config.alerting.notifiers)),
    sensors: config.sensors,
    sensorTypes: config.sensorTypes,
  };
}
