/**
 * Quality run history, kept in the lake beside the data it judges, so that a
 * run from `canopy jobs run quality` (another process) and one from a running
 * Canopy land in the same place and the API shows both.
 *
 * Layout: `quality/runs/date=YYYY-MM-DD/<runId>.json`, one immutable object
 * per run holding every suite's full result (failing rows included). Run ids
 * start with the compact UTC start time, so key order is time order; the
 * `date=` part lets retention age runs like any partition.
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import type { SuiteResult } from './quality/index.js';

const RUNS_PREFIX = 'quality/runs/';
/** `20261129T201500123Z-a1b2c3`: start time to the millisecond, then 6 random hex digits. */
const RUN_ID = /^(\d{4})(\d{2})(\d{2})T\d{9}Z-[0-9a-f]{6}$/;
/** How far back `latestBySuite` looks for a suite's last result. */
const LATEST_LOOKBACK_RUNS = 50;

export interface QualityRun {
  run_id: string;
  started_at: string;
  finished_at: string;
  /** False when any suite failed. A run that found no layer to check succeeds. */
  success: boolean;
  suites: SuiteResult[];
}

export interface SuiteSummary {
  suite: string;
  table: string;
  success: boolean;
  expectations: number;
  /** Expectations that failed, warnings included. */
  failed: number;
}

export interface QualityRunSummary extends Omit<QualityRun, 'suites'> {
  suites: SuiteSummary[];
}

export interface LatestSuiteResult extends SuiteSummary {
  run_id: string;
  finished_at: string;
}

export function isQualityRunId(value: string): boolean {
  return RUN_ID.test(value);
}

function runKey(runId: string): string {
  const [, year, month, day] = RUN_ID.exec(runId) ?? [];
  return `${RUNS_PREFIX}date=${year}-${month}-${day}/${runId}.json`;
}

function summarize(run: QualityRun): QualityRunSummary {
  return {
    ...run,
    suites: run.suites.map((s) => ({
      suite: s.suite,
      table: s.table,
      success: s.success,
      expectations: s.results.length,
      failed: s.results.filter((r) => !r.success).length,
    })),
  };
}

export class QualityHistory {
  /** Runs are immutable once written, so parsed runs are kept by key (scrapes read the latest often). */
  private readonly cache = new Map<string, QualityRun>();

  constructor(
    private readonly lake: ObjectStore,
    private readonly clock: Clock,
  ) {}

  /** Stores one run of the given suite results; returns it with its new id. */
  async record(suites: SuiteResult[], startedAt: number): Promise<QualityRun> {
    const compact = new Date(startedAt).toISOString().replace(/[-:.]/g, '');
    const run: QualityRun = {
      run_id: `${compact}-${randomBytes(3).toString('hex')}`,
      started_at: new Date(startedAt).toISOString(),
      finished_at: new Date(this.clock.now()).toISOString(),
      success: suites.every((s) => s.success),
      suites,
    };
    const key = runKey(run.run_id);
    await this.lake.put(key, JSON.stringify(run));
    this.cache.set(key, run);
    return run;
  }

  /** Newest first, without failing rows. */
  async list(limit: number): Promise<QualityRunSummary[]> {
    const keys = await this.newestKeys(limit);
    return (await Promise.all(keys.map((key) => this.load(key))))
      .filter((run): run is QualityRun => run !== null)
      .map(summarize);
  }

  /** One run in full (failing rows included); null when there is no such run. */
  async get(runId: string): Promise<QualityRun | null> {
    return isQualityRunId(runId) ? this.load(runKey(runId)) : null;
  }

  /** Each suite's most recent result among the last runs, for the metrics and the overview. */
  async latestBySuite(): Promise<LatestSuiteResult[]> {
    const latest = new Map<string, LatestSuiteResult>();
    for (const run of await this.list(LATEST_LOOKBACK_RUNS)) {
      for (const suite of run.suites) {
        if (!latest.has(suite.suite))
          latest.set(suite.suite, { ...suite, run_id: run.run_id, finished_at: run.finished_at });
      }
    }
    return [...latest.values()].sort((a, b) => a.suite.localeCompare(b.suite));
  }

  private async newestKeys(limit: number): Promise<string[]> {
    const keys = (await this.lake.list(RUNS_PREFIX))
      .map((o) => o.key)
      .filter((key) => key.endsWith('.json'));
    // Every run id starts with its start time, and its date partition is that time's date.
    return keys.sort().reverse().slice(0, limit);
  }

  private async load(key: string): Promise<QualityRun | null> {
    const cached = this.cache.get(key);
    if (cached) return cached;
    let body: Buffer;
    try {
      body = await this.lake.get(key);
    } catch (err) {
      // Retention may remove a run between the listing and this read.
      if (isCanopyError(err, 'CANOPY_LAKE_NOT_FOUND')) return null;
      throw err;
    }
    const run = JSON.parse(body.toString('utf8')) as QualityRun;
    this.cache.set(key, run);
    return run;
  }
}
