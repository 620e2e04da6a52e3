import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import type { DeadLetter } from '../core/ingest.js';
import type { AppendResult, IngestReceipt, NewReading } from '../core/store.js';
import { loadConfig } from '../config/load.js';
import type { CanopyConfigInput } from '../config/schema.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { DuckDbHotStore } from '../storage/index.js';
import { createPipeline, type IngestPipeline } from './pipeline.js';

const NOW = Date.UTC(2026, 10, 22, 10, 0, 0);

/** The real in-memory store, with its appends counted and, on demand, held or failed. */
class ObservedStore extends DuckDbHotStore {
  appends: { readings: number; deadLetters: number; receipts?: number }[] = [];
  hold: Promise<void> | undefined;
  failNext = 0;
  /** Runs as each append starts: where a test moves its clock to make the commit take time. */
  onAppend: (() => void) | undefined;

  override async append(
    readings: readonly NewReading[],
    deadLetters: readonly DeadLetter[],
    receipts: readonly IngestReceipt[] = [],
  ): Promise<AppendResult> {
    await this.hold;
    this.onAppend?.();
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('disk on fire');
    }
    this.appends.push({
      readings: readings.length,
      deadLetters: deadLetters.length,
      ...(receipts.length === 0 ? {} : { receipts: receipts.length }),
    });
    return super.append(readings, deadLetters, receipts);
  }
}

let store: ObservedStore;
let metrics: Metrics;
let clock: ManualClock;

async function pipelineFor(overrides: CanopyConfigInput = {}): Promise<IngestPipeline> {
  const config = loadConfig({ env: {}, overrides: (raw) => Object.assign(raw, overrides) }).config;
  return createPipeline(config, store, {
    clock,
    metrics,
    logger: silentLogger(),
  });
}

function reading(
  sensorId: string,
  offsetMs: number,
  value: number | null = 20,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return { sensor_id: sensorId, value, timestamp: NOW - 60_000 + offsetMs, ...extra };
}

const json = (body: unknown): { source: string; payload: string; format: 'json' } => ({
  source: 'test',
  payload: JSON.stringify(body),
  format: 'json',
});

beforeEach(async () => {
  store = new ObservedStore({ path: ':memory:' });
  await store.open();
  metrics = new Metrics({ defaultMetrics: false });
  clock = new ManualClock(NOW);
});
afterEach(async () => {
  await store.close();
});

describe('IngestPipeline', () => {
  it('groups messages that arrive together into few commits, and acknowledges each after its commit', async () => {
    const pipeline = await pipelineFor();
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => pipeline.submit(json(reading('s1', i)))),
    );
    expect(results.every((r) => r.accepted === 1)).toBe(true);
    expect(await store.countReadings()).toBe(200);
    expect(store.appends.reduce((n, a) => n + a.readings, 0)).toBe(200);
    expect(store.appends.length).toBeLessThan(10);
  });

  it('commits a message’s dead letters in the same transaction as its readings', async () => {
    const pipeline = await pipelineFor();
    const result = await pipeline.submit(
      json([reading('s1', 0), reading('s1', 1, 'NaN-ish' as never)]),
    );
    expect(result.accepted).toBe(1);
    expect(result.rejected.map((r) => r.reason)).toEqual(['INVALID_VALUE']);
    expect(store.appends).toEqual([{ readings: 1, deadLetters: 1 }]);
  });

  it('turns work away with CANOPY_INGEST_OVERLOADED when too many readings wait, storing none of it', async () => {
    const pipeline = await pipelineFor({ ingest: { maxPendingReadings: 10 } });
    let release!: () => void;
    store.hold = new Promise((resolve) => (release = resolve));
    const waiting = pipeline.submit(json(Array.from({ length: 10 }, (_, i) => reading('s1', i))));
    await expect(pipeline.submit(json([reading('s2', 0)]))).rejects.toSatisfy((err) =>
      isCanopyError(err, 'CANOPY_INGEST_OVERLOADED'),
    );
    release();
    expect((await waiting).accepted).toBe(10);
    expect(await store.countReadings()).toBe(10);
    expect(await metrics.overloadRejections.get()).toMatchObject({
      values: [{ value: 1, labels: { source: 'test' } }],
    });
  });

  it('rejects every message of a failed commit with CANOPY_STORE_COMMIT_FAILED and recovers on the next one', async () => {
    const pipeline = await pipelineFor();
    store.failNext = 1;
    await expect(pipeline.submit(json([reading('new-sensor', 0)]))).rejects.toSatisfy((err) =>
      isCanopyError(err, 'CANOPY_STORE_COMMIT_FAILED'),
    );
    expect(await store.countReadings()).toBe(0);
    // The retry stores the reading and registers the sensor whose first upsert went with the failed commit.
    expect((await pipeline.submit(json([reading('new-sensor', 0)]))).accepted).toBe(1);
    expect((await store.listSensors()).map((s) => s.sensorId)).toEqual(['new-sensor']);
  });

  it('tells commit listeners of each committed group with its flagged readings and dead letters, and not of a failed one', async () => {
    const pipeline = await pipelineFor();
    const seen: { sensors: string[]; anomalies: number; rejected: number }[] = [];
    pipeline.onCommit((readings, rejected) =>
      seen.push({
        sensors: readings.map((r) => r.sensorId),
        anomalies: readings.filter((r) => r.isAnomaly).length,
        rejected,
      }),
    );
    await pipeline.submit(
      json([reading('s1', 0), reading('s2', 1, 9_999, { sensor_type: 'temperature' }), {}]),
    );
    store.failNext = 1;
    await expect(pipeline.submit(json([reading('s3', 2)]))).rejects.toThrow();
    expect(seen).toEqual([{ sensors: ['s1', 's2'], anomalies: 1, rejected: 1 }]);
  });

  it('observes each committed message once, from its receipt to the end of its commit', async () => {
    const pipeline = await pipelineFor();
    const latency = async () => {
      const { values } = await metrics.ingestLatency.get();
      const value = (name: string, le?: number) =>
        values.find((v) => v.metricName === name && (le === undefined || v.labels.le === le))
          ?.value;
      return {
        count: value('canopy_ingest_latency_seconds_count'),
        sum: value('canopy_ingest_latency_seconds_sum'),
        upTo250ms: value('canopy_ingest_latency_seconds_bucket', 0.25),
      };
    };
    // Each commit takes 250 ms of clock time.
    store.onAppend = () => clock.advance(250);

    // One group of three messages (submitted in the same turn): one a source
    // received 2 s before submitting, one received at submit, one whose only
    // record is dead-lettered; a lone dead letter is not a message and not observed.
    await Promise.all([
      pipeline.submit({ ...json([reading('s1', 0), reading('s1', 1)]), receivedAt: NOW - 2000 }),
      pipeline.submit(json(reading('s2', 0))),
      pipeline.submit(json(reading('s3', 0, 'bad' as never))),
      pipeline.submitDeadLetter({
        source: 'test',
        origin: null,
        reason: 'INVALID_JSON',
        message: 'not JSON',
        raw: '{',
      }),
    ]);
    expect(store.appends).toHaveLength(1);
    expect(await latency()).toEqual({ count: 3, sum: 2.25 + 0.25 + 0.25, upTo250ms: 2 });

    // A failed commit stored nothing, so it has no latency; a duplicate is not committed again.
    store.failNext = 1;
    await expect(pipeline.submit(json(reading('s4', 0)))).rejects.toSatisfy((err) =>
      isCanopyError(err, 'CANOPY_STORE_COMMIT_FAILED'),
    );
    const keyed = { ...json(reading('s5', 0)), idempotencyKey: 'latency:1' };
    await pipeline.submit(keyed);
    expect((await pipeline.submit(keyed)).duplicate).toBe(true);
    expect(await latency()).toEqual({ count: 4, sum: 2.75 + 0.25, upTo250ms: 3 });
  });

  it('fills type, unit and location from configured sensors and types, and applies their ranges', async () => {
    const pipeline = await pipelineFor({
      sensors: [
        {
          id: 'bed-2',
          type: 'temperature',
          location: 'conservatory/bed-2',
          range: { min: 10, max: 30 },
        },
      ],
      sensorTypes: { humidity: { unit: 'pct', range: { min: 0, max: 50 } } },
    });
    await pipeline.submit(
      json([
        reading('bed-2', 0, 35),
        reading('h-1', 0, 60, { sensor_type: 'humidity' }),
        reading('t-9', 0, 35, { sensor_type: 'temperature' }),
      ]),
    );
    const rows = (await store.queryReadings({ limit: 10 })).items;
    const byId = new Map(rows.map((r) => [r.sensorId, r]));
    expect(byId.get('bed-2')).toMatchObject({
      sensorType: 'temperature',
      unit: 'C',
      location: 'conservatory/bed-2',
      anomalyReasons: ['range'],
    });
    expect(byId.get('h-1')).toMatchObject({ unit: 'pct', anomalyReasons: ['range'] });
    // The built-in temperature range (-40..85) applies to sensors without their own.
    expect(byId.get('t-9')).toMatchObject({ unit: 'C', isAnomaly: false });
    const sensors = await store.listSensors();
    expect(sensors.find((s) => s.sensorId === 'bed-2')?.origin).toBe('config');
    expect(sensors.find((s) => s.sensorId === 'h-1')?.origin).toBe('discovered');
  });

  it('warms the z-score from the store, so a new pipeline flags like the old one', async () => {
    const first = await pipelineFor();
    await first.submit(
      json(Array.from({ length: 30 }, (_, i) => reading('z', i, 20 + (i % 3) * 0.1))),
    );
    const second = await pipelineFor();
    await second.submit(json([reading('z', 100, 25)]));
    const latest = (await store.queryReadings({ sensorId: 'z', limit: 1 })).items[0];
    expect(latest?.anomalyReasons).toEqual(['zscore']);
  });

  it('drain resolves once everything submitted is committed', async () => {
    const pipeline = await pipelineFor();
    let release!: () => void;
    store.hold = new Promise((resolve) => (release = resolve));
    const submitted = pipeline.submit(json([reading('d', 0)]));
    let drained = false;
    const draining = pipeline.drain().then(() => (drained = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(drained).toBe(false);
    release();
    await Promise.all([submitted, draining]);
    expect(await store.countReadings()).toBe(1);
  });
});

describe('IngestPipeline idempotency keys', () => {
  const keyed = (body: unknown, idempotencyKey: string) => ({ ...json(body), idempotencyKey });

  it('stores a keyed message once and answers a repeat with the first result, marked duplicate', async () => {
    const pipeline = await pipelineFor();
    const body = [reading('k1', 0), reading('k1', 1, 'bad' as never), reading('k1', 2)];
    const first = await pipeline.submit(keyed(body, 'test:1'));
    expect(first).toMatchObject({ accepted: 2 });
    expect(first.duplicate).toBeUndefined();
    const again = await pipeline.submit(keyed(body, 'test:1'));
    expect(again).toEqual({
      batchId: first.batchId,
      accepted: 2,
      // The receipt keeps reason, message and index; raw is in the dead letter.
      rejected: first.rejected.map((r) => ({ ...r, raw: '' })),
      duplicate: true,
    });
    expect(await store.countReadings()).toBe(2);
    expect(await store.countDeadLetters()).toBe(1);
    expect(store.appends).toEqual([{ readings: 2, deadLetters: 1, receipts: 1 }]);
    expect(await metrics.duplicateMessages.get()).toMatchObject({
      values: [{ value: 1, labels: { source: 'test' } }],
    });
  });

  it('a different key stores the same payload again (the key, not the content, decides)', async () => {
    const pipeline = await pipelineFor();
    await pipeline.submit(keyed([reading('k2', 0)], 'test:a'));
    await pipeline.submit(keyed([reading('k2', 0)], 'test:b'));
    expect(await store.countReadings()).toBe(2);
  });

  it('a second submit with a key in flight waits for the first and stores nothing', async () => {
    const pipeline = await pipelineFor();
    let release!: () => void;
    store.hold = new Promise((resolve) => (release = resolve));
    const body = Array.from({ length: 5 }, (_, i) => reading('k3', i));
    const submits = Array.from({ length: 4 }, () => pipeline.submit(keyed(body, 'test:same')));
    release();
    const results = await Promise.all(submits);
    expect(results.filter((r) => r.duplicate !== true)).toHaveLength(1);
    expect(new Set(results.map((r) => r.batchId)).size).toBe(1);
    expect(results.every((r) => r.accepted === 5)).toBe(true);
    expect(await store.countReadings()).toBe(5);
    expect(store.appends.reduce((n, a) => n + (a.receipts ?? 0), 0)).toBe(1);
  });

  it('when the first attempt fails, a waiting submit with the same key stores the message itself', async () => {
    const pipeline = await pipelineFor();
    store.failNext = 1;
    const body = [reading('k4', 0)];
    const [first, second] = await Promise.allSettled([
      pipeline.submit(keyed(body, 'test:retry')),
      pipeline.submit(keyed(body, 'test:retry')),
    ]);
    expect(first.status).toBe('rejected');
    expect(second).toMatchObject({ status: 'fulfilled', value: { accepted: 1 } });
    expect((second as PromiseFulfilledResult<{ duplicate?: boolean }>).value.duplicate).toBe(
      undefined,
    );
    expect(await store.countReadings()).toBe(1);
  });

  it('keeps receipts of keyed messages committed in one group apart', async () => {
    const pipeline = await pipelineFor();
    // Hold the commits until all 20 messages are queued, so that they share commits.
    let release!: () => void;
    store.hold = new Promise((resolve) => (release = resolve));
    const submitted = Promise.all(
      Array.from({ length: 20 }, (_, i) => pipeline.submit(keyed([reading('g', i)], `test:g${i}`))),
    );
    await vi.waitFor(async () =>
      expect((await metrics.pendingReadings.get()).values[0]?.value).toBe(20),
    );
    release();
    await submitted;
    const keys = Array.from({ length: 20 }, (_, i) => `test:g${i}`);
    expect((await store.findReceipts(keys)).size).toBe(20);
    // The first commit took what was queued when it started; every other message waited for it.
    expect(store.appends).toHaveLength(2);
    expect(store.appends.reduce((n, a) => n + (a.receipts ?? 0), 0)).toBe(20);
    const repeats = await Promise.all(
      keys.map((k, i) => pipeline.submit(keyed([reading('g', i)], k))),
    );
    expect(repeats.every((r) => r.duplicate === true && r.accepted === 1)).toBe(true);
    expect(await store.countReadings()).toBe(20);
  });

  it('a message naming a wide-CSV mapping is decoded with it', async () => {
    const pipeline = await pipelineFor({
      ingest: {
        wideCsv: {
          rig: { deviceId: 'rig', timestamp: { column: 'ts', format: 'epoch_ms' } },
        },
      },
    });
    const csv = `ts,temp,hum\n${NOW - 1000},21.5,40\n`;
    const result = await pipeline.submit({
      source: 'test',
      payload: csv,
      format: 'csv-wide',
      wideCsvMapping: 'rig',
    });
    expect(result).toMatchObject({ accepted: 2, rejected: [] });
    const unknown = await pipeline.submit({
      source: 'test',
      payload: csv,
      format: 'csv-wide',
      wideCsvMapping: 'nope',
    });
    expect(unknown.rejected.map((r) => r.reason)).toEqual(['UNSUPPORTED_FORMAT']);
  });
});
