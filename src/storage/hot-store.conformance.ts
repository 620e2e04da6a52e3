/**
 * The one conformance suite every `HotStore` adapter runs (DuckDB now,
 * PostgreSQL later). It tests the contract in `core/store.ts` only, never an
 * engine's specifics, and checks results against a plain in-memory oracle
 * computed from the same input.
 *
 * Contract details the interface comments leave open, fixed here so that
 * every adapter agrees:
 * - Seqs start above 0 and are never reused, also after a purge emptied the
 *   table and the store was reopened. Within one call they are contiguous.
 * - `nextCursor` is null when a page is not full; a full last page may still
 *   carry a cursor that leads to an empty page.
 * - Invalid `limit`, `cursor`, `perSensor`, time bounds or watermark values
 *   reject with CANOPY_API_BAD_REQUEST. A watermark above the last committed
 *   seq is invalid: it would let a purge delete rows never exported.
 * - `upsertSensors`: a config record overwrites every field it knows (a null
 *   in it keeps the stored value) and makes the sensor `config`; a discovered
 *   record only fills null fields and never demotes a config sensor;
 *   `firstSeen` keeps the earliest known time. `listSensors` is ordered by
 *   sensor id; `lastValue` is the value of the newest reading (null if that
 *   reading is a known-missing value).
 * - `recentValues` leaves out sensors without a non-null value.
 * - Dead letters are ordered newest first by id, which grows with each call;
 *   ids, like seqs, are never reused, also after a purge and a reopen.
 * - A receipt round-trips exactly (rejections keep reason, message and index,
 *   in order). A receipt key already stored, or repeated within one call,
 *   fails the whole call and nothing of it is written.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import { seededRandom } from '../../test/helpers/random.js';
import type { ErrorCode } from '../core/errors.js';
import type { DeadLetter } from '../core/ingest.js';
import type { StoredReading } from '../core/reading.js';
import type {
  HotStore,
  IngestReceipt,
  NewReading,
  Page,
  ReadingQuery,
  SensorRecord,
  StoredDeadLetter,
} from '../core/store.js';

export interface HotStoreHarness {
  /** A new store over empty storage, not yet opened (the suite opens it). */
  store: HotStore;
  /**
   * A new store over the same storage. The suite closes the previous store
   * before calling it and opens the result: durability across restarts is
   * part of the contract.
   */
  reopen: () => Promise<HotStore>;
  /** Closes any store the harness made that is still open and removes the data. */
  cleanup: () => Promise<void>;
}

const BASE = Date.UTC(2026, 10, 22, 10, 0, 0, 0);
const SENSORS = ['s-0', 's-1', 's-2', 's-3', 's-4'] as const;
const TYPES = ['temperature', 'humidity', 'pressure'] as const;
const LOCATIONS = ['greenhouse/a', 'greenhouse/b'] as const;

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)] as T;
}

function reading(overrides: Partial<NewReading> = {}): NewReading {
  return {
    sensorId: 's-0',
    sensorType: 'temperature',
    location: 'greenhouse/a',
    eventTime: BASE,
    value: 21.5,
    unit: 'C',
    anomalyScore: null,
    ingestTime: BASE + 50,
    source: 'test',
    batchId: 'batch-1',
    isAnomaly: false,
    anomalyReasons: [],
    imputed: false,
    ...overrides,
  };
}

/**
 * Readings over five sensors with many equal event times (ties exercise the
 * seq tie-break), nulls, anomalies and imputed values.
 */
function dataset(n: number, seed: number, spanSeconds = 120): NewReading[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const s = pick(rand, SENSORS);
    const idx = Number(s.slice(2));
    const anomalous = rand() < 0.1;
    return reading({
      sensorId: s,
      sensorType: TYPES[idx % TYPES.length] ?? null,
      location: idx === 4 ? null : (LOCATIONS[idx % 2] ?? null),
      eventTime: BASE + Math.floor(rand() * spanSeconds) * 1000 + (rand() < 0.2 ? 1 : 0),
      value: rand() < 0.1 ? null : Math.round(rand() * 10_000) / 100,
      unit: idx === 3 ? null : 'u',
      anomalyScore: rand() < 0.5 ? null : Math.round(rand() * 100) / 100,
      ingestTime: BASE + 200_000 + i,
      batchId: `b-${seed}-${Math.floor(i / 10)}`,
      isAnomaly: anomalous,
      anomalyReasons: anomalous ? (rand() < 0.5 ? ['range'] : ['range', 'zscore']) : [],
      imputed: rand() < 0.05,
    });
  });
}

function deadLetter(overrides: Partial<DeadLetter> = {}): DeadLetter {
  return {
    receivedAt: BASE + 7,
    source: 'mqtt',
    origin: 'iot/data',
    reason: 'INVALID_JSON',
    message: 'Unexpected token } in JSON',
    raw: '{"sensor_id": }',
    ...overrides,
  };
}

function receipt(key: string, overrides: Partial<IngestReceipt> = {}): IngestReceipt {
  return {
    key,
    batchId: `batch-of-${key}`,
    accepted: 3,
    rejections: [],
    committedAt: BASE + 1_000,
    ...overrides,
  };
}

/** Oracle order: newest first by event time, then seq. */
function newestFirst(a: StoredReading, b: StoredReading): number {
  if (a.eventTime !== b.eventTime) return b.eventTime - a.eventTime;
  return a.seq < b.seq ? 1 : a.seq > b.seq ? -1 : 0;
}

function oracleQuery(
  rows: readonly StoredReading[],
  q: Omit<ReadingQuery, 'limit' | 'cursor'>,
): StoredReading[] {
  return rows
    .filter(
      (r) =>
        (q.sensorId === undefined || r.sensorId === q.sensorId) &&
        (q.sensorType === undefined || r.sensorType === q.sensorType) &&
        (q.location === undefined || r.location === q.location) &&
        (q.from === undefined || r.eventTime >= q.from) &&
        (q.to === undefined || r.eventTime < q.to),
    )
    .sort(newestFirst);
}

/** Appends and returns what the store should now hold for these readings. */
async function appendAll(
  store: HotStore,
  readings: readonly NewReading[],
  deadLetters: readonly DeadLetter[] = [],
): Promise<StoredReading[]> {
  const res = await store.append(readings, deadLetters);
  if (readings.length === 0) return [];
  expect(res.firstSeq).not.toBeNull();
  const first = res.firstSeq as bigint;
  expect(res.lastSeq).toBe(first + BigInt(readings.length - 1));
  return readings.map((r, i) => ({ ...r, seq: first + BigInt(i) }));
}

/** Appends in batches of `batch` and returns the stored form of everything. */
async function appendInBatches(
  store: HotStore,
  readings: readonly NewReading[],
  batch: number,
): Promise<StoredReading[]> {
  const out: StoredReading[] = [];
  for (let i = 0; i < readings.length; i += batch) {
    out.push(...(await appendAll(store, readings.slice(i, i + batch))));
  }
  return out;
}

/** Follows `nextCursor` to the end, checking the page contract on the way. */
async function walkPages<T>(
  limit: number,
  fetch: (cursor: string | undefined) => Promise<Page<T>>,
): Promise<T[]> {
  const all: T[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 2_000; pages++) {
    const page = await fetch(cursor);
    expect(page.items.length).toBeLessThanOrEqual(limit);
    if (page.items.length < limit) expect(page.nextCursor).toBeNull();
    all.push(...page.items);
    if (page.nextCursor === null) return all;
    cursor = page.nextCursor;
  }
  throw new Error('pagination did not end after 2 000 pages (a cursor that does not advance?)');
}

function walkReadings(store: HotStore, q: Omit<ReadingQuery, 'cursor'>): Promise<StoredReading[]> {
  return walkPages(q.limit, (cursor) =>
    store.queryReadings(cursor === undefined ? q : { ...q, cursor }),
  );
}

function walkDeadLetters(
  store: HotStore,
  q: { reason?: string; source?: string; limit: number },
): Promise<StoredDeadLetter[]> {
  return walkPages(q.limit, (cursor) =>
    store.listDeadLetters(cursor === undefined ? q : { ...q, cursor }),
  );
}

async function expectCode(p: Promise<unknown>, code: ErrorCode): Promise<void> {
  await expect(p).rejects.toMatchObject({ name: 'CanopyError', code });
}

function sensor(overrides: Partial<SensorRecord> & { sensorId: string }): SensorRecord {
  return {
    sensorType: null,
    unit: null,
    location: null,
    origin: 'discovered',
    intervalMs: null,
    firstSeen: null,
    ...overrides,
  };
}

/** The contract of `upsertSensors`, record by record (see the file comment). */
function oracleUpsert(known: Map<string, SensorRecord>, records: readonly SensorRecord[]): void {
  for (const r of records) {
    const old = known.get(r.sensorId);
    if (!old) {
      known.set(r.sensorId, { ...r });
      continue;
    }
    const field = <T>(a: T | null, b: T | null): T | null =>
      r.origin === 'config' ? (b ?? a) : (a ?? b);
    known.set(r.sensorId, {
      sensorId: r.sensorId,
      sensorType: field(old.sensorType, r.sensorType),
      unit: field(old.unit, r.unit),
      location: field(old.location, r.location),
      origin: r.origin === 'config' ? 'config' : old.origin,
      intervalMs: field(old.intervalMs, r.intervalMs),
      firstSeen:
        old.firstSeen === null || r.firstSeen === null
          ? (old.firstSeen ?? r.firstSeen)
          : Math.min(old.firstSeen, r.firstSeen),
    });
  }
}

/** A record with each field null about a third of the time; mostly discovered. */
function randomSensor(rand: () => number, sensorId: string): SensorRecord {
  const maybe = <T>(value: T): T | null => (rand() < 0.35 ? null : value);
  return {
    sensorId,
    sensorType: maybe(pick(rand, TYPES)),
    unit: maybe(pick(rand, ['C', '%', 'hPa'])),
    location: maybe(pick(rand, LOCATIONS)),
    origin: rand() < 0.2 ? 'config' : 'discovered',
    intervalMs: maybe(1000 * (1 + Math.floor(rand() * 60))),
    firstSeen: maybe(BASE + Math.floor(rand() * 86_400_000)),
  };
}

async function sensorRecords(store: HotStore): Promise<SensorRecord[]> {
  return (await store.listSensors()).map((s) => ({
    sensorId: s.sensorId,
    sensorType: s.sensorType,
    unit: s.unit,
    location: s.location,
    origin: s.origin,
    intervalMs: s.intervalMs,
    firstSeen: s.firstSeen,
  }));
}

const byId = (a: SensorRecord, b: SensorRecord): number =>
  a.sensorId < b.sensorId ? -1 : a.sensorId > b.sensorId ? 1 : 0;

export function describeHotStoreConformance(
  name: string,
  makeStore: () => Promise<HotStoreHarness>,
): void {
  describe(`HotStore conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function setup(): Promise<HotStoreHarness> {
      const harness = await makeStore();
      cleanups.push(harness.cleanup);
      await harness.store.open();
      return harness;
    }

    async function reopened(harness: HotStoreHarness, current: HotStore): Promise<HotStore> {
      await current.close();
      const next = await harness.reopen();
      await next.open();
      return next;
    }

    describe('append and read back', () => {
      it('open is idempotent', async () => {
        const { store } = await setup();
        await Promise.all([store.open(), store.open()]);
        await store.open();
        await appendAll(store, [reading()]);
        expect(await store.countReadings()).toBe(1);
      });

      it('round-trips every field, including nulls, reason lists and imputed', async () => {
        const { store } = await setup();
        const input: NewReading[] = [
          reading({
            sensorId: 'conservatory-07',
            sensorType: 'temperature',
            location: 'conservatory/bed-2',
            eventTime: BASE + 123,
            value: 21.4,
            unit: 'C',
            anomalyScore: 0.1,
            ingestTime: BASE + 999,
            source: 'mqtt',
            batchId: 'b-42',
            isAnomaly: true,
            anomalyReasons: ['range', 'zscore', 'device'],
            imputed: false,
          }),
          reading({
            sensorId: 'plant-7',
            sensorType: null,
            location: null,
            eventTime: BASE + 1,
            value: null,
            unit: null,
            anomalyScore: null,
            source: 'poll:plants',
            imputed: true,
          }),
          reading({
            sensorId: "it's-a.sensor:1/2",
            sensorType: 'soil_moisture',
            location: "bed 'B'; DROP TABLE readings; --",
            eventTime: Date.UTC(1999, 11, 31, 23, 59, 59, 999),
            value: -0.000123,
            unit: 'µS/cm',
            anomalyScore: 0,
            batchId: 'batch-ü-✓',
          }),
          reading({ value: 0, eventTime: BASE + 2, anomalyScore: 1 }),
        ];
        const expected = await appendAll(store, input);
        const page = await store.queryReadings({ limit: 10 });
        const bySeq = new Map(page.items.map((r) => [r.seq, r]));
        expect(page.items).toHaveLength(input.length);
        for (const e of expected) expect(bySeq.get(e.seq)).toEqual(e);
      });

      it('assigns seqs in array order, strictly increasing across calls', async () => {
        const { store } = await setup();
        const a = await appendAll(store, dataset(5, 1));
        const b = await appendAll(store, dataset(1, 2));
        const c = await appendAll(store, dataset(30, 3));
        const all = [...a, ...b, ...c];
        expect((a[0] as StoredReading).seq).toBeGreaterThan(0n);
        for (let i = 1; i < all.length; i++) {
          expect((all[i] as StoredReading).seq).toBeGreaterThan((all[i - 1] as StoredReading).seq);
        }
        const stored = await walkReadings(store, { limit: 10_000 });
        const bySeq = new Map(stored.map((r) => [r.seq, r]));
        for (const e of all) expect(bySeq.get(e.seq)).toEqual(e);
      });

      it('takes a batch of 10 000 readings in one call', async () => {
        const { store } = await setup();
        const rows = await appendAll(store, dataset(10_000, 23, 3_600));
        expect(await store.countReadings()).toBe(10_000);
        expect(await walkReadings(store, { limit: 10_000 })).toEqual(oracleQuery(rows, {}));
      });

      it('returns null seqs when a call writes no reading', async () => {
        const { store } = await setup();
        expect(await store.append([], [])).toEqual({ firstSeq: null, lastSeq: null });
        expect(await store.append([], [deadLetter()])).toEqual({ firstSeq: null, lastSeq: null });
        expect(await store.countReadings()).toBe(0);
        expect(await store.countDeadLetters()).toBe(1);
      });

      it('writes readings and dead letters of one call together', async () => {
        const { store } = await setup();
        await appendAll(store, dataset(3, 4), [
          deadLetter(),
          deadLetter({ reason: 'MISSING_VALUE' }),
        ]);
        expect(await store.countReadings()).toBe(3);
        expect(await store.countDeadLetters()).toBe(2);
      });

      it('a failed append writes nothing, and the store keeps working', async () => {
        const { store } = await setup();
        const before = await appendAll(store, dataset(4, 5));
        const bad = [...dataset(5000, 6), reading({ sensorId: null as unknown as string })];
        await expectCode(store.append(bad, [deadLetter()]), 'CANOPY_STORE_COMMIT_FAILED');
        expect(await store.countReadings()).toBe(4);
        expect(await store.countDeadLetters()).toBe(0);
        // A bad dead letter fails the call after its readings were staged.
        await expectCode(
          store.append(dataset(20, 66), [deadLetter({ source: null as unknown as string })]),
          'CANOPY_STORE_COMMIT_FAILED',
        );
        expect(await store.countReadings()).toBe(4);
        expect(await store.countDeadLetters()).toBe(0);
        // So does a value no timestamp can hold.
        await expectCode(
          store.append(dataset(20, 67), [deadLetter({ receivedAt: Number.NaN })]),
          'CANOPY_STORE_COMMIT_FAILED',
        );
        expect(await store.countReadings()).toBe(4);
        expect(await store.countDeadLetters()).toBe(0);
        const after = await appendAll(store, dataset(2, 7));
        expect((after[0] as StoredReading).seq).toBeGreaterThan((before[3] as StoredReading).seq);
        expect(await store.countReadings()).toBe(6);
      });

      it('keeps seqs increasing and data intact across a reopen', async () => {
        const harness = await setup();
        const first = await appendAll(harness.store, dataset(20, 8), [deadLetter()]);
        const store = await reopened(harness, harness.store);
        const second = await appendAll(store, dataset(5, 9), [deadLetter()]);
        expect((second[0] as StoredReading).seq).toBeGreaterThan((first[19] as StoredReading).seq);
        const stored = await walkReadings(store, { limit: 7 });
        expect(stored).toEqual(oracleQuery([...first, ...second], {}));
        const dls = await walkDeadLetters(store, { limit: 10 });
        expect(dls).toHaveLength(2);
        expect((dls[0] as StoredDeadLetter).id).toBeGreaterThan((dls[1] as StoredDeadLetter).id);
      });

      it('never reuses a seq, even after a purge emptied the table and a reopen', async () => {
        const harness = await setup();
        const first = await appendAll(harness.store, dataset(10, 10));
        const last = (first[9] as StoredReading).seq;
        await harness.store.setExportWatermark(last);
        expect(await harness.store.purge(BASE + 10 * 86_400_000)).toBe(10);
        await harness.store.setExportWatermark(0n); // a re-export rewinds it
        const store = await reopened(harness, harness.store);
        const next = await appendAll(store, dataset(1, 11));
        expect((next[0] as StoredReading).seq).toBeGreaterThan(last);
      });
    });

    describe('following commits by seq', () => {
      it('readingsAfter gives the rows above a seq, lowest first, up to the limit', async () => {
        const { store } = await setup();
        expect(await store.commitPosition()).toEqual({ seq: 0n, deadLetterId: 0n });
        expect(await store.readingsAfter(0n, 10)).toEqual([]);
        const first = await appendAll(store, dataset(7, 30));
        const second = await appendAll(store, dataset(5, 31), [deadLetter(), deadLetter()]);
        const all = [...first, ...second];
        const last = (all[all.length - 1] as StoredReading).seq;
        const [newest] = await walkDeadLetters(store, { limit: 1 });
        expect(await store.commitPosition()).toEqual({
          seq: last,
          deadLetterId: (newest as StoredDeadLetter).id,
        });
        expect(await store.readingsAfter(0n, 10_000)).toEqual(all);
        const from = (first[2] as StoredReading).seq;
        expect(await store.readingsAfter(from, 4)).toEqual(all.slice(3, 7));
        expect(await store.readingsAfter(last, 10)).toEqual([]);
        await expectCode(store.readingsAfter(0n, 0), 'CANOPY_API_BAD_REQUEST');
        await expectCode(store.readingsAfter(0n, 10_001), 'CANOPY_API_BAD_REQUEST');
      });

      it('the commit position survives a purge and a reopen', async () => {
        const harness = await setup();
        const stored = await appendAll(harness.store, dataset(10, 32));
        const last = (stored[9] as StoredReading).seq;
        await harness.store.setExportWatermark(last);
        await harness.store.purge(BASE + 10 * 86_400_000);
        const store = await reopened(harness, harness.store);
        expect((await store.commitPosition()).seq).toBe(last);
        expect(await store.readingsAfter(0n, 10)).toEqual([]);
      });
    });

    describe('queryReadings', () => {
      it('filters by sensor, type and location, alone and combined', async () => {
        const { store } = await setup();
        const rows = await appendInBatches(store, dataset(300, 12), 37);
        const queries: Array<Omit<ReadingQuery, 'limit' | 'cursor'>> = [
          {},
          ...SENSORS.map((sensorId) => ({ sensorId })),
          ...TYPES.map((sensorType) => ({ sensorType })),
          ...LOCATIONS.map((location) => ({ location })),
          { sensorType: 'temperature', location: 'greenhouse/a' },
          { sensorId: 's-1', sensorType: 'humidity', location: 'greenhouse/b' },
          { sensorId: 's-1', sensorType: 'temperature' },
          { sensorId: 'no-such-sensor' },
        ];
        for (const q of queries) {
          const page = await store.queryReadings({ ...q, limit: 10_000 });
          expect(page.items, JSON.stringify(q)).toEqual(oracleQuery(rows, q));
          expect(page.nextCursor).toBeNull();
        }
      });

      it('treats from as inclusive and to as exclusive', async () => {
        const { store } = await setup();
        const t0 = BASE + 10_000;
        const t1 = BASE + 20_000;
        const rows = await appendAll(
          store,
          [t0 - 1, t0, t0 + 1, t1 - 1, t1, t1 + 1].map((eventTime) => reading({ eventTime })),
        );
        const got = (await store.queryReadings({ from: t0, to: t1, limit: 100 })).items;
        expect(got.map((r) => r.eventTime)).toEqual([t1 - 1, t0 + 1, t0]);
        expect(got).toEqual(oracleQuery(rows, { from: t0, to: t1 }));
        expect(
          (await store.queryReadings({ from: t1, limit: 100 })).items.map((r) => r.eventTime),
        ).toEqual([t1 + 1, t1]);
        expect(
          (await store.queryReadings({ to: t0, limit: 100 })).items.map((r) => r.eventTime),
        ).toEqual([t0 - 1]);
        expect((await store.queryReadings({ from: t0, to: t0, limit: 100 })).items).toEqual([]);
      });

      it('orders newest first, breaking event-time ties by seq descending', async () => {
        const { store } = await setup();
        const a = await appendAll(store, [
          reading({ eventTime: BASE, value: 1 }),
          reading({ eventTime: BASE + 5, value: 2 }),
          reading({ eventTime: BASE, value: 3 }),
        ]);
        const b = await appendAll(store, [
          reading({ eventTime: BASE, value: 4 }),
          reading({ eventTime: BASE - 5, value: 5 }),
        ]);
        const got = (await store.queryReadings({ limit: 10 })).items;
        expect(got.map((r) => r.value)).toEqual([2, 4, 3, 1, 5]);
        expect(got).toEqual(oracleQuery([...a, ...b], {}));
      });

      it('cursor pagination walks every row exactly once', async () => {
        const { store } = await setup();
        const rows = await appendInBatches(store, dataset(250, 13, 30), 50);
        const cases: Array<Omit<ReadingQuery, 'cursor'>> = [
          { limit: 1 },
          { limit: 7 },
          { limit: 64 },
          { limit: 250 },
          { limit: 10_000 },
          { limit: 5, sensorId: 's-2' },
          { limit: 9, location: 'greenhouse/a', from: BASE + 5_000, to: BASE + 25_000 },
        ];
        for (const q of cases) {
          const walked = await walkReadings(store, q);
          const { limit: _limit, ...filters } = q;
          expect(walked, JSON.stringify(q)).toEqual(oracleQuery(rows, filters));
          expect(new Set(walked.map((r) => r.seq)).size).toBe(walked.length);
        }
      });

      it('accepts limits 1 and 10 000 and rejects any other', async () => {
        const { store } = await setup();
        await appendAll(store, dataset(3, 14));
        expect((await store.queryReadings({ limit: 1 })).items).toHaveLength(1);
        expect((await store.queryReadings({ limit: 10_000 })).items).toHaveLength(3);
        for (const limit of [0, -1, 10_001, 1.5, Number.NaN]) {
          await expectCode(store.queryReadings({ limit }), 'CANOPY_API_BAD_REQUEST');
          await expectCode(store.listDeadLetters({ limit }), 'CANOPY_API_BAD_REQUEST');
        }
      });

      it('rejects a cursor it did not issue', async () => {
        const { store } = await setup();
        await appendAll(store, dataset(3, 15), [deadLetter(), deadLetter()]);
        const dlCursor = (await store.listDeadLetters({ limit: 1 })).nextCursor as string;
        const readingCursor = (await store.queryReadings({ limit: 1 })).nextCursor as string;
        expect(dlCursor).toEqual(expect.any(String));
        expect(readingCursor).toEqual(expect.any(String));
        const bad = [
          '',
          'not a cursor',
          '!!!!',
          Buffer.from('hello world').toString('base64url'),
          Buffer.from('{"t":1}').toString('base64url'),
          `${readingCursor}x`,
          dlCursor,
        ];
        for (const cursor of bad) {
          await expectCode(store.queryReadings({ limit: 5, cursor }), 'CANOPY_API_BAD_REQUEST');
        }
        await expectCode(
          store.listDeadLetters({ limit: 5, cursor: readingCursor }),
          'CANOPY_API_BAD_REQUEST',
        );
        await expectCode(
          store.listDeadLetters({ limit: 5, cursor: 'garbage' }),
          'CANOPY_API_BAD_REQUEST',
        );
      });

      it('rejects non-finite time bounds', async () => {
        const { store } = await setup();
        await expectCode(
          store.queryReadings({ limit: 5, from: Number.NaN }),
          'CANOPY_API_BAD_REQUEST',
        );
        await expectCode(
          store.queryReadings({ limit: 5, to: Number.POSITIVE_INFINITY }),
          'CANOPY_API_BAD_REQUEST',
        );
      });

      it('counts readings', async () => {
        const { store } = await setup();
        expect(await store.countReadings()).toBe(0);
        await appendInBatches(store, dataset(123, 16), 40);
        expect(await store.countReadings()).toBe(123);
      });
    });

    describe('recentValues', () => {
      it('gives the last N non-null values of each sensor, oldest first', async () => {
        const { store } = await setup();
        const rows = await appendInBatches(store, dataset(300, 17), 60);
        await appendAll(store, [reading({ sensorId: 'only-nulls', value: null })]);
        // Ties at the cut: of three values at one event time, the last two
        // appended (highest seqs) are the newest.
        await appendAll(store, [
          reading({ sensorId: 'tied', eventTime: BASE, value: 0 }),
          reading({ sensorId: 'tied', eventTime: BASE + 1, value: 1 }),
          reading({ sensorId: 'tied', eventTime: BASE + 1, value: 2 }),
        ]);
        await appendAll(store, [reading({ sensorId: 'tied', eventTime: BASE + 1, value: 3 })]);
        expect((await store.recentValues(2)).get('tied')).toEqual([2, 3]);
        expect((await store.recentValues(5)).get('tied')).toEqual([0, 1, 2, 3]);
        for (const n of [1, 3, 1000]) {
          const got = await store.recentValues(n);
          const expected = new Map<string, number[]>();
          for (const s of SENSORS) {
            const values = oracleQuery(rows, { sensorId: s })
              .filter((r) => r.value !== null)
              .slice(0, n)
              .reverse()
              .map((r) => r.value as number);
            if (values.length > 0) expected.set(s, values);
          }
          expect(got.get('only-nulls') ?? []).toEqual([]);
          got.delete('only-nulls');
          got.delete('tied');
          expect(new Map([...got].sort(([a], [b]) => a.localeCompare(b)))).toEqual(expected);
        }
      });

      it('rejects a negative or fractional count', async () => {
        const { store } = await setup();
        await expectCode(store.recentValues(-1), 'CANOPY_API_BAD_REQUEST');
        await expectCode(store.recentValues(2.5), 'CANOPY_API_BAD_REQUEST');
      });
    });

    describe('dead letters', () => {
      it('round-trips every field, newest first', async () => {
        const { store } = await setup();
        const a = deadLetter({ origin: null, reason: 'EMPTY_PAYLOAD', raw: '', message: 'empty' });
        const b = deadLetter({
          receivedAt: BASE + 1234,
          source: 'http',
          raw: 'x'.repeat(5000),
          message: 'it\'s "bad"',
        });
        await store.append([], [a]);
        await store.append([], [b]);
        const page = await store.listDeadLetters({ limit: 10 });
        expect(page.nextCursor).toBeNull();
        expect(page.items.map(({ id: _id, ...rest }) => rest)).toEqual([b, a]);
        const [first, second] = page.items as [StoredDeadLetter, StoredDeadLetter];
        expect(first.id).toBeGreaterThan(second.id);
      });

      it('filters by reason and source and paginates over every one exactly once', async () => {
        const { store } = await setup();
        const rand = seededRandom(18);
        const reasons = ['INVALID_JSON', 'MISSING_VALUE', 'INVALID_TIMESTAMP'] as const;
        const sources = ['mqtt', 'http', 'file'];
        const input: DeadLetter[] = [];
        for (let call = 0; call < 12; call++) {
          const batch = Array.from({ length: 1 + Math.floor(rand() * 8) }, (_, i) =>
            deadLetter({
              reason: pick(rand, reasons),
              source: pick(rand, sources),
              raw: `call ${call} #${i}`,
            }),
          );
          input.push(...batch);
          await store.append(call % 3 === 0 ? dataset(2, 100 + call) : [], batch);
        }
        expect(await store.countDeadLetters()).toBe(input.length);
        const newest = [...input].reverse();
        const filters: Array<{ reason?: string; source?: string }> = [
          {},
          { reason: 'MISSING_VALUE' },
          { source: 'http' },
          { reason: 'INVALID_JSON', source: 'file' },
          { source: 'nowhere' },
        ];
        for (const f of filters) {
          for (const limit of [1, 4, 1000]) {
            const walked = await walkDeadLetters(store, { ...f, limit });
            const expected = newest.filter(
              (d) =>
                (f.reason === undefined || d.reason === f.reason) &&
                (f.source === undefined || d.source === f.source),
            );
            expect(
              walked.map(({ id: _id, ...rest }) => rest),
              JSON.stringify({ ...f, limit }),
            ).toEqual(expected);
            expect(new Set(walked.map((d) => d.id)).size).toBe(walked.length);
          }
        }
      });
    });

    describe('sensors', () => {
      it('inserts new sensors and lists them by id, with empty aggregates', async () => {
        const { store } = await setup();
        const b = sensor({
          sensorId: 'b',
          sensorType: 'humidity',
          unit: '%',
          location: 'x',
          origin: 'config',
          intervalMs: 60_000,
        });
        const a = sensor({ sensorId: 'a', firstSeen: BASE });
        await store.upsertSensors([b, a]);
        await store.upsertSensors([]);
        expect(await store.listSensors()).toEqual([
          { ...a, lastSeen: null, lastValue: null, readingCount: 0, anomalyCount: 0 },
          { ...b, lastSeen: null, lastValue: null, readingCount: 0, anomalyCount: 0 },
        ]);
      });

      it('a discovered record only fills fields that are null', async () => {
        const { store } = await setup();
        await store.upsertSensors([
          sensor({ sensorId: 'd', sensorType: 'temperature', unit: null, firstSeen: BASE }),
        ]);
        await store.upsertSensors([
          sensor({
            sensorId: 'd',
            sensorType: 'humidity',
            unit: 'C',
            location: 'bed-1',
            intervalMs: 1000,
            firstSeen: BASE + 5,
          }),
        ]);
        const [got] = await store.listSensors();
        expect(got).toMatchObject({
          sensorId: 'd',
          sensorType: 'temperature',
          unit: 'C',
          location: 'bed-1',
          origin: 'discovered',
          intervalMs: 1000,
          firstSeen: BASE,
        });
      });

      it('a config record overwrites what it knows and keeps the rest', async () => {
        const { store } = await setup();
        await store.upsertSensors([
          sensor({
            sensorId: 'c',
            sensorType: 'temp',
            unit: 'F',
            location: 'old',
            intervalMs: 5000,
            firstSeen: BASE,
          }),
        ]);
        await store.upsertSensors([
          sensor({
            sensorId: 'c',
            origin: 'config',
            sensorType: 'temperature',
            unit: 'C',
            location: null,
            intervalMs: null,
          }),
        ]);
        expect((await store.listSensors())[0]).toMatchObject({
          sensorId: 'c',
          sensorType: 'temperature',
          unit: 'C',
          location: 'old',
          origin: 'config',
          intervalMs: 5000,
          firstSeen: BASE,
        });
      });

      it('a discovered record never demotes or overwrites a config sensor', async () => {
        const { store } = await setup();
        await store.upsertSensors([
          sensor({ sensorId: 'k', origin: 'config', sensorType: 'pressure', unit: 'hPa' }),
        ]);
        await store.upsertSensors([
          sensor({
            sensorId: 'k',
            sensorType: 'temperature',
            unit: 'C',
            location: 'found',
            firstSeen: BASE + 9,
          }),
        ]);
        expect((await store.listSensors())[0]).toMatchObject({
          origin: 'config',
          sensorType: 'pressure',
          unit: 'hPa',
          location: 'found',
          firstSeen: BASE + 9,
        });
      });

      it('applies several records for one sensor in order within a call', async () => {
        const { store } = await setup();
        await store.upsertSensors([
          sensor({ sensorId: 'm', unit: 'C' }),
          sensor({ sensorId: 'm', unit: 'F', location: 'l1', firstSeen: BASE + 3 }),
          sensor({
            sensorId: 'm',
            origin: 'config',
            sensorType: 'temperature',
            firstSeen: BASE + 1,
          }),
        ]);
        expect(await store.listSensors()).toEqual([
          {
            sensorId: 'm',
            sensorType: 'temperature',
            unit: 'C',
            location: 'l1',
            origin: 'config',
            intervalMs: null,
            firstSeen: BASE + 1,
            lastSeen: null,
            lastValue: null,
            readingCount: 0,
            anomalyCount: 0,
          },
        ]);
      });

      it('summaries aggregate the readings of each sensor', async () => {
        const { store } = await setup();
        await store.upsertSensors(SENSORS.map((sensorId) => sensor({ sensorId })));
        await store.upsertSensors([sensor({ sensorId: 'silent', origin: 'config' })]);
        const rows = await appendInBatches(store, dataset(200, 19), 33);
        // The newest reading of s-0 is a known-missing value: lastValue is null.
        rows.push(
          ...(await appendAll(store, [
            reading({ sensorId: 's-0', eventTime: BASE + 999_000, value: null }),
            // Two newest readings of s-1 share an event time: the higher seq wins.
            reading({ sensorId: 's-1', eventTime: BASE + 999_000, value: 1 }),
            reading({ sensorId: 's-1', eventTime: BASE + 999_000, value: 2 }),
          ])),
        );
        const summaries = await store.listSensors();
        expect(summaries.map((s) => s.sensorId)).toEqual([...SENSORS, 'silent']);
        for (const s of summaries) {
          const mine = oracleQuery(rows, { sensorId: s.sensorId });
          const newest = mine[0];
          expect(s, s.sensorId).toMatchObject({
            lastSeen: newest ? newest.eventTime : null,
            lastValue: newest ? newest.value : null,
            readingCount: mine.length,
            anomalyCount: mine.filter((r) => r.isAnomaly).length,
          });
        }
        expect(summaries[0]?.lastValue).toBeNull();
        expect(summaries[1]?.lastValue).toBe(2);
      });

      it('rejects a record without a sensor id', async () => {
        const { store } = await setup();
        await expectCode(store.upsertSensors([sensor({ sensorId: '' })]), 'CANOPY_API_BAD_REQUEST');
      });

      it('registers 10,000 new sensors in one call, then a mixed call of new and known ones', async () => {
        const { store } = await setup();
        const rand = seededRandom(41);
        const oracle = new Map<string, SensorRecord>();
        const fleet = Array.from({ length: 10_000 }, (_, i) =>
          randomSensor(rand, `fleet-${String(i).padStart(5, '0')}`),
        );
        await store.upsertSensors(fleet);
        oracleUpsert(oracle, fleet);
        expect(await sensorRecords(store)).toEqual([...oracle.values()].sort(byId));

        // Known and new sensors, both origins, several records per sensor in one call.
        const mixed = Array.from({ length: 3_000 }, (_, i) =>
          randomSensor(
            rand,
            i % 3 === 0
              ? `new-${i % 700}`
              : `fleet-${String(Math.floor(rand() * 10_000)).padStart(5, '0')}`,
          ),
        );
        await store.upsertSensors(mixed);
        oracleUpsert(oracle, mixed);
        expect(await sensorRecords(store)).toEqual([...oracle.values()].sort(byId));
      });

      it('a config record then a discovered record for a stored sensor, in one call', async () => {
        const { store } = await setup();
        await store.upsertSensors([
          sensor({ sensorId: 'x', unit: 'F', location: 'old', firstSeen: BASE + 7 }),
        ]);
        await store.upsertSensors([
          sensor({ sensorId: 'x', origin: 'config', unit: 'C', location: null, firstSeen: null }),
          sensor({ sensorId: 'x', unit: 'K', location: 'new', sensorType: 'temp', intervalMs: 5 }),
          sensor({ sensorId: 'x', sensorType: 'ignored', firstSeen: BASE + 2 }),
        ]);
        expect((await sensorRecords(store))[0]).toEqual({
          sensorId: 'x',
          sensorType: 'temp',
          unit: 'C',
          location: 'old',
          origin: 'config',
          intervalMs: 5,
          firstSeen: BASE + 2,
        });
      });
    });

    describe('imputed values', () => {
      it('fills null, not-yet-imputed readings only, once, and reports how many changed', async () => {
        const { store } = await setup();
        const input = [
          reading({ sensorId: 'gap', eventTime: BASE, value: null }),
          // The same (sensor, time) twice: dedup is silver's job, so both are filled.
          reading({ sensorId: 'gap', eventTime: BASE, value: null, batchId: 'again' }),
          reading({ sensorId: 'gap', eventTime: BASE + 60_000, value: 4.5 }),
          reading({ sensorId: 'gap', eventTime: BASE + 120_000, value: null, imputed: true }),
          reading({ sensorId: 'other', eventTime: BASE, value: null }),
        ];
        await appendAll(store, input);
        const values = [
          { sensorId: 'gap', eventTime: BASE, value: 1.25 },
          { sensorId: 'gap', eventTime: BASE + 60_000, value: 9 },
          { sensorId: 'gap', eventTime: BASE + 120_000, value: 9 },
          { sensorId: 'absent', eventTime: BASE, value: 9 },
        ];
        expect(await store.applyImputations(values)).toBe(2);
        expect(await store.applyImputations(values)).toBe(0);
        const stored = await walkReadings(store, { limit: 100 });
        const summary = stored
          .map((r) => `${r.sensorId}@${r.eventTime - BASE}=${r.value}/${r.imputed}`)
          .sort();
        expect(summary).toEqual([
          'gap@0=1.25/true',
          'gap@0=1.25/true',
          'gap@120000=null/true',
          'gap@60000=4.5/false',
          'other@0=null/false',
        ]);
      });

      it('refuses a non-finite value and changes nothing', async () => {
        const { store } = await setup();
        await appendAll(store, [reading({ sensorId: 'gap', eventTime: BASE, value: null })]);
        await expect(
          store.applyImputations([
            { sensorId: 'gap', eventTime: BASE, value: 1 },
            { sensorId: 'gap', eventTime: BASE, value: Number.NaN },
          ]),
        ).rejects.toMatchObject({ code: 'CANOPY_API_BAD_REQUEST' });
        const [only] = await walkReadings(store, { limit: 10 });
        expect(only).toMatchObject({ value: null, imputed: false });
      });

      it('applies more values than one statement takes', async () => {
        const { store } = await setup();
        const times = Array.from({ length: 1_234 }, (_, i) => BASE + i * 1_000);
        await appendAll(
          store,
          times.map((eventTime) => reading({ sensorId: 'long-gap', eventTime, value: null })),
        );
        const values = times.map((eventTime, i) => ({ sensorId: 'long-gap', eventTime, value: i }));
        expect(await store.applyImputations(values)).toBe(times.length);
        const stored = await walkReadings(store, { limit: 10_000 });
        expect(stored.every((r) => r.imputed && r.value === (r.eventTime - BASE) / 1_000)).toBe(
          true,
        );
      });
    });

    describe('export to Parquet', () => {
      it('writes the rows above a seq, lowest first up to maxRows, one file per event date and hour', async () => {
        const { store } = await setup();
        // Spread over 3 hours so that several partitions are written.
        const rows = await appendAll(store, dataset(40, 30, 3 * 3600));
        const seqs = rows.map((r) => r.seq).sort((a, b) => (a < b ? -1 : 1));
        const after = seqs[9] as bigint;
        const dir = await mkdtemp(path.join(tmpdir(), 'canopy-export-'));
        cleanups.push(() => rm(dir, { recursive: true, force: true }));
        const batch = await store.exportReadings(after, 25, dir);
        const expected = rows
          .filter((r) => r.seq > after)
          .sort((a, b) => (a.seq < b.seq ? -1 : 1))
          .slice(0, 25);
        expect(batch?.rows).toBe(25);
        expect(batch?.lastSeq).toBe(expected[24]?.seq);
        // Oracle: read the files back with plain DuckDB and compare with the rows appended.
        const db = await DuckDBInstance.create(':memory:');
        const conn = await db.connect();
        try {
          const files = batch!.partitions.map((p) => `'${p.path}'`).join(', ');
          const read = await conn.runAndReadAll(
            `SELECT sensor_id, epoch_ms(event_time), value, seq, list_count(anomaly_reasons) FROM read_parquet([${files}]) ORDER BY seq`,
          );
          expect(read.getRows().map((r) => r.map(String).join('|'))).toEqual(
            expected.map((r) =>
              [r.sensorId, r.eventTime, r.value, r.seq, r.anomalyReasons.length]
                .map(String)
                .join('|'),
            ),
          );
        } finally {
          conn.closeSync();
          db.closeSync();
        }
        const hours = new Set(
          expected.map((r) => new Date(r.eventTime).toISOString().slice(0, 13)),
        );
        expect(new Set(batch!.partitions.map((p) => `${p.date}T${p.hour}`))).toEqual(hours);
        expect(await store.exportReadings(seqs[39] as bigint, 10, dir)).toBeNull();
      });
    });

    describe('dead-letter export', () => {
      it('reads dead letters after an id, lowest first, and keeps a watermark within the stored ids', async () => {
        const { store } = await setup();
        const letters = Array.from({ length: 5 }, (_, i) => deadLetter({ raw: `raw-${i}` }));
        await store.append([], letters);
        expect(await store.getDeadLetterWatermark()).toBe(0n);
        const after2 = await store.deadLettersAfter(2n, 2);
        expect(after2.map((d) => [d.id, d.raw])).toEqual([
          [3n, 'raw-2'],
          [4n, 'raw-3'],
        ]);
        await store.setDeadLetterWatermark(4n);
        expect(await store.getDeadLetterWatermark()).toBe(4n);
        expect((await store.deadLettersAfter(4n, 10)).map((d) => d.id)).toEqual([5n]);
        await expectCode(store.setDeadLetterWatermark(6n), 'CANOPY_API_BAD_REQUEST');
        await expectCode(store.setDeadLetterWatermark(-1n), 'CANOPY_API_BAD_REQUEST');
      });
    });

    describe('receipts', () => {
      it('commits receipts with the readings and dead letters and finds them by key, also after a reopen', async () => {
        const harness = await setup();
        const first = receipt('file:abc:0', {
          accepted: 2,
          rejections: [
            { reason: 'INVALID_VALUE', message: 'value is "x"', index: 4 },
            { reason: 'INVALID_JSON', message: 'whole payload' },
          ],
        });
        const second = receipt('http:k-2', { accepted: 0, committedAt: BASE + 2_000 });
        await harness.store.append(
          [reading(), reading({ eventTime: BASE + 1 })],
          [deadLetter(), deadLetter()],
          [first, second],
        );
        const found = await harness.store.findReceipts(['http:k-2', 'absent', 'file:abc:0']);
        expect(found).toEqual(
          new Map([
            ['http:k-2', second],
            ['file:abc:0', first],
          ]),
        );
        expect(await harness.store.findReceipts([])).toEqual(new Map());
        const store = await reopened(harness, harness.store);
        expect((await store.findReceipts(['file:abc:0'])).get('file:abc:0')).toEqual(first);
      });

      it('a receipt alone is committed', async () => {
        const { store } = await setup();
        expect(await store.append([], [], [receipt('only')])).toEqual({
          firstSeq: null,
          lastSeq: null,
        });
        expect([...(await store.findReceipts(['only'])).keys()]).toEqual(['only']);
      });

      it('a receipt key already stored, or repeated in one call, fails the call and writes nothing', async () => {
        const { store } = await setup();
        const rows = await appendAll(store, [reading()]);
        await store.append([], [], [receipt('k')]);
        await expectCode(
          store.append([reading({ eventTime: BASE + 5 })], [deadLetter()], [receipt('k')]),
          'CANOPY_STORE_COMMIT_FAILED',
        );
        await expectCode(
          store.append([reading({ eventTime: BASE + 6 })], [], [receipt('x'), receipt('x')]),
          'CANOPY_STORE_COMMIT_FAILED',
        );
        expect(await store.countReadings()).toBe(1);
        expect(await store.countDeadLetters()).toBe(0);
        expect([...(await store.findReceipts(['k', 'x'])).keys()]).toEqual(['k']);
        // The store keeps working, and seqs continue with no gap.
        const next = await appendAll(store, [reading({ eventTime: BASE + 7 })], []);
        expect((next[0] as StoredReading).seq).toBe((rows[0] as StoredReading).seq + 1n);
      });

      it('purge deletes receipts committed before receiptsBefore, and none without it', async () => {
        const { store } = await setup();
        const keys = ['r0', 'r1', 'r2', 'r3'];
        await store.append(
          [],
          [],
          keys.map((k, i) => receipt(k, { committedAt: BASE + i * 1_000 })),
        );
        await store.purge(BASE + 10_000);
        expect((await store.findReceipts(keys)).size).toBe(4);
        await store.purge(BASE + 10_000, { receiptsBefore: BASE + 2_000 });
        expect([...(await store.findReceipts(keys)).keys()]).toEqual(['r2', 'r3']);
        await expectCode(
          store.purge(BASE, { receiptsBefore: Number.NaN }),
          'CANOPY_API_BAD_REQUEST',
        );
      });

      it('purge deletes MQTT receipts committed before mqttReceiptsBefore, and only those', async () => {
        const { store } = await setup();
        const keys = ['mqtt:a', 'mqtt:b', 'http:a', 'file:a', 'mqtt:c'];
        await store.append(
          [],
          [],
          keys.map((k, i) => receipt(k, { committedAt: BASE + (i === 4 ? 9_000 : 1_000) })),
        );
        await store.purge(BASE + 10_000, { mqttReceiptsBefore: BASE + 5_000 });
        expect([...(await store.findReceipts(keys)).keys()]).toEqual([
          'http:a',
          'file:a',
          'mqtt:c',
        ]);
        await expectCode(
          store.purge(BASE, { mqttReceiptsBefore: Number.POSITIVE_INFINITY }),
          'CANOPY_API_BAD_REQUEST',
        );
      });

      it('rejects more than 1 000 keys', async () => {
        const { store } = await setup();
        await expectCode(
          store.findReceipts(Array.from({ length: 1_001 }, (_, i) => `k${i}`)),
          'CANOPY_API_BAD_REQUEST',
        );
      });
    });

    describe('dead-letter retention', () => {
      it('purge deletes old dead letters at or below the dead-letter watermark only', async () => {
        const { store } = await setup();
        // received 0..9 s after BASE, ids 1..10
        await store.append(
          [],
          Array.from({ length: 10 }, (_, i) =>
            deadLetter({ receivedAt: BASE + i * 1_000, raw: `dl-${i}` }),
          ),
        );
        const all = await walkDeadLetters(store, { limit: 100 });
        expect(await store.purge(BASE + 100_000)).toBe(0);
        expect(await store.countDeadLetters()).toBe(10); // watermark 0: none exported yet
        let remaining = all;
        const steps: Array<[watermark: bigint, before: number]> = [
          [4n, BASE + 2_000], // old enough: ids 1, 2
          [4n, BASE + 9_000], // exported: ids 3, 4
          [7n, BASE + 6_000], // ids 5, 6 (7 is received at BASE + 6 000: not before)
          [10n, BASE + 100_000],
        ];
        for (const [watermark, before] of steps) {
          await store.setDeadLetterWatermark(watermark);
          remaining = remaining.filter((d) => !(d.receivedAt < before && d.id <= watermark));
          await store.purge(before);
          expect(await walkDeadLetters(store, { limit: 100 })).toEqual(remaining);
        }
        expect(remaining).toHaveLength(0);
      });

      it('never reuses a dead-letter id after a purge emptied the table and a reopen', async () => {
        const harness = await setup();
        await harness.store.append([], [deadLetter(), deadLetter()]);
        await harness.store.setDeadLetterWatermark(2n);
        await harness.store.purge(BASE + 100_000);
        expect(await harness.store.countDeadLetters()).toBe(0);
        const store = await reopened(harness, harness.store);
        await store.append([], [deadLetter({ raw: 'after' })]);
        expect((await store.listDeadLetters({ limit: 10 })).items.map((d) => d.id)).toEqual([3n]);
      });
    });

    describe('export watermark and purge', () => {
      it('the watermark starts at 0, round-trips and survives a reopen', async () => {
        const harness = await setup();
        expect(await harness.store.getExportWatermark()).toBe(0n);
        const rows = await appendAll(harness.store, dataset(10, 20));
        await harness.store.setExportWatermark((rows[6] as StoredReading).seq);
        expect(await harness.store.getExportWatermark()).toBe((rows[6] as StoredReading).seq);
        await harness.store.setExportWatermark((rows[2] as StoredReading).seq);
        expect(await harness.store.getExportWatermark()).toBe((rows[2] as StoredReading).seq);
        const store = await reopened(harness, harness.store);
        expect(await store.getExportWatermark()).toBe((rows[2] as StoredReading).seq);
      });

      it('rejects a negative watermark or one beyond the last committed seq', async () => {
        const { store } = await setup();
        const rows = await appendAll(store, dataset(3, 21));
        const last = (rows[2] as StoredReading).seq;
        await expectCode(store.setExportWatermark(-1n), 'CANOPY_API_BAD_REQUEST');
        await expectCode(store.setExportWatermark(last + 1n), 'CANOPY_API_BAD_REQUEST');
        await store.setExportWatermark(last);
        expect(await store.getExportWatermark()).toBe(last);
      });

      it('purge deletes old exported rows only, and never a row above the watermark', async () => {
        const { store } = await setup();
        const rows = await appendInBatches(store, dataset(400, 22, 600), 25);
        expect(await store.purge(BASE + 10_000_000)).toBe(0); // watermark 0: nothing exported yet
        let remaining = rows;
        const steps: Array<[watermarkIndex: number, before: number]> = [
          [99, BASE + 300_000],
          [99, BASE + 300_000], // a repeat deletes nothing more
          [249, BASE + 100_000],
          [249, BASE + 450_000],
          [399, BASE + 600_001],
        ];
        for (const [wmIndex, before] of steps) {
          const watermark = (rows[wmIndex] as StoredReading).seq;
          await store.setExportWatermark(watermark);
          const survivors = remaining.filter((r) => !(r.eventTime < before && r.seq <= watermark));
          expect(await store.purge(before)).toBe(remaining.length - survivors.length);
          remaining = survivors;
          expect(await store.countReadings()).toBe(remaining.length);
          expect(await walkReadings(store, { limit: 10_000 })).toEqual(oracleQuery(remaining, {}));
        }
        expect(remaining).toHaveLength(0);
      });

      it('purge keeps a row whose event time equals the bound', async () => {
        const { store } = await setup();
        const rows = await appendAll(store, [
          reading({ eventTime: BASE - 1 }),
          reading({ eventTime: BASE }),
        ]);
        await store.setExportWatermark((rows[1] as StoredReading).seq);
        expect(await store.purge(BASE)).toBe(1);
        expect((await store.queryReadings({ limit: 10 })).items).toEqual([rows[1]]);
      });
    });

    describe('concurrency', () => {
      it('20 concurrent appends get disjoint, contiguous seq ranges and lose nothing', async () => {
        const { store } = await setup();
        const batches = Array.from({ length: 20 }, (_, i) =>
          dataset(1 + ((i * 37) % 150), 200 + i),
        );
        const results = await Promise.all(
          batches.map((b, i) =>
            store.append(b, i % 4 === 0 ? [deadLetter({ raw: `call ${i}` })] : []),
          ),
        );
        const ranges = results.map((r, i) => {
          const first = r.firstSeq as bigint;
          expect(r.lastSeq).toBe(first + BigInt((batches[i] as NewReading[]).length - 1));
          return [first, r.lastSeq as bigint] as const;
        });
        const sorted = [...ranges].sort((x, y) => (x[0] < y[0] ? -1 : 1));
        for (let i = 1; i < sorted.length; i++) {
          expect((sorted[i] as readonly [bigint, bigint])[0]).toBeGreaterThan(
            (sorted[i - 1] as readonly [bigint, bigint])[1],
          );
        }
        const expected = batches.flatMap((b, i) =>
          b.map((r, j) => ({ ...r, seq: (ranges[i] as readonly [bigint, bigint])[0] + BigInt(j) })),
        );
        expect(await store.countReadings()).toBe(expected.length);
        expect(await store.countDeadLetters()).toBe(5);
        expect(await walkReadings(store, { limit: 10_000 })).toEqual(oracleQuery(expected, {}));
      });

      it('reads during concurrent appends see only whole batches', async () => {
        const { store } = await setup();
        const sizes = [500, 1, 250, 1000, 3];
        const seen: number[] = [];
        await Promise.all([
          ...sizes.map((n, i) => store.append(dataset(n, 300 + i), [])),
          ...sizes.map(async () => seen.push(await store.countReadings())),
        ]);
        const sums = new Set<number>([0]);
        for (const n of sizes) for (const s of [...sums]) sums.add(s + n);
        for (const count of seen) expect(sums.has(count), `count ${count}`).toBe(true);
        expect(await store.countReadings()).toBe(sizes.reduce((a, b) => a + b));
      });
    });

    describe('lifecycle', () => {
      it('after close every method throws CANOPY_STORE_CLOSED; close is idempotent', async () => {
        const { store } = await setup();
        await appendAll(store, [reading()]);
        await store.close();
        await store.close();
        await expectClosed(store);
        await expectCode(store.open(), 'CANOPY_STORE_CLOSED');
      });

      it('before open every method throws CANOPY_STORE_CLOSED', async () => {
        const harness = await makeStore();
        cleanups.push(harness.cleanup);
        await expectClosed(harness.store);
      });

      it('close waits for queued appends, which stay committed', async () => {
        const harness = await setup();
        const pending = [
          harness.store.append(dataset(100, 400), []),
          harness.store.append(dataset(50, 401), []),
        ];
        const results = await Promise.allSettled([...pending, harness.store.close()]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
        const store = await reopened(harness, harness.store);
        expect(await store.countReadings()).toBe(150);
      });
    });
  });
}

async function expectClosed(store: HotStore): Promise<void> {
  const code = 'CANOPY_STORE_CLOSED';
  await expectCode(store.append([reading()], []), code);
  await expectCode(store.queryReadings({ limit: 1 }), code);
  await expectCode(store.readingsAfter(0n, 1), code);
  await expectCode(store.commitPosition(), code);
  await expectCode(store.recentValues(3), code);
  await expectCode(store.countReadings(), code);
  await expectCode(store.upsertSensors([sensor({ sensorId: 'x' })]), code);
  await expectCode(store.listSensors(), code);
  await expectCode(store.listDeadLetters({ limit: 1 }), code);
  await expectCode(store.countDeadLetters(), code);
  await expectCode(store.getExportWatermark(), code);
  await expectCode(store.setExportWatermark(0n), code);
  await expectCode(store.purge(BASE), code);
  await expectCode(store.findReceipts(['k']), code);
}
