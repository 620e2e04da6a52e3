import { describe, expect, it } from 'vitest';
import { CanopyError } from '../../core/errors.js';
import { configSchema } from '../../config/schema.js';
import { parseRules } from './file.js';
import { ruleContextOf, validateRuleSet, type RuleContext, type RuleProblem } from './validate.js';

/** Asymmetric matchers, typed as the strings they stand for. */
const matching = (pattern: RegExp): string => expect.stringMatching(pattern) as string;

const context: RuleContext = { channels: new Set(['log', 'ops']), sensors: [], sensorTypes: {} };

function problemsOf(yamlText: string, ctx: RuleContext = context): RuleProblem[] {
  try {
    parseRules(yamlText, ctx, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(CanopyError);
    const e = err as CanopyError;
    expect(e.code).toBe('CANOPY_ALERT_RULES_INVALID');
    expect(e.status).toBe(400);
    const details = e.details as RuleProblem[];
    // The message lists the same problems, one per line.
    expect(e.message.split('\n')).toHaveLength(details.length + 1);
    return details;
  }
  throw new Error('expected the rules to be refused');
}

/** One reading rule with `body` (YAML lines indented under the rule). */
const reading = (id: string, body: string): string =>
  `rules:\n  - id: ${id}\n    kind: reading\n${body
    .trim()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n')}\n`;

describe('validateRuleSet', () => {
  it('accepts a valid rule and fills in defaults', () => {
    const set = parseRules(reading('soil-low', 'warning: {below: 30}'), context);
    expect(set.rules[0]).toEqual({
      id: 'soil-low',
      kind: 'reading',
      enabled: true,
      select: {},
      warning: { below: 30 },
      overrides: [],
      configuredBounds: false,
      open: { consecutive: 1 },
      escalate: { consecutive: 3 },
      clear: { consecutive: 1 },
    });
  });

  it('refuses an unknown field, naming the rule and the field', () => {
    expect(problemsOf(reading('soil-low', 'warning: {below: 30}\ncolour: blue'))).toEqual([
      { rule: 'soil-low', field: 'colour', message: matching(/^unknown field/) },
    ]);
    expect(
      problemsOf(reading('soil-low', 'warning: {below: 30}\nescalte: {consecutive: 2}')),
    ).toEqual([
      { rule: 'soil-low', field: 'escalte', message: 'unknown field; did you mean `escalate`?' },
    ]);
  });

  it('refuses an unknown key in a band, a number given as text, and an empty `all`', () => {
    const problems = problemsOf(
      reading('soil-low', "warning: {below: 30, min: 10}\ncritical: {below: '20'}") +
        reading('damp', 'warning: {all: []}').replace('rules:\n', ''),
    );
    expect(problems).toEqual([
      {
        rule: 'soil-low',
        field: 'warning.min',
        message: matching(/only `above` and `below`; did you mean `below`\?/),
      },
      {
        rule: 'soil-low',
        field: 'critical.below',
        message: 'must be a number, got the text "20" (remove the quotes)',
      },
      { rule: 'damp', field: 'warning.all', message: 'needs at least 1 condition' },
    ]);
  });

  it('diagnoses nested conditions by the branch their fields name', () => {
    const problems = problemsOf(
      reading(
        'mixed',
        `warning:
  any:
    - {above: 30}
    - all: [{anomaly: yes}, {rateOfChange: {above: 5, per: often}}]
    - {above: 1, anomaly: true}
    - {max: 3}`,
      ),
    );
    expect(problems.map((p) => `${p.field}: ${p.message}`)).toEqual([
      'warning.any[1].all[0].anomaly: must be true, got "yes"',
      matching(/^warning\.any\[1\]\.all\[1\]\.rateOfChange\.per: must be a duration/),
      matching(/^warning\.any\[2\]: one condition cannot have both `above`\/`below` and `anomaly`/),
      matching(/^warning\.any\[3\]\.max: unknown field; bands use `above`/),
    ]);
  });

  it('refuses inverted bands and a critical band inside the warning band', () => {
    const problems = problemsOf(
      reading(
        'soil',
        `warning: {below: 30, above: 20}
critical: {below: 40}
overrides:
  - {sensor: plant-1, warning: {above: 80}, critical: {above: 70}}
  - {location: kew, warning: {all: [{above: 5, below: 5}]}}`,
      ),
    );
    expect(problems).toEqual([
      {
        rule: 'soil',
        field: 'warning.above',
        message: matching(/^inverted band: above 20 is not higher than below 30/),
      },
      {
        rule: 'soil',
        field: 'critical.below',
        message: matching(/^critical must be further out than warning: critical below 40/),
      },
      {
        rule: 'soil',
        field: 'overrides[0].critical.above',
        message: matching(/critical above 70 fires before warning above 80/),
      },
      {
        rule: 'soil',
        field: 'overrides[1].warning.all[0].above',
        message: matching(/^inverted band/),
      },
    ]);
  });

  it('accepts critical equal to or beyond warning on each side', () => {
    const set = parseRules(
      reading('temp', 'warning: {below: 10, above: 30}\ncritical: {below: 10, above: 40}'),
      context,
    );
    expect(set.rules).toHaveLength(1);
  });

  it('refuses a reading rule with no threshold and an override with neither level', () => {
    expect(problemsOf(reading('bare', 'select: {sensorTypes: [humidity]}'))).toEqual([
      { rule: 'bare', field: '', message: matching(/^no threshold/) },
    ]);
    expect(problemsOf(reading('half', 'overrides: [{sensorType: humidity}]'))).toEqual([
      { rule: 'half', field: 'overrides[0]', message: 'gives neither `warning` nor `critical`' },
    ]);
  });

  it('accepts configuredBounds only when the configuration has a band to fall back to', () => {
    const rule = reading('configured', 'configuredBounds: true');
    expect(problemsOf(rule)).toEqual([
      {
        rule: 'configured',
        field: 'configuredBounds',
        message: matching(/no sensor or sensor type/),
      },
    ]);
    const withTypeBand = ruleContextOf(
      configSchema.parse({ sensorTypes: { temperature: { warning: { max: 30 } } } }),
    );
    expect(parseRules(rule, withTypeBand).rules[0]).toMatchObject({ configuredBounds: true });
    const withSensorBand = ruleContextOf(
      configSchema.parse({ sensors: [{ id: 's1', critical: { min: 2 } }] }),
    );
    expect(parseRules(rule, withSensorBand).rules).toHaveLength(1);
  });

  it('refuses unknown channels and tiers whose `after` does not increase', () => {
    const problems = problemsOf(
      reading(
        'soil',
        `warning: {below: 30}
notify:
  open: [pager]
  tiers:
    - {after: 5m, channels: [log]}
    - {after: 300s, channels: [ops, slack]}
    - {after: 1h, channels: [ops]}`,
      ),
    );
    expect(problems).toEqual([
      {
        rule: 'soil',
        field: 'notify.open[0]',
        message: 'unknown channel "pager"; configured in alerting.notifiers: log, ops',
      },
      {
        rule: 'soil',
        field: 'notify.tiers[1].channels[1]',
        message: matching(/^unknown channel "slack"/),
      },
      {
        rule: 'soil',
        field: 'notify.tiers[1].after',
        message: matching(/^must be later than tier 1's after \(5m\)/),
      },
    ]);
  });

  it('refuses duplicate ids, a bad duration, a bad kind and a rule with no id', () => {
    const problems = problemsOf(`
rules:
  - {id: quiet, kind: no-data, after: 5m}
  - {id: quiet, kind: no-data, after: 5 minutes}
  - {id: odd, kind: sometimes}
  - {kind: no-data, after: 0s}
`);
    expect(problems).toEqual([
      { rule: 'quiet', field: 'id', message: 'duplicate id: rules[0] has the same id' },
      {
        rule: 'quiet',
        field: 'after',
        message: 'must be a duration such as 30s, 5m, 2h or 1d, got "5 minutes"',
      },
      {
        rule: 'odd',
        field: 'kind',
        message: 'unknown kind "sometimes"; one of reading, no-data, pipeline',
      },
      { rule: 'rules[3]', field: 'id', message: 'required' },
    ]);
  });

  it('checks pipeline parameters against the signal', () => {
    const problems = problemsOf(`
rules:
  - {id: dlq, kind: pipeline, signal: dead-letter-rate, above: 0.1}
  - {id: stopped, kind: pipeline, signal: ingest-stopped, after: 2m, window: 5m}
  - {id: jobs, kind: pipeline, signal: job-failed, minMessages: 5, names: [silver]}
  - {id: quiet, kind: pipeline, signal: ingest-stopped}
  - {id: rate, kind: pipeline, signal: dead-letter-rate, above: 1.5, window: 5m}
`);
    expect(problems).toEqual([
      { rule: 'dlq', field: 'window', message: 'required for signal dead-letter-rate' },
      {
        rule: 'stopped',
        field: 'window',
        message: 'does not apply to signal ingest-stopped (it takes `after`)',
      },
      {
        rule: 'jobs',
        field: 'minMessages',
        message: 'does not apply to signal job-failed (it takes `names`)',
      },
      { rule: 'quiet', field: 'after', message: 'required for signal ingest-stopped' },
      { rule: 'rate', field: 'above', message: 'must be at most 1, got 1.5' },
    ]);
  });

  it('reports every problem of every rule at once, in rule order, one per line', () => {
    let message = '';
    try {
      parseRules(
        `
rules:
  - {id: a, kind: reading, warning: {below: 30, above: 10}, colour: red}
  - {id: b, kind: no-data, after: 5m, notify: {open: [pager]}}
  - {id: a, kind: pipeline, signal: job-failed}
`,
        context,
        'rules.yaml',
      );
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message.split('\n')).toEqual([
      'alert rules rules.yaml have 3 problems:',
      matching(/^ {2}- rule "a": colour: unknown field/),
      matching(/^ {2}- rule "b": notify\.open\[0\]: unknown channel "pager"/),
      '  - rule "a": id: duplicate id: rules[0] has the same id',
    ]);
  });

  it('refuses a document that is not a rules mapping', () => {
    expect(() => validateRuleSet([1, 2], context)).toThrow(/\(root\): expected a mapping/);
    expect(problemsOf('rules: {a: 1}\nextra: 2')).toEqual([
      { rule: '(root)', field: 'extra', message: 'unknown field; a rules file has only `rules`' },
      { rule: '(root)', field: 'rules', message: 'expected a list of rules, got a mapping' },
    ]);
  });

  it('is idempotent: a parsed set validates to itself', () => {
    const set = parseRules(
      `
rules:
  - {id: rate, kind: pipeline, signal: dead-letter-rate, above: 0.2, window: 5m, minMessages: 50}
  - {id: jobs, kind: pipeline, signal: job-failed}
  - {id: soil, kind: reading, warning: {below: 30}}
`,
      context,
    );
    expect(validateRuleSet(set, context)).toEqual(set);
  });
});
