/** `GET /api/quality` and the quality gauges over a real run history in a lake folder. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import { QualityHistory, type QualityRun } from '../lake/index.js';
import type { SuiteResult } from '../lake/quality/index.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { buildApi } from './server.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-api-quality-'));
const store = new DuckDbHotStore({ path: ':memory:' });
const clock = new ManualClock(Date.UTC(2026, 10, 29, 6));
const history = new QualityHistory(new LocalObjectStore({ root: dir }), clock);
const app = buildApi({
  sink: {
    submit: () => Promise.reject(new Error('not used')),
    submitDeadLetter: () => Promise.reject(new Error('not used')),
  },
  store,
  queries: {
    run: () => Promise.reject(new CanopyError('CANOPY_LAKE_IO_FAILED', 'not used')),
    close: () => Promise.resolve(),
  },
  catalog: () => Promise.resolve([]),
  // Another instance over the same folder: what a CLI run writes, the server reads.
  quality: new QualityHistory(new LocalObjectStore({ root: dir }), clock),
  metrics: new Metrics({ defaultMetrics: false }),
  logger: silentLogger(),
  maxPayloadBytes: 1024,
});
afterAll(async () => {
  await app.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function suite(name: string, failingRow?: Record<string, unknown>): SuiteResult {
  return {
    suite: name,
    table: `${name}_readings`,
    success: failingRow === undefined,
    started_at: '',
    finished_at: '',
    results: [
      {
        expectation: 'expect_column_values_to_be_in_set',
        column: 'sensor_type',
        success: failingRow === undefined,
        severity: 'error',
        observed: { unexpected_count: failingRow === undefined ? 0 : 1 },
        failing_rows: failingRow === undefined ? [] : [failingRow],
        sql: 'SELECT …',
        params: [],
      },
    ],
  };
}

describe('GET /api/quality', () => {
  it('lists runs newest first with each suite’s latest result, serves one run with its failing rows, and exports gauges', async () => {
    await store.open();
    const empty = await app.inject({ url: '/api/quality' });
    expect(empty.json()).toEqual({ suites: [], runs: [] });

    const first = await history.record([suite('bronze'), suite('silver')], clock.now());
    clock.advance(3_600_000);
    const second = await history.record(
      [suite('bronze', { seq: '7', sensor_type: 'plasma' })],
      clock.now(),
    );

    const overview = await app.inject({ url: '/api/quality?limit=1' });
    expect(overview.statusCode).toBe(200);
    const body = overview.json<{
      suites: { suite: string; success: boolean; run_id: string }[];
      runs: { run_id: string; success: boolean }[];
    }>();
    expect(body.runs.map((r) => [r.run_id, r.success])).toEqual([[second.run_id, false]]);
    expect(body.suites.map((s) => [s.suite, s.success, s.run_id])).toEqual([
      ['bronze', false, second.run_id],
      ['silver', true, first.run_id],
    ]);

    const detail = await app.inject({ url: `/api/quality/runs/${second.run_id}` });
    expect(detail.json<QualityRun>().suites[0]?.results[0]?.failing_rows).toEqual([
      { seq: '7', sensor_type: 'plasma' },
    ]);
    for (const missing of ['20261129T060000000Z-000000', 'nope']) {
      const res = await app.inject({ url: `/api/quality/runs/${missing}` });
      expect(res.statusCode).toBe(404);
      expect(res.json<{ error: { code: string } }>().error.code).toBe('CANOPY_API_NOT_FOUND');
    }

    const metrics = (await app.inject({ url: '/metrics' })).body;
    expect(metrics).toContain('canopy_quality_suite_success{suite="bronze"} 0');
    expect(metrics).toContain('canopy_quality_suite_success{suite="silver"} 1');
    expect(metrics).toContain('canopy_quality_suite_failed_expectations{suite="bronze"} 1');
    expect(metrics).toContain(
      `canopy_quality_suite_last_run_timestamp_seconds{suite="bronze"} ${clock.now() / 1000}`,
    );
  });
});
