/**
 * One location's measures on a regular time grid: the shape imputation works
 * on. Readings in long form (one row per sensor and time, as Canopy stores
 * them) become one Float64Array per measure, with NaN wherever no finite value
 * is known (no reading at that step, a null reading, or a value hidden by the
 * evaluation).
 */
import { CanopyError } from '../core/errors.js';

export interface SeriesFrame {
  /** Epoch ms of step 0. */
  startMs: number;
  /** Milliseconds between steps (> 0). */
  stepMs: number;
  /** One name per series, e.g. the sensor type. */
  measures: readonly string[];
  /** `values[m][t]`: measure m at step t; NaN = missing. All the same length. */
  values: Float64Array[];
}

export interface FrameReading {
  measure: string;
  /** Epoch ms. */
  eventTime: number;
  value: number | null;
}

/**
 * Builds the grid from long-form readings. The step is `stepMs` when given,
 * otherwise the smallest positive distance between two distinct event times.
 * Measures are sorted by name. A later reading of the same measure and step
 * overrides an earlier one.
 *
 * Throws CANOPY_IMPUTATION_BAD_INPUT when there are fewer than two distinct
 * times, or a time does not fall on the grid.
 */
export function frameFromReadings(readings: readonly FrameReading[], stepMs?: number): SeriesFrame {
  const times = [...new Set(readings.map((r) => r.eventTime))].sort((a, b) => a - b);
  if (times.length < 2) {
    throw new CanopyError(
      'CANOPY_IMPUTATION_BAD_INPUT',
      'imputation needs readings at two or more distinct times',
    );
  }
  let step = stepMs ?? Infinity;
  if (stepMs === undefined) {
    for (let i = 1; i < times.length; i++) step = Math.min(step, times[i]! - times[i - 1]!);
  }
  const startMs = times[0]!;
  const length = Math.round((times[times.length - 1]! - startMs) / step) + 1;
  const measures = [...new Set(readings.map((r) => r.measure))].sort();
  const index = new Map(measures.map((m, i) => [m, i]));
  const values = measures.map(() => new Float64Array(length).fill(NaN));
  for (const r of readings) {
    const t = (r.eventTime - startMs) / step;
    if (!Number.isInteger(t)) {
      throw new CanopyError(
        'CANOPY_IMPUTATION_BAD_INPUT',
        `reading of ${r.measure} at ${new Date(r.eventTime).toISOString()} is off the ${step} ms grid`,
      );
    }
    values[index.get(r.measure)!]![t] = r.value === null ? NaN : r.value;
  }
  return { startMs, stepMs: step, measures, values };
}

/** The first `steps` steps of the frame (views, not copies). */
export function headOfFrame(frame: SeriesFrame, steps: number): SeriesFrame {
  return { ...frame, values: frame.values.map((v) => v.subarray(0, steps)) };
}

/** Number of steps in the frame. */
export function frameLength(frame: SeriesFrame): number {
  return frame.values[0]?.length ?? 0;
}
