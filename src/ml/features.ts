/**
 * Features for imputing one value: measure `m` of a frame at step `t`.
 *
 * Contract: pure functions over the frame's arrays. NaN in a frame means
 * "no known value". NaN in a feature means "not available" (the other measure
 * is missing at t, there is no known value before the gap, the day is not a
 * whole number of steps, …); models must accept NaN features (the forest
 * learns which side of each split they go to).
 *
 * The gap of a target is the maximal run of missing steps of its own series
 * that holds it. Its neighbours are the last known value before the run and
 * the first after it. For training, a known value is treated as if a gap of a
 * chosen length surrounded it (`forcedStart..forcedEnd`), so the model sees
 * the same kind of features it will see when predicting.
 */
import type { SeriesFrame } from './frame.js';

const DAY_MS = 86_400_000;
const WEEK_DAYS = 7;
/** 1970-01-01 was a Thursday: day index 4 with Sunday = 0. */
const EPOCH_WEEKDAY = 4;

export interface GapContext {
  /** The target step. */
  t: number;
  /** First and last step of the missing run holding t (inclusive). */
  gapStart: number;
  gapEnd: number;
  /** gapEnd - gapStart + 1. */
  gapLength: number;
  /** Last known value before the gap (at gapStart - 1); NaN at the series start. */
  before: number;
  /** First known value after the gap (at gapEnd + 1); NaN at the series end. */
  after: number;
  /** t - (gapStart - 1); NaN without `before`. */
  stepsFromBefore: number;
  /** (gapEnd + 1) - t; NaN without `after`. */
  stepsToAfter: number;
  /** Linear interpolation between before and after at t; NaN unless both exist. */
  interpolation: number;
}

export interface FeatureRow extends GapContext {
  /** Named by `featureNames(frame, m)`, same order. */
  features: number[];
}

/**
 * The gap around `t` in `series`: the steps `forcedStart..forcedEnd` (which
 * must hold t) are missing whatever their values, and the run extends over
 * the missing steps on either side.
 */
export function gapAround(
  series: Float64Array,
  t: number,
  forcedStart: number = t,
  forcedEnd: number = t,
): GapContext {
  let gapStart = Math.max(0, Math.min(forcedStart, t));
  let gapEnd = Math.min(series.length - 1, Math.max(forcedEnd, t));
  while (gapStart > 0 && Number.isNaN(series[gapStart - 1]!)) gapStart--;
  while (gapEnd < series.length - 1 && Number.isNaN(series[gapEnd + 1]!)) gapEnd++;
  const before = gapStart > 0 ? series[gapStart - 1]! : NaN;
  const after = gapEnd < series.length - 1 ? series[gapEnd + 1]! : NaN;
  const stepsFromBefore = gapStart > 0 ? t - gapStart + 1 : NaN;
  const stepsToAfter = gapEnd < series.length - 1 ? gapEnd + 1 - t : NaN;
  const span = gapEnd - gapStart + 2;
  const interpolation = before + ((after - before) * stepsFromBefore) / span;
  return {
    t,
    gapStart,
    gapEnd,
    gapLength: gapEnd - gapStart + 1,
    before,
    after,
    stepsFromBefore,
    stepsToAfter,
    interpolation,
  };
}

/** Steps per day when a day is a whole number (≥ 2) of steps, else undefined. */
export function stepsPerDay(stepMs: number): number | undefined {
  const n = DAY_MS / stepMs;
  return Number.isInteger(n) && n >= 2 ? n : undefined;
}

/** Names of the features `featureRow` returns for measure `m`, in order. */
export function featureNames(frame: SeriesFrame, m: number): string[] {
  const names = [
    'gap_length',
    'steps_from_before',
    'steps_to_after',
    'before',
    'after',
    'interpolation',
    'same_time_day_before',
    'same_time_day_after',
    'hour_sin',
    'hour_cos',
    'weekday_sin',
    'weekday_cos',
  ];
  frame.measures.forEach((name, other) => {
    if (other !== m) names.push(name, `${name}_vs_linear`);
  });
  return names;
}

/**
 * The features of the target described by `gap` (from `gapAround` on the
 * frame's series `m`):
 * - the gap: its length, the distances to its neighbours, their values and
 *   the linear interpolation between them;
 * - the sensor's own value one day before and after t, when that step is
 *   known and outside the gap (a daily-cycle neighbour);
 * - time of day and day of week as sin/cos pairs, so 23:00 is next to 00:00
 *   (UTC; a constant zone offset is only a phase shift);
 * - per other measure of the frame: its value at t, and its departure at t
 *   from the straight line between its own values at the gap's two
 *   neighbour steps (how the co-located sensor moved inside the gap; NaN
 *   when any of the three is missing).
 *
 * `othersMissing` builds the row as if every other measure were missing at
 * t too (a whole-device outage); training uses it so that the model learns
 * what to do when the co-located sensors are down with the target.
 */
export function featureRow(
  frame: SeriesFrame,
  m: number,
  gap: GapContext,
  othersMissing = false,
): FeatureRow {
  const series = frame.values[m]!;
  const { t, gapStart, gapEnd } = gap;
  const day = stepsPerDay(frame.stepMs);
  const outsideGap = (i: number): number =>
    i >= 0 && i < series.length && (i < gapStart || i > gapEnd) ? series[i]! : NaN;
  const ms = frame.startMs + t * frame.stepMs;
  const dayFraction = (((ms % DAY_MS) + DAY_MS) % DAY_MS) / DAY_MS;
  const weekday = (((Math.floor(ms / DAY_MS) + EPOCH_WEEKDAY) % WEEK_DAYS) + WEEK_DAYS) % WEEK_DAYS;
  const features = [
    gap.gapLength,
    gap.stepsFromBefore,
    gap.stepsToAfter,
    gap.before,
    gap.after,
    gap.interpolation,
    day === undefined ? NaN : outsideGap(t - day),
    day === undefined ? NaN : outsideGap(t + day),
    Math.sin(2 * Math.PI * dayFraction),
    Math.cos(2 * Math.PI * dayFraction),
    Math.sin((2 * Math.PI * weekday) / WEEK_DAYS),
    Math.cos((2 * Math.PI * weekday) / WEEK_DAYS),
  ];
  const left = gapStart - 1;
  const right = gapEnd + 1;
  const span = right - left;
  frame.values.forEach((other, o) => {
    if (o === m) return;
    const now = othersMissing ? NaN : other[t]!;
    const atLeft = left >= 0 ? other[left]! : NaN;
    const atRight = right < other.length ? other[right]! : NaN;
    features.push(now, now - (atLeft + ((atRight - atLeft) * (t - left)) / span));
  });
  return { ...gap, features };
}

/** Rows for every missing step of measure m (its real gaps), in time order. */
export function missingRows(frame: SeriesFrame, m: number): FeatureRow[] {
  const series = frame.values[m]!;
  const rows: FeatureRow[] = [];
  for (let t = 0; t < series.length; t++) {
    if (Number.isNaN(series[t]!)) rows.push(featureRow(frame, m, gapAround(series, t)));
  }
  return rows;
}
