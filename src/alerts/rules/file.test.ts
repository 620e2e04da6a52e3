import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type * as fsPromises from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CanopyError } from '../../core/errors.js';
import { ensureRulesFile, exportRules, loadRulesFile, parseRules, saveRulesFile } from './file.js';
import { ruleSetSchema, type RuleSet } from './schema.js';
import { STARTER_RULES } from './starter.js';
import type { RuleContext, RuleProblem } from './validate.js';

/** Asymmetric matchers, typed as the strings they stand for. */
const matching = (pattern: RegExp): string => expect.stringMatching(pattern) as string;
const containing = (part: string): string => expect.stringContaining(part) as string;

/** Lets a test make the rename of the temporary file fail, as a full or broken disk would. */
const failRename = vi.hoisted(() => ({ next: false }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof fsPromises>();
  return {
    ...actual,
    rename: async (from: string, to: string) => {
      if (failRename.next) {
        failRename.next = false;
        throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
      }
      return actual.rename(from, to);
    },
  };
});

const context: RuleContext = {
  channels: new Set(['log', 'ops', 'pager']),
  sensors: [],
  sensorTypes: { temperature: { warning: { max: 30 } } },
};
const dir = mkdtempSync(path.join(tmpdir(), 'canopy-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  failRename.next = false;
});

/** Every rule kind, every condition form, every optional field, and values away from defaults. */
const RICH: RuleSet = ruleSetSchema.parse({
  rules: [
    {
      id: 'greenhouse-climate',
      kind: 'reading',
      description: 'Hot and dry, or changing fast.',
      enabled: false,
      labels: { team: 'growers', 'room-type': 'glass' },
      select: {
        sensorTypes: ['temperature', 'humidity'],
        sensors: ['t-1'],
        locations: ['kew/floor-1'],
      },
      warning: {
        any: [
          { all: [{ above: 30 }, { anomaly: true, reasons: ['range', 'zscore'] }] },
          { rateOfChange: { above: 2.5, per: '10m' } },
          { anomalyRate: { above: 0.2, window: '15m', minReadings: 30 } },
        ],
      },
      critical: { above: 40, below: -5 },
      overrides: [
        { sensor: 't-1', warning: { above: 35 } },
        { location: 'kew', critical: { above: 45 } },
        { sensorType: 'humidity', warning: { below: 20 }, critical: { below: 10 } },
      ],
      configuredBounds: true,
      open: { consecutive: 2, for: '1m' },
      escalate: { consecutive: 5, for: '10m' },
      clear: { consecutive: 4 },
      notify: {
        open: ['log'],
        tiers: [{ channels: ['ops'] }, { after: '30m', channels: ['pager', 'ops'] }],
        reminderEvery: '2h',
        resolved: false,
      },
    },
    {
      id: 'anomaly-only',
      kind: 'reading',
      warning: { anomaly: true },
      escalate: { consecutive: 1 },
    },
    {
      id: 'zone-silent',
      kind: 'no-data',
      select: { locations: ['wakehurst'] },
      after: '10m',
      per: 'location',
      severity: 'critical',
      escalateAfter: '1h',
      notify: { tiers: [{ after: '0s', channels: ['pager'] }] },
    },
    { id: 'sensor-silent', kind: 'no-data', after: '5m' },
    {
      id: 'rejects',
      kind: 'pipeline',
      signal: 'dead-letter-rate',
      above: 0.1,
      window: '10m',
      minMessages: 100,
      severity: 'warning',
      escalateAfter: '30m',
    },
    { id: 'stopped', kind: 'pipeline', signal: 'ingest-stopped', after: '2m' },
    { id: 'silver', kind: 'pipeline', signal: 'job-failed', names: ['silver', 'gold'] },
    { id: 'quality', kind: 'pipeline', signal: 'quality-failed' },
    { id: 'late', kind: 'pipeline', signal: 'deadline-missed', names: ['nightly'] },
  ],
});

function problemsOf(text: string): RuleProblem[] {
  try {
    parseRules(text, context, 'test.yaml');
  } catch (err) {
    expect((err as CanopyError).code).toBe('CANOPY_ALERT_RULES_INVALID');
    return (err as CanopyError).details as RuleProblem[];
  }
  throw new Error('expected the rules to be refused');
}

describe('exportRules / parseRules round trip', () => {
  it.each([
    ['the starter set', STARTER_RULES],
    ['a set with every rule kind and condition', RICH],
    ['an empty set', { rules: [] }],
  ])('gives back %s deep-equal', (_name, set: RuleSet) => {
    const text = exportRules(set);
    expect(parseRules(text, context)).toEqual(set);
    // Exporting the import again changes nothing: the form is normalized.
    expect(exportRules(parseRules(text, context))).toBe(text);
  });

  it('leaves out fields equal to their defaults and keeps the rest', () => {
    const exported = parseYaml(exportRules(RICH)) as { rules: Record<string, unknown>[] };
    expect(exported.rules[3]).toEqual({ id: 'sensor-silent', kind: 'no-data', after: '5m' });
    expect(exported.rules[7]).toEqual({
      id: 'quality',
      kind: 'pipeline',
      signal: 'quality-failed',
    });
    expect(exported.rules[1]).toEqual({
      id: 'anomaly-only',
      kind: 'reading',
      warning: { anomaly: true },
      escalate: { consecutive: 1 },
    });
    expect(exported.rules[0]).toMatchObject({
      enabled: false,
      notify: { tiers: [{ channels: ['ops'] }, { after: '30m' }], resolved: false },
    });
    expect(Object.keys(exported.rules[0] ?? {}).at(-1)).toBe('notify');
  });

  it('reads JSON as well as YAML', () => {
    expect(parseRules(JSON.stringify(RICH), context)).toEqual(RICH);
  });

  it('reads an empty file as no rules', () => {
    expect(parseRules('# nothing yet\n', context)).toEqual({ rules: [] });
  });

  it('reports YAML syntax errors with their line', () => {
    const problems = problemsOf('rules:\n  - id: a\n    kind: reading\n    warning: {below: 30\n');
    expect(problems).toEqual([
      {
        rule: '(root)',
        field: '',
        message: matching(/^not valid YAML at line \d+, column \d+: /),
      },
    ]);
    expect(problemsOf('rules:\n  - id: a\n    id: b\n')[0]?.message).toMatch(
      /^not valid YAML at line 3, column 5: Map keys must be unique/,
    );
  });
});

describe('rules files', () => {
  it('saves and loads a set', async () => {
    const file = path.join(dir, 'saved', 'rules.yaml');
    expect(await saveRulesFile(file, RICH)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe(exportRules(RICH));
    expect(await loadRulesFile(file, context)).toEqual(RICH);
  });

  it('leaves the old file whole and no temporary file when the write fails', async () => {
    const folder = path.join(dir, 'atomic');
    const file = path.join(folder, 'rules.yaml');
    await saveRulesFile(file, STARTER_RULES);
    const before = readFileSync(file, 'utf8');
    failRename.next = true;
    const error = await saveRulesFile(file, RICH).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(CanopyError);
    expect((error as CanopyError).code).toBe('CANOPY_ALERT_RULES_UNREADABLE');
    expect((error as CanopyError).message).toMatch(/EIO/);
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect(readdirSync(folder)).toEqual(['rules.yaml']);
  });

  it('refuses a missing file as unreadable and a bad one as invalid, naming the file', async () => {
    const missing = path.join(dir, 'missing.yaml');
    await expect(loadRulesFile(missing, context)).rejects.toMatchObject({
      code: 'CANOPY_ALERT_RULES_UNREADABLE',
      message: containing(missing),
    });
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'rules:\n  - {id: x, kind: no-data}\n');
    await expect(loadRulesFile(bad, context)).rejects.toMatchObject({
      code: 'CANOPY_ALERT_RULES_INVALID',
      message: `alert rules ${bad} have 1 problem:\n  - rule "x": after: required`,
    });
  });

  it('writes the starter rules when the file is missing, and never overwrites one', async () => {
    const file = path.join(dir, 'fresh', 'alert-rules.yaml');
    expect(await ensureRulesFile(file, context)).toEqual(STARTER_RULES);
    expect(readFileSync(file, 'utf8')).toBe(exportRules(STARTER_RULES));

    const mine = parseRules('rules:\n  - {id: mine, kind: no-data, after: 1m}\n', context);
    await saveRulesFile(file, mine);
    expect(await ensureRulesFile(file, context)).toEqual(mine);
    expect(await saveRulesFile(file, STARTER_RULES, { onlyIfMissing: true })).toBe(false);
    expect(await loadRulesFile(file, context)).toEqual(mine);
    expect(readdirSync(path.dirname(file))).toEqual(['alert-rules.yaml']);
  });

  it('adapts the starter rules to a configuration without the log channel', async () => {
    const file = path.join(dir, 'no-log', 'alert-rules.yaml');
    const slackOnly: RuleContext = { ...context, channels: new Set(['slack']) };
    const set = await ensureRulesFile(file, slackOnly);
    expect(set.rules.map((r) => r.id)).toEqual(STARTER_RULES.rules.map((r) => r.id));
    expect(set.rules.every((r) => r.notify === undefined)).toBe(true);
  });
});
