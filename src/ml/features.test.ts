import { describe, expect, it } from 'vitest';
import { featureNames, featureRow, gapAround, missingRows, stepsPerDay } from './features.js';
import type { SeriesFrame } from './frame.js';

const HOUR = 3_600_000;

/** 1970-01-01T00:00Z (a Thursday), hourly: a = 1 2 _ _ 5 6, b = 10 20 30 40 50 _. */
const frame: SeriesFrame = {
  startMs: 0,
  stepMs: HOUR,
  measures: ['a', 'b'],
  values: [Float64Array.from([1, 2, NaN, NaN, 5, 6]), Float64Array.from([10, 20, 30, 40, 50, NaN])],
};

describe('gapAround', () => {
  it('finds the missing run, its neighbours and the interpolation', () => {
    expect(gapAround(frame.values[0]!, 2)).toEqual({
      t: 2,
      gapStart: 2,
      gapEnd: 3,
      gapLength: 2,
      before: 2,
      after: 5,
      stepsFromBefore: 1,
      stepsToAfter: 2,
      interpolation: 3, // 2 + (5 - 2) · 1/3
    });
  });

  it('treats a forced range as missing and extends it over adjacent missing steps', () => {
    expect(gapAround(frame.values[1]!, 2, 1, 3)).toMatchObject({
      gapStart: 1,
      gapEnd: 3,
      before: 10,
      after: 50,
      stepsFromBefore: 2,
      stepsToAfter: 2,
      interpolation: 30, // 10 + (50 - 10) · 2/4
    });
    // forced 3..4, and step 5 (the last) is missing: the run reaches the end
    const gap = gapAround(frame.values[1]!, 4, 3, 4);
    expect(gap).toMatchObject({ gapStart: 3, gapEnd: 5, gapLength: 3, before: 30 });
    expect(gap.after).toBeNaN();
    expect(gap.stepsToAfter).toBeNaN();
    expect(gap.interpolation).toBeNaN();
  });

  it('has no value before a gap at the start', () => {
    const gap = gapAround(Float64Array.from([NaN, NaN, 7]), 0);
    expect(gap).toMatchObject({ gapStart: 0, gapEnd: 1, after: 7, stepsToAfter: 2 });
    expect(gap.before).toBeNaN();
    expect(gap.stepsFromBefore).toBeNaN();
  });
});

describe('featureRow', () => {
  it('computes every feature of a hand-worked example', () => {
    const row = featureRow(frame, 0, gapAround(frame.values[0]!, 2));
    const names = featureNames(frame, 0);
    const byName = Object.fromEntries(names.map((n, i) => [n, row.features[i]]));
    expect(names).toHaveLength(row.features.length);
    expect(byName).toMatchObject({
      gap_length: 2,
      steps_from_before: 1,
      steps_to_after: 2,
      before: 2,
      after: 5,
      interpolation: 3,
      b: 30,
      // b's own line between the gap's neighbour steps 1 and 4: 20 + 30 · 1/3 = 30
      b_vs_linear: 0,
    });
    expect(byName.same_time_day_before).toBeNaN(); // 24 steps back is before the series
    expect(byName.same_time_day_after).toBeNaN();
    // 02:00 UTC on a Thursday (weekday 4, Sunday = 0)
    expect(byName.hour_sin).toBeCloseTo(Math.sin((2 * Math.PI * 2) / 24), 12);
    expect(byName.hour_cos).toBeCloseTo(Math.cos((2 * Math.PI * 2) / 24), 12);
    expect(byName.weekday_sin).toBeCloseTo(Math.sin((2 * Math.PI * 4) / 7), 12);
    expect(byName.weekday_cos).toBeCloseTo(Math.cos((2 * Math.PI * 4) / 7), 12);
  });

  it('marks a co-located measure missing at t, or at a neighbour step, as NaN', () => {
    const row = featureRow(frame, 1, gapAround(frame.values[1]!, 5));
    const names = featureNames(frame, 1);
    expect(row.features[names.indexOf('a')]).toBe(6);
    // the gap of b at 5 has no step after it, so a's line cannot be drawn
    expect(row.features[names.indexOf('a_vs_linear')]).toBeNaN();
  });

  it('can build the row of a whole-device outage: other measures missing at t', () => {
    const row = featureRow(frame, 0, gapAround(frame.values[0]!, 2), true);
    const names = featureNames(frame, 0);
    expect(row.features[names.indexOf('b')]).toBeNaN();
    expect(row.features[names.indexOf('b_vs_linear')]).toBeNaN();
    expect(row.features[names.indexOf('interpolation')]).toBe(3);
  });

  it('takes the same time one day before and after when known and outside the gap', () => {
    const halfDaily: SeriesFrame = {
      startMs: 0,
      stepMs: 12 * HOUR,
      measures: ['x'],
      values: [Float64Array.from([1, 2, 3, 4, 5])],
    };
    expect(stepsPerDay(12 * HOUR)).toBe(2);
    expect(stepsPerDay(7 * HOUR)).toBeUndefined();
    const series = halfDaily.values[0]!;
    const names = featureNames(halfDaily, 0);
    const at = (row: { features: number[] }, name: string): number =>
      row.features[names.indexOf(name)]!;
    const single = featureRow(halfDaily, 0, gapAround(series, 2, 2, 2));
    expect([at(single, 'same_time_day_before'), at(single, 'same_time_day_after')]).toEqual([1, 5]);
    const wide = featureRow(halfDaily, 0, gapAround(series, 2, 0, 3));
    expect(at(wide, 'same_time_day_before')).toBeNaN(); // step 0 is inside the gap
    expect(at(wide, 'same_time_day_after')).toBe(5);
  });
});

describe('missingRows', () => {
  it('returns one row per missing step, sharing the gap', () => {
    const rows = missingRows(frame, 0);
    expect(rows.map((r) => [r.t, r.gapStart, r.gapEnd, r.interpolation])).toEqual([
      [2, 2, 3, 3],
      [3, 2, 3, 4],
    ]);
  });
});
