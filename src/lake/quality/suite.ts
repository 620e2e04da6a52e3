/**
 * Quality suites as data: a YAML file names a table and a list of
 * expectations in Great Expectations' vocabulary. This module only parses
 * and validates; `run.ts` compiles each expectation to SQL.
 *
 * Contract: a suite that passes `parseSuite` can be compiled without string
 * checks later. Every identifier (table, column, other_table, group column)
 * matches `IDENTIFIER` (tables may be `schema.table`), and every value is a
 * number, string or boolean that the runner binds as a parameter, so no text
 * from a suite file is ever spliced into SQL unquoted. There is deliberately
 * no free-form SQL field (no GE `row_condition`): proving that an arbitrary
 * fragment is a single read-only expression would need a SQL parser.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { CanopyError } from '../../core/errors.js';

/** A bare SQL identifier; anything else (spaces, quotes, `;`) is refused at parse time. */
export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A table: `name` or `schema.name` or `catalog.schema.name`, each part an IDENTIFIER. */
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$/;
/** A DuckDB type name as DESCRIBE prints it: `BOOLEAN`, `DOUBLE`, `DECIMAL(18,3)`, `VARCHAR[]`. */
const TYPE_NAME = /^[A-Za-z][A-Za-z0-9_ ]*(\(\d+(, ?\d+)?\))?(\[\])*$/;

const identifier = z
  .string()
  .regex(IDENTIFIER, 'must be a plain identifier matching [A-Za-z_][A-Za-z0-9_]*');
const tableName = z
  .string()
  .regex(TABLE_NAME, 'must be a table name: identifiers [A-Za-z_][A-Za-z0-9_]*, dot-separated');
const fraction = z.number().min(0).max(1);
const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const scalar = z.union([z.string(), finite, z.boolean()]);

/** Fields every expectation may carry. */
const common = {
  severity: z.enum(['error', 'warning']).default('error'),
  description: z.string().optional(),
};
/** Row-level ("map") expectations accept GE's `mostly`: the fraction of evaluated rows that must pass. */
const mostly = { mostly: fraction.default(1) };

function needsABound(v: { min?: number | undefined; max?: number | undefined }): boolean {
  return v.min !== undefined || v.max !== undefined;
}
function boundsOrdered(v: { min?: number | undefined; max?: number | undefined }): boolean {
  return v.min === undefined || v.max === undefined || v.min <= v.max;
}

const rangeSchema = z
  .strictObject({ min: finite.optional(), max: finite.optional() })
  .refine(needsABound, 'needs min, max or both')
  .refine(boundsOrdered, 'min must not exceed max');

const notNull = z.strictObject({
  expectation: z.literal('expect_column_values_to_not_be_null'),
  column: identifier,
  ...mostly,
  ...common,
});

const between = z
  .strictObject({
    expectation: z.literal('expect_column_values_to_be_between'),
    column: identifier,
    min: finite.optional(),
    max: finite.optional(),
    ...mostly,
    ...common,
  })
  .refine(needsABound, 'needs min, max or both')
  .refine(boundsOrdered, 'min must not exceed max');

/**
 * Per-group ranges (Canopy's own): `value` must lie in the range of its row's
 * `sensor_type`. Chosen over a GE-style `row_condition` with one
 * between-expectation per type because it keeps suites free of SQL text (see
 * the module comment), reports one result for "values in physical range"
 * instead of one per type, and lets the built-in suite follow the sensor-type
 * table without generating code. Rows whose group is null or has no entry in
 * `ranges` are not evaluated: the in-set expectation on the group column is
 * what catches unknown groups.
 */
const betweenPerGroup = z.strictObject({
  expectation: z.literal('expect_column_values_to_be_between_per_group'),
  column: identifier,
  group_column: identifier,
  ranges: z
    .record(z.string(), rangeSchema)
    .refine((r) => Object.keys(r).length > 0, 'needs at least one group'),
  ...mostly,
  ...common,
});

const inSet = z.strictObject({
  expectation: z.literal('expect_column_values_to_be_in_set'),
  column: identifier,
  value_set: z.array(scalar).min(1),
  ...mostly,
  ...common,
});

const columnUnique = z.strictObject({
  expectation: z.literal('expect_column_values_to_be_unique'),
  column: identifier,
  ...mostly,
  ...common,
});

const compoundUnique = z.strictObject({
  expectation: z.literal('expect_compound_columns_to_be_unique'),
  columns: z.array(identifier).min(1),
  ...mostly,
  ...common,
});

const rowCountBetween = z
  .strictObject({
    expectation: z.literal('expect_table_row_count_to_be_between'),
    min: z.number().int().min(0).optional(),
    max: z.number().int().min(0).optional(),
    ...common,
  })
  .refine(needsABound, 'needs min, max or both')
  .refine(boundsOrdered, 'min must not exceed max');

const nullFraction = z.strictObject({
  expectation: z.literal('expect_column_null_fraction_to_be_at_most'),
  column: identifier,
  max_null_fraction: fraction,
  ...common,
});

const rowCountRatio = z
  .strictObject({
    expectation: z.literal('expect_table_row_count_ratio_to_be_between'),
    other_table: tableName,
    min_ratio: z.number().min(0).optional(),
    max_ratio: z.number().min(0).optional(),
    ...common,
  })
  .refine((v) => v.min_ratio !== undefined || v.max_ratio !== undefined, {
    message: 'needs min_ratio, max_ratio or both',
  })
  .refine(
    (v) => v.min_ratio === undefined || v.max_ratio === undefined || v.min_ratio <= v.max_ratio,
    { message: 'min_ratio must not exceed max_ratio' },
  );

const ofType = z.strictObject({
  expectation: z.literal('expect_column_values_to_be_of_type'),
  column: identifier,
  type: z.string().regex(TYPE_NAME, 'must be a DuckDB type name such as BOOLEAN or DOUBLE'),
  ...common,
});

const expectationOptions = [
  notNull,
  between,
  betweenPerGroup,
  inSet,
  columnUnique,
  compoundUnique,
  rowCountBetween,
  nullFraction,
  rowCountRatio,
  ofType,
] as const;

export const EXPECTATION_NAMES: readonly string[] = expectationOptions.map(
  (o) => o.shape.expectation.value,
);

export const expectationSchema = z.discriminatedUnion('expectation', [...expectationOptions]);

export const suiteSchema = z.strictObject({
  /** Used as a metric label and in history, hence the narrow alphabet. */
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'must match [A-Za-z0-9_.-]+'),
  table: tableName,
  description: z.string().optional(),
  expectations: z.array(expectationSchema).min(1),
});

/** A validated suite, defaults applied (`severity`, `mostly`). */
export type Suite = z.output<typeof suiteSchema>;
/** A suite as written in YAML (defaults optional). */
export type SuiteInput = z.input<typeof suiteSchema>;
export type Expectation = Suite['expectations'][number];
export type ExpectationName = Expectation['expectation'];

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  const where = issue.path.length ? issue.path.join('.') : '(root)';
  // zod's text for an unmatched discriminator quotes the whole union; say what was written instead.
  if (issue.code === 'invalid_union' && issue.path.at(-1) === 'expectation') {
    const value = lookup(raw, issue.path);
    if (value === undefined) return `${where}: required`;
    return `${where}: unknown expectation ${JSON.stringify(value)}; supported: ${EXPECTATION_NAMES.join(', ')}`;
  }
  return `${where}: ${issue.message}`;
}

function lookup(value: unknown, path: readonly PropertyKey[]): unknown {
  let node = value;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** Validates an already-parsed object; throws CANOPY_QUALITY_INVALID_SUITE listing every problem. */
export function validateSuite(raw: unknown, source = '(inline)'): Suite {
  const result = suiteSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => describeIssue(issue, raw));
  throw new CanopyError(
    'CANOPY_QUALITY_INVALID_SUITE',
    `quality suite ${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n  - ${problems.join('\n  - ')}`,
    { details: problems },
  );
}

/** Parses YAML text into a suite. `source` names the file in messages. */
export function parseSuite(yamlText: string, source = '(inline)'): Suite {
  let raw: unknown;
  try {
    raw = parseYaml(yamlText);
  } catch (cause) {
    throw new CanopyError(
      'CANOPY_QUALITY_INVALID_SUITE',
      `quality suite ${source} is not valid YAML: ${(cause as Error).message}`,
      { cause, details: [`(root): not valid YAML: ${(cause as Error).message}`] },
    );
  }
  return validateSuite(raw, source);
}

/** Reads and parses a suite file; throws CANOPY_QUALITY_SUITE_UNREADABLE or CANOPY_QUALITY_INVALID_SUITE. */
export function loadSuiteFile(path: string): Suite {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new CanopyError('CANOPY_QUALITY_SUITE_UNREADABLE', `cannot read quality suite ${path}`, {
      cause,
    });
  }
  return parseSuite(text, path);
}
