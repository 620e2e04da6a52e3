/**
 * Soak (issue 10, Build 6): Canopy under a steady 10,000 readings/s for
 * `CANOPY_SOAK_MS` (default 30 minutes), sampled every 5 s. Figures: the
 * achieved rate against the 10k/s target, and the growth of the resident set
 * over the second half of the run.
 *
 * Load: the paced MQTT driver of alert-latency without its triggers, QoS 1
 * to Canopy's embedded broker, 100 messages/s of 100 readings. The fleet has
 * 1,000 sensors at 1 Hz, so event time advances ten times as fast as the
 * wall clock: 30 minutes span 5 hours of event time, all inside the 24 h hot
 * window, so the purge removes nothing and the store can be counted against
 * what was acknowledged. (10,000 sensors, event time at the wall clock's
 * pace, were tried first: registering that many new sensors stalled the
 * group commits for about 50 s at the start, which is a finding of its own,
 * not the steady state a soak measures.) Canopy runs with its default config (workflows included), so
 * housekeeping exports to bronze every minute during the soak, as in
 * production, except that the hourly-lake workflow runs every 5 minutes
 * (LAKE_JOBS_CRON). The load process builds every payload first: about 3.3 GB for
 * 30 minutes, in that process, not Canopy's.
 *
 * Samples (this process, i.e. Canopy's): RSS and V8 heap; event-loop delay
 * (p50/p99/max, `monitorEventLoopDelay`); readings committed per second
 * (`canopy_readings_accepted_total`); commit and ingest latency p50/p99
 * estimated from the `canopy_commit_duration_seconds` and
 * `canopy_ingest_latency_seconds` histograms (linear within a bucket, as
 * Prometheus's histogram_quantile does); ingest queue depth; and the
 * counters of errors: commit failures, overload rejections, dead letters,
 * housekeeping failures and failed workflow runs; and the hourly-lake runs
 * that succeeded. The whole series goes into the result JSON.
 *
 * RSS limit: the growth from the middle of the measured window to its end
 * (median of three samples at each point, taken at rest: no lake job
 * running, see memoryAround) must stay below 50 MB. The first
 * half holds the warm-up of everything that legitimately grows to a plateau
 * (JIT code, the sensors' registry entries and stream-check windows,
 * DuckDB's buffer pool, the first bronze exports), so growth in the second
 * half is what a leak looks like. Over 30 minutes the second half carries
 * 9 M readings, so 50 MB means less than 6 bytes retained per reading; a
 * percentage of RSS would loosen the limit as the process grows, which is
 * the opposite of what a leak test wants. Short runs (2 min) make it a
 * smoke check only: 600,000 readings in the second half.
 *
 * Verification: the store holds every acknowledged reading, no dead letters,
 * no failed unit, and no commit failure, overload rejection, housekeeping
 * failure or failed workflow run during the run.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { LoadParams, RunSpec } from '../load/protocol.js';
import { MQTT_TOPIC, SEED, logGenerated, logRun, verifyStore } from '../lib/flows.js';
import { LoadProcess } from '../lib/load-process.js';
import { probeCanopy } from '../lib/probe.js';
import type { Metrics } from '../../src/observability/metrics.js';
import { DuckDbHotStore } from '../../src/storage/index.js';
import { startBenchCanopy, type BenchCanopy } from '../lib/systems.js';
import { figure, type RunRecord, type Scenario } from '../lib/types.js';

const READINGS_PER_MESSAGE = 100;
const MESSAGES_PER_SECOND = 100;
const TARGET_RATE = READINGS_PER_MESSAGE * MESSAGES_PER_SECOND;
/** The measured rate must reach this share of TARGET_RATE. */
const MIN_RATE_SHARE = 0.95;
/** 1 Hz each: at TARGET_RATE event time advances 10 s per second. */
const SOAK_SENSORS = 1_000;
const DEFAULT_SOAK_MS = 30 * 60_000;
const STOP_LIMIT_MS = 5 * 60_000;
const WARMUP_MS = 10_000;
const SAMPLE_MS = 5_000;
const MAX_RSS_GROWTH_MB = 50;
/**
 * The hourly-lake workflow (silver, gold, quality of every changed date) every
 * 10 minutes instead of at 5 past each hour, so every run holds it several
 * times rather than once or not at all by chance of the wall clock. Its
 * DuckDB engines are the largest allocations the process makes. Every 5
 * minutes was tried first: silver rebuilds the whole date each time, and
 * once the date held 10 M readings a run outlasted the interval, so the
 * runs followed each other without a pause and left no sample at rest.
 */
const LAKE_JOBS_CRON = '*/10 * * * *';
const MB = 1024 * 1024;

/** `CANOPY_SOAK_STORE_MEMORY_MB`: a smaller store.memoryLimitMB, so a short run reaches the cap. */
function soakStoreMemoryMB(): number | undefined {
  const raw = process.env.CANOPY_SOAK_STORE_MEMORY_MB;
  if (raw === undefined || raw === '') return undefined;
  const mb = Number(raw);
  if (!Number.isInteger(mb) || mb < 64)
    throw new Error(`CANOPY_SOAK_STORE_MEMORY_MB must be an integer ≥ 64, got ${raw}`);
  return mb;
}

function soakMs(): number {
  const raw = process.env.CANOPY_SOAK_MS;
  if (raw === undefined || raw === '') return DEFAULT_SOAK_MS;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 30_000)
    throw new Error(`CANOPY_SOAK_MS must be a number of milliseconds ≥ 30000, got ${raw}`);
  return ms;
}

export interface SoakSample {
  /** Seconds since the measured window started. */
  t: number;
  rssMB: number;
  /** What DuckDB (the hot store) holds in memory: its buffer pool, bounded by store.memoryLimitMB. */
  duckdbMB: number;
  heapUsedMB: number;
  heapTotalMB: number;
  /** Event-loop delay over the sample, ms. */
  loopDelayMs: { p50: number; p99: number; max: number };
  /** Readings committed per second over the sample. */
  committedPerSecond: number;
  /** Estimated from the histograms over the sample, ms (null: nothing observed). */
  commitMs: { p50: number | null; p99: number | null };
  ingestMs: { p50: number | null; p99: number | null };
  pendingReadings: number;
  /** Counted over the sample. */
  errors: {
    commitFailures: number;
    overloadRejections: number;
    deadLetters: number;
    housekeepingFailures: number;
    /** Workflow runs (any workflow) that failed or were cancelled. */
    workflowFailures: number;
  };
  /** hourly-lake runs that succeeded over the sample. */
  lakeRuns: number;
  /** An hourly-lake run was running at the sample or ended during it. */
  lakeJob: boolean;
}

type Buckets = Map<number, number>;

/** Cumulative bucket counts of an unlabelled histogram, by upper bound (+Inf included). */
async function buckets(h: Metrics['commitDuration']): Promise<Buckets> {
  const out: Buckets = new Map();
  for (const v of (await h.get()).values) {
    if (!v.metricName?.endsWith('_bucket')) continue;
    const le = v.labels.le;
    out.set(le === '+Inf' ? Infinity : Number(le), v.value);
  }
  return out;
}

/** The q-quantile of the observations between two snapshots, in ms, interpolated within its bucket. */
function quantileMs(before: Buckets, after: Buckets, q: number): number | null {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const delta = bounds.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const total = delta[delta.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (delta[i]! < rank) continue;
    const upper = bounds[i]!;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    // Past the last finite bound nothing better than that bound is known.
    if (upper === Infinity) return round(lower * 1000);
    const below = i === 0 ? 0 : delta[i - 1]!;
    const inBucket = delta[i]! - below;
    const share = inBucket > 0 ? (rank - below) / inBucket : 1;
    return round((lower + (upper - lower) * share) * 1000);
  }
  return null;
}

/** The sum of a counter over its labels. */
async function total(c: { get(): Promise<{ values: { value: number }[] }> }): Promise<number> {
  return (await c.get()).values.reduce((sum, v) => sum + v.value, 0);
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Samples Canopy (this process) every SAMPLE_MS from `start()` to `stop()`. */
function sampler(canopy: BenchCanopy): {
  start(): void;
  stop(): Promise<SoakSample[]>;
} {
  const m = canopy.app.metrics;
  const samples: SoakSample[] = [];
  const delay = monitorEventLoopDelay({ resolution: 10 });
  let timer: NodeJS.Timeout | undefined;
  let t0 = 0;
  let taking: Promise<void> = Promise.resolve();
  interface Snapshot {
    at: number;
    accepted: number;
    commit: Buckets;
    ingest: Buckets;
    commitFailures: number;
    overloadRejections: number;
    deadLetters: number;
    housekeepingFailures: number;
    workflowFailures: number;
    lakeRuns: number;
  }
  const runs = async (match: (labels: { workflow?: string; result?: string }) => boolean) =>
    (await m.workflowRuns.get()).values
      .filter((v) => match(v.labels as { workflow?: string; result?: string }))
      .reduce((sum, v) => sum + v.value, 0);
  const snapshot = async (): Promise<Snapshot> => ({
    at: performance.now(),
    accepted: await total(m.readingsAccepted),
    commit: await buckets(m.commitDuration),
    ingest: await buckets(m.ingestLatency),
    commitFailures: await total(m.commitFailures),
    overloadRejections: await total(m.overloadRejections),
    deadLetters: await total(m.deadLetters),
    housekeepingFailures: await total(m.housekeepingFailures),
    workflowFailures: await runs((l) => l.result !== 'succeeded'),
    lakeRuns: await runs((l) => l.workflow === 'hourly-lake' && l.result === 'succeeded'),
  });
  let last: Snapshot | undefined;
  const take = async (): Promise<void> => {
    const now = await snapshot();
    const before = last!;
    last = now;
    const mem = process.memoryUsage();
    const store = canopy.app.store;
    const duckdbBytes = store instanceof DuckDbHotStore ? await store.memoryBytes() : 0;
    const seconds = (now.at - before.at) / 1000;
    samples.push({
      t: round((now.at - t0) / 1000, 1),
      rssMB: round(mem.rss / MB, 1),
      duckdbMB: round(duckdbBytes / MB, 1),
      heapUsedMB: round(mem.heapUsed / MB, 1),
      heapTotalMB: round(mem.heapTotal / MB, 1),
      loopDelayMs: {
        p50: round(delay.percentile(50) / 1e6),
        p99: round(delay.percentile(99) / 1e6),
        max: round(delay.max / 1e6),
      },
      committedPerSecond: Math.round((now.accepted - before.accepted) / seconds),
      commitMs: {
        p50: quantileMs(before.commit, now.commit, 0.5),
        p99: quantileMs(before.commit, now.commit, 0.99),
      },
      ingestMs: {
        p50: quantileMs(before.ingest, now.ingest, 0.5),
        p99: quantileMs(before.ingest, now.ingest, 0.99),
      },
      pendingReadings: (await m.pendingReadings.get()).values[0]?.value ?? 0,
      errors: {
        commitFailures: now.commitFailures - before.commitFailures,
        overloadRejections: now.overloadRejections - before.overloadRejections,
        deadLetters: now.deadLetters - before.deadLetters,
        housekeepingFailures: now.housekeepingFailures - before.housekeepingFailures,
        workflowFailures: now.workflowFailures - before.workflowFailures,
      },
      lakeRuns: now.lakeRuns - before.lakeRuns,
      lakeJob:
        now.lakeRuns > before.lakeRuns ||
        (await m.workflowRunsActive.get()).values.some(
          (v) => v.labels.workflow === 'hourly-lake' && v.value > 0,
        ),
    });
    delay.reset();
  };
  return {
    start() {
      t0 = performance.now();
      delay.enable();
      void snapshot().then((s) => {
        last = s;
        timer = setInterval(() => {
          taking = taking.then(take, take);
        }, SAMPLE_MS);
      });
    },
    async stop() {
      clearInterval(timer);
      await taking;
      if (last !== undefined) await take();
      delay.disable();
      return samples;
    },
  };
}

/**
 * A memory figure at a point of the series (by default RSS outside the hot
 * store's buffer pool): the median of the sample nearest `t` and its
 * neighbours, among the samples at rest, i.e. taken while no lake job ran.
 * A lake job's DuckDB engine adds up to `lake.engineMemoryMB` while it runs
 * and gives it back when it closes; that peak is reported apart
 * (`lakeJobPeaks`), and growth between the jobs is what a leak looks like.
 */
function memoryAround(
  samples: SoakSample[],
  t: number,
  pick: (s: SoakSample) => number = (s) => s.rssMB - s.duckdbMB,
): number {
  const atRest = samples.filter((s) => !s.lakeJob);
  let nearest = 0;
  for (let i = 1; i < atRest.length; i++) {
    if (Math.abs(atRest[i]!.t - t) < Math.abs(atRest[nearest]!.t - t)) nearest = i;
  }
  const from = Math.max(0, Math.min(nearest - 1, atRest.length - 3));
  return round(median(atRest.slice(from, from + 3).map(pick)), 1);
}

/** Each lake job's span of samples, with the highest RSS seen in it. */
function lakeJobPeaks(samples: SoakSample[]): { from: number; to: number; peakRssMB: number }[] {
  const peaks: { from: number; to: number; peakRssMB: number }[] = [];
  let current: (typeof peaks)[number] | undefined;
  for (const s of samples) {
    if (!s.lakeJob) {
      current = undefined;
      continue;
    }
    if (current === undefined) {
      current = { from: s.t, to: s.t, peakRssMB: s.rssMB };
      peaks.push(current);
    }
    current.to = s.t;
    current.peakRssMB = Math.max(current.peakRssMB, s.rssMB);
  }
  return peaks;
}

const fmt = new Intl.NumberFormat('en-US');

export const soak: Scenario = {
  name: 'soak',
  onlyWhenNamed: true,
  title: `MQTT at a steady ${fmt.format(TARGET_RATE)} readings/s for CANOPY_SOAK_MS (default 30 min): rate, RSS, latency, errors`,
  async run() {
    const durationMs = soakMs();
    // Enough distinct messages for warm-up + measurement, with 2 % to spare for the timer's slack.
    const messages =
      Math.ceil(((WARMUP_MS + durationMs) / 1000) * MESSAGES_PER_SECOND * 1.02) + 100;
    const params: LoadParams = {
      readingsPerUnit: READINGS_PER_MESSAGE,
      sensors: SOAK_SENSORS,
      seed: SEED,
      sets: [{ name: 'main', encoding: 'json-array', units: messages }],
    };
    const started = await LoadProcess.start('mqtt-publisher', params);
    logGenerated(started);
    const load = started.load;
    try {
      // Stopping exports what the last minute left in the hot window; under load that can
      // outlast the default 30 s, and a failed stop must not discard the samples.
      const storeMemoryLimitMB = soakStoreMemoryMB();
      const canopy = await startBenchCanopy({
        shutdownTimeoutMs: STOP_LIMIT_MS,
        hourlyLakeCron: LAKE_JOBS_CRON,
        ...(storeMemoryLimitMB === undefined ? {} : { storeMemoryLimitMB }),
      });
      let stopMs = 0;
      let run: RunRecord;
      let samples: SoakSample[];
      let verification;
      try {
        const spec: RunSpec = {
          label: 'canopy',
          target: { kind: 'mqtt', port: canopy.mqttPort, topic: MQTT_TOPIC },
          set: 'main',
          cycle: false,
          window: 1000,
          warmupReadings: Number.MAX_SAFE_INTEGER,
          warmupMs: WARMUP_MS,
          measureReadings: Number.MAX_SAFE_INTEGER,
          measureMs: durationMs,
          pace: { unitsPerSecond: MESSAGES_PER_SECOND, notificationTimeoutMs: 0 },
        };
        console.log(
          `    soaking for ${(durationMs / 60_000).toFixed(1)} min (+${WARMUP_MS / 1000} s warm-up), a sample every ${SAMPLE_MS / 1000} s`,
        );
        const probe = probeCanopy(canopy.app.metrics, 'soak');
        const series = sampler(canopy);
        const measured = await load.run(spec, {
          measuring: () => {
            probe.measuring();
            series.start();
          },
          measured: () => probe.measured(),
        });
        samples = await series.stop();
        const { commits, profile } = await probe.result();
        run = {
          system: 'canopy',
          attempt: 1,
          used: true,
          ...measured,
          commits,
          ...(profile ? { profile } : {}),
        };
        logRun(run);
        const stored = await verifyStore(canopy, [run]);
        const errors = samples.reduce(
          (sum, s) =>
            sum +
            s.errors.commitFailures +
            s.errors.overloadRejections +
            s.errors.deadLetters +
            s.errors.housekeepingFailures +
            s.errors.workflowFailures,
          0,
        );
        const lakeRuns = samples.reduce((sum, s) => sum + s.lakeRuns, 0);
        verification = {
          ...stored,
          ok: stored.ok && errors === 0 && samples.length >= 6,
          lakeRuns,
          summary:
            `${fmt.format(stored.storedReadings)} stored / ${fmt.format(stored.ackedReadings)} acknowledged, ` +
            `${stored.deadLetters} dead letters, ${stored.errors} failed units; ` +
            `${errors} commit failures, overload rejections, dead letters, housekeeping or workflow failures in ${samples.length} samples; ` +
            `${lakeRuns} hourly-lake runs`,
        };
      } finally {
        const stopping = Date.now();
        await canopy.dispose();
        stopMs = Date.now() - stopping;
      }
      console.log(`      stopped in ${(stopMs / 1000).toFixed(1)} s`);

      const end = samples[samples.length - 1]!.t;
      // The hot store's buffer pool grows with the hot window up to store.memoryLimitMB by design;
      // what grows outside it is what a leak looks like.
      const points = (pick?: (s: SoakSample) => number) => ({
        start: memoryAround(samples, 0, pick),
        middle: memoryAround(samples, end / 2, pick),
        end: memoryAround(samples, end, pick),
      });
      const outside = points();
      const rawRss = points((x) => x.rssMB);
      const duckdb = points((x) => x.duckdbMB);
      const secondHalfGrowth = round(outside.end - outside.middle, 1);
      const firstHalfGrowth = round(outside.middle - outside.start, 1);
      const series = (p: typeof outside): string => `${p.start} → ${p.middle} → ${p.end} MB`;
      const peak = (pick: (s: SoakSample) => number | null): number =>
        Math.max(...samples.map((s) => pick(s) ?? 0));
      console.log(
        `      RSS ${series(rawRss)}, of which DuckDB ${series(duckdb)}; outside it ${series(outside)} (start, middle, end); ` +
          `peaks: loop delay p99 ${peak((s) => s.loopDelayMs.p99)} ms, commit p99 ${peak((s) => s.commitMs.p99)} ms, ingest p99 ${peak((s) => s.ingestMs.p99)} ms`,
      );
      const lakeJobs = lakeJobPeaks(samples);
      const lastAtRest = samples.filter((s) => !s.lakeJob).at(-1)?.t ?? null;
      console.log(
        `      memory above is at rest (no lake job running; the last such sample at ${lastAtRest} s); during the ${lakeJobs.length} lake jobs RSS peaked at ` +
          (lakeJobs.map((j) => `${j.peakRssMB} MB (${j.from}–${j.to} s)`).join(', ') || 'nothing'),
      );
      return {
        figures: [
          figure(
            'soak/rate',
            run.readingsPerSecond,
            { name: 'target rate (paced publisher)', value: TARGET_RATE },
            {
              kind: 'ratio',
              min: MIN_RATE_SHARE,
              text: `ratio ≥ ${MIN_RATE_SHARE} (≥ ${fmt.format(TARGET_RATE * MIN_RATE_SHARE)}/s)`,
            },
            verification.ok,
          ),
          figure(
            'soak/rss-outside-duckdb-growth-2nd-half',
            secondHalfGrowth,
            { name: 'RSS outside DuckDB, growth over the first half', value: firstHalfGrowth },
            { kind: 'max', max: MAX_RSS_GROWTH_MB, text: `< ${MAX_RSS_GROWTH_MB} MB` },
            verification.ok,
            'MB',
          ),
        ],
        verification,
        runs: [run],
        parameters: {
          protocol: 'MQTT 3.1.1, QoS 1, clean session, one mqtt.js 5 connection',
          topic: MQTT_TOPIC,
          readingsPerMessage: READINGS_PER_MESSAGE,
          messagesPerSecond: MESSAGES_PER_SECOND,
          targetReadingsPerSecond: TARGET_RATE,
          minRateShare: MIN_RATE_SHARE,
          sensors: SOAK_SENSORS,
          warmupMs: WARMUP_MS,
          soakMs: durationMs,
          stopMs,
          storeMemoryLimitMB: storeMemoryLimitMB ?? 'default (store.memoryLimitMB)',
          hourlyLakeCron: LAKE_JOBS_CRON,
          sampleMs: SAMPLE_MS,
          maxRssGrowthMB: MAX_RSS_GROWTH_MB,
          rssMB: rawRss,
          duckdbMB: duckdb,
          rssOutsideDuckdbMB: outside,
          lakeJobs,
          lastAtRestT: lastAtRest,
          generatedReadings: started.generatedReadings,
          generatedBytes: started.generatedBytes,
          samples,
        },
      };
    } finally {
      await load.close();
    }
  },
};
