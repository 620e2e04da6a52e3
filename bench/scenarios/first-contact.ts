/**
 * First contact with a fleet: the time to commit one batch of 10,000
 * readings from 10,000 sensors the store has never seen, against the same
 * batch size from 10,000 sensors it already knows (same run, same store).
 * A new sensor costs a row in the sensor registry (`HotStore.upsertSensors`
 * in the group commit) and a z-score history; the known batch is the
 * steady state. The reliability soak found the first at seconds per commit
 * when the registry was written one row at a time.
 *
 * Each store gets a fresh pipeline (`createPipeline`, as `canopy up` builds
 * it) and ROUNDS alternating rounds: a batch from 10,000 new sensor ids, then
 * a batch from the same ids again (known by then). The figure is the median
 * new-sensor batch against the median known-sensor batch. Target: new < 5 ×
 * known. DuckDB always; PostgreSQL too when it answers on 127.0.0.1:5432
 * (database `test`, a throwaway schema).
 *
 * Verification: every batch is acknowledged in full and the store then
 * holds ROUNDS × 2 × 10,000 readings and ROUNDS × 10,000 sensors.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';
import { systemClock } from '../../src/core/clock.js';
import type { HotStore } from '../../src/core/store.js';
import { silentLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { createPipeline } from '../../src/runtime/pipeline.js';
import { DuckDbHotStore } from '../../src/storage/duckdb-hot-store.js';
import { PostgresHotStore } from '../../src/storage/postgres-hot-store.js';
import { figure, type Figure, type Scenario } from '../lib/types.js';

const SENSORS = 10_000;
const ROUNDS = 5;
const MAX_RATIO = 5;
const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';

export interface FirstContactTimes {
  /** ms per batch from never-seen sensors, one per round. */
  newMs: number[];
  /** ms per batch from known sensors, one per round. */
  knownMs: number[];
  storedReadings: number;
  sensors: number;
}

function batch(round: number, eventTime: number): string {
  return JSON.stringify(
    Array.from({ length: SENSORS }, (_, i) => ({
      sensor_id: `fc-${round}-${i}`,
      sensor_type: 'temperature',
      unit: 'C',
      location: `zone-${i % 50}`,
      value: 20 + (i % 10) / 10,
      timestamp: eventTime,
    })),
  );
}

/** Times the rounds on an open, empty store; the caller closes it. */
export async function timeFirstContact(
  store: HotStore,
  rounds = ROUNDS,
): Promise<FirstContactTimes> {
  const { config } = loadConfig({ env: {} });
  const pipeline = await createPipeline(config, store, {
    clock: systemClock,
    metrics: new Metrics(),
    logger: silentLogger(),
  });
  const base = Date.now() - 3_600_000;
  const newMs: number[] = [];
  const knownMs: number[] = [];
  const submit = async (payload: string): Promise<number> => {
    const start = process.hrtime.bigint();
    const result = await pipeline.submit({ source: 'bench', payload, format: 'json' });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.accepted !== SENSORS) throw new Error(`accepted ${result.accepted} of ${SENSORS}`);
    return ms;
  };
  for (let round = 0; round < rounds; round++) {
    // Payloads are built before the clock starts.
    const first = batch(round, base + round * 2_000);
    const again = batch(round, base + round * 2_000 + 1_000);
    newMs.push(await submit(first));
    knownMs.push(await submit(again));
  }
  await pipeline.drain();
  return {
    newMs,
    knownMs,
    storedReadings: await store.countReadings(),
    sensors: (await store.listSensors()).length,
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10;
}

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function onDuckDb(): Promise<FirstContactTimes> {
  const dir = mkdtempSync(path.join(process.env.BENCH_TMPDIR ?? tmpdir(), 'canopy-bench-fc-'));
  const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
  try {
    await store.open();
    return await timeFirstContact(store);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function onPostgres(): Promise<FirstContactTimes> {
  const schema = `canopy_bench_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const store = new PostgresHotStore({ connectionString: PG_URL, schema });
  try {
    await store.open();
    return await timeFirstContact(store);
  } finally {
    await store.close();
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
}

export const firstContact: Scenario = {
  name: 'first-contact',
  title: 'One batch from 10,000 never-seen sensors against one from 10,000 known sensors',
  async run() {
    const stores: [string, () => Promise<FirstContactTimes>][] = [['duckdb', onDuckDb]];
    if (await reachable(5432)) stores.push(['postgres', onPostgres]);
    const figures: Figure[] = [];
    const parameters: Record<string, unknown> = { sensors: SENSORS, rounds: ROUNDS };
    let ok = true;
    let acked = 0;
    let stored = 0;
    for (const [name, measure] of stores) {
      const t = await measure();
      const expected = ROUNDS * 2 * SENSORS;
      const verified = t.storedReadings === expected && t.sensors === ROUNDS * SENSORS;
      ok &&= verified;
      acked += expected;
      stored += t.storedReadings;
      const known = median(t.knownMs);
      figures.push(
        figure(
          `first-contact/${name}`,
          median(t.newMs),
          { name: 'batch from 10,000 known sensors (median ms)', value: known },
          { kind: 'max', max: MAX_RATIO * known, text: `< ${MAX_RATIO} × the known-sensor batch` },
          verified,
          'ms',
        ),
      );
      parameters[name] = {
        newMs: t.newMs.map((ms) => Math.round(ms)),
        knownMs: t.knownMs.map((ms) => Math.round(ms)),
        sensors: t.sensors,
        storedReadings: t.storedReadings,
      };
    }
    return {
      figures,
      verification: {
        ackedReadings: acked,
        storedReadings: stored,
        deadLetters: 0,
        errors: ok ? 0 : 1,
        ok,
        summary: `${stores.map(([n]) => n).join(' and ')}: ${acked} readings acknowledged, ${stored} stored`,
      },
      runs: [],
      parameters,
    };
  },
};
