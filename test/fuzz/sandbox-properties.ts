/**
 * Properties of the SQL sandbox under hostile SQL, shared by the quick test
 * run (`sandbox.property.test.ts`) and `npm run fuzz`. The sandbox must never
 * crash, never run a write or a settings change, never read a file outside
 * the lake, and must answer every refusal with one of its error codes.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import fc from 'fast-check';
import { isCanopyError, type ErrorCode } from '../../src/core/errors.js';
import { canopyLakeViews, sqlString } from '../../src/lake/views.js';
import { QuerySandbox } from '../../src/query/sandbox.js';
import type { FuzzProperty } from './ingest-properties.js';

/** Written outside the lake; no query result may ever contain it. */
const SECRET = 'canopy-fuzz-secret-7f3a';

export interface SandboxFixture {
  sandbox: QuerySandbox;
  lake: string;
  outside: string;
  close(): Promise<void>;
}

/** A lake with one silver file, a secret beside it (outside), and a sandbox over the lake. */
export async function openSandboxFixture(): Promise<SandboxFixture> {
  const base = await mkdtemp(path.join(tmpdir(), 'canopy-sql-fuzz-'));
  const lake = path.join(base, 'lake');
  const outside = path.join(base, 'outside');
  const silver = path.join(lake, 'silver/readings/date=2026-11-22');
  await mkdir(silver, { recursive: true });
  await mkdir(outside);
  await writeFile(path.join(outside, 'secret.csv'), `secret\n${SECRET}\n`);
  await writeFile(`${lake}-sibling.csv`, `secret\n${SECRET}\n`);
  const setup = await DuckDBInstance.create(':memory:');
  const conn = await setup.connect();
  try {
    await conn.run(
      `COPY (SELECT 's1' AS sensor_id, 'temperature' AS sensor_type, 'bed' AS location,
         TIMESTAMP '2026-11-22 10:00:00' AS event_time, 21.5::DOUBLE AS value,
         0.1::DOUBLE AS anomaly_score, false AS is_anomaly)
       TO ${sqlString(path.join(silver, 'part-0.parquet'))} (FORMAT parquet)`,
    );
  } finally {
    conn.closeSync();
    setup.closeSync();
  }
  const sandbox = await QuerySandbox.create({
    lakeRoot: lake,
    views: canopyLakeViews(lake),
    timeoutMs: 5_000,
    maxRows: 100,
    threads: 1,
    memoryLimit: '256MB',
  });
  return {
    sandbox,
    lake,
    outside,
    async close() {
      await sandbox.close();
      await rm(base, { recursive: true, force: true });
    },
  };
}

const QUERY_CODES: readonly ErrorCode[] = [
  'CANOPY_QUERY_REFUSED',
  'CANOPY_QUERY_FAILED',
  'CANOPY_QUERY_TIMEOUT',
];

/** Paths a query might try to reach: outside the lake, through `..`, as URLs. */
function escapePaths(f: SandboxFixture): string[] {
  return [
    path.join(f.outside, 'secret.csv'),
    `${f.lake}/../outside/secret.csv`,
    '../outside/secret.csv',
    `${f.lake}-sibling.csv`,
    '/etc/passwd',
    'file:///etc/passwd',
    '~/.ssh/id_rsa',
    'http://127.0.0.1:1/x.csv',
    's3://bucket/x.parquet',
    `${f.outside}/*`,
  ];
}

/** Statements that write, change settings, load code or escape the lake; `{p}` is a path. */
const FORBIDDEN_TEMPLATES = [
  'COPY readings TO {p}',
  'COPY (SELECT 1) TO {p} (FORMAT csv)',
  "COPY (SELECT 1) TO '{lake}/evil.parquet'",
  'COPY readings FROM {p}',
  'ATTACH {p} AS x',
  'ATTACH {p} AS x (READ_ONLY)',
  'DETACH x',
  'INSTALL httpfs',
  'LOAD httpfs',
  "INSTALL '{p}'",
  'PRAGMA enable_external_access',
  "PRAGMA memory_limit='100GB'",
  'SET enable_external_access = true',
  "SET allowed_directories = ['/']",
  "SET GLOBAL memory_limit = '100GB'",
  'RESET lock_configuration',
  'INSERT INTO readings VALUES (1)',
  'CREATE TABLE t AS SELECT * FROM read_csv({p})',
  'CREATE OR REPLACE VIEW readings AS SELECT 1',
  'DROP VIEW readings',
  'UPDATE readings SET value = 0',
  'DELETE FROM readings',
  'EXPORT DATABASE {p}',
  'IMPORT DATABASE {p}',
  'CALL pragma_version()',
  'CHECKPOINT',
  'BEGIN TRANSACTION',
  'USE memory',
  'SELECT * FROM read_csv({p})',
  'SELECT * FROM read_csv_auto({p})',
  'SELECT * FROM read_text({p})',
  'SELECT * FROM read_blob({p})',
  'SELECT * FROM glob({p})',
  'SELECT * FROM read_parquet({p})',
  'SELECT * FROM read_json({p})',
  'SELECT * FROM {p}',
  'SELECT 1; COPY (SELECT 1) TO {p}',
  'SELECT 1; SET enable_external_access = true',
  'SELECT * FROM readings; DROP VIEW readings',
  "SELECT 1 FROM readings WHERE sensor_id = ''; ATTACH {p} AS y; --'",
];

const decoration = fc.record({
  upper: fc.boolean(),
  lead: fc.constantFrom('', ' ', '\n', '/* c */ ', '-- c\n', '\t'),
  trail: fc.constantFrom('', ';', ' ;', '\n', ';\n-- end', ';;'),
});

function forbiddenSql(f: SandboxFixture): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...FORBIDDEN_TEMPLATES), fc.constantFrom(...escapePaths(f)), decoration)
    .map(([template, p, d]) => {
      const cased = d.upper ? template : template.toLowerCase();
      const sql = cased.replaceAll('{lake}', f.lake).replaceAll('{p}', sqlString(p));
      return `${d.lead}${sql}${d.trail}`;
    });
}

/** Token soup: SQL words, paths, punctuation, nasty characters, in any order. */
function soupSql(f: SandboxFixture): fc.Arbitrary<string> {
  const token = fc.oneof(
    fc.constantFrom(
      'SELECT',
      '*',
      'FROM',
      'readings',
      'silver_readings',
      'WHERE',
      'value',
      '>',
      '1',
      ';',
      '(',
      ')',
      ',',
      "'",
      '"',
      '--',
      '/*',
      '*/',
      'UNION',
      'ALL',
      'WITH',
      'AS',
      'COPY',
      'TO',
      'ATTACH',
      'INSTALL',
      'LOAD',
      'PRAGMA',
      'SET',
      'CREATE',
      'INSERT',
      'read_csv',
      'read_text',
      'glob',
      'getenv',
      'range(3)',
      'LIMIT',
      '\0',
      '\uFEFF',
      '$1',
      '?',
    ),
    fc.constantFrom(...escapePaths(f)).map(sqlString),
    fc.string({ unit: 'binary', maxLength: 8 }),
  );
  return fc.array(token, { maxLength: 24 }).map((ts) => ts.join(' '));
}

/** Every file under a folder, as relative paths, sorted. */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

/**
 * Runs one query and checks the invariants that hold whatever it was:
 * a CanopyError with a query code or a result, no secret in the result, no
 * file added to the lake or outside it, and the sandbox still answering.
 * Returns the error code, or undefined when the query ran.
 */
async function runChecked(
  f: SandboxFixture,
  sql: string,
  before: { lake: string[]; outside: string[] },
): Promise<ErrorCode | undefined> {
  let code: ErrorCode | undefined;
  try {
    const result = await f.sandbox.run(sql);
    if (JSON.stringify(result.rows).includes(SECRET)) {
      throw new Error(`read outside the lake: ${sql}`);
    }
  } catch (err) {
    if (!isCanopyError(err) || !QUERY_CODES.includes(err.code)) {
      throw new Error(`unexpected error for ${JSON.stringify(sql)}: ${String(err)}`);
    }
    if (err.message.includes(SECRET)) throw new Error(`the error leaks the secret: ${sql}`);
    code = err.code;
  }
  const after = { lake: await listFiles(f.lake), outside: await listFiles(f.outside) };
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    throw new Error(`files changed after ${JSON.stringify(sql)}`);
  }
  const alive = await f.sandbox.run('SELECT count(*) AS n FROM readings');
  if (alive.rows[0]?.[0] !== 1) throw new Error(`the sandbox broke after ${JSON.stringify(sql)}`);
  return code;
}

export async function sandboxProperties(f: SandboxFixture): Promise<FuzzProperty[]> {
  const before = { lake: await listFiles(f.lake), outside: await listFiles(f.outside) };
  return [
    {
      name: 'sandbox: writes, settings, extensions and escapes are refused',
      property: fc.asyncProperty(forbiddenSql(f), async (sql) => {
        const code = await runChecked(f, sql, before);
        // A decorated statement may stop being valid SQL; then the parser refuses it.
        if (code !== 'CANOPY_QUERY_REFUSED' && code !== 'CANOPY_QUERY_FAILED') {
          throw new Error(`${JSON.stringify(sql)} was not refused (${String(code)})`);
        }
      }),
    },
    {
      name: 'sandbox: token soup never crashes, escapes or writes',
      property: fc.asyncProperty(soupSql(f), async (sql) => {
        await runChecked(f, sql, before);
      }),
    },
  ];
}
