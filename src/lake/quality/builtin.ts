/**
 * The two built-in suites from the lakehouse issue.
 *
 * They are built as data (plain objects validated by the same schema as a
 * YAML file) rather than stored as YAML, because the known sensor types and
 * their physical ranges come from `BUILT_IN_SENSOR_TYPES` (or the configured
 * sensor types) and must not drift from it. `builtinSuiteYaml` prints them in
 * the file format, as a starting point for a custom suite.
 *
 * Table names are the views the lake job registers before running a suite;
 * they are parameters so a caller can point a suite at any table.
 */
import { stringify as stringifyYaml } from 'yaml';
import { BUILT_IN_SENSOR_TYPES, type PhysicalRange } from '../../core/sensor-types.js';
import { validateSuite, type Suite, type SuiteInput } from './suite.js';

export const BRONZE_READINGS_SUITE = 'bronze_readings';
export const SILVER_READINGS_SUITE = 'silver_readings';

export interface BuiltinSuiteOptions {
  /** Table (or view) to check; defaults to the suite's name. */
  table?: string;
  /** Known sensor types and their physical ranges; defaults to the built-in types. */
  sensorTypes?: Readonly<Record<string, { range: PhysicalRange }>>;
  /** Silver only: the bronze table the row count is compared with. */
  bronzeTable?: string;
}

/** Bronze: critical fields present, known sensor types, values in physical range, value null rate ≤ 1 %. */
export function bronzeReadingsSuiteInput(options: BuiltinSuiteOptions = {}): SuiteInput {
  const sensorTypes = options.sensorTypes ?? BUILT_IN_SENSOR_TYPES;
  const ranges = Object.fromEntries(
    Object.entries(sensorTypes).map(([type, t]) => [type, { min: t.range.min, max: t.range.max }]),
  );
  // The columns the hot store declares NOT NULL; sensor_type may legitimately be unknown
  // (DESIGN §2: it can come from the registry), so its absence is only a warning.
  const critical = ['sensor_id', 'event_time', 'ingest_time', 'source'];
  return {
    name: BRONZE_READINGS_SUITE,
    table: options.table ?? BRONZE_READINGS_SUITE,
    description: 'Raw accepted readings, as ingested.',
    expectations: [
      ...critical.map((column) => ({
        expectation: 'expect_column_values_to_not_be_null' as const,
        column,
        description: `${column} is a critical field`,
      })),
      {
        expectation: 'expect_column_values_to_not_be_null',
        column: 'sensor_type',
        severity: 'warning',
        description: 'readings without a sensor type skip the range check',
      },
      {
        expectation: 'expect_column_values_to_be_in_set',
        column: 'sensor_type',
        value_set: Object.keys(sensorTypes),
        description: 'sensor types are known',
      },
      {
        expectation: 'expect_column_values_to_be_between_per_group',
        column: 'value',
        group_column: 'sensor_type',
        ranges,
        description: 'values lie in the physical range of their sensor type',
      },
      {
        expectation: 'expect_column_null_fraction_to_be_at_most',
        column: 'value',
        max_null_fraction: 0.01,
        description: 'fewer than 1 % of values are missing',
      },
    ],
  };
}

/** Silver: no duplicate (sensor_id, event_time), `is_anomaly` present and boolean, row count within 5 % of bronze. */
export function silverReadingsSuiteInput(options: BuiltinSuiteOptions = {}): SuiteInput {
  return {
    name: SILVER_READINGS_SUITE,
    table: options.table ?? SILVER_READINGS_SUITE,
    description: 'Cleaned, deduplicated readings with anomaly flags.',
    expectations: [
      {
        expectation: 'expect_compound_columns_to_be_unique',
        columns: ['sensor_id', 'event_time'],
        description: 'dedup keeps one row per (sensor_id, event_time)',
      },
      { expectation: 'expect_column_values_to_be_of_type', column: 'is_anomaly', type: 'BOOLEAN' },
      { expectation: 'expect_column_values_to_not_be_null', column: 'is_anomaly' },
      {
        expectation: 'expect_table_row_count_ratio_to_be_between',
        other_table: options.bronzeTable ?? BRONZE_READINGS_SUITE,
        min_ratio: 0.95,
        max_ratio: 1.05,
        description: 'silver keeps within 5 % of the bronze row count',
      },
    ],
  };
}

export function bronzeReadingsSuite(options: BuiltinSuiteOptions = {}): Suite {
  return validateSuite(bronzeReadingsSuiteInput(options), `built-in ${BRONZE_READINGS_SUITE}`);
}

export function silverReadingsSuite(options: BuiltinSuiteOptions = {}): Suite {
  return validateSuite(silverReadingsSuiteInput(options), `built-in ${SILVER_READINGS_SUITE}`);
}

/** Both built-in suites, validated. */
export function builtinSuites(options: Omit<BuiltinSuiteOptions, 'table'> = {}): Suite[] {
  return [bronzeReadingsSuite(options), silverReadingsSuite(options)];
}

/** A built-in suite in the YAML file format (defaults left implicit). */
export function builtinSuiteYaml(
  name: typeof BRONZE_READINGS_SUITE | typeof SILVER_READINGS_SUITE,
  options: BuiltinSuiteOptions = {},
): string {
  const input =
    name === BRONZE_READINGS_SUITE
      ? bronzeReadingsSuiteInput(options)
      : silverReadingsSuiteInput(options);
  return stringifyYaml(input);
}
