/**
 * One timed side of the lake benchmark, in a process of its own so that its
 * peak RSS (`resourceUsage().maxRSS`) is that side's alone and neither side
 * inherits the other's DuckDB caches. Started by bench/scenarios/lake.ts with
 * `BENCH_LAKE_PARAMS` (JSON `LakeWorkerParams`); sends one `LakeWorkerResult`
 * over IPC and exits.
 *
 * The Canopy side runs the real jobs exactly as `canopy jobs run silver` and
 * `canopy jobs run gold` do (src/cli/jobs.ts): a LocalObjectStore on the lake
 * folder (durable writes, the default), the work folder beside it, the
 * registry's ranges and the stream's z-score settings from the default config.
 */
import os from 'node:os';
import { configSchema } from '../../src/config/schema.js';
import { runGoldJob, runSilverJob, SILVER_PIPELINE_VERSION } from '../../src/lake/index.js';
import { silentLogger } from '../../src/observability/logger.js';
import { SensorRegistry } from '../../src/runtime/registry.js';
import { LocalObjectStore } from '../../src/storage/index.js';
import { machineTicks } from '../lib/load-process.js';
import { runPeer } from './peer.js';

export interface LakeWorkerParams {
  side: 'canopy' | 'peer';
  lakeRoot: string;
  /** Canopy: the jobs' work folder; peer: where it writes its tables. */
  workDir: string;
  /** Expected interval of every generated sensor (gold's health_pct). */
  sensorIntervals: Record<string, number>;
  processingTime: number;
}

export interface LakeWorkerResult {
  side: 'canopy' | 'peer';
  /** Wall time of the timed work (silver + gold for Canopy). */
  ms: number;
  silverMs?: number;
  goldMs?: number;
  /** Peak resident set of this process, MB. */
  peakRssMB: number;
  /** CPU of this process over the timed work, in cores (1 = one core busy). */
  cpu: number;
  /** CPU used by everything else on the machine meanwhile, in cores; null without /proc/stat. */
  otherCpu: number | null;
  silverDates?: number;
  goldDates?: number;
}

/** Health of sensors with no configured interval: the CLI's default (one reading a minute). */
const DEFAULT_INTERVAL_MS = 60_000;

async function main(): Promise<void> {
  const params = JSON.parse(process.env.BENCH_LAKE_PARAMS ?? '') as LakeWorkerParams;
  const config = configSchema.parse({});
  const registry = new SensorRegistry(config.sensors, config.sensorTypes);
  const ranges = registry.ranges();
  const zscore = {
    window: config.stream.zscoreWindow,
    minHistory: config.stream.zscoreMinHistory,
    threshold: config.stream.zscoreThreshold,
  };
  const ticks0 = machineTicks();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let result: LakeWorkerResult;
  if (params.side === 'canopy') {
    const lake = new LocalObjectStore({ root: params.lakeRoot });
    const logger = silentLogger();
    try {
      const silver = await runSilverJob({
        lake,
        workDir: params.workDir,
        ranges,
        zscore,
        deviceScoreThreshold: config.stream.deviceScoreThreshold,
        clock: { now: () => params.processingTime },
        logger,
      });
      const t1 = performance.now();
      const gold = await runGoldJob({
        lake,
        workDir: params.workDir,
        sensorIntervals: params.sensorIntervals,
        defaultIntervalMs: DEFAULT_INTERVAL_MS,
        logger,
      });
      const t2 = performance.now();
      result = {
        side: 'canopy',
        ms: t2 - t0,
        silverMs: t1 - t0,
        goldMs: t2 - t1,
        peakRssMB: 0,
        cpu: 0,
        otherCpu: null,
        silverDates: silver.length,
        goldDates: gold.dates.length,
      };
    } finally {
      lake.close();
    }
  } else {
    await runPeer({
      lakeRoot: params.lakeRoot,
      outDir: params.workDir,
      ranges,
      zscore,
      deviceScoreThreshold: config.stream.deviceScoreThreshold,
      sensorIntervals: params.sensorIntervals,
      defaultIntervalMs: DEFAULT_INTERVAL_MS,
      processingTime: params.processingTime,
      pipelineVersion: SILVER_PIPELINE_VERSION,
    });
    result = { side: 'peer', ms: performance.now() - t0, peakRssMB: 0, cpu: 0, otherCpu: null };
  }
  const cpu = process.cpuUsage(cpu0);
  const ticks1 = machineTicks();
  const round = (x: number): number => Math.round(x * 100) / 100;
  const ownCores = (cpu.user + cpu.system) / 1000 / result.ms;
  result.cpu = round(ownCores);
  if (ticks0 && ticks1 && ticks1.total > ticks0.total) {
    const busyCores =
      ((ticks1.busy - ticks0.busy) / (ticks1.total - ticks0.total)) * os.cpus().length;
    result.otherCpu = round(Math.max(0, busyCores - ownCores));
  }
  result.peakRssMB = Math.round(process.resourceUsage().maxRSS / 1024);
  process.send!(result);
}

await main();
