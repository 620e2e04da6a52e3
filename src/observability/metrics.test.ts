import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { LakeGauges, type CatalogedTable } from './lake-gauges.js';
import { silentLogger } from './logger.js';
import { describeMetrics, metricNamingProblems, renderMetricsDocs } from './metrics-docs.js';
import { Metrics, SensorTypeLabels, type CountedReading } from './metrics.js';

/** The value of one series in the exposition text, or undefined when absent. */
async function sample(metrics: Metrics, series: string): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics catalogue', () => {
  it('docs/metrics.md is generated from the registry (run `npm run docs` after changing it)', () => {
    expect(readFileSync('docs/metrics.md', 'utf8')).toBe(renderMetricsDocs());
  });

  it('lists every metric of the registry, and the default process metrics are prefixed too', () => {
    const documented = describeMetrics().map((m) => m.name);
    const withDefaults = new Metrics();
    const all = withDefaults.registry.getMetricsAsArray().map((m) => m.name);
    expect(
      all.filter((name) => !documented.includes(name)).every((n) => n.startsWith('canopy_')),
    ).toBe(true);
    expect(documented.every((name) => all.includes(name))).toBe(true);
    expect(documented).toContain('canopy_readings_accepted_total');
  });

  it('every metric follows the naming conventions', () => {
    const problems = describeMetrics().flatMap((m) =>
      metricNamingProblems(m).map((p) => `${m.name}: ${p}`),
    );
    expect(problems).toEqual([]);
  });

  it('the convention check catches each kind of bad name', () => {
    const check = (name: string, type: string, labels: string[] = []) =>
      metricNamingProblems({ name, type, help: '', labels });
    expect(check('readings_total', 'counter')).toEqual(['name must start with canopy_']);
    expect(check('canopy_readings', 'counter')).toEqual(['a counter ends in _total']);
    expect(check('canopy_queue_total', 'gauge')).toEqual(['only counters end in _total']);
    expect(check('canopy_commit_duration', 'histogram')).toEqual([
      'a duration histogram ends in _seconds',
    ]);
    expect(check('canopy_commit_duration_ms', 'histogram')).toEqual([
      'a duration histogram ends in _seconds',
      'use base units (seconds, bytes)',
    ]);
    expect(check('canopy_x_total', 'counter', ['sensor_id'])).toEqual([
      'label sensor_id would be one series per entity',
    ]);
    expect(check('canopy_x_total', 'counter', ['device'])).toEqual([
      'label device would be one series per entity',
    ]);
    expect(check('canopy_x_total', 'counter', ['sensor_type', 'source'])).toEqual([]);
  });
});

describe('accepted readings by source and sensor type', () => {
  it('labels known types as themselves, missing types as none and the rest as other', () => {
    const labels = new SensorTypeLabels(['leaf_wetness']);
    expect(labels.label('temperature')).toBe('temperature');
    expect(labels.label('leaf_wetness')).toBe('leaf_wetness');
    expect(labels.label('made_up')).toBe('other');
    expect(labels.label(null)).toBe('none');
  });

  it('counts a commit the same as counting reading by reading', async () => {
    const types = ['temperature', 'humidity', null, 'x1', 'x2', 'leaf_wetness'];
    const sources = ['http', 'mqtt', 'poll:plants'];
    const readings: CountedReading[] = [];
    for (let i = 0; i < 500; i++)
      readings.push({ source: sources[i % 3]!, sensorType: types[Math.floor(i / 3) % 6]! });
    const labels = new SensorTypeLabels(['leaf_wetness']);
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.countAccepted(readings.slice(0, 123), labels);
    metrics.countAccepted(readings.slice(123), labels);

    const expected = new Map<string, number>();
    for (const r of readings) {
      const series = `canopy_readings_accepted_total{source="${r.source}",sensor_type="${labels.label(r.sensorType)}"}`;
      expected.set(series, (expected.get(series) ?? 0) + 1);
    }
    expect(expected.size).toBe(3 * 5);
    for (const [series, count] of expected) expect(await sample(metrics, series)).toBe(count);
  });

  it('records nothing when built with recording off, yet exposes the same names', async () => {
    const muted = new Metrics({ defaultMetrics: false, recording: false });
    muted.countAccepted([{ source: 'http', sensorType: 'temperature' }], new SensorTypeLabels());
    muted.anomalies.inc({ rule: 'range' });
    muted.pendingReadings.set(5);
    muted.commitDuration.startTimer()();
    muted.commitBatchSize.observe(10);
    expect(await sample(muted, 'canopy_ingest_pending_readings')).toBe(0);
    expect(await sample(muted, 'canopy_commit_batch_readings_count')).toBe(0);
    expect(await muted.registry.metrics()).not.toContain('canopy_readings_accepted_total{');
    expect(muted.registry.getMetricsAsArray().map((m) => m.name)).toEqual(
      new Metrics({ defaultMetrics: false }).registry.getMetricsAsArray().map((m) => m.name),
    );
  });
});

describe('lake gauges', () => {
  const tables: CatalogedTable[] = [
    { layer: 'bronze', files: 3, bytes: 300, rows: 30 },
    { layer: 'gold', files: 1, bytes: 10, rows: 2 },
    { layer: 'gold', files: 2, bytes: 20, rows: 5 },
    { layer: 'deadletter', files: 4, bytes: 40, rows: null },
    { layer: 'stray-upload', files: 1, bytes: 5, rows: null },
    { layer: 'tmp', files: 2, bytes: 6, rows: 1 },
  ];

  it('sums the catalogue by layer and reads it again only after the TTL', async () => {
    const clock = new ManualClock(1_000_000);
    const metrics = new Metrics({ defaultMetrics: false });
    let reads = 0;
    let current = tables;
    const gauges = new LakeGauges({
      catalog: () => {
        reads++;
        return Promise.resolve(current);
      },
      metrics,
      logger: silentLogger(),
      clock,
      ttlMs: 60_000,
    });
    await gauges.sample();
    expect(await sample(metrics, 'canopy_lake_files{layer="gold"}')).toBe(3);
    expect(await sample(metrics, 'canopy_lake_bytes{layer="bronze"}')).toBe(300);
    expect(await sample(metrics, 'canopy_lake_rows{layer="gold"}')).toBe(7);
    expect(await sample(metrics, 'canopy_lake_rows{layer="deadletter"}')).toBe(0);
    expect(await sample(metrics, 'canopy_lake_files{layer="other"}')).toBe(3);
    expect(await sample(metrics, 'canopy_lake_bytes{layer="other"}')).toBe(11);
    expect(await sample(metrics, 'canopy_lake_catalog_last_success_timestamp_seconds')).toBe(1000);

    current = [{ layer: 'silver', files: 1, bytes: 1, rows: 1 }];
    clock.advance(59_999);
    await gauges.sample();
    expect(reads).toBe(1);
    clock.advance(1);
    await gauges.sample();
    expect(reads).toBe(2);
    // A layer that emptied disappears rather than keeping its last value.
    expect(await sample(metrics, 'canopy_lake_files{layer="gold"}')).toBeUndefined();
    expect(await sample(metrics, 'canopy_lake_files{layer="silver"}')).toBe(1);
  });

  it('keeps the last values when the lake fails, and retries after the TTL', async () => {
    const clock = new ManualClock(0);
    const metrics = new Metrics({ defaultMetrics: false });
    let fail = false;
    const gauges = new LakeGauges({
      catalog: () => (fail ? Promise.reject(new Error('lake down')) : Promise.resolve(tables)),
      metrics,
      logger: silentLogger(),
      clock,
      ttlMs: 10,
    });
    await gauges.sample();
    fail = true;
    clock.advance(10);
    await expect(gauges.sample()).resolves.toBeUndefined();
    expect(await sample(metrics, 'canopy_lake_files{layer="bronze"}')).toBe(3);
    expect(await sample(metrics, 'canopy_lake_catalog_last_success_timestamp_seconds')).toBe(0);
    fail = false;
    clock.advance(10);
    await gauges.sample();
    expect(await sample(metrics, 'canopy_lake_catalog_last_success_timestamp_seconds')).toBe(0.02);
  });

  it('does not hold a scrape longer than maxWaitMs for a slow catalogue', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    let release: (tables: CatalogedTable[]) => void = () => undefined;
    let reads = 0;
    const gauges = new LakeGauges({
      catalog: () => {
        reads++;
        return new Promise((resolve) => (release = resolve));
      },
      metrics,
      logger: silentLogger(),
      clock: new ManualClock(0),
      maxWaitMs: 0,
    });
    await gauges.sample();
    expect(await sample(metrics, 'canopy_lake_files{layer="bronze"}')).toBeUndefined();
    // A second scrape while the first refresh runs joins it instead of starting another.
    await gauges.sample();
    expect(reads).toBe(1);
    release(tables);
    await gauges.sample();
    expect(await sample(metrics, 'canopy_lake_files{layer="bronze"}')).toBe(3);
  });
});
