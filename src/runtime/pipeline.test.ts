import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import type { DeadLetter } from '../core/ingest.js';
import type { AppendResult, NewReading } from '../core/store.js';
import { loadConfig } from '../config/load.js';
import type { CanopyConfigInput } from '../config/schema.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { DuckDbHotStore } from '../storage/index.js';
import { createPipeline, type IngestPipeline } from './pipeline.js';

const NOW = Date.UTC(2026, 10, 22, 10, 0, 0);

/** The real in-memory store, with its appends counted and, on demand, held or failed. */
class ObservedStore extends DuckDbHotStore {
  appends: { readings: number; deadLetters: number }[] = [];
  hold: Promise<void> | undefined;
  failNext = 0;

  override async append(
    readings: readonly NewReading[],
    deadLetters: readonly DeadLetter[],
  ): Promise<AppendResult> {
    await this.hold;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('disk on fire');
    }
    this.appends.push({ readings: readings.length, deadLetters: deadLetters.length });
    return super.append(readings, deadLetters);
  }
}

let store: ObservedStore;
let metrics: Metrics;

async function pipelineFor(overrides: CanopyConfigInput = {}): Promise<IngestPipeline> {
  const config = loadConfig({ env: {}, overrides: (raw) => Object.assign(raw, overrides) }).config;
  return createPipeline(config, store, {
    clock: new ManualClock(NOW),
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
