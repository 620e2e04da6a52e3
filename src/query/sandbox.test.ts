import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCanopyError, type ErrorCode } from '../core/errors.js';
import { bigintToJson } from './convert.js';
import { QuerySandbox } from './sandbox.js';
import { leadingKeyword } from './statement.js';
import { canopyLakeViews, sqlString } from '../lake/views.js';

/** One silver reading as the test writes it; the oracle for every aggregate. */
interface Row {
  sensor_id: string;
  sensor_type: string;
  location: string;
  event_time: string; // ISO, UTC
  value: number | null;
  anomaly_score: number;
  is_anomaly: boolean;
}

const START_MS = Date.UTC(2026, 10, 22, 0, 0, 0);

/**
 * 300 readings, one every 5 minutes: 288 on 2026-11-22 and 12 on 2026-11-23.
 * Values are multiples of 0.25, so sums are exact in binary floating point.
 */
function makeRows(): Row[] {
  const rows: Row[] = [];
  for (let i = 0; i < 300; i += 1) {
    rows.push({
      sensor_id: `s-${i % 5}`,
      sensor_type: i % 5 < 3 ? 'temperature' : 'humidity',
      location: `bed-${i % 2}`,
      event_time: new Date(START_MS + i * 5 * 60_000).toISOString(),
      value: i % 37 === 0 ? null : ((i * 37) % 100) / 4,
      anomaly_score: (i % 10) / 10,
      is_anomaly: i % 23 === 0,
    });
  }
  return rows;
}

function valuesSql(rows: Row[]): string {
  const tuples = rows.map(
    (r) =>
      `(${sqlString(r.sensor_id)}, ${sqlString(r.sensor_type)}, ${sqlString(r.location)}, ` +
      `TIMESTAMP ${sqlString(r.event_time.replace('T', ' ').replace('Z', ''))}, ` +
      `${r.value === null ? 'NULL' : `${r.value}::DOUBLE`}, ${r.anomaly_score}::DOUBLE, ${r.is_anomaly})`,
  );
  return `SELECT * FROM (VALUES ${tuples.join(',\n')}) t(sensor_id, sensor_type, location, event_time, value, anomaly_score, is_anomaly)`;
}

async function writeParquet(conn: DuckDBConnection, select: string, file: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await conn.run(`COPY (${select}) TO ${sqlString(file)} (FORMAT parquet)`);
}

async function expectError(
  promise: Promise<unknown>,
  code: ErrorCode,
  message: RegExp,
): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!isCanopyError(err)) throw new Error(`expected ${code}, got ${String(err)}`);
  expect({ code: err.code, message: err.message }).toEqual({
    code,
    message: expect.stringMatching(message) as unknown,
  });
}

const rows = makeRows();
let base: string;
let lake: string;
let sandbox: QuerySandbox;

beforeAll(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'canopy-query-test-'));
  lake = path.join(base, 'lake');
  const setup = await DuckDBInstance.create(':memory:');
  const conn = await setup.connect();
  try {
    await conn.run(`CREATE TABLE src AS ${valuesSql(rows)}`);
    for (const date of ['2026-11-22', '2026-11-23']) {
      const where = `WHERE CAST(event_time AS DATE) = DATE '${date}'`;
      await writeParquet(
        conn,
        `SELECT * FROM src ${where}`,
        path.join(lake, 'silver/readings', `date=${date}`, 'part-0.parquet'),
      );
      await writeParquet(
        conn,
        `SELECT * FROM src ${where} AND is_anomaly`,
        path.join(lake, 'anomalies/readings', `date=${date}`, 'part-0.parquet'),
      );
    }
  } finally {
    conn.closeSync();
    setup.closeSync();
  }
  await mkdir(path.join(lake, 'deadletter/date=2026-11-22'), { recursive: true });
  await writeFile(
    path.join(lake, 'deadletter/date=2026-11-22/part-0.jsonl'),
    '{"reason":"INVALID_JSON","source":"http","received_at":"2026-11-22T10:00:00Z","raw":"{oops"}\n' +
      '{"reason":"MISSING_SENSOR_ID","source":"mqtt","received_at":"2026-11-22T10:00:01Z","raw":"{}"}\n',
  );
  // Layers that exist as folders but hold no file yet.
  await mkdir(path.join(lake, 'gold/sensor_5min'), { recursive: true });
  await mkdir(path.join(lake, 'bronze/readings'), { recursive: true });
  // Ways out of the lake that the engine must refuse.
  await symlink('/etc', path.join(lake, 'etc-link'));
  await symlink('/etc/passwd', path.join(lake, 'passwd.csv'));
  await mkdir(`${lake}-sibling`);
  await writeFile(`${lake}-sibling/secret.csv`, 'a,b\n1,2\n');

  sandbox = await QuerySandbox.create({ lakeRoot: lake, views: canopyLakeViews(lake) });
});

afterAll(async () => {
  await sandbox?.close();
  if (base) await rm(base, { recursive: true, force: true });
});

describe('QuerySandbox: views and results', () => {
  it('creates the views that have files and reports the others, without failing', () => {
    expect(sandbox.views()).toEqual(['anomalies', 'dead_letters', 'readings', 'silver_readings']);
    const skipped = sandbox.skippedViews();
    expect(skipped.map((v) => v.name)).toEqual([
      'bronze_readings',
      'gold_daily_summary',
      'gold_device_summary',
      'gold_location_hourly',
      'gold_sensor_5min',
      'imputations',
    ]);
    for (const v of skipped) expect(v.reason).toMatch(/No files found that match the pattern/);
  });

  it('aggregates over the lake match the rows written (oracle)', async () => {
    const result = await sandbox.run(
      `SELECT sensor_id, count(*) AS n, count(value) AS n_values, sum(value) AS total,
              min(value) AS lo, max(value) AS hi, count(*) FILTER (WHERE is_anomaly) AS anomalies
       FROM readings GROUP BY sensor_id ORDER BY sensor_id`,
    );
    expect(result.columns).toEqual([
      { name: 'sensor_id', type: 'VARCHAR' },
      { name: 'n', type: 'BIGINT' },
      { name: 'n_values', type: 'BIGINT' },
      { name: 'total', type: 'DOUBLE' },
      { name: 'lo', type: 'DOUBLE' },
      { name: 'hi', type: 'DOUBLE' },
      { name: 'anomalies', type: 'BIGINT' },
    ]);
    const expected = [...new Set(rows.map((r) => r.sensor_id))].sort().map((id) => {
      const mine = rows.filter((r) => r.sensor_id === id);
      const values = mine.map((r) => r.value).filter((v): v is number => v !== null);
      return [
        id,
        mine.length,
        values.length,
        values.reduce((a, b) => a + b, 0),
        Math.min(...values),
        Math.max(...values),
        mine.filter((r) => r.is_anomaly).length,
      ];
    });
    expect(result.rows).toEqual(expected);
    expect(result.rowCount).toBe(5);
    expect(result.truncated).toBe(false);
    expect(result.elapsedMs).toBeGreaterThan(0);
  });

  it('reads the Hive partition column and every layer view', async () => {
    const byDate = await sandbox.run(
      'SELECT date, count(*) AS n FROM readings GROUP BY date ORDER BY date',
    );
    expect(byDate.columns[0]).toEqual({ name: 'date', type: 'DATE' });
    expect(byDate.rows).toEqual([
      ['2026-11-22', rows.filter((r) => r.event_time.startsWith('2026-11-22')).length],
      ['2026-11-23', rows.filter((r) => r.event_time.startsWith('2026-11-23')).length],
    ]);
    const anomalies = await sandbox.run('SELECT count(*) FROM anomalies');
    expect(anomalies.rows).toEqual([[rows.filter((r) => r.is_anomaly).length]]);
    const deadLetters = await sandbox.run('SELECT reason FROM dead_letters ORDER BY reason');
    expect(deadLetters.rows).toEqual([['INVALID_JSON'], ['MISSING_SENSOR_ID']]);
  });

  it('converts values to JSON-safe forms', async () => {
    const result = await sandbox.run(`SELECT
        42::BIGINT AS big, 9007199254740993::BIGINT AS unsafe_big,
        170141183460469231731687303715884105727::HUGEINT AS huge,
        12.345::DECIMAL(10, 3) AS dec, 1.5::DOUBLE AS dbl, 'NaN'::DOUBLE AS nan,
        TIMESTAMP '2026-11-22 10:00:00.123456' AS ts,
        TIMESTAMPTZ '2026-11-22 10:00:00+02' AS tstz,
        TIMESTAMP_MS '1969-12-31 23:59:59.5' AS before_epoch,
        'infinity'::TIMESTAMP AS inf, DATE '2026-11-22' AS d,
        [1, 2]::BIGINT[] AS list, {'a': 1::BIGINT, 'b': 'x'} AS struct,
        NULL AS nothing, true AS flag`);
    expect(result.rows[0]).toEqual([
      42,
      '9007199254740993',
      '170141183460469231731687303715884105727',
      12.345,
      1.5,
      'NaN',
      '2026-11-22T10:00:00.123Z',
      '2026-11-22T08:00:00.000Z',
      '1969-12-31T23:59:59.500Z',
      'infinity',
      '2026-11-22',
      [1, 2],
      { a: 1, b: 'x' },
      null,
      true,
    ]);
    expect(JSON.parse(JSON.stringify(result.rows))).toEqual(result.rows);
    const first = await sandbox.run(
      'SELECT event_time, value FROM readings ORDER BY event_time LIMIT 2',
    );
    expect(first.rows).toEqual([
      [rows[0]?.event_time, rows[0]?.value],
      [rows[1]?.event_time, rows[1]?.value],
    ]);
  });

  it('allows read-only inspection and direct reads inside the lake', async () => {
    const described = await sandbox.run('DESCRIBE readings');
    expect(described.rows.map((r) => r[0])).toContain('event_time');
    const direct = await sandbox.run(
      `SELECT count(*) FROM read_parquet(${sqlString(`${lake}/silver/readings/**/*.parquet`)})`,
    );
    expect(direct.rows).toEqual([[rows.length]]);
    const settings = await sandbox.run(
      `SELECT current_setting('enable_external_access'), current_setting('lock_configuration'),
              current_setting('TimeZone')`,
    );
    expect(settings.rows).toEqual([[false, true, 'UTC']]);
  });

  it('reports DuckDB errors on a valid SELECT with its message', async () => {
    await expectError(
      sandbox.run('SELECT no_such_column FROM readings'),
      'CANOPY_QUERY_FAILED',
      /the query failed: Binder Error: .*no_such_column/,
    );
    await expectError(sandbox.run('SELEC 1'), 'CANOPY_QUERY_FAILED', /Parser Error: syntax error/);
    await expectError(
      sandbox.run('SELECT * FROM gold_sensor_5min'),
      'CANOPY_QUERY_FAILED',
      /view gold_sensor_5min is not available yet \(IO Error: No files found/,
    );
  });
});

describe('QuerySandbox: refusals', () => {
  const statements: [string, RegExp][] = [
    ['CREATE TABLE t AS SELECT 1', /^CREATE is not allowed: queries are read-only/],
    ['CREATE VIEW mine AS SELECT 1', /^CREATE is not allowed/],
    [
      'INSERT INTO readings SELECT * FROM readings',
      /^INSERT is not allowed: queries are read-only/,
    ],
    ['UPDATE readings SET value = 0', /^UPDATE is not allowed: queries are read-only/],
    ['DELETE FROM readings', /^DELETE is not allowed: queries are read-only/],
    ['DROP VIEW readings', /^DROP is not allowed/],
    [
      'WITH x AS (SELECT 1) INSERT INTO readings SELECT * FROM x',
      /^a WITH statement that is not a SELECT .* is not allowed: queries are read-only/,
    ],
    [
      "COPY (SELECT 1) TO '/tmp/canopy-sandbox-copy.csv'",
      /^COPY is not allowed: queries are read-only/,
    ],
    [
      "COPY readings TO '/tmp/canopy-sandbox-copy.parquet' (FORMAT parquet)",
      /^COPY is not allowed/,
    ],
    [
      "EXPORT DATABASE '/tmp/canopy-sandbox-export'",
      /^EXPORT is not allowed: queries are read-only/,
    ],
    ["ATTACH ':memory:' AS other", /^ATTACH is not allowed: queries may only read the lake views/],
    ["ATTACH '/tmp/canopy-sandbox.duckdb'", /^ATTACH is not allowed/],
    ['DETACH memory', /^DETACH is not allowed/],
    ["SET memory_limit = '64GB'", /^SET is not allowed: the sandbox configuration is locked/],
    [
      'SET enable_external_access = true',
      /^SET is not allowed: the sandbox configuration is locked/,
    ],
    ['SET lock_configuration = false', /^SET is not allowed/],
    ['RESET memory_limit', /^RESET is not allowed: the sandbox configuration is locked/],
    ['PRAGMA threads = 64', /^PRAGMA is not allowed: the sandbox configuration is locked/],
    ['PRAGMA enable_profiling', /^PRAGMA is not allowed/],
    ['INSTALL httpfs', /^INSTALL is not allowed: extensions cannot be installed or loaded/],
    ['LOAD httpfs', /^LOAD is not allowed: extensions cannot be installed or loaded/],
    ['CALL pragma_version()', /^CALL is not allowed/],
    ['EXPLAIN SELECT 1', /^EXPLAIN is not allowed/],
    ['BEGIN TRANSACTION', /^BEGIN is not allowed/],
    ['SELECT 1; SELECT 2', /^only one SELECT statement is allowed; got 2 statements$/],
    ['SELECT 1; DROP VIEW readings', /^only one SELECT statement is allowed; got 2 statements$/],
    ['', /^the query is empty/],
    ['-- only a comment', /^the query has no SQL statement/],
    ['SELECT $1', /^query parameters .* are not supported/],
  ];

  it.each(statements)('refuses %j', async (sql, message) => {
    await expectError(sandbox.run(sql), 'CANOPY_QUERY_REFUSED', message);
  });

  it('leaves the lake, the views and the settings as they were', async () => {
    expect(existsSync('/tmp/canopy-sandbox-copy.csv')).toBe(false);
    expect(existsSync('/tmp/canopy-sandbox-copy.parquet')).toBe(false);
    expect(existsSync('/tmp/canopy-sandbox-export')).toBe(false);
    expect((await sandbox.run('SELECT count(*) FROM readings')).rows).toEqual([[rows.length]]);
    const limit = await sandbox.run(`SELECT current_setting('memory_limit')`);
    expect(limit.rows[0]?.[0]).not.toMatch(/64/);
  });

  it('refuses COPY into the lake, which the file restrictions alone would allow', async () => {
    const target = path.join(lake, 'stolen.csv');
    await expectError(
      sandbox.run(`COPY readings TO ${sqlString(target)}`),
      'CANOPY_QUERY_REFUSED',
      /^COPY is not allowed/,
    );
    expect(existsSync(target)).toBe(false);
  });

  const outside = (): [string, string][] => {
    const up = '../'.repeat(lake.split(path.sep).length - 1);
    return [
      ['read_csv of /etc/passwd', `SELECT * FROM read_csv('/etc/passwd')`],
      ['read_text of /etc/passwd', `SELECT * FROM read_text('/etc/passwd')`],
      ['read_blob of /etc/passwd', `SELECT * FROM read_blob('/etc/passwd')`],
      ['glob of /etc', `SELECT * FROM glob('/etc/*')`],
      ['a path with ..', `SELECT * FROM read_text(${sqlString(`${lake}/${up}etc/passwd`)})`],
      ['.. after a lake folder', `SELECT * FROM read_text(${sqlString(`${lake}/silver/../../x`)})`],
      [
        'the literal <lake>/../../etc/passwd',
        `SELECT * FROM read_csv(${sqlString(`${lake}/../../etc/passwd`)})`,
      ],
      ['a symlinked folder', `SELECT * FROM read_csv(${sqlString(`${lake}/etc-link/passwd`)})`],
      [
        'text through a symlinked folder',
        `SELECT * FROM read_text(${sqlString(`${lake}/etc-link/hostname`)})`,
      ],
      [
        'a glob through a symlinked folder',
        `SELECT * FROM glob(${sqlString(`${lake}/etc-link/*`)})`,
      ],
      ['a symlinked file', `SELECT * FROM read_csv(${sqlString(`${lake}/passwd.csv`)})`],
      [
        'a sibling folder with the lake as prefix',
        `SELECT * FROM read_csv(${sqlString(`${lake}-sibling/secret.csv`)})`,
      ],
      ['a parquet scan outside', `SELECT * FROM read_parquet('/etc/*.parquet')`],
      ['a URL', `SELECT * FROM read_csv('https://example.com/x.csv')`],
      ['an S3 path', `SELECT * FROM read_parquet('s3://bucket/x.parquet')`],
      [
        'SQL smuggled through json_execute_serialized_sql',
        `SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT * FROM read_text(''/etc/passwd'')'))`,
      ],
    ];
  };

  it('refuses file access outside the lake in a SELECT, by the engine', async () => {
    for (const [label, sql] of outside()) {
      await expectError(
        sandbox.run(sql),
        'CANOPY_QUERY_REFUSED',
        /^file access outside the lake is not allowed/,
      ).catch((err: unknown) => {
        throw new Error(`${label}: ${String(err)}`);
      });
    }
    expect((await sandbox.run('SELECT 1 AS still_works')).rows).toEqual([[1]]);
  });

  it('cannot run a statement through query()', async () => {
    await expectError(
      sandbox.run(`SELECT * FROM query('COPY (SELECT 1) TO ''/tmp/canopy-sandbox-query.csv''')`),
      'CANOPY_QUERY_FAILED',
      /Expected a single SELECT statement/,
    );
    expect(existsSync('/tmp/canopy-sandbox-query.csv')).toBe(false);
  });
});

describe('QuerySandbox: limits', () => {
  it('interrupts a query at the time limit and stays usable', async () => {
    const limited = await QuerySandbox.create({ lakeRoot: lake, views: {}, timeoutMs: 300 });
    try {
      for (const sql of [
        'SELECT sum(range) FROM range(1000000000000)',
        'SELECT sum(a.range * b.range) FROM range(1000000) a, range(1000000) b',
        // Streams no row for a long time: the wait is inside a chunk fetch.
        'SELECT * FROM range(1000000000000) WHERE range < 0',
      ]) {
        const started = Date.now();
        await expectError(
          limited.run(sql),
          'CANOPY_QUERY_TIMEOUT',
          /stopped at the sandbox time limit of 300 ms/,
        );
        expect(Date.now() - started).toBeLessThan(5_000);
        expect((await limited.run('SELECT 42')).rows).toEqual([[42]]);
      }
    } finally {
      await limited.close();
    }
  });

  it('counts the wait behind a slow query against the time limit', async () => {
    const limited = await QuerySandbox.create({ lakeRoot: lake, views: {}, timeoutMs: 300 });
    try {
      const slow = limited.run('SELECT sum(range) FROM range(1000000000000)');
      const queued = limited.run('SELECT 1');
      await expectError(slow, 'CANOPY_QUERY_TIMEOUT', /time limit/);
      await expectError(queued, 'CANOPY_QUERY_TIMEOUT', /waiting for earlier queries included/);
      expect((await limited.run('SELECT 2')).rows).toEqual([[2]]);
    } finally {
      await limited.close();
    }
  });

  it('returns at most maxRows rows and says when it cut', async () => {
    const limited = await QuerySandbox.create({ lakeRoot: lake, views: {}, maxRows: 1000 });
    try {
      const exact = await limited.run('SELECT * FROM range(1000)');
      expect({ n: exact.rowCount, truncated: exact.truncated }).toEqual({
        n: 1000,
        truncated: false,
      });
      const over = await limited.run('SELECT * FROM range(1001)');
      expect({ n: over.rowCount, truncated: over.truncated }).toEqual({ n: 1000, truncated: true });
      expect(over.rows[999]).toEqual([999]);
      // Streaming: a practically endless result is cut without being produced.
      const started = Date.now();
      const endless = await limited.run('SELECT * FROM range(1000000000000)');
      expect({ n: endless.rowCount, truncated: endless.truncated }).toEqual({
        n: 1000,
        truncated: true,
      });
      expect(Date.now() - started).toBeLessThan(2_000);
      expect((await limited.run('SELECT 7')).rows).toEqual([[7]]);
    } finally {
      await limited.close();
    }
  });

  it('runs concurrent calls one at a time, each with its own answer', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => sandbox.run(`SELECT ${i} AS i, count(*) FROM readings`)),
    );
    expect(results.map((r) => r.rows[0])).toEqual(
      Array.from({ length: 8 }, (_, i) => [i, rows.length]),
    );
  });
});

describe('QuerySandbox: refresh and lifecycle', () => {
  it('refresh picks up a layer that gained files and keeps the rest working', async () => {
    const own = await QuerySandbox.create({ lakeRoot: lake, views: canopyLakeViews(lake) });
    try {
      expect(own.views()).not.toContain('gold_daily_summary');
      const setup = await DuckDBInstance.create(':memory:');
      const conn = await setup.connect();
      await writeParquet(
        conn,
        `SELECT 's-0' AS sensor_id, DATE '2026-11-22' AS day, 288::BIGINT AS reading_count`,
        path.join(lake, 'gold/daily_summary/date=2026-11-22/part-0.parquet'),
      );
      conn.closeSync();
      setup.closeSync();
      const report = await own.refresh();
      expect(report.created).toContain('gold_daily_summary');
      expect(report.skipped.map((v) => v.name)).toContain('gold_sensor_5min');
      expect(
        (await own.run('SELECT sensor_id, reading_count FROM gold_daily_summary')).rows,
      ).toEqual([['s-0', 288]]);
      expect((await own.run('SELECT count(*) FROM readings')).rows).toEqual([[rows.length]]);
    } finally {
      await own.close();
      await rm(path.join(lake, 'gold/daily_summary'), { recursive: true, force: true });
    }
  });

  it('refresh with new definitions replaces the set; a bad one is skipped, not fatal', async () => {
    const own = await QuerySandbox.create({ lakeRoot: lake, views: canopyLakeViews(lake) });
    try {
      const silver = canopyLakeViews(lake).silver_readings ?? '';
      const report = await own.refresh({
        readings: silver,
        empty: `SELECT * FROM read_parquet(${sqlString(`${lake}/gold/sensor_5min/**/*.parquet`)})`,
        sneaky: `${silver}; DROP VIEW readings`,
        outside: `SELECT * FROM read_csv('/etc/passwd')`,
      });
      expect(report.created).toEqual(['readings']);
      expect(Object.fromEntries(report.skipped.map((v) => [v.name, v.reason]))).toEqual({
        empty: expect.stringMatching(/No files found/) as unknown,
        outside: expect.stringMatching(/disabled by configuration/) as unknown,
        sneaky: expect.stringMatching(/only one SELECT statement is allowed/) as unknown,
      });
      expect(own.views()).toEqual(['readings']);
      await expectError(
        own.run('SELECT * FROM anomalies'),
        'CANOPY_QUERY_FAILED',
        /Table with name anomalies does not exist/,
      );
      expect((await own.run('SELECT count(*) FROM readings')).rows).toEqual([[rows.length]]);
      await expectError(
        own.refresh({ 'bad name': 'SELECT 1' }),
        'CANOPY_CONFIG_INVALID',
        /bad name/,
      );
    } finally {
      await own.close();
    }
  });

  it('works when lakeRoot is reached through a symbolic link', async () => {
    const link = path.join(base, 'lake-link');
    await symlink(lake, link);
    const own = await QuerySandbox.create({ lakeRoot: link, views: canopyLakeViews(link) });
    try {
      expect((await own.run('SELECT count(*) FROM readings')).rows).toEqual([[rows.length]]);
      await expectError(
        own.run(`SELECT * FROM read_csv(${sqlString(`${link}/etc-link/passwd`)})`),
        'CANOPY_QUERY_REFUSED',
        /^file access outside the lake/,
      );
    } finally {
      await own.close();
    }
  });

  it('refuses bad options with every problem listed', async () => {
    await expectError(
      QuerySandbox.create({ lakeRoot: 'relative/lake', views: { 'x-y': 'SELECT 1' }, maxRows: 0 }),
      'CANOPY_CONFIG_INVALID',
      /lakeRoot must be an absolute path; maxRows must be a positive integer; view name "x-y"/,
    );
    await expectError(
      QuerySandbox.create({ lakeRoot: lake, views: {}, memoryLimit: 'lots' }),
      'CANOPY_CONFIG_INVALID',
      /Cannot start the SQL sandbox/,
    );
  });

  it('after close, runs and refreshes are refused; close is idempotent', async () => {
    const own = await QuerySandbox.create({ lakeRoot: lake, views: {}, timeoutMs: 5_000 });
    const running = own.run('SELECT sum(range) FROM range(1000000000000)');
    const queued = own.run('SELECT 1');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await Promise.all([own.close(), own.close()]);
    expect(Date.now() - started).toBeLessThan(3_000);
    await expectError(running, 'CANOPY_QUERY_CLOSED', /closed/);
    await expectError(queued, 'CANOPY_QUERY_CLOSED', /closed/);
    await expectError(own.run('SELECT 1'), 'CANOPY_QUERY_CLOSED', /closed/);
    await expectError(own.refresh(), 'CANOPY_QUERY_CLOSED', /closed/);
  });
});

describe('helpers', () => {
  it('leadingKeyword skips comments, whitespace and parentheses', () => {
    expect(leadingKeyword('  -- x\n /* y */ (copy t TO x)')).toBe('COPY');
    expect(leadingKeyword('select 1')).toBe('SELECT');
    expect(leadingKeyword('/* unclosed')).toBe('');
  });

  it('bigintToJson keeps safe integers as numbers', () => {
    expect(bigintToJson(9007199254740991n)).toBe(9007199254740991);
    expect(bigintToJson(-9007199254740991n)).toBe(-9007199254740991);
    expect(bigintToJson(9007199254740992n)).toBe('9007199254740992');
    expect(bigintToJson(-9007199254740992n)).toBe('-9007199254740992');
  });
});
