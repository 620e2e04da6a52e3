/**
 * deploy/prometheus/rules.yml through Debian's promtool: `check rules` (syntax,
 * PromQL, templates) and `test rules` (rules.test.yml, promtool's own unit tests
 * with input series: each alert firing and not firing). Also checks the
 * shortened copy the scrape test runs (test/helpers/prometheus.ts): valid, and
 * equal to the original once durations are masked.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import {
  debianToolForTests,
  parseDuration,
  prometheusDeployDir,
  rulesFile,
  shortenRuleDurations,
} from './helpers/prometheus.js';

const run = promisify(execFile);
const promtool = debianToolForTests('promtool');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
}
const rulesOf = (text: string): Rule[] =>
  (YAML.parse(text) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);

async function promtoolOutput(args: string[]): Promise<string> {
  const { stdout, stderr } = await run(promtool as string, args, { cwd: prometheusDeployDir });
  return stdout + stderr;
}

describe.runIf(promtool)('Prometheus rules (promtool)', () => {
  it('pass promtool check rules, which counts every rule in the file', async () => {
    const count = rulesOf(readFileSync(rulesFile, 'utf8')).length;
    expect(await promtoolOutput(['check', 'rules', 'rules.yml'])).toContain(
      `SUCCESS: ${count} rules found`,
    );
  });

  it('pass their promtool unit tests, which cover every alert', async () => {
    const alerts = rulesOf(readFileSync(rulesFile, 'utf8')).flatMap((r) => r.alert ?? []);
    const unitTests = YAML.parse(
      readFileSync(path.join(prometheusDeployDir, 'rules.test.yml'), 'utf8'),
    ) as { tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[] };
    const cases = unitTests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const alert of alerts) {
      const own = cases.filter((c) => c.alertname === alert);
      expect(
        own.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert} fires`,
      ).toBe(true);
      expect(
        own.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert} stays quiet`,
      ).toBe(true);
    }
    expect(await promtoolOutput(['test', 'rules', 'rules.test.yml'])).toContain('SUCCESS');
  });

  it('fail promtool when a rule is broken (the check is not vacuous)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'canopy-rules-'));
    try {
      const broken = readFileSync(rulesFile, 'utf8').replace(
        'canopy_quality_suite_success == 0',
        'canopy_quality_suite_success ==',
      );
      writeFileSync(path.join(dir, 'rules.yml'), broken);
      await expect(promtoolOutput(['check', 'rules', path.join(dir, 'rules.yml')])).rejects.toThrow(
        /FAILED/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('shortened for the scrape test: valid, and only durations change', async () => {
    const original = readFileSync(rulesFile, 'utf8');
    const short = shortenRuleDurations(original, 60);
    const dir = mkdtempSync(path.join(tmpdir(), 'canopy-rules-'));
    try {
      writeFileSync(path.join(dir, 'rules.yml'), short);
      expect(await promtoolOutput(['check', 'rules', path.join(dir, 'rules.yml')])).toContain(
        'SUCCESS',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const mask = (expr: string): string => expr.replace(/\[[0-9a-z:]+\]/g, '[D]');
    const [before, after] = [rulesOf(original), rulesOf(short)];
    expect(after.map((r) => mask(r.expr))).toEqual(before.map((r) => mask(r.expr)));
    const stopped = (rules: Rule[]): Rule =>
      rules.find((r) => r.alert === 'CanopyIngestStopped') as Rule;
    expect(parseDuration(stopped(before).for as string)).toBe(600_000);
    expect(stopped(after).for).toBe('10s');
    expect(after.find((r) => r.record === 'canopy:readings_accepted:rate5m')?.expr).toContain(
      '[5s]',
    );
  });
});

describe('Prometheus rules (without promtool)', () => {
  it('give every alert a severity, a summary, a description and a runbook that exists', () => {
    const headings = new Set(
      [
        ...readFileSync(
          path.resolve(prometheusDeployDir, '../../docs/operations.md'),
          'utf8',
        ).matchAll(/^#{2,4} (.+)$/gm),
      ].map((m) => (m[1] as string).trim().toLowerCase()),
    );
    const alerts = (
      YAML.parse(readFileSync(rulesFile, 'utf8')) as {
        groups: {
          rules: (Rule & {
            labels?: Record<string, string>;
            annotations?: Record<string, string>;
          })[];
        }[];
      }
    ).groups.flatMap((g) => g.rules.filter((r) => r.alert !== undefined));
    expect(alerts.length).toBeGreaterThan(10);
    for (const rule of alerts) {
      const name = rule.alert as string;
      expect(['critical', 'warning', 'info'], name).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, name).toBeTruthy();
      expect(rule.annotations?.description, name).toBeTruthy();
      expect(rule.annotations?.runbook_url, name).toBe(`docs/operations.md#${name.toLowerCase()}`);
      expect(headings.has(name.toLowerCase()), `runbook section for ${name}`).toBe(true);
    }
  });
});
