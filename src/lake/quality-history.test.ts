import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { LocalObjectStore } from '../storage/index.js';
import type { SuiteResult } from './quality/index.js';
import { QualityHistory, isQualityRunId } from './quality-history.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-quality-history-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function suiteResult(suite: string, failures: number): SuiteResult {
  const results = Array.from({ length: 3 }, (_, i) => ({
    expectation: 'expect_column_values_to_not_be_null' as const,
    column: `c${i}`,
    success: i >= failures,
    severity: 'error' as const,
    observed: { unexpected_count: i < failures ? 1 : 0 },
    failing_rows: i < failures ? [{ [`c${i}`]: null, seq: String(i) }] : [],
    sql: 'SELECT 1',
    params: [],
  }));
  return {
    suite,
    table: `${suite}_table`,
    success: failures === 0,
    started_at: '',
    finished_at: '',
    results,
  };
}

describe('quality history', () => {
  it('keeps every run in the lake, newest first, with each suite’s latest result and its failing rows', async () => {
    const lake = new LocalObjectStore({ root: path.join(dir, 'lake') });
    const clock = new ManualClock(Date.UTC(2026, 10, 28, 23, 59, 59));
    const history = new QualityHistory(lake, clock);

    const first = await history.record(
      [suiteResult('bronze', 0), suiteResult('silver', 2)],
      clock.now(),
    );
    clock.advance(2_000); // the next run falls on the next day
    const second = await history.record([suiteResult('bronze', 1)], clock.now());

    expect(isQualityRunId(first.run_id)).toBe(true);
    expect(first.run_id.startsWith('20261128T235959000Z-')).toBe(true);
    expect((await lake.list('quality/runs/')).map((o) => o.key)).toEqual([
      `quality/runs/date=2026-11-28/${first.run_id}.json`,
      `quality/runs/date=2026-11-29/${second.run_id}.json`,
    ]);

    // A fresh instance (another process) reads the same history from the lake.
    const reader = new QualityHistory(lake, clock);
    const runs = await reader.list(10);
    expect(runs.map((r) => [r.run_id, r.success])).toEqual([
      [second.run_id, false],
      [first.run_id, false],
    ]);
    expect(runs[1]?.suites).toEqual([
      { suite: 'bronze', table: 'bronze_table', success: true, expectations: 3, failed: 0 },
      { suite: 'silver', table: 'silver_table', success: false, expectations: 3, failed: 2 },
    ]);
    expect((await reader.list(1)).map((r) => r.run_id)).toEqual([second.run_id]);

    expect(
      (await reader.latestBySuite()).map((s) => [s.suite, s.run_id, s.success, s.failed]),
    ).toEqual([
      ['bronze', second.run_id, false, 1],
      ['silver', first.run_id, false, 2],
    ]);

    const full = await reader.get(first.run_id);
    expect(full?.suites[1]?.results.filter((r) => !r.success).map((r) => r.failing_rows)).toEqual([
      [{ c0: null, seq: '0' }],
      [{ c1: null, seq: '1' }],
    ]);
    expect(await reader.get('20261128T000000000Z-ffffff')).toBeNull();
    expect(await reader.get('../../etc/passwd')).toBeNull();
  });
});
