/**
 * Turns a parsed rule set (durations as written, conditions as data) into the
 * evaluator's form: durations in milliseconds, conditions as matchers, sensor
 * selections as predicates, and per-sensor bound resolution.
 *
 * Only enabled rules are compiled: to the engine a disabled rule is a removed
 * one. Compiling assumes a set that passed `validateRuleSet`; where the schema
 * leaves a field optional that a kind needs (a pipeline rule's `window`), the
 * documented fallback applies.
 */
import type { AlertSeverity } from '../core/alerts.js';
import type { Thresholds } from '../config/schema.js';
import {
  durationMs,
  type Condition,
  type NoDataRule,
  type PipelineRule,
  type PipelineSignal,
  type ReadingRule,
  type Rule,
  type RuleSet,
} from './rules/schema.js';

/** The config bands of a sensor (its own over its type's), as `configuredBounds` returns them. */
export type ConfiguredBounds = (
  sensorId: string,
  sensorType: string | null,
) => { warning?: Thresholds; critical?: Thresholds };

/** What a condition is judged on: one reading plus the sensor's recent history. */
export interface ConditionInput {
  value: number;
  eventTime: number;
  isAnomaly: boolean;
  anomalyReasons: readonly string[];
  /** The sensor's previous non-null reading (event time, value), if any. */
  previous: readonly [number, number] | undefined;
  /** (event time, 1 if flagged else 0) of the sensor's recent readings, the current one included. */
  flags: readonly (readonly [number, number])[];
}

/** The leaf that decided a match: what the summary, `value` and `threshold` of an alert come from. */
export type LeafMatch =
  | { kind: 'above' | 'below'; value: number; threshold: number }
  | { kind: 'rate'; value: number; threshold: number; per: string }
  | { kind: 'anomaly'; value: number; reasons: readonly string[] }
  | { kind: 'anomaly-rate'; value: number; threshold: number; window: string };

export interface CompiledCondition {
  /** The first matching leaf (in the order written), or undefined when the condition does not hold. */
  match(input: ConditionInput): LeafMatch | undefined;
  /** Some leaf compares with the previous reading (rateOfChange). */
  needsPrevious: boolean;
  /** The longest anomalyRate window of any leaf; 0 when none. */
  anomalyWindowMs: number;
}

export function compileCondition(c: Condition): CompiledCondition {
  if ('all' in c) {
    const parts = c.all.map(compileCondition);
    return combine(parts, (input) => {
      let first: LeafMatch | undefined;
      for (const part of parts) {
        const m = part.match(input);
        if (m === undefined) return undefined;
        first ??= m;
      }
      return first;
    });
  }
  if ('any' in c) {
    const parts = c.any.map(compileCondition);
    return combine(parts, (input) => {
      for (const part of parts) {
        const m = part.match(input);
        if (m !== undefined) return m;
      }
      return undefined;
    });
  }
  if ('rateOfChange' in c) {
    const { above, per } = c.rateOfChange;
    const perMs = durationMs(per);
    return {
      needsPrevious: true,
      anomalyWindowMs: 0,
      match(input) {
        const prev = input.previous;
        // Out-of-order or same-instant readings give no rate: never a match.
        if (prev === undefined || input.eventTime <= prev[0]) return undefined;
        const rate = (Math.abs(input.value - prev[1]) / (input.eventTime - prev[0])) * perMs;
        return rate > above ? { kind: 'rate', value: rate, threshold: above, per } : undefined;
      },
    };
  }
  if ('anomaly' in c) {
    const wanted = c.reasons;
    return {
      needsPrevious: false,
      anomalyWindowMs: 0,
      match(input) {
        if (!input.isAnomaly) return undefined;
        const reasons =
          wanted === undefined
            ? input.anomalyReasons
            : input.anomalyReasons.filter((r) => wanted.includes(r));
        if (wanted !== undefined && reasons.length === 0) return undefined;
        return { kind: 'anomaly', value: input.value, reasons };
      },
    };
  }
  if ('anomalyRate' in c) {
    const { above, window, minReadings } = c.anomalyRate;
    const windowMs = durationMs(window);
    return {
      needsPrevious: false,
      anomalyWindowMs: windowMs,
      match(input) {
        const from = input.eventTime - windowMs;
        let total = 0;
        let flagged = 0;
        for (const [t, f] of input.flags) {
          if (t <= from || t > input.eventTime) continue;
          total += 1;
          flagged += f;
        }
        if (total < minReadings) return undefined;
        const share = flagged / total;
        return share > above
          ? { kind: 'anomaly-rate', value: share, threshold: above, window }
          : undefined;
      },
    };
  }
  const { above, below } = c;
  return {
    needsPrevious: false,
    anomalyWindowMs: 0,
    match(input) {
      if (above !== undefined && input.value > above)
        return { kind: 'above', value: input.value, threshold: above };
      if (below !== undefined && input.value < below)
        return { kind: 'below', value: input.value, threshold: below };
      return undefined;
    },
  };
}

function combine(parts: CompiledCondition[], match: CompiledCondition['match']): CompiledCondition {
  return {
    match,
    needsPrevious: parts.some((p) => p.needsPrevious),
    anomalyWindowMs: Math.max(0, ...parts.map((p) => p.anomalyWindowMs)),
  };
}

/** Config `{min, max}` bands mean `{below: min, above: max}`; an empty band is no condition. */
function thresholdsCondition(t: Thresholds | undefined): CompiledCondition | undefined {
  if (t === undefined || (t.min === undefined && t.max === undefined)) return undefined;
  return compileCondition({ below: t.min, above: t.max });
}

/** `greenhouse` matches `greenhouse` and `greenhouse/1/a`, not `greenhouse2`. */
export function locationUnder(prefix: string, location: string | null): boolean {
  if (location === null) return false;
  const p = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return location === p || location.startsWith(`${p}/`);
}

export type SensorSelector = (
  sensorId: string,
  sensorType: string | null,
  location: string | null,
) => boolean;

/** Every criterion given must hold (AND); none given selects every sensor. */
function compileSelect(select: ReadingRule['select']): SensorSelector {
  const types = select.sensorTypes === undefined ? undefined : new Set(select.sensorTypes);
  const sensors = select.sensors === undefined ? undefined : new Set(select.sensors);
  const locations = select.locations;
  return (sensorId, sensorType, location) =>
    (sensors === undefined || sensors.has(sensorId)) &&
    (types === undefined || (sensorType !== null && types.has(sensorType))) &&
    (locations === undefined || locations.some((l) => locationUnder(l, location)));
}

export interface CompiledNotify {
  open: readonly string[];
  /** Tier n+1 is `tiers[n]`. */
  tiers: readonly { afterMs: number; channels: readonly string[] }[];
  reminderEveryMs: number | null;
  resolved: boolean;
}

function compileNotify(n: Rule['notify']): CompiledNotify {
  return {
    open: n?.open ?? [],
    tiers: (n?.tiers ?? []).map((t) => ({ afterMs: durationMs(t.after), channels: t.channels })),
    reminderEveryMs: n?.reminderEvery === undefined ? null : durationMs(n.reminderEvery),
    resolved: n?.resolved ?? true,
  };
}

export interface Hold {
  consecutive: number;
  /** Event-time span the streak must cover as well; null: the count alone. */
  forMs: number | null;
}

function compileHold(h: { consecutive: number; for?: string | undefined }): Hold {
  return { consecutive: h.consecutive, forMs: h.for === undefined ? null : durationMs(h.for) };
}

interface CompiledCommon {
  id: string;
  labels: Readonly<Record<string, string>>;
  notify: CompiledNotify;
}

/** The warning and critical conditions that apply to one sensor, resolved once and cached. */
export interface SensorBounds {
  warning: CompiledCondition | undefined;
  critical: CompiledCondition | undefined;
  needsPrevious: boolean;
  anomalyWindowMs: number;
}

export interface CompiledReadingRule extends CompiledCommon {
  kind: 'reading';
  selects: SensorSelector;
  open: Hold;
  escalate: Hold;
  clear: Hold;
  boundsFor(sensorId: string, sensorType: string | null, location: string | null): SensorBounds;
}

export interface CompiledNoDataRule extends CompiledCommon {
  kind: 'no-data';
  selects: SensorSelector;
  afterMs: number;
  after: string;
  per: 'sensor' | 'location';
  severity: AlertSeverity;
  escalateAfterMs: number | null;
}

export interface CompiledPipelineRule extends CompiledCommon {
  kind: 'pipeline';
  signal: PipelineSignal;
  severity: AlertSeverity;
  escalateAfterMs: number | null;
  /** dead-letter-rate: fallback 0.05 when unset. */
  above: number;
  /** dead-letter-rate: fallback 5m when unset. */
  window: string;
  windowMs: number;
  minMessages: number;
  /** ingest-stopped: fallback 5m when unset. */
  after: string;
  afterMs: number;
  names: ReadonlySet<string> | null;
}

export type CompiledRule = CompiledReadingRule | CompiledNoDataRule | CompiledPipelineRule;

const FALLBACK_WINDOW = '5m';
const FALLBACK_AFTER = '5m';
const FALLBACK_DEAD_LETTER_SHARE = 0.05;

/** The enabled rules of a set, by id, in file order. */
export function compileRules(
  set: RuleSet,
  configuredBounds: ConfiguredBounds,
): Map<string, CompiledRule> {
  const out = new Map<string, CompiledRule>();
  for (const rule of set.rules) {
    if (!rule.enabled) continue;
    out.set(rule.id, compileRule(rule, configuredBounds));
  }
  return out;
}

export function compileRule(rule: Rule, configuredBounds: ConfiguredBounds): CompiledRule {
  const common: CompiledCommon = {
    id: rule.id,
    labels: rule.labels ?? {},
    notify: compileNotify(rule.notify),
  };
  switch (rule.kind) {
    case 'reading':
      return compileReadingRule(rule, common, configuredBounds);
    case 'no-data':
      return compileNoDataRule(rule, common);
    case 'pipeline':
      return compilePipelineRule(rule, common);
  }
}

/**
 * Bound precedence, per level (warning and critical resolve separately, so an
 * override may replace only one of them): an override naming the sensor, then
 * the override with the longest location prefix, then one naming the sensor
 * type, then the rule's own condition, then (with `configuredBounds: true`) the
 * config bands of the sensor or its type.
 */
function compileReadingRule(
  rule: ReadingRule,
  common: CompiledCommon,
  configuredBounds: ConfiguredBounds,
): CompiledReadingRule {
  const optional = (c: Condition | undefined) =>
    c === undefined ? undefined : compileCondition(c);
  const overrides = rule.overrides.map((o) => ({
    sensor: o.sensor,
    location: o.location,
    sensorType: o.sensorType,
    warning: optional(o.warning),
    critical: optional(o.critical),
  }));
  const own = { warning: optional(rule.warning), critical: optional(rule.critical) };
  const cache = new Map<
    string,
    { type: string | null; location: string | null; b: SensorBounds }
  >();

  const resolve = (
    sensorId: string,
    sensorType: string | null,
    location: string | null,
  ): SensorBounds => {
    const bySensor = overrides.filter((o) => o.sensor === sensorId);
    const byLocation = overrides
      .filter((o) => o.location !== undefined && locationUnder(o.location, location))
      .sort((a, b) => (b.location?.length ?? 0) - (a.location?.length ?? 0));
    const byType = overrides.filter(
      (o) => o.sensorType !== undefined && o.sensorType === sensorType,
    );
    const sources = [...bySensor, ...byLocation, ...byType, own];
    let warning = sources.find((s) => s.warning !== undefined)?.warning;
    let critical = sources.find((s) => s.critical !== undefined)?.critical;
    if (rule.configuredBounds && (warning === undefined || critical === undefined)) {
      const bands = configuredBounds(sensorId, sensorType);
      warning ??= thresholdsCondition(bands.warning);
      critical ??= thresholdsCondition(bands.critical);
    }
    return {
      warning,
      critical,
      needsPrevious: (warning?.needsPrevious ?? false) || (critical?.needsPrevious ?? false),
      anomalyWindowMs: Math.max(warning?.anomalyWindowMs ?? 0, critical?.anomalyWindowMs ?? 0),
    };
  };

  return {
    ...common,
    kind: 'reading',
    selects: compileSelect(rule.select),
    open: compileHold(rule.open),
    escalate: compileHold(rule.escalate),
    clear: compileHold(rule.clear),
    boundsFor(sensorId, sensorType, location) {
      const hit = cache.get(sensorId);
      if (hit !== undefined && hit.type === sensorType && hit.location === location) return hit.b;
      const b = resolve(sensorId, sensorType, location);
      cache.set(sensorId, { type: sensorType, location, b });
      return b;
    },
  };
}

function compileNoDataRule(rule: NoDataRule, common: CompiledCommon): CompiledNoDataRule {
  return {
    ...common,
    kind: 'no-data',
    selects: compileSelect(rule.select),
    after: rule.after,
    afterMs: durationMs(rule.after),
    per: rule.per,
    severity: rule.severity,
    escalateAfterMs: rule.escalateAfter === undefined ? null : durationMs(rule.escalateAfter),
  };
}

function compilePipelineRule(rule: PipelineRule, common: CompiledCommon): CompiledPipelineRule {
  const window = rule.window ?? FALLBACK_WINDOW;
  const after = rule.after ?? FALLBACK_AFTER;
  return {
    ...common,
    kind: 'pipeline',
    signal: rule.signal,
    severity: rule.severity,
    escalateAfterMs: rule.escalateAfter === undefined ? null : durationMs(rule.escalateAfter),
    above: rule.above ?? FALLBACK_DEAD_LETTER_SHARE,
    window,
    windowMs: durationMs(window),
    minMessages: rule.minMessages,
    after,
    afterMs: durationMs(after),
    names: rule.names === undefined ? null : new Set(rule.names),
  };
}
