import { describe, expect, it } from 'vitest';
import type { Reading } from '../core/reading.js';
import { StreamChecker, type StreamCheckOptions } from './checks.js';

const options: StreamCheckOptions = {
  zscoreWindow: 60,
  zscoreMinHistory: 10,
  zscoreThreshold: 3,
  deviceScoreThreshold: 0.5,
};

function reading(value: number | null, extra: Partial<Reading> = {}): Reading {
  return {
    sensorId: 's1',
    sensorType: 'temperature',
    location: null,
    eventTime: 0,
    value,
    unit: 'C',
    anomalyScore: null,
    ...extra,
  };
}

/** Independent oracle: z of values[i] against the `window` values before it, sample sd. */
function oracleZ(values: number[], i: number, window: number): number | undefined {
  const previous = values.slice(Math.max(0, i - window), i);
  if (previous.length < options.zscoreMinHistory) return undefined;
  const mean = previous.reduce((a, b) => a + b, 0) / previous.length;
  const variance = previous.reduce((a, b) => a + (b - mean) ** 2, 0) / (previous.length - 1);
  return variance === 0 ? undefined : (values[i]! - mean) / Math.sqrt(variance);
}

describe('StreamChecker', () => {
  const noRange = () => undefined;

  it('flags the z-score exactly where a plain recomputation says |z| > 3', () => {
    // A deterministic wavy series with spikes every 37 readings.
    const values = Array.from(
      { length: 600 },
      (_, i) => 20 + Math.sin(i / 7) + (i % 37 === 36 ? 9 : 0),
    );
    const checker = new StreamChecker(options, noRange);
    let fired = 0;
    values.forEach((v, i) => {
      const flags = checker.check(reading(v));
      const z = oracleZ(values, i, options.zscoreWindow);
      const expected = z !== undefined && Math.abs(z) > options.zscoreThreshold;
      expect(flags.anomalyReasons.includes('zscore'), `reading ${i}`).toBe(expected);
      if (expected) fired++;
    });
    expect(fired).toBeGreaterThan(10);
  });

  it('does not fire before minHistory readings, nor on a stuck sensor', () => {
    const checker = new StreamChecker(options, noRange);
    for (let i = 0; i < 9; i++) checker.check(reading(i % 2));
    expect(checker.check(reading(1000)).isAnomaly).toBe(false); // only 9 before it
    const stuck = new StreamChecker(options, noRange);
    for (let i = 0; i < 20; i++) stuck.check(reading(5));
    expect(stuck.check(reading(6)).anomalyReasons).not.toContain('zscore');
    // 0.1 is not exact in binary: the float mean of a run of 0.1 is not 0.1 either.
    const stuckOnInexact = new StreamChecker(options, noRange);
    for (let i = 0; i < 60; i++) stuckOnInexact.check(reading(0.1));
    expect(stuckOnInexact.check(reading(0.2)).anomalyReasons).not.toContain('zscore');
  });

  it('keeps one history per sensor', () => {
    const checker = new StreamChecker(options, noRange);
    for (let i = 0; i < 30; i++) checker.check(reading(20 + (i % 3) * 0.1, { sensorId: 'a' }));
    // Sensor b has no history yet: a far value is not a z-score anomaly for it.
    expect(checker.check(reading(500, { sensorId: 'b' })).isAnomaly).toBe(false);
    expect(checker.check(reading(500, { sensorId: 'a' })).anomalyReasons).toEqual(['zscore']);
  });

  it('flags range and device-score anomalies and lists every rule that fired', () => {
    const checker = new StreamChecker(options, (_id, type) =>
      type === 'temperature' ? { min: -40, max: 85 } : undefined,
    );
    for (let i = 0; i < 20; i++) checker.check(reading(20 + (i % 2)));
    expect(checker.check(reading(90, { anomalyScore: 0.9 })).anomalyReasons).toEqual([
      'range',
      'zscore',
      'device',
    ]);
    expect(checker.check(reading(85)).anomalyReasons).not.toContain('range'); // bounds are inclusive
    expect(checker.check(reading(21, { anomalyScore: 0.5 })).isAnomaly).toBe(false); // > 0.5, not >=
    expect(checker.check(reading(null, { anomalyScore: 0.7 })).anomalyReasons).toEqual(['device']);
    expect(checker.check(reading(null)).isAnomaly).toBe(false);
  });

  it('warms from stored history so a restart sees the same z-scores', () => {
    const values = Array.from({ length: 80 }, (_, i) => 10 + Math.cos(i));
    const continuous = new StreamChecker(options, noRange);
    values.forEach((v) => continuous.check(reading(v)));
    const restarted = new StreamChecker(options, noRange);
    restarted.warm(new Map([['s1', values]]));
    for (const probe of [10.5, 13, 14.2, 7]) {
      expect(restarted.check(reading(probe))).toEqual(continuous.check(reading(probe)));
    }
  });
});
