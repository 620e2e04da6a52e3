import type { DuckDBConnection } from '@duckdb/node-api';
import { beforeAll, describe, expect, it } from 'vitest';
import { runExpectation, runSuite, type ExpectationResult } from './run.js';
import { validateSuite, type Expectation, type SuiteInput } from './suite.js';
import { createTable, memoryConnection, type Row } from './tables.fixture.js';

const COLUMNS = {
  id: 'INTEGER',
  sensor: 'VARCHAR',
  ts: 'INTEGER',
  v: 'DOUBLE',
  kind: 'VARCHAR',
  flag: 'BOOLEAN',
};

/**
 * 20 rows with known defects: nulls in v and sensor, values outside 0..100,
 * kinds outside {a, b}, a duplicated id and duplicated (sensor, ts) pairs.
 */
const ROWS: Row[] = Array.from({ length: 20 }, (_, i) => ({
  id: i === 7 ? 3 : i,
  sensor: i === 11 ? null : `s${i % 4}`,
  ts: i === 13 || i === 17 ? 1 : i,
  v: i % 6 === 5 ? null : i === 2 ? -5 : i === 9 ? 250 : i * 5,
  kind: i % 5 === 4 ? 'zzz' : i === 10 ? null : i % 2 === 0 ? 'a' : 'b',
  flag: i % 3 === 0,
}));

let conn: DuckDBConnection;

beforeAll(async () => {
  conn = await memoryConnection();
  await createTable(conn, 't', COLUMNS, ROWS);
  await createTable(conn, 'other', { x: 'INTEGER' }, [{ x: 1 }, { x: 2 }, { x: 3 }, { x: 4 }]);
  await createTable(conn, 'empty', { x: 'INTEGER' }, []);
});

function expectation(input: Record<string, unknown>): Expectation {
  return validateSuite({ name: 's', table: 't', expectations: [input] }).expectations[0]!;
}

async function run(input: Record<string, unknown>, table = 't'): Promise<ExpectationResult> {
  return runExpectation(conn, table, expectation(input), 100);
}

/** The oracle for a row-level expectation: which rows are judged and which of them fail. */
function oracle(inDomain: (r: Row) => boolean, unexpected: (r: Row) => boolean) {
  const evaluated = ROWS.filter(inDomain);
  const bad = evaluated.filter(unexpected);
  return {
    element_count: ROWS.length,
    evaluated_count: evaluated.length,
    unexpected_count: bad.length,
    unexpected_percent: evaluated.length ? (bad.length / evaluated.length) * 100 : 0,
    ids: bad.map((r) => r.id).sort(),
  };
}

function failingIds(result: ExpectationResult): unknown[] {
  return result.failing_rows.map((r) => r.id).sort();
}

function countBy(key: (r: Row) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of ROWS) counts.set(key(r), (counts.get(key(r)) ?? 0) + 1);
  return counts;
}

describe('row-level expectations', () => {
  it('expect_column_values_to_not_be_null', async () => {
    const want = oracle(
      () => true,
      (r) => r.v === null,
    );
    const got = await run({ expectation: 'expect_column_values_to_not_be_null', column: 'v' });
    expect(want.unexpected_count).toBeGreaterThan(0);
    expect(got.success).toBe(false);
    expect(got.observed).toMatchObject({
      element_count: want.element_count,
      evaluated_count: want.evaluated_count,
      unexpected_count: want.unexpected_count,
    });
    expect(got.observed.unexpected_percent).toBeCloseTo(want.unexpected_percent);
    expect(failingIds(got)).toEqual(want.ids);
    expect(got.failing_rows[0]).toHaveProperty('v', null);
    expect(got.failing_rows[0]).not.toHaveProperty('__canopy_unexpected');

    const clean = await run({ expectation: 'expect_column_values_to_not_be_null', column: 'id' });
    expect(clean).toMatchObject({ success: true, failing_rows: [] });
  });

  it('expect_column_values_to_be_between ignores nulls and is inclusive', async () => {
    const want = oracle(
      (r) => r.v !== null,
      (r) => (r.v as number) < 0 || (r.v as number) > 100,
    );
    const got = await run({
      expectation: 'expect_column_values_to_be_between',
      column: 'v',
      min: 0,
      max: 100,
    });
    expect(got.success).toBe(false);
    expect(got.observed).toMatchObject({
      evaluated_count: want.evaluated_count,
      unexpected_count: want.unexpected_count,
      missing_count: ROWS.filter((r) => r.v === null).length,
    });
    expect(failingIds(got)).toEqual(want.ids);

    // Only a max: 95 itself (row 19) passes because bounds are inclusive.
    const onlyMax = await run({
      expectation: 'expect_column_values_to_be_between',
      column: 'v',
      max: 95,
    });
    expect(failingIds(onlyMax)).toEqual(
      oracle(
        (r) => r.v !== null,
        (r) => (r.v as number) > 95,
      ).ids,
    );
  });

  it('expect_column_values_to_be_between_per_group', async () => {
    const ranges: Record<string, { min?: number; max?: number }> = {
      a: { min: 0, max: 60 },
      b: { max: 40 },
    };
    const want = oracle(
      (r) => r.v !== null && typeof r.kind === 'string' && r.kind in ranges,
      (r) => {
        const range = ranges[r.kind as string]!;
        const v = r.v as number;
        return (
          (range.min !== undefined && v < range.min) || (range.max !== undefined && v > range.max)
        );
      },
    );
    const got = await run({
      expectation: 'expect_column_values_to_be_between_per_group',
      column: 'v',
      group_column: 'kind',
      ranges,
    });
    expect(want.unexpected_count).toBeGreaterThan(0);
    expect(got.success).toBe(false);
    expect(got.observed).toMatchObject({
      evaluated_count: want.evaluated_count,
      unexpected_count: want.unexpected_count,
    });
    expect(failingIds(got)).toEqual(want.ids);
  });

  it('expect_column_values_to_be_in_set ignores nulls', async () => {
    const want = oracle(
      (r) => r.kind !== null,
      (r) => !['a', 'b'].includes(r.kind as string),
    );
    const got = await run({
      expectation: 'expect_column_values_to_be_in_set',
      column: 'kind',
      value_set: ['a', 'b'],
    });
    expect(got.success).toBe(false);
    expect(got.observed).toMatchObject({
      evaluated_count: want.evaluated_count,
      unexpected_count: want.unexpected_count,
      missing_count: 1,
    });
    expect(failingIds(got)).toEqual(want.ids);
    expect(got.params).toEqual(['a', 'b']);
  });

  it('expect_column_values_to_be_unique flags every copy of a repeated value', async () => {
    const counts = countBy((r) => String(r.id));
    const want = oracle(
      (r) => r.id !== null,
      (r) => counts.get(String(r.id))! > 1,
    );
    const got = await run({ expectation: 'expect_column_values_to_be_unique', column: 'id' });
    expect(want.ids).toEqual([3, 3]);
    expect(got.success).toBe(false);
    expect(got.observed).toMatchObject({ unexpected_count: 2 });
    expect(failingIds(got)).toEqual(want.ids);
  });

  it('expect_compound_columns_to_be_unique', async () => {
    const key = (r: Row): string => `${String(r.sensor)}|${String(r.ts)}`;
    const counts = countBy(key);
    const want = oracle(
      (r) => !(r.sensor === null && r.ts === null),
      (r) => counts.get(key(r))! > 1,
    );
    const got = await run({
      expectation: 'expect_compound_columns_to_be_unique',
      columns: ['sensor', 'ts'],
    });
    expect(want.unexpected_count).toBeGreaterThan(0);
    expect(got.success).toBe(false);
    expect(got.columns).toEqual(['sensor', 'ts']);
    expect(got.observed).toMatchObject({
      evaluated_count: want.evaluated_count,
      unexpected_count: want.unexpected_count,
    });
    expect(failingIds(got)).toEqual(want.ids);

    const unique = await run({
      expectation: 'expect_compound_columns_to_be_unique',
      columns: ['id', 'ts'],
    });
    expect(unique.success).toBe(true);
  });

  it('applies mostly as Great Expectations does (passing fraction >= mostly)', async () => {
    const want = oracle(
      (r) => r.kind !== null,
      (r) => !['a', 'b'].includes(r.kind as string),
    );
    const passing = (want.evaluated_count - want.unexpected_count) / want.evaluated_count;
    const base = {
      expectation: 'expect_column_values_to_be_in_set',
      column: 'kind',
      value_set: ['a', 'b'],
    };
    expect((await run({ ...base, mostly: passing })).success).toBe(true);
    expect((await run({ ...base, mostly: passing - 0.01 })).success).toBe(true);
    expect((await run({ ...base, mostly: passing + 0.01 })).success).toBe(false);
    expect((await run({ ...base, mostly: 0 })).success).toBe(true);
  });

  it('caps the failing rows at maxFailingRows', async () => {
    const e = expectation({
      expectation: 'expect_column_values_to_be_between',
      column: 'id',
      max: 0,
    });
    expect((await runExpectation(conn, 't', e, 3)).failing_rows).toHaveLength(3);
    const none = await runExpectation(conn, 't', e, 0);
    expect(none.failing_rows).toEqual([]);
    expect(none.observed.unexpected_count).toBe(19);
  });
});

describe('table-level expectations', () => {
  it('expect_table_row_count_to_be_between', async () => {
    const n = ROWS.length;
    const base = { expectation: 'expect_table_row_count_to_be_between' };
    expect(await run({ ...base, min: n, max: n })).toMatchObject({
      success: true,
      observed: { row_count: n },
    });
    expect((await run({ ...base, min: n + 1 })).success).toBe(false);
    expect((await run({ ...base, max: n - 1 })).success).toBe(false);
  });

  it('expect_column_null_fraction_to_be_at_most', async () => {
    const nulls = ROWS.filter((r) => r.v === null);
    const fraction = nulls.length / ROWS.length;
    const base = { expectation: 'expect_column_null_fraction_to_be_at_most', column: 'v' };
    const ok = await run({ ...base, max_null_fraction: fraction });
    expect(ok.success).toBe(true);
    expect(ok.observed.null_fraction).toBeCloseTo(fraction);
    expect(ok.failing_rows).toEqual([]);
    const bad = await run({ ...base, max_null_fraction: fraction - 0.01 });
    expect(bad.success).toBe(false);
    expect(failingIds(bad)).toEqual(nulls.map((r) => r.id).sort());
  });

  it('expect_table_row_count_ratio_to_be_between', async () => {
    const base = { expectation: 'expect_table_row_count_ratio_to_be_between' };
    const ok = await run({ ...base, other_table: 'other', min_ratio: 5, max_ratio: 5 });
    expect(ok).toMatchObject({
      success: true,
      observed: { row_count: 20, other_row_count: 4, ratio: 5 },
    });
    expect((await run({ ...base, other_table: 'other', max_ratio: 4.99 })).success).toBe(false);
    const overEmpty = await run({ ...base, other_table: 'empty', min_ratio: 0 });
    expect(overEmpty).toMatchObject({ success: false, observed: { ratio: null } });
    expect(overEmpty.error).toMatch(/empty/);
    const bothEmpty = await run(
      { ...base, other_table: 'empty', min_ratio: 1, max_ratio: 1 },
      'empty',
    );
    expect(bothEmpty).toMatchObject({ success: true, observed: { ratio: 1 } });
  });

  it('expect_column_values_to_be_of_type', async () => {
    const base = { expectation: 'expect_column_values_to_be_of_type' };
    expect(await run({ ...base, column: 'flag', type: 'boolean' })).toMatchObject({
      success: true,
      observed: { observed_type: 'BOOLEAN' },
    });
    expect(await run({ ...base, column: 'kind', type: 'BOOLEAN' })).toMatchObject({
      success: false,
      observed: { observed_type: 'VARCHAR' },
    });
    const emptyTable = await run({ ...base, column: 'x', type: 'INTEGER' }, 'empty');
    expect(emptyTable.success).toBe(true);
    const missing = await run({ ...base, column: 'nope', type: 'BOOLEAN' });
    expect(missing.success).toBe(false);
    expect(missing.error).toMatch(/nope/);
  });
});

describe('runSuite', () => {
  function suite(input: Omit<SuiteInput, 'name'>) {
    return validateSuite({ name: 'demo', ...input });
  }

  it('fails the suite on a failed error, not on a failed warning', async () => {
    const warningsOnly = suite({
      table: 't',
      expectations: [
        { expectation: 'expect_column_values_to_not_be_null', column: 'v', severity: 'warning' },
        { expectation: 'expect_table_row_count_to_be_between', min: 1 },
      ],
    });
    const clock = [Date.UTC(2026, 10, 22, 10), Date.UTC(2026, 10, 22, 10, 0, 1)];
    const result = await runSuite(conn, warningsOnly, { now: () => clock.shift()! });
    expect(result.success).toBe(true);
    expect(result.results.map((r) => r.success)).toEqual([false, true]);
    expect(result).toMatchObject({
      suite: 'demo',
      table: 't',
      started_at: '2026-11-22T10:00:00.000Z',
      finished_at: '2026-11-22T10:00:01.000Z',
    });

    const withError = suite({
      table: 't',
      expectations: [{ expectation: 'expect_column_values_to_not_be_null', column: 'v' }],
    });
    expect((await runSuite(conn, withError)).success).toBe(false);
  });

  it('turns a missing column or table into a failed expectation and keeps going', async () => {
    const result = await runSuite(
      conn,
      suite({
        table: 't',
        expectations: [
          { expectation: 'expect_column_values_to_not_be_null', column: 'no_such_column' },
          {
            expectation: 'expect_table_row_count_ratio_to_be_between',
            other_table: 'no_such_table',
            min_ratio: 1,
          },
          { expectation: 'expect_table_row_count_to_be_between', min: 1 },
        ],
      }),
    );
    expect(result.success).toBe(false);
    expect(result.results[0]).toMatchObject({ success: false, failing_rows: [] });
    expect(result.results[0]!.error).toMatch(/no_such_column/);
    expect(result.results[1]!.error).toMatch(/no_such_table/);
    expect(result.results[2]!.success).toBe(true);

    const noTable = await runSuite(
      conn,
      suite({
        table: 'missing_table',
        expectations: [{ expectation: 'expect_column_values_to_be_unique', column: 'id' }],
      }),
    );
    expect(noTable.success).toBe(false);
    expect(noTable.results[0]!.error).toMatch(/missing_table/);
  });

  it('quotes identifiers even for a suite built by hand, and never changes data', async () => {
    const handBuilt = suite({
      table: 't',
      expectations: [{ expectation: 'expect_column_values_to_not_be_null', column: 'v' }],
    });
    (handBuilt.expectations[0] as { column: string }).column = 'v IS NULL; DROP TABLE t; --';
    const result = await runSuite(conn, handBuilt);
    expect(result.results[0]!.success).toBe(false);
    expect(result.results[0]!.error).toMatch(/unsafe SQL identifier/);
    const count = (await conn.runAndReadAll('SELECT count(*) AS n FROM t')).getRowObjects()[0]!;
    expect(Number(count.n)).toBe(ROWS.length);
  });
});
