import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { serviceForTests } from '../../test/helpers/services.js';
import { ManualClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import type { NewReading } from '../core/store.js';
import { DuckDbHotStore } from './duckdb-hot-store.js';
import { describeHotStoreConformance, type HotStoreHarness } from './hot-store.conformance.js';
import {
  POSTGRES_HOT_STORE_MIGRATIONS,
  PostgresHotStore,
  type PostgresHotStoreOptions,
} from './postgres-hot-store.js';

const PG_TEST_URL = 'postgres://postgres@127.0.0.1:5432/test';
const DAY = 86_400_000;
const BASE = Date.UTC(2026, 10, 22, 10, 0, 0, 0);

const postgres = await serviceForTests('PostgreSQL', 5432);

async function sql<T extends pg.QueryResultRow = Record<string, unknown>>(
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  // In UTC, so that partition bounds print the same on every machine.
  const client = new pg.Client({ connectionString: PG_TEST_URL, options: '-c timezone=UTC' });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** A schema unique to the harness (test files run in parallel), dropped by `cleanup`. */
function pgHarness(
  options: Partial<PostgresHotStoreOptions> = {},
): HotStoreHarness & { schema: string; make: () => PostgresHotStore } {
  const schema = `canopy_hot_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const made: PostgresHotStore[] = [];
  const make = (): PostgresHotStore => {
    const store = new PostgresHotStore({ connectionString: PG_TEST_URL, schema, ...options });
    made.push(store);
    return store;
  };
  return {
    schema,
    make,
    store: make(),
    reopen: () => Promise.resolve(make()),
    cleanup: async () => {
      for (const store of made) await store.close();
      await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}

if (postgres) describeHotStoreConformance('PostgreSQL', () => Promise.resolve(pgHarness()));

function reading(overrides: Partial<NewReading> = {}): NewReading {
  return {
    sensorId: 's',
    sensorType: 'temperature',
    location: 'greenhouse/a',
    eventTime: BASE,
    value: 1,
    unit: 'C',
    anomalyScore: null,
    ingestTime: BASE + 50,
    source: 'test',
    batchId: 'b',
    isAnomaly: false,
    anomalyReasons: [],
    imputed: false,
    ...overrides,
  };
}

describe.runIf(postgres)('PostgresHotStore (PostgreSQL specifics)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  function harness(options: Partial<PostgresHotStoreOptions> = {}) {
    const h = pgHarness(options);
    cleanups.push(h.cleanup);
    return h;
  }

  async function partitions(schema: string): Promise<string[]> {
    const rows = await sql<{ name: string; bound: string }>(
      `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
      [`"${schema}"."readings"`],
    );
    return rows.map((r) => `${r.name} ${r.bound}`);
  }

  it('creates day partitions on demand and ahead (today, tomorrow), and no default partition', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 10, 23, 0));
    const { schema, store } = harness({ clock });
    await store.open();
    const ahead = [
      `readings_p20260110 FOR VALUES FROM ('2026-01-10 00:00:00+00') TO ('2026-01-11 00:00:00+00')`,
      `readings_p20260111 FOR VALUES FROM ('2026-01-11 00:00:00+00') TO ('2026-01-12 00:00:00+00')`,
    ];
    expect(await partitions(schema)).toEqual(ahead);
    // A batch over three other days, one of them before the epoch, and one at midnight exactly.
    await store.append(
      [
        reading({ eventTime: Date.UTC(2026, 10, 22, 23, 59, 59, 999) }),
        reading({ eventTime: Date.UTC(2026, 10, 23) }),
        reading({ eventTime: Date.UTC(1969, 11, 31, 12) }),
      ],
      [],
    );
    const names = (await partitions(schema)).map((p) => p.split(' ')[0]);
    expect(names).toEqual([
      'readings_p19691231',
      'readings_p20260110',
      'readings_p20260111',
      'readings_p20261122',
      'readings_p20261123',
    ]);
    const perPartition = await sql<{ name: string; n: string }>(
      `SELECT tableoid::regclass::text AS name, count(*)::text AS n FROM "${schema}".readings GROUP BY 1 ORDER BY 1`,
    );
    expect(perPartition.map((r) => `${r.name.split('.')[1]}=${r.n}`)).toEqual([
      'readings_p19691231=1',
      'readings_p20261122=1',
      'readings_p20261123=1',
    ]);
    const parent = await sql<{ strategy: string; key: string; hasDefault: boolean }>(
      `SELECT p.partstrat AS strategy, pg_get_partkeydef(p.partrelid) AS key, p.partdefid <> 0 AS "hasDefault"
         FROM pg_partitioned_table p WHERE p.partrelid = $1::regclass`,
      [`"${schema}"."readings"`],
    );
    expect(parent).toEqual([{ strategy: 'r', key: 'RANGE (event_time)', hasDefault: false }]);
  });

  it('refuses an event time outside years 1 to 9999, writing nothing', async () => {
    const { store } = harness();
    await store.open();
    await expect(
      store.append([reading(), reading({ eventTime: Date.UTC(10_000, 0, 1) })], []),
    ).rejects.toMatchObject({ code: 'CANOPY_STORE_COMMIT_FAILED' });
    expect(await store.countReadings()).toBe(0);
    // A query bound beyond that range is no error: nothing is stored there.
    expect((await store.queryReadings({ limit: 5, from: 8e15 })).items).toEqual([]);
    expect((await store.queryReadings({ limit: 5, from: -8e15, to: 8e15 })).items.length).toBe(0);
  });

  it('round-trips text that COPY must escape and a dead letter whose payload holds NUL', async () => {
    const { store } = harness();
    await store.open();
    const nasty = [
      'tab\there',
      'new\nline',
      'cr\rlf\r\n',
      'back\\slash \\N \\\\',
      '\\N',
      '{"braces", and, commas}',
      'quote " and \' apostrophe',
      'NULL',
      '',
      'ünïcødé ✓ 🌱',
    ];
    const input = nasty.map((text, i) =>
      reading({
        sensorId: `s-${i}`,
        sensorType: text,
        location: text,
        unit: text,
        source: text,
        batchId: text,
        eventTime: BASE + i,
        value: i === 0 ? -0.000123 : i === 2 ? -0 : i * 1e-7,
        anomalyScore: i === 1 ? 1e300 : null,
        isAnomaly: true,
        anomalyReasons: [text, 'range', text],
      }),
    );
    const result = await store.append(input, [
      {
        receivedAt: BASE,
        source: 'mqtt',
        origin: 'iot/data',
        reason: 'INVALID_JSON',
        message: 'Unexpected token \u0000',
        raw: 'a\u0000b\\N\t{"x": 1}',
      },
    ]);
    const stored = (await store.queryReadings({ limit: 100 })).items;
    const expected = input
      .map((r, i) => ({ ...r, seq: (result.firstSeq as bigint) + BigInt(i) }))
      .reverse();
    expect(stored).toEqual(expected);
    const [letter] = (await store.listDeadLetters({ limit: 1 })).items;
    expect(letter?.raw).toBe('a\u0000b\\N\t{"x": 1}');
    expect(letter?.message).toBe('Unexpected token \uFFFD');
  });

  it('purge drops a day partition whose rows are all purgeable and deletes row by row elsewhere', async () => {
    const { schema, store } = harness({ clock: new ManualClock(BASE) });
    await store.open();
    const day0 = Date.UTC(2026, 10, 19);
    // Three days of readings, 10 each; seqs 1..30 in day order.
    const rows = [0, 1, 2].flatMap((d) =>
      Array.from({ length: 10 }, (_, i) => reading({ eventTime: day0 + d * DAY + i * 3_600_000 })),
    );
    await store.append(rows, []);
    // A late reading for day 0, not yet exported: seq 31.
    await store.append([reading({ eventTime: day0 + 5 })], []);
    const names = async () =>
      (await partitions(schema))
        .map((p) => p.split(' ')[0] as string)
        .filter((n) => n < 'readings_p20261122');
    expect(await names()).toEqual([
      'readings_p20261119',
      'readings_p20261120',
      'readings_p20261121',
    ]);

    // Exported up to 30: day 0 holds seq 31, so it cannot be dropped; day 1 can;
    // day 2 straddles the bound (05:00 on day 2), so its first rows are deleted.
    await store.setExportWatermark(30n);
    const before = day0 + 2 * DAY + 5 * 3_600_000;
    expect(await store.purge(before)).toBe(10 + 10 + 5);
    expect(await names()).toEqual(['readings_p20261119', 'readings_p20261121']);
    const left = (await store.queryReadings({ limit: 100 })).items;
    expect(left.map((r) => r.seq)).toEqual([30n, 29n, 28n, 27n, 26n, 31n]);

    // Exported now: day 0 goes whole; day 2 still has rows at or after the bound.
    await store.setExportWatermark(31n);
    expect(await store.purge(before)).toBe(1);
    expect(await names()).toEqual(['readings_p20261121']);
    // The empty past partitions are gone too once their day is over; the
    // counter carries on above every seq.
    expect(await store.purge(day0 + 3 * DAY)).toBe(5);
    expect(await names()).toEqual([]);
    const next = await store.append([reading({ eventTime: day0 })], []);
    expect(next.firstSeq).toBe(32n);
    expect(await names()).toEqual(['readings_p20261119']);
  });

  it('purge deletes instead of dropping when a reader holds the partition past the lock timeout', async () => {
    const { schema, store } = harness({ clock: new ManualClock(BASE) });
    await store.open();
    const day0 = Date.UTC(2026, 10, 19);
    await store.append([reading({ eventTime: day0 }), reading({ eventTime: day0 + 1 })], []);
    await store.setExportWatermark(2n);
    const reader = new pg.Client({ connectionString: PG_TEST_URL });
    await reader.connect();
    try {
      await reader.query('BEGIN');
      await reader.query(`SELECT count(*) FROM "${schema}".readings`);
      expect(await store.purge(day0 + DAY)).toBe(2);
      // Still there, empty, while the reader's transaction holds it.
      const [row] = await sql<{ n: string }>(
        `SELECT count(*)::text AS n FROM "${schema}".readings_p20261119`,
      );
      expect(row?.n).toBe('0');
      await reader.query('COMMIT');
    } finally {
      await reader.end();
    }
    // The next purge drops the (now empty, past) partition.
    expect(await store.purge(day0 + DAY)).toBe(0);
    expect(await sql(`SELECT to_regclass('"${schema}".readings_p20261119') AS r`)).toEqual([
      { r: null },
    ]);
  });

  it('two stores on one schema (as two processes) get disjoint, contiguous seqs and lose nothing', async () => {
    const h = harness();
    const a = h.store;
    const b = h.make();
    await Promise.all([a.open(), b.open()]);
    const batch = (k: number, n: number) =>
      Array.from({ length: n }, (_, i) =>
        // Each batch also opens a new day partition, which both stores race to create.
        reading({ sensorId: `k${k}`, eventTime: Date.UTC(2025, 0, 1 + (k % 7)) + i }),
      );
    const sizes = Array.from({ length: 16 }, (_, k) => 1 + ((k * 53) % 400));
    const results = await Promise.all(
      sizes.map((n, k) => (k % 2 === 0 ? a : b).append(batch(k, n), [])),
    );
    const ranges = results
      .map((r, k) => [r.firstSeq as bigint, r.lastSeq as bigint, sizes[k] as number] as const)
      .sort((x, y) => (x[0] < y[0] ? -1 : 1));
    let next = 1n;
    for (const [first, last, n] of ranges) {
      expect(first).toBe(next);
      expect(last - first + 1n).toBe(BigInt(n));
      next = last + 1n;
    }
    const total = sizes.reduce((x, y) => x + y);
    expect(await a.countReadings()).toBe(total);
    expect(await b.countReadings()).toBe(total);
    // Each batch's rows carry its own seqs.
    for (const [k, r] of results.entries()) {
      const page = await a.queryReadings({ sensorId: `k${k}`, limit: 1_000 });
      const seqs = page.items.map((x) => x.seq).sort((x, y) => (x < y ? -1 : 1));
      expect(seqs[0]).toBe(r.firstSeq);
      expect(seqs[seqs.length - 1]).toBe(r.lastSeq);
    }
  });

  it('fails an append whose connection the server ends between queries, without crashing, and commits the next one', async () => {
    const app = `canopy_terminate_${randomUUID().slice(0, 8)}`;
    const h = harness({ connectionString: `${PG_TEST_URL}?application_name=${app}` });
    await h.store.open();
    // Large enough that encoding it (after BEGIN, before the first statement) takes a while.
    const big = Array.from({ length: 200_000 }, (_, i) => reading({ eventTime: BASE + i }));
    const append = h.store.append(big, []);
    append.catch(() => undefined);
    // What a server shutdown does to every session; only this store's, found by its name.
    let terminated = 0;
    while (terminated === 0) {
      const [row] = await sql<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
          WHERE application_name = $1 AND state = 'idle in transaction'`,
        [app],
      );
      terminated = row?.n ?? 0;
    }
    const failure = await append.then(
      () => 'stored',
      (err: unknown) => (isCanopyError(err) ? err.code : String(err)),
    );
    expect(failure).toBe('CANOPY_STORE_COMMIT_FAILED');
    expect(await h.store.countReadings()).toBe(0);
    await h.store.append([reading()], []);
    expect(await h.store.countReadings()).toBe(1);
  });

  it('exports the same Parquet files as the DuckDB store for the same rows', async () => {
    const { store } = harness();
    await store.open();
    const dir = await mkdtemp(path.join(tmpdir(), 'canopy-pg-export-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const duck = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
    cleanups.push(() => duck.close());
    await duck.open();
    const rows = Array.from({ length: 300 }, (_, i) =>
      reading({
        sensorId: `s-${i % 7}`,
        sensorType: i % 5 === 0 ? null : 'humidity',
        location: i % 3 === 0 ? null : "bed 'B'",
        eventTime: BASE + ((i * 7_919) % (3 * 3_600_000)),
        value: i % 11 === 0 ? null : i / 8,
        anomalyScore: i % 2 === 0 ? null : i / 300,
        ingestTime: BASE + 4 * 3_600_000 + i,
        isAnomaly: i % 13 === 0,
        anomalyReasons: i % 13 === 0 ? ['range', 'zscore'] : [],
        imputed: i % 17 === 0,
      }),
    );
    for (const s of [store, duck]) {
      await s.append(rows.slice(0, 100), []);
      await s.append(rows.slice(100), []);
    }
    const pgBatch = await store.exportReadings(40n, 200, path.join(dir, 'pg'));
    const duckBatch = await duck.exportReadings(40n, 200, path.join(dir, 'duck'));
    expect(pgBatch).not.toBeNull();
    expect({ rows: pgBatch?.rows, lastSeq: pgBatch?.lastSeq }).toEqual({
      rows: 200,
      lastSeq: 240n,
    });
    expect({ rows: duckBatch?.rows, lastSeq: duckBatch?.lastSeq }).toEqual({
      rows: 200,
      lastSeq: 240n,
    });
    const relative = (batch: typeof pgBatch, root: string) =>
      batch!.partitions.map((p) => ({ ...p, path: path.relative(root, p.path) }));
    expect(relative(pgBatch, path.join(dir, 'pg'))).toEqual(
      relative(duckBatch, path.join(dir, 'duck')),
    );
    // Same schema and the same rows in the same order, file by file.
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    try {
      for (const [i, p] of pgBatch!.partitions.entries()) {
        const other = duckBatch!.partitions[i]!.path;
        const describe = async (file: string) =>
          (await conn.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).getRows();
        expect(await describe(p.path)).toEqual(await describe(other));
        const content = async (file: string) =>
          (await conn.runAndReadAll(`SELECT * FROM read_parquet('${file}')`))
            .getRows()
            .map((r) => r.map(String).join('|'));
        expect(await content(p.path)).toEqual(await content(other));
        const meta = async (file: string) =>
          (
            await conn.runAndReadAll(
              `SELECT path_in_schema, type, compression FROM parquet_metadata('${file}') ORDER BY ALL`,
            )
          ).getRows();
        expect(await meta(p.path)).toEqual(await meta(other));
      }
    } finally {
      conn.closeSync();
      db.closeSync();
    }
    // Byte-identical, even: DuckDB wrote both from the same table.
    for (const [i, p] of pgBatch!.partitions.entries()) {
      expect(await readFile(p.path)).toEqual(await readFile(duckBatch!.partitions[i]!.path));
    }
  });

  it('keeps its schema version and refuses a schema written by a newer Canopy', async () => {
    const { schema, store, make } = harness();
    await store.open();
    await store.close();
    expect(
      await sql(`SELECT version, description FROM "${schema}".hot_schema_version ORDER BY 1`),
    ).toEqual([{ version: 1, description: POSTGRES_HOT_STORE_MIGRATIONS[0]?.description }]);
    const newer = new PostgresHotStore({
      connectionString: PG_TEST_URL,
      schema,
      migrations: [
        ...POSTGRES_HOT_STORE_MIGRATIONS,
        {
          version: 2,
          description: 'a later column',
          statements: (t) => [`ALTER TABLE ${t('sensors')} ADD COLUMN note text`],
        },
      ],
    });
    await newer.open();
    await newer.close();
    const older = make();
    const err: unknown = await older.open().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'CanopyError', code: 'CANOPY_STORE_OPEN_FAILED' });
    expect((err as Error).message).toMatch(/newer Canopy/);
  });

  it('creates the documented schema', async () => {
    const { schema, store } = harness();
    await store.open();
    const columns = await sql<{ t: string; c: string; type: string; collation: string | null }>(
      `SELECT table_name AS t, column_name AS c, data_type AS type, collation_name AS collation
         FROM information_schema.columns
        WHERE table_schema = $1 AND table_name IN ('readings', 'dead_letters', 'hot_state')
        ORDER BY table_name, ordinal_position`,
      [schema],
    );
    const byTable: Record<string, string[]> = {};
    for (const col of columns)
      (byTable[col.t] ??= []).push(
        `${col.c} ${col.type}${col.collation ? ` ${col.collation}` : ''}`,
      );
    expect(byTable.readings).toEqual([
      'sensor_id text C',
      'sensor_type text',
      'location text',
      'event_time timestamp with time zone',
      'value double precision',
      'unit text',
      'anomaly_score double precision',
      'ingest_time timestamp with time zone',
      'source text',
      'batch_id text',
      'seq bigint',
      'is_anomaly boolean',
      'anomaly_reasons ARRAY',
      'imputed boolean',
    ]);
    expect(byTable.dead_letters?.at(-1)).toBe('raw bytea');
    expect(byTable.hot_state).toEqual([
      'id smallint',
      'last_seq bigint',
      'last_dead_letter_id bigint',
      'export_watermark bigint',
      'dead_letter_watermark bigint',
    ]);
  });
});

describe('PostgresHotStore', () => {
  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => new PostgresHotStore({ schema: 'hot; DROP TABLE x' })).toThrow(/schema/);
  });

  it('reports an unreachable server as CANOPY_STORE_OPEN_FAILED, without the password', async () => {
    const store = new PostgresHotStore({
      connectionString: 'postgres://postgres:hunter2@127.0.0.1:1/test',
      schema: 'canopy_hot',
    });
    const err = await store.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCanopyError(err, 'CANOPY_STORE_OPEN_FAILED')).toBe(true);
    expect((err as Error).message).not.toContain('hunter2');
    expect((err as Error).message).toContain('127.0.0.1:1');
    await expect(store.countReadings()).rejects.toMatchObject({ code: 'CANOPY_STORE_CLOSED' });
    await store.close();
  });
});
