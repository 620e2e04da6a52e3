/**
 * What Canopy did during a measured window: group-commit statistics from its
 * own metrics and, with `--profile`, a CPU profile of the main thread
 * (bench/results/<name>.cpuprofile, open it in Chrome DevTools) summarised
 * by area: decode/validate, stream checks, pipeline, store, DuckDB, aedes,
 * Fastify, GC, idle.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';
import type { Profiler, Runtime } from 'node:inspector';
import type { Metrics } from '../../src/observability/metrics.js';
import { repoRoot } from './load-process.js';

export const benchOptions: {
  profile: boolean;
  /** `--readings N`: size of the lake scenario's bronze input. */
  lakeReadings?: string;
} = { profile: false };

export interface CommitStats {
  commits: number;
  commitsPerSecond: number;
  /** Mean readings per group commit. */
  meanBatchReadings: number;
  /** Mean time of one commit (upsert sensors + append + COMMIT), ms. */
  meanCommitMs: number;
  /** Share of the window during which a commit was running (0..1). */
  commitBusy: number;
}

export interface ProfileArea {
  area: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  file: string;
  sampledMs: number;
  /** Self time by area, largest first. */
  areas: ProfileArea[];
  /** Functions with the most self time. */
  topSelf: { fn: string; ms: number; share: number }[];
  /** Inclusive time of the pipeline's main steps. */
  steps: { step: string; ms: number; share: number }[];
}

export interface WindowProbe {
  measuring(): void;
  measured(): void;
  result(): Promise<{ commits: CommitStats; profile?: ProfileSummary }>;
}

async function histogramTotals(
  h: Metrics['commitDuration'],
): Promise<{ sum: number; count: number }> {
  const values = (await h.get()).values;
  const sum = values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  const count = values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  return { sum, count };
}

export function probeCanopy(metrics: Metrics, name: string): WindowProbe {
  let t0 = 0;
  let t1 = 0;
  let before: Promise<[{ sum: number; count: number }, { sum: number; count: number }]> | undefined;
  let after: Promise<[{ sum: number; count: number }, { sum: number; count: number }]> | undefined;
  const snapshot = () =>
    Promise.all([
      histogramTotals(metrics.commitDuration),
      histogramTotals(metrics.commitBatchSize),
    ]);
  let session: Session | undefined;
  let started: Promise<void> | undefined;
  let stopped: Promise<Profiler.Profile | undefined> | undefined;

  return {
    measuring() {
      t0 = performance.now();
      before = snapshot();
      if (benchOptions.profile) {
        session = new Session();
        session.connect();
        const s = session;
        started = (async () => {
          await s.post('Profiler.enable');
          await s.post('Profiler.setSamplingInterval', { interval: 250 });
          await s.post('Profiler.start');
        })();
      }
    },
    measured() {
      t1 = performance.now();
      after = snapshot();
      const s = session;
      if (s && started) {
        stopped = started.then(async () => {
          const { profile } = await s.post('Profiler.stop');
          s.disconnect();
          return profile;
        });
      }
    },
    async result() {
      if (!before || !after) throw new Error('the measured window never started or ended');
      const [[d0, b0], [d1, b1]] = await Promise.all([before, after]);
      const seconds = (t1 - t0) / 1000;
      const commits = d1.count - d0.count;
      const commitStats: CommitStats = {
        commits,
        commitsPerSecond: Math.round(commits / seconds),
        meanBatchReadings: commits > 0 ? Math.round((b1.sum - b0.sum) / commits) : 0,
        meanCommitMs:
          commits > 0 ? Math.round(((d1.sum - d0.sum) / commits) * 1000 * 100) / 100 : 0,
        commitBusy: Math.round(((d1.sum - d0.sum) / seconds) * 100) / 100,
      };
      const profile = stopped ? await stopped : undefined;
      if (!profile) return { commits: commitStats };
      const file = path.join(repoRoot, 'bench', 'results', `${name}.cpuprofile`);
      writeFileSync(file, JSON.stringify(profile));
      return { commits: commitStats, profile: summarise(profile, path.relative(repoRoot, file)) };
    },
  };
}

const AREAS: [RegExp, string][] = [
  [/\/src\/ingest\//, 'decode + validate (src/ingest)'],
  [/\/src\/stream\//, 'stream checks (src/stream)'],
  [/\/src\/runtime\//, 'pipeline + registry (src/runtime)'],
  [/\/src\/storage\//, 'store JS side (src/storage)'],
  [/@duckdb\//, 'DuckDB binding, sync on the main thread (@duckdb/node-api)'],
  [/\/src\/sources\//, 'sources (src/sources)'],
  [/\/src\/api\//, 'API routes (src/api)'],
  [
    /\/node_modules\/(aedes|aedes-[^/]+|mqtt-packet|mqemitter|fastfall|fastparallel|fastseries|reusify|retimer|bl|hyperid|uuid)\//,
    'aedes + mqtt-packet',
  ],
  [
    /\/node_modules\/(fastify|@fastify\/[^/]+|find-my-way|avvio|light-my-request|secure-json-parse|fast-json-stringify|process-warning|abstract-logging|toad-cache|rfdc)\//,
    'fastify',
  ],
  [/\/node_modules\/(prom-client|tdigest|bintrees)\//, 'metrics (prom-client)'],
  [/\/node_modules\/(pino|[^/]*pino[^/]*)\//, 'logging (pino)'],
  [/^node:/, 'node core (net, streams, timers, crypto)'],
];

/** Native frames (no URL) count towards the area of their nearest JavaScript caller (JSON.parse → decode, appender flush → DuckDB). */
function areaOf(frame: Runtime.CallFrame): string | undefined {
  const fn = frame.functionName;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle (waiting: DuckDB threads, I/O)';
  if (fn === '(program)') return 'V8/native (program)';
  if (frame.url === '') return undefined;
  for (const [re, area] of AREAS) if (re.test(frame.url)) return area;
  return 'other JS';
}

function frameName(frame: Runtime.CallFrame): string {
  const file = frame.url.replace(/^file:\/\/.*?\/(src|node_modules)\//, '$1/');
  return `${frame.functionName || '(anonymous)'} ${file ? `${file}:${frame.lineNumber + 1}` : '(native)'}`;
}

/** Inclusive steps: the first matching frame on the stack names the step. */
const STEPS: [RegExp, string][] = [
  [/^decodeAndValidate /, 'decodeAndValidate (decode + validate)'],
  [/^check src\/stream\//, 'StreamChecker.check'],
  [/^enrich src\/runtime\//, 'SensorRegistry.enrich'],
  [
    /^submit src\/runtime\/pipeline/,
    'IngestPipeline.submit (decode, validate, enrich, checks, row building, queueing)',
  ],
  [/^commit src\/runtime\/pipeline/, 'IngestPipeline.commit (JS side of the group commit)'],
  [/^appendRows /, 'appendRows (DuckDB appender fill)'],
];

function summarise(profile: Profiler.Profile, file: string): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  let total = 0;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i + 1] is the time spent in sample i.
    const dt = (deltas[i + 1] ?? 0) / 1000;
    self.set(samples[i]!, (self.get(samples[i]!) ?? 0) + dt);
    total += dt;
  }
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  const steps = new Map<string, number>();
  for (const [id, ms] of self) {
    const node = byId.get(id)!;
    let area = areaOf(node.callFrame);
    for (
      let up = parent.get(id);
      area === undefined;
      up = up === undefined ? undefined : parent.get(up)
    ) {
      area = up === undefined ? 'native (no JS caller)' : areaOf(byId.get(up)!.callFrame);
    }
    areas.set(area, (areas.get(area) ?? 0) + ms);
    const name = frameName(node.callFrame);
    fns.set(name, (fns.get(name) ?? 0) + ms);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = frameName(byId.get(cur)!.callFrame);
      for (const [re, step] of STEPS) {
        if (re.test(frame) && !seen.has(step)) {
          seen.add(step);
          steps.set(step, (steps.get(step) ?? 0) + ms);
        }
      }
    }
  }
  const share = (ms: number): number => Math.round((ms / total) * 1000) / 1000;
  const sorted = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]);
  return {
    file,
    sampledMs: Math.round(total),
    areas: sorted(areas).map(([area, ms]) => ({ area, ms: Math.round(ms), share: share(ms) })),
    topSelf: sorted(fns)
      .slice(0, 15)
      .map(([fn, ms]) => ({ fn, ms: Math.round(ms), share: share(ms) })),
    steps: STEPS.map(([, step]) => step)
      .filter((step) => steps.has(step))
      .map((step) => ({ step, ms: Math.round(steps.get(step)!), share: share(steps.get(step)!) })),
  };
}
