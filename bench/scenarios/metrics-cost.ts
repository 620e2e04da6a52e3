/**
 * What metrics cost on the ingest path: HTTP POST batches of 1,000 readings
 * (JSON array, 8 keep-alive connections, 200 after the durable commit, as in
 * `http-batch`) to two Canopy instances that differ only in their metrics. One
 * has the normal registry (default process metrics included), the other the
 * same registry with recording off (`new Metrics({ recording: false })`: every
 * `inc`/`set`/`observe` a no-op, the per-commit tally skipped, no default
 * metrics). The figure is readings/s with metrics, its peer the same without.
 *
 * Runs alternate (with, without, without, with) so that drift in the
 * machine's speed falls on both sides; each side's best run gives its figure.
 * Each side sees each reading once (its own payload set), and both stores are
 * verified against what they acknowledged. Target: metrics cost at most 5 %.
 */
import { Metrics } from '../../src/observability/metrics.js';
import { LoadProcess } from '../lib/load-process.js';
import { logGenerated, logRun, SEED, SENSORS, verifyStore } from '../lib/flows.js';
import { startBenchCanopy, type BenchCanopy } from '../lib/systems.js';
import { figure, type RunRecord, type Scenario, type Verification } from '../lib/types.js';
import type { LoadParams, RunSpec } from '../load/protocol.js';

const READINGS_PER_REQUEST = 1000;
const CONNECTIONS = 8;
const WARMUP_READINGS = 50_000;
const WARMUP_MS = 2_000;
const MEASURE_READINGS = 500_000;
const MEASURE_MS = 3_000;
/** Runs per side, alternating sides. */
const ROUNDS = 2;
const SIDES = ['with', 'without'] as const;
type Side = (typeof SIDES)[number];

/** CPU time of the system under test per acknowledged reading in the measured window, µs. */
function cpuMicrosPerReading(run: RunRecord): number {
  return Math.round(((run.sutCpu * run.measuredMs) / run.measuredReadings) * 1000 * 100) / 100;
}

function best(runs: RunRecord[]): RunRecord {
  const top = runs.reduce((a, b) => (b.readingsPerSecond > a.readingsPerSecond ? b : a));
  for (const r of runs) r.used = r === top;
  return top;
}

export const metricsCost: Scenario = {
  name: 'metrics-cost',
  title: 'The cost of metrics: HTTP batches of 1,000 readings with metrics on and off',
  async run() {
    const requests =
      ROUNDS * Math.ceil((WARMUP_READINGS + MEASURE_READINGS) / READINGS_PER_REQUEST) +
      2 * CONNECTIONS;
    const params: LoadParams = {
      readingsPerUnit: READINGS_PER_REQUEST,
      sensors: SENSORS,
      seed: SEED,
      sets: SIDES.map((side) => ({ name: side, encoding: 'json-array', units: requests })),
    };
    const generated = await LoadProcess.start('http-poster', params);
    logGenerated(generated);
    const load = generated.load;
    try {
      const started: BenchCanopy[] = [];
      const start = async (metrics: Metrics): Promise<BenchCanopy> => {
        const canopy = await startBenchCanopy({ metrics });
        started.push(canopy);
        return canopy;
      };
      try {
        const canopies: Record<Side, BenchCanopy> = {
          with: await start(new Metrics()),
          without: await start(new Metrics({ recording: false, defaultMetrics: false })),
        };
        const runs: Record<Side, RunRecord[]> = { with: [], without: [] };
        for (let round = 0; round < ROUNDS; round++) {
          const order = round % 2 === 0 ? SIDES : [...SIDES].reverse();
          for (const side of order) {
            const spec: RunSpec = {
              label: `canopy/${side}-metrics`,
              set: side,
              cycle: false,
              window: CONNECTIONS,
              warmupReadings: WARMUP_READINGS,
              warmupMs: WARMUP_MS,
              measureReadings: MEASURE_READINGS,
              measureMs: MEASURE_MS,
              target: { kind: 'http', port: canopies[side].httpPort, path: '/api/data' },
            };
            const record: RunRecord = {
              system: 'canopy',
              attempt: runs[side].length + 1,
              used: false,
              ...(await load.run(spec)),
            };
            logRun(record);
            runs[side].push(record);
          }
        }
        const checks = await Promise.all(SIDES.map((s) => verifyStore(canopies[s], runs[s])));
        const verification: Verification = {
          ackedReadings: checks.reduce((n, c) => n + c.ackedReadings, 0),
          storedReadings: checks.reduce((n, c) => n + c.storedReadings, 0),
          deadLetters: checks.reduce((n, c) => n + c.deadLetters, 0),
          errors: checks.reduce((n, c) => n + c.errors, 0),
          ok: checks.every((c) => c.ok),
        };
        const withMetrics = best(runs.with);
        const withoutMetrics = best(runs.without);
        return {
          figures: [
            figure(
              'metrics-cost/http-batch',
              withMetrics.readingsPerSecond,
              {
                name: 'the same Canopy with metrics recording off',
                value: withoutMetrics.readingsPerSecond,
              },
              { kind: 'ratio', min: 0.95, text: '≥ 0.95 × without metrics (metrics cost ≤ 5 %)' },
              verification.ok,
            ),
          ],
          verification,
          runs: [...runs.with, ...runs.without],
          parameters: {
            protocol: 'HTTP/1.1 POST /api/data (JSON array), node:http keep-alive Agent',
            readingsPerRequest: READINGS_PER_REQUEST,
            connections: CONNECTIONS,
            sensors: SENSORS,
            roundsPerSide: ROUNDS,
            order: 'with, without, without, with; best run per side',
            // Less sensitive than readings/s to other load on the machine (still not immune).
            cpuMicrosPerReading: {
              with: cpuMicrosPerReading(withMetrics),
              without: cpuMicrosPerReading(withoutMetrics),
            },
            without: 'new Metrics({ recording: false, defaultMetrics: false })',
            warmup: { readings: WARMUP_READINGS, maxMs: WARMUP_MS },
            measure: { readings: MEASURE_READINGS, maxMs: MEASURE_MS },
            generatedReadings: generated.generatedReadings,
            generatedBytes: generated.generatedBytes,
          },
        };
      } finally {
        for (const canopy of started) await canopy.dispose();
      }
    } finally {
      await load.close();
    }
  },
};
