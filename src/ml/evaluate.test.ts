import { describe, expect, it } from 'vitest';
import { evaluate, formatReport, hideForScenario, type Scenario } from './evaluate.js';
import type { SeriesFrame } from './frame.js';
import { Rng } from './random.js';

const HOUR = 3_600_000;

/** One measure, v(t) = 0.5t, 1200 hourly steps, every 50th missing. */
function rampFrame(): SeriesFrame {
  const values = Float64Array.from({ length: 1200 }, (_, t) => (t % 50 === 49 ? NaN : 0.5 * t));
  return { startMs: 0, stepMs: HOUR, measures: ['ramp'], values: [values] };
}

/**
 * The errors a method must make on the ramp, computed from the hidden steps
 * alone: the nearest visible neighbours of each hidden step, then the
 * method's documented rule (interpolation, else the existing neighbour;
 * LOCF, else the next value).
 */
function rampOracle(frame: SeriesFrame, hidden: readonly number[]) {
  const visible = Float64Array.from(frame.values[0]!);
  for (const t of hidden) visible[t] = NaN;
  const errors = { linear: [] as number[], locf: [] as number[] };
  for (const t of hidden) {
    let p = t - 1;
    while (p >= 0 && Number.isNaN(visible[p]!)) p--;
    let q = t + 1;
    while (q < visible.length && Number.isNaN(visible[q]!)) q++;
    const before = p >= 0 ? visible[p]! : NaN;
    const after = q < visible.length ? visible[q]! : NaN;
    const truth = 0.5 * t;
    const linear = Number.isNaN(before)
      ? after
      : Number.isNaN(after)
        ? before
        : before + ((after - before) * (t - p)) / (q - p);
    errors.linear.push(linear - truth);
    errors.locf.push((Number.isNaN(before) ? after : before) - truth);
  }
  const mae = (e: number[]) => e.reduce((s, x) => s + Math.abs(x), 0) / e.length;
  const rmse = (e: number[]) => Math.sqrt(e.reduce((s, x) => s + x * x, 0) / e.length);
  return {
    linear: { mae: mae(errors.linear), rmse: rmse(errors.linear) },
    locf: { mae: mae(errors.locf), rmse: rmse(errors.locf) },
  };
}

describe('evaluate on a linear ramp (oracle from the hidden steps)', () => {
  const frame = rampFrame();
  for (const scenario of ['random', 'gap-6h', 'gap-24h'] as const) {
    it(`${scenario}: LOCF and interpolation errors match the oracle`, () => {
      const report = evaluate(frame, {
        seed: 5,
        scenarios: [scenario],
        methods: ['locf', 'linear'],
        maxGapSteps: 100,
      });
      const hidden = hideForScenario(frame, scenario, 5, [0])[0]!;
      const result = report.scenarios[0]!.measures[0]!;
      const oracle = rampOracle(frame, hidden);
      expect(result.hidden).toBe(hidden.length);
      expect(result.filled).toBe(hidden.length);
      expect(result.leftMissing).toBe(0);
      expect(result.scores.linear!.mae).toBeCloseTo(oracle.linear.mae, 10);
      expect(result.scores.linear!.rmse).toBeCloseTo(oracle.linear.rmse, 10);
      expect(result.scores.locf!.mae).toBeCloseTo(oracle.locf.mae, 10);
      expect(result.scores.locf!.rmse).toBeCloseTo(oracle.locf.rmse, 10);
    });
  }

  it('hides 10 % of the known values, or whole non-touching runs of 6 and 24 known steps', () => {
    const known = frame.values[0]!.filter((v) => !Number.isNaN(v)).length;
    expect(hideForScenario(frame, 'random', 5, [0])[0]).toHaveLength(Math.round(known / 10));
    for (const [scenario, steps] of [
      ['gap-6h', 6],
      ['gap-24h', 24],
    ] as [Scenario, number][]) {
      const hidden = hideForScenario(frame, scenario, 5, [0])[0]!;
      expect(hidden.length % steps).toBe(0);
      expect(hidden.length / steps).toBeGreaterThan(2);
      const runs: number[][] = [];
      for (const t of hidden) {
        const last = runs[runs.length - 1];
        if (last && t === last[last.length - 1]! + 1) last.push(t);
        else runs.push([t]);
      }
      // runs of exactly `steps`: two gaps never touch, so they never merge
      expect(runs.every((r) => r.length === steps)).toBe(true);
      expect(hidden.every((t) => !Number.isNaN(frame.values[0]![t]!))).toBe(true);
    }
  });

  it('the gap rule leaves runs longer than maxGapSteps missing, counted', () => {
    const report = evaluate(frame, {
      seed: 5,
      scenarios: ['gap-6h'],
      methods: ['linear'],
      maxGapSteps: 5,
    });
    const result = report.scenarios[0]!.measures[0]!;
    expect(result.hidden).toBeGreaterThan(0);
    expect(result.filled).toBe(0);
    expect(result.leftMissing).toBe(result.hidden);
    expect(result.scores.linear).toBeNull();
  });
});

/** x: daily sinusoid plus noise; y = 3x + 5 plus a little noise; 30 days hourly. */
function sinusoidFrame(): SeriesFrame {
  const rng = new Rng(7);
  const n = 24 * 30;
  const x = new Float64Array(n);
  const y = new Float64Array(n);
  for (let t = 0; t < n; t++) {
    x[t] = 10 * Math.sin((2 * Math.PI * t) / 24) + 2 * (rng.next() - 0.5);
    y[t] = 3 * x[t]! + 5 + 0.2 * (rng.next() - 0.5);
  }
  return { startMs: 0, stepMs: HOUR, measures: ['x', 'y'], values: [x, y] };
}

describe('evaluate with the forest', () => {
  const options = { seed: 3, forest: { trees: 20 } };

  it('the forest beats every baseline on correlated, daily data', () => {
    const report = evaluate(sinusoidFrame(), options);
    for (const scenario of report.scenarios) {
      for (const m of scenario.measures) {
        const forest = m.scores.forest!.mae;
        for (const baseline of ['mean', 'locf', 'linear'] as const) {
          expect(forest, `${scenario.scenario} ${m.measure} vs ${baseline}`).toBeLessThan(
            m.scores[baseline]!.mae,
          );
        }
      }
    }
  });

  it('is deterministic: the same seed gives the same report, another seed other hidden values', () => {
    const frame = sinusoidFrame();
    const a = evaluate(frame, options);
    expect(evaluate(frame, options)).toEqual(a);
    const b = evaluate(frame, { ...options, seed: 4 });
    expect(b).not.toEqual(a);
    for (const scenario of ['random', 'gap-6h', 'gap-24h'] as const) {
      expect(hideForScenario(frame, scenario, 4, [0, 1])).not.toEqual(
        hideForScenario(frame, scenario, 3, [0, 1]),
      );
    }
  });

  it('device-24h hides the same 24-step runs in every measure', () => {
    const frame = sinusoidFrame();
    const [x, y] = hideForScenario(frame, 'device-24h', 3, [0, 1]);
    expect(x).toEqual(y);
    expect(x!.length % 24).toBe(0);
    expect(x!.length).toBeGreaterThan(24);
  });

  it('formats a table with one row per scenario and measure', () => {
    const report = evaluate(sinusoidFrame(), { ...options, scenarios: ['random'] });
    const lines = formatReport(report).split('\n');
    expect(lines[0]).toMatch(/^SCENARIO\s+MEASURE\s+HIDDEN\s+FILLED\s+MEAN MAE\s+RMSE\s+LOCF MAE/);
    expect(lines.filter((l) => l.startsWith('random'))).toHaveLength(2);
    expect(lines[1]).toMatch(/forest$/);
  });

  it('skips measures with too few known values and refuses a frame with none', () => {
    const frame = sinusoidFrame();
    const sparse: SeriesFrame = {
      ...frame,
      measures: ['x', 'y', 'z'],
      values: [...frame.values, new Float64Array(frame.values[0]!.length).fill(NaN)],
    };
    expect(evaluate(sparse, { ...options, scenarios: ['random'] }).skipped).toEqual(['z']);
    const empty: SeriesFrame = { ...sparse, measures: ['z'], values: [sparse.values[2]!] };
    expect(() => evaluate(empty, options)).toThrow(/no measure/);
  });
});
