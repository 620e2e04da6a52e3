import type { DuckDBConnection } from '@duckdb/node-api';
import { beforeEach, describe, expect, it } from 'vitest';
import { BUILT_IN_SENSOR_TYPES } from '../../core/sensor-types.js';
import {
  bronzeReadingsSuite,
  builtinSuiteYaml,
  builtinSuites,
  silverReadingsSuite,
} from './builtin.js';
import { runSuite, type SuiteResult } from './run.js';
import { parseSuite } from './suite.js';
import { createTable, memoryConnection, type Row } from './tables.fixture.js';

const BRONZE_COLUMNS = {
  sensor_id: 'VARCHAR',
  sensor_type: 'VARCHAR',
  location: 'VARCHAR',
  event_time: 'TIMESTAMP',
  value: 'DOUBLE',
  unit: 'VARCHAR',
  ingest_time: 'TIMESTAMP',
  source: 'VARCHAR',
};
const TYPES = Object.entries(BUILT_IN_SENSOR_TYPES);

/** 200 valid readings: every built-in type, values inside (and on the edges of) its range. */
function cleanRows(): Row[] {
  return Array.from({ length: 200 }, (_, i) => {
    const [type, spec] = TYPES[i % TYPES.length]!;
    const { min, max } = spec.range;
    const value = i % 10 === 0 ? min : i % 10 === 1 ? max : min + ((max - min) * (i % 7)) / 7;
    const time = new Date(Date.UTC(2026, 10, 22, 10) + i * 1000).toISOString();
    return {
      sensor_id: `s-${i % 13}`,
      sensor_type: type,
      location: 'bed-1',
      event_time: time,
      value,
      unit: spec.unit,
      ingest_time: time,
      source: 'http',
    };
  });
}

function failedNames(result: SuiteResult): string[] {
  return result.results
    .filter((r) => !r.success)
    .map((r) => `${r.expectation}:${r.column ?? r.columns?.join(',') ?? '(table)'}`);
}

let conn: DuckDBConnection;

beforeEach(async () => {
  conn = await memoryConnection();
});

describe('built-in bronze_readings suite', () => {
  it('passes on a clean table', async () => {
    await createTable(conn, 'bronze_readings', BRONZE_COLUMNS, cleanRows());
    const result = await runSuite(conn, bronzeReadingsSuite());
    expect(failedNames(result)).toEqual([]);
    expect(result.success).toBe(true);
  });

  it('fails on a null sensor_id, an unknown type, an out-of-range value and a 2 % null rate, listing the rows', async () => {
    const rows = cleanRows();
    rows[3]!.sensor_id = null;
    rows[4]!.sensor_type = 'plasma';
    rows[5] = { ...rows[5]!, sensor_type: 'temperature', value: 500 };
    for (const i of [20, 40, 60, 80]) rows[i]!.value = null; // 4 of 200 = 2 %
    await createTable(conn, 'bronze_readings', BRONZE_COLUMNS, rows);

    const result = await runSuite(conn, bronzeReadingsSuite());
    expect(result.success).toBe(false);
    expect(failedNames(result)).toEqual([
      'expect_column_values_to_not_be_null:sensor_id',
      'expect_column_values_to_be_in_set:sensor_type',
      'expect_column_values_to_be_between_per_group:value',
      'expect_column_null_fraction_to_be_at_most:value',
    ]);
    const byName = new Map(result.results.map((r) => [`${r.expectation}:${r.column}`, r]));

    const nullId = byName.get('expect_column_values_to_not_be_null:sensor_id')!;
    expect(nullId.observed.unexpected_count).toBe(1);
    expect(nullId.failing_rows).toEqual([
      // JSON-safe: timestamps come back as strings.
      expect.objectContaining({ sensor_id: null, value: rows[3]!.value }),
    ]);
    expect(typeof nullId.failing_rows[0]!.event_time).toBe('string');

    const unknown = byName.get('expect_column_values_to_be_in_set:sensor_type')!;
    expect(unknown.failing_rows).toEqual([expect.objectContaining({ sensor_type: 'plasma' })]);

    const range = byName.get('expect_column_values_to_be_between_per_group:value')!;
    expect(range.failing_rows).toEqual([
      expect.objectContaining({
        sensor_type: 'temperature',
        value: 500,
        sensor_id: rows[5].sensor_id,
      }),
    ]);

    const nullRate = byName.get('expect_column_null_fraction_to_be_at_most:value')!;
    expect(nullRate.observed).toMatchObject({ element_count: 200, unexpected_count: 4 });
    expect(nullRate.observed.null_fraction).toBeCloseTo(0.02);
    expect(nullRate.failing_rows.map((r) => r.sensor_id).sort()).toEqual(
      [20, 40, 60, 80].map((i) => rows[i]!.sensor_id).sort(),
    );
  });

  it('takes configured sensor types and ranges', async () => {
    const rows = cleanRows().map((r) => ({ ...r, sensor_type: 'rain', value: 7 }));
    await createTable(conn, 'b', BRONZE_COLUMNS, rows);
    const suite = bronzeReadingsSuite({
      table: 'b',
      sensorTypes: { rain: { range: { min: 0, max: 5 } } },
    });
    const result = await runSuite(conn, suite);
    expect(failedNames(result)).toEqual(['expect_column_values_to_be_between_per_group:value']);
  });
});

describe('built-in silver_readings suite', () => {
  async function setUp(silverRows: Row[], isAnomalyType = 'BOOLEAN'): Promise<void> {
    await createTable(conn, 'bronze_readings', BRONZE_COLUMNS, cleanRows());
    await createTable(
      conn,
      'silver_readings',
      { ...BRONZE_COLUMNS, is_anomaly: isAnomalyType },
      silverRows,
    );
  }
  const silver = (): Row[] => cleanRows().map((r, i) => ({ ...r, is_anomaly: i % 17 === 0 }));

  it('passes when silver is deduplicated, flagged and as large as bronze', async () => {
    await setUp(silver());
    const result = await runSuite(conn, silverReadingsSuite());
    expect(failedNames(result)).toEqual([]);
  });

  it('fails on duplicates, a missing flag and a row count off by more than 5 %', async () => {
    const rows = silver();
    rows.push({ ...rows[0]! }); // duplicate (sensor_id, event_time)
    for (let i = 0; i < 10; i += 1)
      rows.push({
        ...rows[50 + i]!,
        event_time: '2027-01-01T00:00:00.000Z',
        sensor_id: `extra-${i}`,
      });
    rows[7]!.is_anomaly = null;
    await setUp(rows);
    const result = await runSuite(conn, silverReadingsSuite());
    expect(failedNames(result)).toEqual([
      'expect_compound_columns_to_be_unique:sensor_id,event_time',
      'expect_column_values_to_not_be_null:is_anomaly',
      'expect_table_row_count_ratio_to_be_between:(table)',
    ]);
    expect(result.results[0]!.failing_rows).toHaveLength(2);
    expect(result.results[3]!.observed).toMatchObject({ row_count: 211, other_row_count: 200 });
  });

  it('fails when is_anomaly is not boolean or missing', async () => {
    await setUp(
      silver().map((r) => ({ ...r, is_anomaly: String(r.is_anomaly) })),
      'VARCHAR',
    );
    const result = await runSuite(conn, silverReadingsSuite());
    expect(failedNames(result)).toEqual(['expect_column_values_to_be_of_type:is_anomaly']);

    await createTable(conn, 'silver_readings', BRONZE_COLUMNS, cleanRows());
    const missing = await runSuite(conn, silverReadingsSuite());
    expect(failedNames(missing)).toEqual([
      'expect_column_values_to_be_of_type:is_anomaly',
      'expect_column_values_to_not_be_null:is_anomaly',
    ]);
  });
});

describe('built-in suites as YAML', () => {
  it('print in the file format and parse back to the same suites', () => {
    const [bronze, silver] = builtinSuites();
    expect(parseSuite(builtinSuiteYaml('bronze_readings'))).toEqual(bronze);
    expect(parseSuite(builtinSuiteYaml('silver_readings'))).toEqual(silver);
  });
});
