/**
 * Training rows for one measure: known values, each surrounded by a
 * synthetic gap so that its features look like those of a value that is
 * really missing (a model trained on single-step neighbours would learn
 * nothing about day-long gaps).
 */
import { featureNames, featureRow, gapAround } from './features.js';
import type { SeriesFrame } from './frame.js';
import type { TrainingSet } from './models.js';
import { Rng, sampleWithoutReplacement } from './random.js';

export interface TrainingRowOptions {
  /** At most this many rows, sampled from the known values (all of them when fewer). */
  maxRows: number;
  /** Synthetic gaps are 1..maxGapSteps long. */
  maxGapSteps: number;
  seed: number;
  /** Share of rows whose synthetic gap is a single step (default 0.5); the rest are uniform in 2..maxGapSteps. */
  singleStepShare?: number;
  /** Share of rows built as whole-device outages: the other measures missing at t too (default 0.2). */
  deviceOutageShare?: number;
}

export const DEFAULT_MAX_TRAINING_ROWS = 6000;

/**
 * Samples up to `maxRows` known steps of measure m; for each, draws a gap
 * length and the target's position inside the gap, and builds the row with
 * that gap forced over the series. Deterministic for a seed.
 */
export function trainingSet(
  frame: SeriesFrame,
  m: number,
  options: TrainingRowOptions,
): TrainingSet {
  const series = frame.values[m]!;
  const known: number[] = [];
  for (let t = 0; t < series.length; t++) if (!Number.isNaN(series[t]!)) known.push(t);
  const rng = Rng.derive(options.seed, m);
  const chosen = sampleWithoutReplacement(known, options.maxRows, rng).sort((a, b) => a - b);
  const singleShare = options.singleStepShare ?? 0.5;
  const outageShare = options.deviceOutageShare ?? 0.2;
  const rows = chosen.map((t) => {
    const length =
      options.maxGapSteps <= 1 || rng.next() < singleShare
        ? 1
        : 2 + rng.int(options.maxGapSteps - 1);
    const start = t - rng.int(length);
    const outage = rng.next() < outageShare;
    return featureRow(frame, m, gapAround(series, t, start, start + length - 1), outage);
  });
  return { rows, targets: chosen.map((t) => series[t]!), features: featureNames(frame, m) };
}
