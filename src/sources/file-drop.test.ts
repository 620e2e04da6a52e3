/**
 * The landing-area source over both object stores: a local folder and an S3
 * prefix on s3rver. A real pipeline over an in-memory hot store receives the
 * files; counts are checked against the records written (the oracle), and
 * exactly-once by comparing count(*) with the distinct (sensor, time) pairs.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import type { IngestMessage, IngestResult, IngestSink } from '../core/ingest.js';
import type { ObjectStore } from '../core/object-store.js';
import { loadConfig } from '../config/load.js';
import type { CanopyConfigInput } from '../config/schema.js';
import { BUILT_IN_WIDE_CSV_MAPPINGS, FILE_CHUNK_RECORDS } from '../ingest/index.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { createPipeline, type IngestPipeline } from '../runtime/pipeline.js';
import { DuckDbHotStore, LocalObjectStore, S3ObjectStore } from '../storage/index.js';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../../test/helpers/s3rver.js';
import { FileDropSource, type FileDropOptions, type FileFailure } from './file-drop.js';

const NOW = Date.UTC(2026, 10, 22, 12, 0, 0);
const T0 = Date.UTC(2026, 10, 22, 0, 0, 0);

interface Area {
  store: ObjectStore;
  prefix: string;
  cleanup: () => Promise<void>;
}

interface Rig {
  area: Area;
  hot: DuckDbHotStore;
  pipeline: IngestPipeline;
  clock: ManualClock;
  metrics: Metrics;
  source: (overrides?: Partial<FileDropOptions>) => FileDropSource;
  /** Drops a file into the landing area. */
  drop: (rel: string, body: string | Buffer) => Promise<void>;
  keys: (under: string) => Promise<string[]>;
  /** Readings stored, and distinct (sensor, event time) pairs among them. */
  counts: () => Promise<{ rows: number; distinct: number; deadLetters: number }>;
}

const WIDE_CONFIG: CanopyConfigInput = {
  ingest: {
    wideCsv: { rig: { deviceId: 'rig', timestamp: { column: 'ts', format: 'epoch_ms' } } },
  },
};

function ndjson(sensor: string, n: number, start = 0): string {
  return Array.from(
    { length: n },
    (_, i) =>
      `${JSON.stringify({ sensor_id: sensor, timestamp: T0 + (start + i) * 1000, value: i % 50 })}\n`,
  ).join('');
}

function longCsv(sensor: string, n: number): string {
  const rows = Array.from({ length: n }, (_, i) => `${T0 + i * 1000},${sensor},${i}`);
  return ['timestamp,sensor_id,value', ...rows].join('\n');
}

function describeFileDrop(name: string, makeArea: () => Promise<Area>): void {
  describe(`file drop: ${name}`, () => {
    const rigs: Rig[] = [];
    afterEach(async () => {
      for (const rig of rigs.splice(0)) {
        await rig.pipeline.drain();
        await rig.hot.close();
        await rig.area.cleanup();
      }
    });

    async function rig(config: CanopyConfigInput = {}): Promise<Rig> {
      const area = await makeArea();
      const hot = new DuckDbHotStore({ path: ':memory:' });
      await hot.open();
      const cfg = loadConfig({ env: {}, overrides: (raw) => Object.assign(raw, config) }).config;
      const clock = new ManualClock(NOW);
      const metrics = new Metrics({ defaultMetrics: false });
      const pipeline = await createPipeline(cfg, hot, { clock, metrics, logger: silentLogger() });
      const r: Rig = {
        area,
        hot,
        pipeline,
        clock,
        metrics,
        source: (overrides = {}) =>
          new FileDropSource({
            store: area.store,
            prefix: area.prefix,
            sink: pipeline,
            clock,
            metrics,
            logger: silentLogger(),
            scanIntervalMs: 60_000,
            settleMs: 0,
            maxFileBytes: 1024 * 1024,
            decode: { limits: cfg.ingest },
            wideCsvMappings: { ...BUILT_IN_WIDE_CSV_MAPPINGS, ...cfg.ingest.wideCsv },
            ...overrides,
          }),
        drop: async (rel, body) => {
          await area.store.put(`${area.prefix}${rel}`, body);
        },
        keys: async (under) =>
          (await area.store.list(`${area.prefix}${under}`)).map((o) =>
            o.key.slice(area.prefix.length),
          ),
        counts: async () => {
          const items = [];
          let cursor: string | undefined;
          do {
            const page = await hot.queryReadings({
              limit: 10_000,
              ...(cursor === undefined ? {} : { cursor }),
            });
            items.push(...page.items);
            cursor = page.nextCursor ?? undefined;
          } while (cursor !== undefined);
          return {
            rows: items.length,
            distinct: new Set(items.map((i) => `${i.sensorId}@${i.eventTime}`)).size,
            deadLetters: await hot.countDeadLetters(),
          };
        },
      };
      rigs.push(r);
      return r;
    }

    it('ingests a file, moves it to processed/, and a second drop of the same content stores nothing', async () => {
      const r = await rig();
      const source = r.source();
      await r.drop('a.csv', longCsv('s-a', 30));
      expect(await source.scanOnce()).toMatchObject({ processed: ['a.csv'].map(k), failed: [] });
      expect(await r.counts()).toEqual({ rows: 30, distinct: 30, deadLetters: 0 });

      // The same content again, under its own name and under another.
      await r.drop('a.csv', longCsv('s-a', 30));
      await r.drop('copy-of-a.csv', longCsv('s-a', 30));
      expect((await source.scanOnce()).processed).toHaveLength(2);
      expect(await r.counts()).toEqual({ rows: 30, distinct: 30, deadLetters: 0 });
      // An identical file already in processed/ is not kept twice.
      expect(await r.keys('')).toEqual(['processed/a.csv', 'processed/copy-of-a.csv']);

      // Different content under a taken name gets a suffix; nothing is overwritten.
      await r.drop('a.csv', longCsv('s-b', 5));
      await source.scanOnce();
      expect(await r.keys('processed/')).toEqual([
        'processed/a-1.csv',
        'processed/a.csv',
        'processed/copy-of-a.csv',
      ]);
      expect(await r.counts()).toEqual({ rows: 35, distinct: 35, deadLetters: 0 });
      expect(await r.metrics.landingFiles.get()).toMatchObject({
        values: [{ value: 4, labels: { outcome: 'processed' } }],
      });

      function k(rel: string): string {
        return `${r.area.prefix}${rel}`;
      }
    });

    it('moves unreadable files to failed/ with a reason, storing nothing of them', async () => {
      const r = await rig(WIDE_CONFIG);
      await r.drop('broken.json', '{"sensor_id": "x", ');
      await r.drop('notes.txt', 'hello');
      await r.drop('no-header.csv', 'a,b,c\n1,2,3\n');
      await r.drop('latin1.csv', Buffer.from([0x74, 0x69, 0x6d, 0x65, 0xe9, 0x0a]));
      await r.drop('big.ndjson', ndjson('big', 20));
      await r.drop('empty.csv', 'timestamp,sensor_id,value\n');
      await r.drop('wide/nope/w.csv', 'ts,temp\n1,2\n');
      await r.drop('wide/rig/w.json', '[]');
      const report = await r.source({ maxFileBytes: 1000 }).scanOnce();
      expect(report.failed).toHaveLength(8);
      expect(report.processed).toEqual([]);

      const reasons: Record<string, string> = {};
      for (const key of await r.keys('failed/')) {
        if (!key.endsWith('.reason.json')) continue;
        const failure = JSON.parse(
          (await r.area.store.get(`${r.area.prefix}${key}`)).toString('utf8'),
        ) as FileFailure;
        expect(failure.file).toBe(`${r.area.prefix}${key.slice('failed/'.length, -12)}`);
        expect(failure.failedAt).toBe(new Date(NOW).toISOString());
        reasons[failure.file.slice(r.area.prefix.length)] = failure.reason;
      }
      expect(reasons).toEqual({
        'broken.json': 'INVALID_JSON',
        'notes.txt': 'UNSUPPORTED_FORMAT',
        'no-header.csv': 'INVALID_CSV',
        'latin1.csv': 'NOT_UTF8',
        'big.ndjson': 'FILE_TOO_LARGE',
        'empty.csv': 'EMPTY_FILE',
        'wide/nope/w.csv': 'UNKNOWN_MAPPING',
        'wide/rig/w.json': 'UNSUPPORTED_FORMAT',
      });
      // Every failed file sits beside its reason, under its own relative path.
      expect((await r.keys('failed/')).filter((key) => !key.endsWith('.reason.json'))).toEqual(
        Object.keys(reasons)
          .map((rel) => `failed/${rel}`)
          .sort(),
      );
      expect(await r.keys('')).toEqual(await r.keys('failed/'));
      expect(await r.counts()).toEqual({ rows: 0, distinct: 0, deadLetters: 0 });
    });

    it('stores the good records of a mixed file, dead-letters the bad ones, and counts it processed', async () => {
      const r = await rig();
      const lines = [
        ndjson('m', 3),
        'not json\n',
        `${JSON.stringify({ sensor_id: 'm', timestamp: T0 + 99_000, value: 'high' })}\n`,
        ndjson('m', 2, 10),
      ].join('');
      await r.drop('mixed.ndjson', lines);
      expect((await r.source().scanOnce()).processed).toHaveLength(1);
      expect(await r.counts()).toEqual({ rows: 5, distinct: 5, deadLetters: 2 });
      const letters = (await r.hot.listDeadLetters({ limit: 10 })).items;
      expect(letters.map((d) => d.reason).sort()).toEqual(['INVALID_JSON', 'INVALID_VALUE']);
      expect(new Set(letters.map((d) => d.origin))).toEqual(
        new Set([`${r.area.prefix}mixed.ndjson`]),
      );
      expect(await r.keys('')).toEqual(['processed/mixed.ndjson']);
    });

    it('decodes wide CSV under wide/<mapping>/ with that mapping', async () => {
      const r = await rig(WIDE_CONFIG);
      const rows = Array.from({ length: 4 }, (_, i) => `${T0 + i * 60_000},${20 + i},${40 + i}`);
      await r.drop('wide/rig/day-1.csv', ['ts,temp,hum', ...rows].join('\n'));
      expect((await r.source().scanOnce()).processed).toHaveLength(1);
      expect(await r.counts()).toEqual({ rows: 8, distinct: 8, deadLetters: 0 });
      const ids = new Set((await r.hot.listSensors()).map((s) => s.sensorId));
      expect(ids).toEqual(new Set(['rig.temp', 'rig.hum']));
      expect(await r.keys('')).toEqual(['processed/wide/rig/day-1.csv']);
    });

    it('takes a file only once it has settled, and never temporary or hidden names', async () => {
      const r = await rig();
      const source = r.source({ settleMs: 1_000 });
      await r.drop('growing.ndjson', ndjson('g', 3));
      await r.drop('upload.csv.part', longCsv('p', 3));
      await r.drop('upload.tmp', longCsv('p', 3));
      await r.drop('.hidden.csv', longCsv('p', 3));
      await r.drop('sub/.staging/x.csv', longCsv('p', 3));
      expect(await source.scanOnce()).toMatchObject({ processed: [], waiting: 1 });
      r.clock.advance(999);
      expect(await source.scanOnce()).toMatchObject({ processed: [], waiting: 1 });
      await r.drop('growing.ndjson', ndjson('g', 6)); // still being written: the clock restarts
      r.clock.advance(1_000);
      expect(await source.scanOnce()).toMatchObject({ processed: [], waiting: 1 });
      r.clock.advance(1_000);
      expect(await source.scanOnce()).toMatchObject({ waiting: 0 });
      expect(await r.counts()).toEqual({ rows: 6, distinct: 6, deadLetters: 0 });
      expect((await r.keys('')).sort()).toEqual(
        [
          '.hidden.csv',
          'processed/growing.ndjson',
          'sub/.staging/x.csv',
          'upload.csv.part',
          'upload.tmp',
        ].sort(),
      );
    });

    it('a file interrupted after some chunks is finished by a later scan, each reading once', async () => {
      const r = await rig();
      const total = FILE_CHUNK_RECORDS * 2 + 123; // three chunks
      await r.drop('long.ndjson', ndjson('c', total));
      let calls = 0;
      // A sink that commits the first chunk and then breaks for good (a bug, not retryable).
      const breaking: IngestSink = {
        submit: async (message: IngestMessage): Promise<IngestResult> => {
          if (++calls > 1) throw new CanopyError('CANOPY_API_INTERNAL', 'crashed mid-file');
          return r.pipeline.submit(message);
        },
        submitDeadLetter: (d) => r.pipeline.submitDeadLetter(d),
      };
      expect(await r.source({ sink: breaking }).scanOnce()).toMatchObject({
        processed: [],
        errors: 1,
      });
      expect(await r.counts()).toMatchObject({ rows: FILE_CHUNK_RECORDS });
      expect(await r.keys('')).toEqual(['long.ndjson']);

      expect((await r.source().scanOnce()).processed).toHaveLength(1);
      expect(await r.counts()).toEqual({ rows: total, distinct: total, deadLetters: 0 });
      expect(await r.metrics.duplicateMessages.get()).toMatchObject({
        values: [{ value: 1, labels: { source: 'landing' } }],
      });
    });

    it('a failed listing is survived and the next scan goes on', async () => {
      const r = await rig();
      let broken = true;
      const flaky = new Proxy(r.area.store, {
        get(target, prop) {
          if (prop === 'list' && broken) {
            return () => Promise.reject(new CanopyError('CANOPY_LAKE_IO_FAILED', 'unreachable'));
          }
          const value: unknown = Reflect.get(target, prop, target);
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        },
      });
      const source = r.source({ store: flaky });
      await r.drop('x.csv', longCsv('f', 2));
      expect(await source.scanOnce()).toMatchObject({ errors: 1, processed: [] });
      broken = false;
      expect((await source.scanOnce()).processed).toHaveLength(1);
    });
  });
}

describeFileDrop('local folder', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'canopy-landing-'));
  return {
    store: new LocalObjectStore({ root, durable: false }),
    prefix: '',
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

let server: S3rverHandle;
let run = 0;
beforeAll(async () => {
  server = await startS3rver();
});
afterAll(async () => {
  await server?.stop();
});

describeFileDrop('S3 prefix (s3rver)', () => {
  const store = new S3ObjectStore({
    bucket: server.bucket,
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    prefix: `lake-${++run}/`,
    ...S3RVER_CREDENTIALS,
  });
  return Promise.resolve({
    store,
    prefix: 'landing/',
    cleanup: async () => {
      await store.delete((await store.list('')).map((o) => o.key));
      store.close();
    },
  });
});
