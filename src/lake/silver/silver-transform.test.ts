import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILT_IN_SENSOR_TYPES } from '../../core/sensor-types.js';
// Test-only: the stream checker is the reference silver must agree with.
import { StreamChecker } from '../../stream/checks.js';
import {
  buildSilverPartition,
  type BuildSilverOptions,
  type SilverRanges,
} from './silver-transform.js';

const DATE = '2026-03-15';
const PREV = '2026-03-14';
const MIN = 60_000;
const DAY_START = Date.parse(`${DATE}T00:00:00Z`);
const PREV_START = Date.parse(`${PREV}T00:00:00Z`);
const PROCESSING_TIME = Date.parse('2026-03-16T04:00:00Z');

const zscore = { window: 60, minHistory: 10, threshold: 3 };
const deviceScoreThreshold = 0.5;
const ranges: SilverRanges = {
  byType: Object.fromEntries(
    Object.entries(BUILT_IN_SENSOR_TYPES).map(([type, t]) => [type, t.range]),
  ),
  bySensor: { h2: { min: 40, max: 60 } },
};

interface Row {
  sensorId: string;
  sensorType: string | null;
  eventTime: number;
  value: number | null;
  anomalyScore: number | null;
  ingestTime: number;
  seq: number;
  batch: string;
}

/** Builds the bronze fixture: several sensors, duplicates, nulls, late rows, midnight. */
function fixtureRows(): Row[] {
  const rows: Row[] = [];
  let seq = 0;
  const add = (r: Omit<Row, 'seq'>) => rows.push({ ...r, seq: ++seq });
  const onTime = (sensorId: string, sensorType: string | null, t: number) => ({
    sensorId,
    sensorType,
    eventTime: t,
    anomalyScore: null,
    ingestTime: t + 1_000,
    batch: 'b1',
  });

  // t1: wavy temperature from 22:00 the day before to 02:00, spikes on both sides of midnight.
  const t1Start = PREV_START + 22 * 60 * MIN;
  for (let i = 0; i < 240; i++) {
    const spike = i === 60 || i === 125 || i === 200 ? 8 : 0;
    const value = 20 + Math.sin(i / 7) + 0.3 * Math.sin(i * 1.7) + spike;
    add({ ...onTime('t1', 'temperature', t1Start + i * MIN), value });
  }
  // h1: humidity with nulls, out-of-range values, an exact bound, and late rows.
  const h1Start = PREV_START + (23 * 60 + 30) * MIN;
  for (let i = 0; i < 120; i++) {
    let value: number | null = 50 + 5 * Math.sin(i / 5) + 0.2 * Math.cos(i * 2.3);
    if (i % 13 === 5) value = null;
    if (i === 40) value = 105;
    if (i === 70) value = -1;
    if (i === 80) value = 100;
    const base = onTime('h1', 'humidity', h1Start + i * MIN);
    // Late: arrived the next day in a batch of its own.
    const late = i >= 50 && i < 60;
    add({
      ...base,
      value,
      ...(late ? { batch: 'b5', ingestTime: Date.parse('2026-03-16T03:00:00Z') + i } : {}),
    });
  }
  // h2: humidity with a per-sensor range narrower than the type's.
  for (let i = 0; i < 90; i++) {
    add({ ...onTime('h2', 'humidity', DAY_START + i * MIN), value: 50 + 12 * Math.sin(i / 9) });
  }
  // p1: a stuck pressure sensor, one step, then stuck again (σ = 0 never fires).
  for (let i = 0; i < 50; i++) {
    add({ ...onTime('p1', 'pressure', DAY_START + i * MIN), value: i === 30 ? 1001 : 1000 });
  }
  // v1: device scores above, at and below the threshold; some missing.
  for (let i = 0; i < 80; i++) {
    const anomalyScore = i % 17 === 0 ? 0.9 : i % 19 === 0 ? 0.5 : i % 7 === 0 ? null : 0.1;
    add({
      ...onTime('v1', 'vibration', DAY_START + 30 * MIN + i * MIN),
      value: 5 + Math.sin(i / 3),
      anomalyScore,
    });
  }
  // n1: a long run of nulls between history and a spike. The previous 60
  // *non-null* values reach back past the nulls; 60 previous rows would not.
  for (let i = 0; i < 71; i++) {
    const value = i < 15 ? 20 + Math.sin(i * 1.3) : i < 70 ? null : 40;
    add({ ...onTime('n1', 'temperature', DAY_START + i * MIN), value });
  }
  // x1: a type without a range, and no type at all.
  for (let i = 0; i < 20; i++) {
    add({
      ...onTime('x1', i < 10 ? 'mystery' : null, DAY_START + i * MIN),
      value: i === 15 ? 1e6 : i,
    });
  }
  // Duplicates of t1 readings after midnight.
  for (const original of rows.filter(
    (r) => r.sensorId === 't1' && r.eventTime >= DAY_START && r.eventTime < DAY_START + 40 * MIN,
  )) {
    const k = (original.eventTime - DAY_START) / MIN;
    if (k % 3 === 0) {
      // Re-sent later: the later ingest wins (a different value proves which).
      add({
        ...original,
        value: original.value! + 0.5,
        ingestTime: original.ingestTime + 5 * MIN,
        batch: 'b2',
      });
    } else if (k % 3 === 1) {
      // Same ingest time: the higher seq wins.
      add({ ...original, value: original.value! - 0.25, batch: 'b3' });
    } else {
      // Higher seq but an earlier ingest time: the original stays.
      add({ ...original, value: 999, ingestTime: original.ingestTime - 500, batch: 'b4' });
    }
  }
  return rows;
}

const key = (r: { sensorId: string; eventTime: number }) => `${r.sensorId}@${r.eventTime}`;

function dedup(rows: readonly Row[]): Row[] {
  const best = new Map<string, Row>();
  for (const r of rows) {
    const b = best.get(key(r));
    if (!b || r.ingestTime > b.ingestTime || (r.ingestTime === b.ingestTime && r.seq > b.seq)) {
      best.set(key(r), r);
    }
  }
  return [...best.values()].sort((a, b) =>
    a.sensorId === b.sensorId ? a.eventTime - b.eventTime : a.sensorId < b.sensorId ? -1 : 1,
  );
}

/** Independent oracle: a plain recomputation of every rule over sorted arrays. */
function expectedReasons(sorted: readonly Row[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const histories = new Map<string, number[]>();
  for (const r of sorted) {
    const reasons: string[] = [];
    if (r.value !== null) {
      const range =
        ranges.bySensor[r.sensorId] ?? (r.sensorType ? ranges.byType[r.sensorType] : undefined);
      if (range && (r.value < range.min || r.value > range.max)) reasons.push('range');
      const all = histories.get(r.sensorId) ?? [];
      const previous = all.slice(-zscore.window);
      if (previous.length >= zscore.minHistory) {
        const mean = previous.reduce((a, b) => a + b, 0) / previous.length;
        const variance = previous.reduce((a, b) => a + (b - mean) ** 2, 0) / (previous.length - 1);
        if (variance > 1e-18) {
          const z = Math.abs((r.value - mean) / Math.sqrt(variance));
          // Fixtures keep clear of the threshold so float summation order cannot matter.
          expect(Math.abs(z - zscore.threshold)).toBeGreaterThan(1e-6);
          if (z > zscore.threshold) reasons.push('zscore');
        }
      }
      all.push(r.value);
      histories.set(r.sensorId, all);
    }
    if (r.anomalyScore !== null && r.anomalyScore > deviceScoreThreshold) reasons.push('device');
    out.set(key(r), reasons);
  }
  return out;
}

let dir: string;
let instance: DuckDBInstance;
let conn: DuckDBConnection;
let allRows: Row[];
let bronzeFiles: string[];

/** Writes rows like the bronze export does: one COPY per batch, partitioned by event date/hour. */
async function writeBronze(root: string, rows: readonly Row[]): Promise<string[]> {
  mkdirSync(root, { recursive: true });
  const batches = [...new Set(rows.map((r) => r.batch))];
  for (const batch of batches) {
    const json = path.join(dir, `${batch}.ndjson`);
    writeFileSync(
      json,
      rows
        .filter((r) => r.batch === batch)
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    await conn.run(
      `COPY (
         SELECT sensorId AS sensor_id, sensorType AS sensor_type, 'bed-1' AS location,
                epoch_ms(eventTime) AS event_time, value, 'u' AS unit, anomalyScore AS anomaly_score,
                epoch_ms(ingestTime) AS ingest_time, 'sim' AS source, '${batch}' AS batch_id, seq,
                false AS is_anomaly, []::VARCHAR[] AS anomaly_reasons, false AS imputed,
                strftime(epoch_ms(eventTime), '%Y-%m-%d') AS date,
                strftime(epoch_ms(eventTime), '%H') AS hour
         FROM read_json('${json}', columns = {sensorId: 'VARCHAR', sensorType: 'VARCHAR',
              eventTime: 'BIGINT', value: 'DOUBLE', anomalyScore: 'DOUBLE',
              ingestTime: 'BIGINT', seq: 'BIGINT'})
         ORDER BY event_time, seq)
       TO '${root}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour),
                     OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'part-${batch}-{i}')`,
    );
  }
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.parquet'))
    .map((f) => path.join(root, f));
}

interface SilverRow {
  sensor_id: string;
  event_ms: bigint;
  value: number | null;
  seq: bigint;
  is_anomaly: boolean;
  anomaly_reasons: string[];
  source_file: string;
  processing_ms: bigint;
  pipeline_version: string;
}

async function readSilver(file: string): Promise<SilverRow[]> {
  const reader = await conn.runAndReadAll(
    `SELECT sensor_id, epoch_ms(event_time) AS event_ms, value, seq, is_anomaly, anomaly_reasons,
            source_file, epoch_ms(processing_time) AS processing_ms, pipeline_version
     FROM read_parquet('${file}')`,
  );
  return reader.getRowObjectsJS() as unknown as SilverRow[];
}

function options(outDir: string, files = bronzeFiles): BuildSilverOptions {
  return {
    conn,
    bronzeFiles: files,
    date: DATE,
    ranges,
    zscore,
    deviceScoreThreshold,
    pipelineVersion: 'silver-test-1',
    processingTime: PROCESSING_TIME,
    outDir,
  };
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'canopy-silver-'));
  instance = await DuckDBInstance.create(':memory:');
  conn = await instance.connect();
  allRows = fixtureRows();
  bronzeFiles = await writeBronze(path.join(dir, 'bronze', 'readings'), allRows);
});

afterAll(() => {
  conn?.closeSync();
  instance?.closeSync();
  rmSync(dir, { recursive: true, force: true });
});

describe('buildSilverPartition', () => {
  it('matches a plain recomputation of dedup and every flag, row by row', async () => {
    const report = await buildSilverPartition(options(path.join(dir, 'out-oracle')));
    const kept = dedup(allRows);
    const reasons = expectedReasons(kept);
    const expected = kept.filter((r) => r.eventTime >= DAY_START);
    const rawOfDate = allRows.filter((r) => r.eventTime >= DAY_START).length;

    const silver = await readSilver(report.silverFile);
    expect(silver.length).toBe(expected.length);
    expect(report.rows).toBe(expected.length);
    expect(report.duplicatesDropped).toBe(rawOfDate - expected.length);
    expect(report.duplicatesDropped).toBeGreaterThan(0);
    expect(report.missing).toBe(expected.filter((r) => r.value === null).length);
    expect(report.missing).toBeGreaterThan(0);

    const fired = new Set<string>();
    expected.forEach((e, i) => {
      const s = silver[i]!;
      const where = `row ${i} ${key(e)}`;
      expect(s.sensor_id, where).toBe(e.sensorId);
      expect(Number(s.event_ms), where).toBe(e.eventTime);
      expect(Number(s.seq), where).toBe(e.seq);
      expect(s.value, where).toBe(e.value);
      expect(s.anomaly_reasons, where).toEqual(reasons.get(key(e)));
      expect(s.is_anomaly, where).toBe(reasons.get(key(e))!.length > 0);
      for (const r of s.anomaly_reasons) fired.add(r);
      // Lineage: the file of the kept row's batch, in the partition of its event time.
      const hour = new Date(e.eventTime).toISOString().slice(11, 13);
      expect(path.basename(s.source_file), where).toMatch(
        new RegExp(`^part-${e.batch}-\\d+\\.parquet$`),
      );
      expect(s.source_file, where).toContain(`date=${DATE}${path.sep}hour=${hour}${path.sep}`);
      expect(Number(s.processing_ms)).toBe(PROCESSING_TIME);
      expect(s.pipeline_version).toBe('silver-test-1');
    });
    // The fixture exercises every rule, and the stuck sensor never fires on z.
    expect([...fired].sort()).toEqual(['device', 'range', 'zscore']);
    expect(silver.filter((s) => s.sensor_id === 'p1' && s.is_anomaly)).toEqual([]);
    // The spike just after midnight needs the previous day's history to fire.
    const spike = silver.find(
      (s) => s.sensor_id === 't1' && Number(s.event_ms) === DAY_START + 5 * MIN,
    );
    expect(spike?.anomaly_reasons).toEqual(['zscore']);
    const afterNulls = silver.find((s) => s.sensor_id === 'n1' && s.value === 40);
    expect(afterNulls?.anomaly_reasons).toEqual(['zscore']);

    const anomalies = await readSilver(report.anomaliesFile);
    expect(report.anomalies).toBe(anomalies.length);
    expect(anomalies).toEqual(silver.filter((s) => s.is_anomaly));
  });

  it('gives byte-identical files when re-run on the same inputs, in any file order', async () => {
    const first = await buildSilverPartition(options(path.join(dir, 'run-1')));
    const second = await buildSilverPartition(
      options(path.join(dir, 'run-2'), [...bronzeFiles].reverse()),
    );
    expect(sha256(second.silverFile)).toBe(sha256(first.silverFile));
    expect(sha256(second.anomaliesFile)).toBe(sha256(first.anomaliesFile));
    expect(second).toMatchObject({ rows: first.rows, anomalies: first.anomalies });
  });

  it('uses the previous date only as history', async () => {
    const onlyDate = bronzeFiles.filter((f) => f.includes(`date=${DATE}`));
    const report = await buildSilverPartition(options(path.join(dir, 'only-date'), onlyDate));
    const silver = await readSilver(report.silverFile);
    expect(silver.every((s) => Number(s.event_ms) >= DAY_START)).toBe(true);
    // Without yesterday, t1 has 5 readings of history at 00:05: too few to judge.
    const spike = silver.find(
      (s) => s.sensor_id === 't1' && Number(s.event_ms) === DAY_START + 5 * MIN,
    );
    expect(spike?.anomaly_reasons).toEqual([]);
    const withHistory = await buildSilverPartition(options(path.join(dir, 'with-prev')));
    expect(report.rows).toBe(withHistory.rows);
  });

  it('agrees with the StreamChecker for in-order data', async () => {
    const inOrder = dedup(allRows).sort(
      (a, b) => a.eventTime - b.eventTime || (a.sensorId < b.sensorId ? -1 : 1),
    );
    const checker = new StreamChecker(
      {
        zscoreWindow: zscore.window,
        zscoreMinHistory: zscore.minHistory,
        zscoreThreshold: zscore.threshold,
        deviceScoreThreshold,
      },
      (id, type) => ranges.bySensor[id] ?? (type ? ranges.byType[type] : undefined),
    );
    const stream = new Map<string, readonly string[]>();
    for (const r of inOrder) {
      stream.set(
        key(r),
        checker.check({
          sensorId: r.sensorId,
          sensorType: r.sensorType,
          location: 'bed-1',
          eventTime: r.eventTime,
          value: r.value,
          unit: 'u',
          anomalyScore: r.anomalyScore,
        }).anomalyReasons,
      );
    }
    const report = await buildSilverPartition(options(path.join(dir, 'out-stream')));
    const silver = await readSilver(report.silverFile);
    for (const s of silver) {
      const k = key({ sensorId: s.sensor_id, eventTime: Number(s.event_ms) });
      expect(s.anomaly_reasons, k).toEqual([...stream.get(k)!]);
    }
  });

  it('writes empty, typed files when there is no bronze', async () => {
    const report = await buildSilverPartition(options(path.join(dir, 'empty'), []));
    expect(report).toMatchObject({ rows: 0, anomalies: 0, duplicatesDropped: 0, missing: 0 });
    expect(await readSilver(report.silverFile)).toEqual([]);
  });

  it('rejects a window that cannot be spliced into SQL, and a malformed date', async () => {
    await expect(
      buildSilverPartition({
        ...options(path.join(dir, 'bad')),
        zscore: { ...zscore, window: 1.5 },
      }),
    ).rejects.toThrow(/window/);
    await expect(
      buildSilverPartition({ ...options(path.join(dir, 'bad')), date: "2026-03-15' OR 1=1" }),
    ).rejects.toThrow(/date/);
  });
});
