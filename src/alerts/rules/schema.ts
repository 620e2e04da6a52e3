/**
 * The alert-rule language: the shape of an alert-rules YAML file (and of
 * `PUT /api/alert-rules`). This schema checks shape only; `validateRuleSet`
 * (validate.ts) adds the checks that need the whole set or the config
 * (unique ids, inverted bounds, a threshold to hold against, known channels).
 *
 * The parsed form keeps durations as written (`'5m'`), so exporting a rule
 * set and importing it again gives the same set; `compileRules` turns it into
 * the evaluator's form (milliseconds).
 */
import { z } from 'zod';

/** `250ms`, `30s`, `5m`, `2h`, `1d`. */
export const DURATION_PATTERN = /^(\d+)(ms|s|m|h|d)$/;
const duration = z
  .string()
  .regex(DURATION_PATTERN, 'a duration such as 30s, 5m, 2h or 1d')
  .describe('A duration: a whole number and a unit (ms, s, m, h, d).');

const id = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, 'lower-case letters, digits, `-`, `_`, `.`; up to 64')
  .describe('Stable identifier; alerts refer to their rule by it.');

const labels = z.record(z.string(), z.string()).describe('Added to every alert of the rule.');

/**
 * A condition over one reading (and the sensor's recent readings). Leaves:
 * - `{ above: x }` / `{ below: x }` / both: the value is outside the band
 *   (above `above` or below `below`). A missing value never matches.
 * - `{ rateOfChange: { above, per } }`: |Δvalue| over the time since the
 *   sensor's previous reading, scaled to `per`, exceeds `above`.
 * - `{ anomaly: true }`: the stream checks flagged the reading (optionally only
 *   for some `reasons`: range, zscore, device).
 * - `{ anomalyRate: { above, window } }`: the share of the sensor's readings
 *   flagged in the last `window` exceeds `above` (needs `minReadings`).
 * Combined with `all` (AND) and `any` (OR), nested freely.
 */
export type Condition =
  | { above?: number | undefined; below?: number | undefined }
  | { rateOfChange: { above: number; per: string } }
  | { anomaly: true; reasons?: string[] | undefined }
  | { anomalyRate: { above: number; window: string; minReadings: number } }
  | { all: Condition[] }
  | { any: Condition[] };

const bounds = z
  .strictObject({
    above: z.number().optional().describe('Breach when the value is above this.'),
    below: z.number().optional().describe('Breach when the value is below this.'),
  })
  .refine((b) => b.above !== undefined || b.below !== undefined, {
    message: 'give `above`, `below` or both',
  });

/**
 * The condition branches, keyed by the field that picks each one (`reasons`
 * belongs to `anomaly`). validate.ts re-parses a condition that failed the
 * union against the branch its fields name, so a user reads that branch's
 * errors rather than six alternatives.
 */
export const CONDITION_BRANCHES = {
  above: bounds,
  below: bounds,
  rateOfChange: z.strictObject({
    rateOfChange: z.strictObject({
      above: z.number().positive(),
      per: duration.default('1m'),
    }),
  }),
  anomaly: z.strictObject({
    anomaly: z.literal(true),
    reasons: z
      .array(z.enum(['range', 'zscore', 'device']))
      .min(1)
      .optional(),
  }),
  anomalyRate: z.strictObject({
    anomalyRate: z.strictObject({
      above: z.number().min(0).max(1),
      window: duration,
      minReadings: z.number().int().positive().default(10),
    }),
  }),
  all: z.strictObject({ all: z.array(z.lazy(() => conditionSchema)).min(1) }),
  any: z.strictObject({ any: z.array(z.lazy(() => conditionSchema)).min(1) }),
};

export const conditionSchema: z.ZodType<Condition> = z.lazy(() =>
  z.union([
    CONDITION_BRANCHES.above,
    CONDITION_BRANCHES.rateOfChange,
    CONDITION_BRANCHES.anomaly,
    CONDITION_BRANCHES.anomalyRate,
    CONDITION_BRANCHES.all,
    CONDITION_BRANCHES.any,
  ]),
);

/** Which readings (and so which sensors) a rule watches. Empty: every sensor. */
const select = z
  .strictObject({
    sensorTypes: z.array(z.string().min(1)).min(1).optional(),
    sensors: z.array(z.string().min(1)).min(1).optional(),
    locations: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Location path prefixes: `greenhouse` matches `greenhouse/1/a`.'),
  })
  .default({});

/** How long a condition must hold: N consecutive readings, and (if set) for a duration. */
const hold = (defaultConsecutive: number) =>
  z
    .strictObject({
      consecutive: z.number().int().positive().default(defaultConsecutive),
      for: duration.optional(),
    })
    .default({ consecutive: defaultConsecutive });

const channelName = z.string().min(1);

const notify = z
  .strictObject({
    open: z
      .array(channelName)
      .default([])
      .describe('Channels told when the alert opens (before any escalation).'),
    tiers: z
      .array(
        z.strictObject({
          after: duration
            .default('0s')
            .describe('Time since escalation without acknowledgement before this tier.'),
          channels: z.array(channelName).min(1),
        }),
      )
      .default([])
      .describe(
        'Escalation policy: tier 1 when the alert escalates, later tiers if unacknowledged.',
      ),
    reminderEvery: duration
      .optional()
      .describe('Repeat to the notified channels until acknowledged (snooze pauses it).'),
    resolved: z
      .boolean()
      .default(true)
      .describe('Tell the channels already notified when the alert resolves.'),
  })
  .optional();

const common = {
  id,
  description: z.string().optional(),
  enabled: z.boolean().default(true),
  labels: labels.optional(),
  notify,
};

/** A band per level; a more specific override replaces the rule's own bounds for its sensors. */
const override = z
  .strictObject({
    sensor: z.string().min(1).optional(),
    location: z.string().min(1).optional(),
    sensorType: z.string().min(1).optional(),
    warning: conditionSchema.optional(),
    critical: conditionSchema.optional(),
  })
  .refine((o) => [o.sensor, o.location, o.sensorType].filter((v) => v !== undefined).length === 1, {
    message: 'name exactly one of `sensor`, `location`, `sensorType`',
  });

export const readingRuleSchema = z.strictObject({
  ...common,
  kind: z.literal('reading'),
  select,
  warning: conditionSchema.optional(),
  critical: conditionSchema.optional(),
  overrides: z
    .array(override)
    .default([])
    .describe(
      'Precedence: sensor, then location (longest prefix), then sensor type, then the rule.',
    ),
  configuredBounds: z
    .boolean()
    .default(false)
    .describe(
      'Fall back to the `warning` / `critical` bands in config `sensors` and `sensorTypes` (a sensor’s own over its type’s).',
    ),
  open: hold(1).describe('Warning or critical must hold this long to open an alert.'),
  escalate: hold(3).describe('Critical must hold this long to escalate.'),
  clear: hold(1).describe(
    'Good readings (hysteresis) to resolve; the same count below critical to de-escalate.',
  ),
});

export const noDataRuleSchema = z.strictObject({
  ...common,
  kind: z.literal('no-data'),
  select,
  after: duration.describe('Silence longer than this raises the alert.'),
  per: z
    .enum(['sensor', 'location'])
    .default('sensor')
    .describe(
      '`sensor`: one alert per silent sensor, folded into one location alert when every sensor there is silent. `location`: only whole-location silence.',
    ),
  severity: z.enum(['warning', 'critical']).default('warning'),
  escalateAfter: duration.optional().describe('Escalate if still silent this long after opening.'),
});

export const PIPELINE_SIGNALS = [
  'dead-letter-rate',
  'ingest-stopped',
  'job-failed',
  'quality-failed',
  'deadline-missed',
] as const;
export type PipelineSignal = (typeof PIPELINE_SIGNALS)[number];

export const pipelineRuleSchema = z.strictObject({
  ...common,
  kind: z.literal('pipeline'),
  signal: z.enum(PIPELINE_SIGNALS),
  severity: z.enum(['warning', 'critical']).default('critical'),
  escalateAfter: duration.optional().describe('Escalate if still active this long after opening.'),
  above: z
    .number()
    .min(0)
    .max(1)
    .optional()
    .describe('dead-letter-rate: the share of rejected readings that raises the alert.'),
  window: duration.optional().describe('dead-letter-rate: the window the share is taken over.'),
  minMessages: z
    .number()
    .int()
    .positive()
    .default(20)
    .describe('dead-letter-rate: fewer readings in the window never alert.'),
  after: duration.optional().describe('ingest-stopped: silence that raises the alert.'),
  names: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe('job-failed, quality-failed, deadline-missed: only these jobs, suites or workflows.'),
});

export const ruleSchema = z.discriminatedUnion('kind', [
  readingRuleSchema,
  noDataRuleSchema,
  pipelineRuleSchema,
]);

export const ruleSetSchema = z.strictObject({
  rules: z.array(ruleSchema).default([]),
});

export type ReadingRule = z.output<typeof readingRuleSchema>;
export type NoDataRule = z.output<typeof noDataRuleSchema>;
export type PipelineRule = z.output<typeof pipelineRuleSchema>;
export type Rule = z.output<typeof ruleSchema>;
export type RuleSet = z.output<typeof ruleSetSchema>;
export type RuleNotify = NonNullable<Rule['notify']>;

/** Milliseconds of a duration string that matched DURATION_PATTERN. */
export function durationMs(text: string): number {
  const m = DURATION_PATTERN.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms'];
  return n * unit;
}
