/**
 * The lake mirror over an S3 lake (s3rver), against an oracle: the same lake
 * in a local folder, changed in the same way through the ObjectStore API.
 * Queries, quality suites and the catalogue must give the same answers over
 * both, whatever happened to the objects or to the cache in between.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectStore } from '../core/object-store.js';
import { ManualClock } from '../core/clock.js';
import type { DeadLetter } from '../core/ingest.js';
import type { NewReading } from '../core/store.js';
import { silentLogger } from '../observability/logger.js';
import { openLakeQueries } from '../query/lake.js';
import { DuckDbHotStore, LocalObjectStore, S3ObjectStore } from '../storage/index.js';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../../test/helpers/s3rver.js';
import { newReading } from '../../test/helpers/readings.js';
import { runBronzeExport } from './bronze-export.js';
import { openLakeMirror } from './cache.js';
import { buildCatalog, type CatalogTable } from './catalog.js';
import { runDeadLetterExport } from './deadletter-export.js';
import { withLakeEngine } from './engine.js';
import { runGoldJob } from './gold-job.js';
import type { SuiteResult } from './quality/index.js';
import { runQualityJob } from './quality-job.js';
import { writeImputations } from '../imputation/lake-io.js';
import { runSilverJob } from './silver-job.js';
import { canopyLakeViews } from './views.js';

const logger = silentLogger();
const T = Date.UTC(2026, 10, 20, 10);
let server: S3rverHandle;
let work: string;
/** The lake every test starts from, built once by the real jobs. */
let source: LocalObjectStore;
let run = 0;
const stores: ObjectStore[] = [];

async function buildSourceLake(dir: string): Promise<LocalObjectStore> {
  const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
  await store.open();
  const lake = new LocalObjectStore({ root: path.join(dir, 'lake') });
  const readings: NewReading[] = Array.from({ length: 240 }, (_, i) =>
    newReading({
      sensorId: `s-${i % 4}`,
      eventTime: T + i * 600_000,
      // A few out-of-range values, so silver flags anomalies and the bronze suite fails.
      value: i === 1 ? null : i % 37 === 5 ? 500 : 20 + (i % 11),
      ingestTime: T,
    }),
  );
  const letter: DeadLetter = {
    receivedAt: T,
    source: 'http',
    origin: '/api/data',
    reason: 'INVALID_JSON',
    message: 'not JSON',
    raw: '{"x": ',
  };
  await store.append(readings, [letter]);
  await runBronzeExport({ store, lake, workDir: dir, logger });
  await runDeadLetterExport({ store, lake, logger });
  await store.close();
  // One imputed value (for a reading sent without one), so the imputations view has a row.
  await writeImputations(
    lake,
    dir,
    new Date(T).toISOString().slice(0, 10),
    'run-1',
    [
      {
        sensorId: 's-1',
        eventTime: T + 600_000,
        value: 21.5,
        uncertainty: 0.1,
        model: 'm',
        modelVersion: 'v',
      },
    ],
    T,
  );
  await runSilverJob({
    lake,
    workDir: dir,
    logger,
    clock: new ManualClock(T),
    deviceScoreThreshold: 0.5,
    ranges: { byType: {}, bySensor: {} },
    zscore: { window: 60, minHistory: 10, threshold: 3 },
  });
  await runGoldJob({ lake, workDir: dir, sensorIntervals: {}, defaultIntervalMs: 600_000, logger });
  return lake;
}

async function copyLake(from: LocalObjectStore, to: ObjectStore): Promise<void> {
  for (const o of await from.list('')) await to.putFile(o.key, from.localPath(o.key));
}

/** A fresh S3 lake (own prefix) and its local twin, both holding the source lake. */
async function twins(): Promise<{ s3: S3ObjectStore; local: LocalObjectStore; cacheDir: string }> {
  run += 1;
  const s3 = new S3ObjectStore({
    bucket: server.bucket,
    prefix: `twins-${run}/`,
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    ...S3RVER_CREDENTIALS,
  });
  const local = new LocalObjectStore({ root: path.join(work, `twin-${run}`) });
  stores.push(s3, local);
  await copyLake(source, s3);
  await copyLake(source, local);
  return { s3, local, cacheDir: path.join(work, `cache-${run}`) };
}

beforeAll(async () => {
  server = await startS3rver();
  work = await mkdtemp(path.join(tmpdir(), 'canopy-lake-cache-'));
  source = await buildSourceLake(await mkdtemp(path.join(work, 'source-')));
}, 60_000);

afterAll(async () => {
  for (const store of stores) store.close();
  await server?.stop();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

const VIEWS = Object.keys(canopyLakeViews('/')).sort();

/** Every row of every view, sorted, so two lakes compare whole. */
async function everyView(
  queries: Awaited<ReturnType<typeof openLakeQueries>>,
): Promise<Record<string, unknown>> {
  const all: Record<string, unknown> = {};
  for (const view of VIEWS) {
    const result = await queries.run(`SELECT * FROM ${view} ORDER BY ALL`);
    all[view] = { columns: result.columns, rows: result.rows };
  }
  return all;
}

/** What must agree between two catalogues of the same lake: all but modification times. */
function comparable(catalog: CatalogTable[]): unknown {
  return catalog.map(({ lastModified: _t, partitions, ...table }) => ({
    ...table,
    partitions: partitions.map(({ lastModified: _p, ...p }) => p),
  }));
}

/** Suite results without their run times, failing rows in a fixed order (file read order varies). */
function comparableSuites(results: SuiteResult[]): unknown {
  return results.map(({ started_at: _s, finished_at: _f, results: expectations, ...suite }) => ({
    ...suite,
    results: expectations.map((e) => ({
      ...e,
      failing_rows: e.failing_rows.map((r) => JSON.stringify(r)).sort(),
    })),
  }));
}

describe('the lake mirror over S3', () => {
  it('answers every view with the rows of the same lake in a local folder, and only syncs what changed', async () => {
    const { s3, local, cacheDir } = await twins();
    const overS3 = await openLakeQueries(s3, logger, { cacheDir });
    const overLocal = await openLakeQueries(local, logger);
    try {
      const expected = await everyView(overLocal);
      expect(await everyView(overS3)).toEqual(expected);
      // Not a vacuous comparison: the layers hold rows.
      for (const view of [
        'bronze_readings',
        'readings',
        'anomalies',
        'gold_sensor_5min',
        'imputations',
      ]) {
        expect((expected[view] as { rows: unknown[] }).rows.length).toBeGreaterThan(0);
      }
      expect((expected.dead_letters as { rows: unknown[] }).rows).toHaveLength(1);

      // The cache is current: a second sync lists and downloads nothing.
      const mirror = await openLakeMirror(s3, { cacheDir });
      const again = await mirror.sync(['bronze/', 'silver/', 'gold/', 'deadletter/']);
      expect(again.downloaded).toEqual([]);
      expect(again.deleted).toEqual([]);
      expect(again.objects.map((o) => o.key)).toEqual(
        (await source.list(''))
          .map((o) => o.key)
          .filter((k) => /^(bronze|silver|gold|deadletter)\/.*\.(parquet|jsonl)$/.test(k)),
      );

      // The sandbox is confined to the copies: the stamps beside them are outside.
      const stampFile = path.join(cacheDir, 'stamps');
      await expect(overS3.run(`SELECT * FROM glob('${stampFile}/**')`)).rejects.toMatchObject({
        code: 'CANOPY_QUERY_REFUSED',
      });
    } finally {
      await overS3.close();
      await overLocal.close();
    }
  });

  it('follows a replaced partition, a deleted object and a damaged copy', async () => {
    const { s3, local, cacheDir } = await twins();
    const overS3 = await openLakeQueries(s3, logger, { cacheDir });
    const overLocal = await openLakeQueries(local, logger);
    const mirror = await openLakeMirror(s3, { cacheDir });
    const sql =
      'SELECT date, hour, sensor_id, count(*), sum(value) FROM bronze_readings GROUP BY ALL ORDER BY ALL';
    const same = async (query: string): Promise<void> =>
      expect(await overS3.run(query)).toMatchObject({
        rows: (await overLocal.run(query)).rows,
      });
    try {
      await same(sql);
      const bronze = (await s3.list('bronze/readings/')).map((o) => o.key);
      const [first, second, third] = bronze;

      // Replaced in place (new content, new etag): the next query reads the new rows.
      const before = (await overS3.run(sql)).rows;
      const replacement = await source.get(second!);
      for (const lake of [s3, local]) await lake.put(first!, replacement);
      await same(sql);
      expect((await overS3.run(sql)).rows).not.toEqual(before);

      // Deleted: gone from the next query, and from the cache.
      for (const lake of [s3, local]) await lake.delete([third!]);
      await same(sql);
      await expect(stat(path.join(mirror.root, third!))).rejects.toMatchObject({ code: 'ENOENT' });

      // A copy truncated, then one rewritten in place at the same size: both downloaded again.
      const copy = path.join(mirror.root, second!);
      const { size } = await stat(copy);
      await truncate(copy, Math.floor(size / 2));
      expect((await mirror.sync(['bronze/'])).downloaded).toEqual([second]);
      await writeFile(copy, Buffer.alloc(size));
      expect((await mirror.sync(['bronze/'])).downloaded).toEqual([second]);
      await same(sql);
      expect((await mirror.sync(['bronze/'])).downloaded).toEqual([]);
    } finally {
      await overS3.close();
      await overLocal.close();
    }
  });

  it('recovers from a crash: a half download is cleared and an unstamped copy is fetched again', async () => {
    const { s3, cacheDir } = await twins();
    const [key] = (await s3.list('bronze/readings/')).map((o) => o.key);
    // What a process killed mid-sync leaves behind: its download folder, and
    // a copy renamed into place whose stamp was never written.
    const deadPid = await exitedPid();
    const leftover = path.join(cacheDir, 'tmp', `${deadPid}-abc`);
    await mkdir(leftover, { recursive: true });
    await writeFile(path.join(leftover, 'x.download'), 'half');
    const copy = path.join(cacheDir, 'objects', key!);
    await mkdir(path.dirname(copy), { recursive: true });
    await writeFile(copy, 'not the object');

    const mirror = await openLakeMirror(s3, { cacheDir });
    const report = await mirror.sync(['bronze/']);
    expect(report.downloaded).toContain(key);
    await expect(stat(leftover)).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(copy)).size).toBe((await s3.head(key!))!.size);
  });

  it('runs a read again, after a new sync, when another process deleted a file under it', async () => {
    const { s3, cacheDir } = await twins();
    const mirror = await openLakeMirror(s3, { cacheDir });
    let attempts = 0;
    const rows = await mirror.read(['bronze/'], async (objects) => {
      attempts += 1;
      // Another process's sync removing a copy between this listing and the read.
      if (attempts === 1) await rm(objects[0]!.path);
      return withLakeEngine(async (conn) => {
        const list = objects.map((o) => `'${o.path}'`).join(', ');
        return Number(
          (
            await conn.runAndReadAll(`SELECT count(*) FROM read_parquet([${list}])`)
          ).getRows()[0]![0],
        );
      });
    });
    expect(attempts).toBe(2);
    expect(rows).toBe(240);
  });

  it('serializes concurrent syncs and queries of one process over one cache', async () => {
    const { s3, local, cacheDir } = await twins();
    const queries = await Promise.all([
      openLakeQueries(s3, logger, { cacheDir }),
      openLakeQueries(s3, logger, { cacheDir }),
    ]);
    const overLocal = await openLakeQueries(local, logger);
    const mirror = await openLakeMirror(s3, { cacheDir });
    const sql = 'SELECT sensor_id, count(*), sum(value) FROM readings GROUP BY ALL ORDER BY ALL';
    try {
      const expected = (await overLocal.run(sql)).rows;
      const results = await Promise.all([
        ...queries.flatMap((q) => [q.run(sql), q.run(sql)]),
        mirror.sync(['silver/']).then(() => queries[0].run(sql)),
      ]);
      for (const result of results) expect(result.rows).toEqual(expected);
    } finally {
      for (const q of [...queries, overLocal]) await q.close();
    }
  });

  it('runs the quality suites and builds the catalogue as over the local lake', async () => {
    const { s3, local, cacheDir } = await twins();
    const overS3 = await runQualityJob({ lake: s3, logger, cacheDir });
    const overLocal = await runQualityJob({ lake: local, logger });
    expect(overS3.map((r) => r.suite)).toEqual(['bronze_readings', 'silver_readings']);
    expect(overLocal.some((r) => !r.success)).toBe(true); // the out-of-range values fail a check
    expect(comparableSuites(overS3)).toEqual(comparableSuites(overLocal));

    const catalogS3 = await buildCatalog(s3, { cacheDir });
    const catalogLocal = await buildCatalog(local);
    expect(comparable(catalogS3)).toEqual(comparable(catalogLocal));
    const bronze = catalogS3.find((t) => t.table === 'bronze/readings')!;
    expect(bronze.rows).toBe(240);
    expect(bronze.columns?.map((c) => c.name)).toContain('sensor_id');
  });

  it('needs a cache folder for an S3 lake', async () => {
    const { s3 } = await twins();
    await expect(openLakeMirror(s3)).rejects.toMatchObject({ code: 'CANOPY_CONFIG_INVALID' });
  });
});

/** The pid of a process that has exited (so no process runs under it, barring reuse). */
async function exitedPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}
