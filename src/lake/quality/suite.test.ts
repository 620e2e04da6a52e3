import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CanopyError } from '../../core/errors.js';
import { EXPECTATION_NAMES, loadSuiteFile, parseSuite } from './suite.js';

function problemsOf(yamlText: string): string[] {
  try {
    parseSuite(yamlText, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(CanopyError);
    expect((err as CanopyError).code).toBe('CANOPY_QUALITY_INVALID_SUITE');
    expect((err as CanopyError).status).toBe(400);
    return (err as CanopyError).details as string[];
  }
  throw new Error('expected the suite to be refused');
}

describe('parseSuite', () => {
  it('parses every supported expectation and applies defaults', () => {
    const suite = parseSuite(`
name: demo
table: main.readings
expectations:
  - {expectation: expect_column_values_to_not_be_null, column: sensor_id}
  - {expectation: expect_column_values_to_be_between, column: value, min: 0, mostly: 0.9}
  - expectation: expect_column_values_to_be_between_per_group
    column: value
    group_column: sensor_type
    ranges: {temperature: {min: -40, max: 85}, humidity: {max: 100}}
  - {expectation: expect_column_values_to_be_in_set, column: sensor_type, value_set: [a, b]}
  - {expectation: expect_column_values_to_be_unique, column: seq}
  - {expectation: expect_compound_columns_to_be_unique, columns: [sensor_id, event_time]}
  - {expectation: expect_table_row_count_to_be_between, min: 1}
  - {expectation: expect_column_null_fraction_to_be_at_most, column: value, max_null_fraction: 0.01}
  - {expectation: expect_table_row_count_ratio_to_be_between, other_table: bronze, min_ratio: 0.95, max_ratio: 1.05}
  - {expectation: expect_column_values_to_be_of_type, column: is_anomaly, type: BOOLEAN, severity: warning}
`);
    expect(suite.expectations.map((e) => e.expectation)).toEqual(EXPECTATION_NAMES);
    expect(suite.expectations[0]).toEqual({
      expectation: 'expect_column_values_to_not_be_null',
      column: 'sensor_id',
      mostly: 1,
      severity: 'error',
    });
    expect(suite.expectations[1]).toMatchObject({ mostly: 0.9 });
    expect(suite.expectations[9]).toMatchObject({ severity: 'warning' });
  });

  it('lists every problem at once', () => {
    const problems = problemsOf(`
name: "bad name!"
table: readings
colour: blue
expectations:
  - {expectation: expect_everything_to_be_fine, column: a}
  - {column: a}
  - {expectation: expect_column_values_to_be_between, column: v}
  - {expectation: expect_column_values_to_be_between, column: v, min: 5, max: 1}
  - {expectation: expect_column_values_to_be_in_set, column: v}
  - {expectation: expect_column_values_to_not_be_null, column: v, mostly: 1.5, severity: fatal}
  - {expectation: expect_column_values_to_not_be_null, column: v, max: 3}
  - {expectation: expect_table_row_count_ratio_to_be_between, other_table: b}
  - {expectation: expect_column_values_to_be_of_type, column: v}
  - {expectation: expect_column_null_fraction_to_be_at_most, column: v, max_null_fraction: 2}
`);
    const expected = [
      /^name: /,
      /^\(root\): Unrecognized key: "colour"/,
      /^expectations\.0\.expectation: unknown expectation "expect_everything_to_be_fine"/,
      /^expectations\.1\.expectation: required/,
      /^expectations\.2: needs min, max or both/,
      /^expectations\.3: min must not exceed max/,
      /^expectations\.4\.value_set: /,
      /^expectations\.5\.mostly: /,
      /^expectations\.5\.severity: /,
      /^expectations\.6: Unrecognized key: "max"/,
      /^expectations\.7: needs min_ratio, max_ratio or both/,
      /^expectations\.8\.type: /,
      /^expectations\.9\.max_null_fraction: /,
    ];
    for (const pattern of expected) expect(problems.some((p) => pattern.test(p))).toBe(true);
    expect(problems).toHaveLength(expected.length);
  });

  it('refuses identifier injection at parse time', () => {
    const problems = problemsOf(`
name: inj
table: "readings; DROP TABLE x"
expectations:
  - {expectation: expect_column_values_to_not_be_null, column: "value; DROP TABLE x"}
  - {expectation: expect_compound_columns_to_be_unique, columns: [a, 'b" OR 1=1 --']}
  - {expectation: expect_table_row_count_ratio_to_be_between, other_table: "x UNION SELECT 1", min_ratio: 1}
  - {expectation: expect_column_values_to_be_between_per_group, column: v, group_column: "t)--", ranges: {a: {min: 1}}}
  - {expectation: expect_column_values_to_be_of_type, column: v, type: "BOOLEAN); DROP TABLE x; --"}
`);
    expect(problems).toEqual([
      expect.stringMatching(/^table: /),
      expect.stringMatching(/^expectations\.0\.column: must be a plain identifier/),
      expect.stringMatching(/^expectations\.1\.columns\.1: must be a plain identifier/),
      expect.stringMatching(/^expectations\.2\.other_table: /),
      expect.stringMatching(/^expectations\.3\.group_column: must be a plain identifier/),
      expect.stringMatching(/^expectations\.4\.type: /),
    ]);
  });

  it('refuses text that is not YAML or not a mapping', () => {
    expect(problemsOf('name: [unclosed')[0]).toMatch(/not valid YAML/);
    expect(problemsOf('- just\n- a list')[0]).toMatch(/^\(root\): /);
    expect(problemsOf('name: x\ntable: t\nexpectations: []')).toEqual([
      expect.stringMatching(/^expectations: /),
    ]);
  });
});

describe('loadSuiteFile', () => {
  it('reads a file and names it in errors', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'canopy-quality-'));
    try {
      const good = path.join(dir, 'good.yaml');
      writeFileSync(
        good,
        'name: g\ntable: t\nexpectations:\n  - {expectation: expect_table_row_count_to_be_between, max: 10}\n',
      );
      expect(loadSuiteFile(good).name).toBe('g');

      const bad = path.join(dir, 'bad.yaml');
      writeFileSync(bad, 'name: g\n');
      expect(() => loadSuiteFile(bad)).toThrow(/bad\.yaml has 2 problems/);
      expect(() => loadSuiteFile(path.join(dir, 'missing.yaml'))).toThrow(
        expect.objectContaining({ code: 'CANOPY_QUALITY_SUITE_UNREADABLE' }),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
