/** What a scenario returns; bench/run.ts adds the machine and date and writes the JSON. */
import type { MeasuredRun } from './load-process.js';
import type { CommitStats, ProfileSummary } from './probe.js';
import type { LatencySummary } from '../load/protocol.js';

export type Target =
  /** figure ÷ peer figure must reach `min`. */
  | { kind: 'ratio'; min: number; text: string }
  /** the figure itself must reach `min` (readings/s). */
  | { kind: 'absolute'; min: number; text: string }
  /** the figure itself must stay below `max` (a latency, ms; a growth, MB). */
  | { kind: 'max'; max: number; text: string };

export interface Figure {
  /** e.g. `mqtt-single` or `http-batch/ndjson`. */
  name: string;
  /** Canopy's acknowledged readings per second, a latency percentile (ms) or a memory growth (MB). */
  value: number;
  unit: 'readings/s' | 'ms' | 'MB';
  /** The limit or peer measured in the same run. */
  peer: { name: string; value: number };
  /** value ÷ peer.value (for a latency: how many times the peer's). */
  ratio: number;
  target: Target;
  /** The target is met and the run verified (nothing lost, no errors). */
  pass: boolean;
}

export interface Verification {
  /** Readings Canopy acknowledged over all its runs (warm-up, measured, drain). */
  ackedReadings: number;
  /** `store.countReadings()` after the load finished. */
  storedReadings: number;
  /** `store.countDeadLetters()`: the generated readings are all valid, so 0. */
  deadLetters: number;
  /** Failed units over every run (peer runs included). */
  errors: number;
  ok: boolean;
  /** A one-line account printed instead of the stored/acknowledged line (batch scenarios). */
  summary?: string;
}

export interface RunRecord extends MeasuredRun {
  system: 'canopy' | 'peer';
  /** 1 for the first attempt; a run disturbed by other processes is repeated (see flows.ts). */
  attempt: number;
  /** This attempt gives the figure (the least disturbed of the attempts). */
  used: boolean;
  /** Canopy runs: group commits during the measured window. */
  commits?: CommitStats;
  /** Canopy runs with --profile: where the main thread's time went. */
  profile?: ProfileSummary;
  /** alert-latency: durations of the alert store's calls over the whole run (warm-up included), ms. */
  alertStore?: Record<string, LatencySummary>;
}

/** One timed run of a batch scenario (the lake): a fixed amount of work, timed end to end. */
export interface BatchRunRecord {
  system: 'canopy' | 'peer';
  label: string;
  attempt: number;
  /** This run gives the figure (the fastest of its system's runs). */
  used: boolean;
  readings: number;
  ms: number;
  readingsPerSecond: number;
  /** Peak resident set of the process that did the work, MB. */
  peakRssMB: number;
  /** CPU of that process over the work, in cores. */
  cpu: number;
  /** CPU of everything else on the machine meanwhile, in cores. */
  otherCpu: number | null;
  /** Named parts of `ms` (Canopy: silver and gold). */
  phases?: Record<string, number>;
}

export interface ScenarioOutcome {
  figures: Figure[];
  verification: Verification;
  runs: (RunRecord | BatchRunRecord)[];
  parameters: Record<string, unknown>;
}

export interface Scenario {
  name: string;
  title: string;
  /** Left out of `npm run bench` without names (the soak takes 30 minutes); runs when named. */
  onlyWhenNamed?: boolean;
  run(): Promise<ScenarioOutcome>;
}

export function figure(
  name: string,
  canopy: number,
  peer: { name: string; value: number },
  target: Target,
  verified: boolean,
  unit: Figure['unit'] = 'readings/s',
): Figure {
  const ratio = peer.value > 0 ? Math.round((canopy / peer.value) * 1000) / 1000 : 0;
  const met =
    target.kind === 'ratio'
      ? ratio >= target.min
      : target.kind === 'absolute'
        ? canopy >= target.min
        : canopy < target.max;
  return { name, value: canopy, unit, peer, ratio, target, pass: met && verified };
}
