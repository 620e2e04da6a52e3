/**
 * Per-reading anomaly checks on the ingest path (DESIGN.md §2):
 *  - range:  value outside the physical range of its sensor (or its type);
 *  - zscore: |z| > threshold against the previous `window` non-null values of
 *            the same sensor, once at least `minHistory` of them exist;
 *  - device: the device's own `anomaly_score` above the threshold.
 *
 * The z-score uses the sample standard deviation (n − 1). When the history's
 * deviation is 0 (a stuck sensor), z is undefined and the rule does not fire;
 * the silver layer's SQL computes the same way so stream and lake agree for
 * in-order data. Every non-null value enters the sensor's history, flagged or
 * not, so a lasting level shift stops firing once the window has moved on.
 *
 * State is per sensor and in memory; `warm` seeds it from the hot store at
 * start so a restart does not blind the z-score for `minHistory` readings.
 */
import type { AnomalyFlags, Reading } from '../core/reading.js';
import type { PhysicalRange } from '../core/sensor-types.js';

export interface StreamCheckOptions {
  zscoreWindow: number;
  zscoreMinHistory: number;
  zscoreThreshold: number;
  deviceScoreThreshold: number;
}

export type AnomalyRule = 'range' | 'zscore' | 'device';

/** Looks up the physical range for a sensor; undefined = no range check. */
export type RangeLookup = (
  sensorId: string,
  sensorType: string | null,
) => PhysicalRange | undefined;

/** A fixed-size ring of the latest values of one sensor. */
class History {
  private readonly values: Float64Array;
  private next = 0;
  size = 0;

  constructor(capacity: number) {
    this.values = new Float64Array(capacity);
  }

  push(value: number): void {
    this.values[this.next] = value;
    this.next = (this.next + 1) % this.values.length;
    if (this.size < this.values.length) this.size++;
  }

  /**
   * z of `value` against the history, or undefined when every value in it is
   * the same. That is tested exactly: for a sensor stuck on 0.1 the float
   * mean is not exactly 0.1, so the computed deviation would be a tiny
   * non-zero number and any change would look infinitely anomalous.
   */
  zscore(value: number): number | undefined {
    const n = this.size;
    const first = this.values[0]!;
    let sum = 0;
    let allEqual = true;
    for (let i = 0; i < n; i++) {
      const v = this.values[i]!;
      sum += v;
      if (v !== first) allEqual = false;
    }
    if (allEqual) return undefined;
    const mean = sum / n;
    let squares = 0;
    for (let i = 0; i < n; i++) {
      const d = this.values[i]! - mean;
      squares += d * d;
    }
    const sd = Math.sqrt(squares / (n - 1));
    return (value - mean) / sd;
  }
}

/** Most readings are normal: they share one frozen result instead of allocating. */
const NOT_ANOMALOUS: AnomalyFlags = Object.freeze({
  isAnomaly: false,
  anomalyReasons: Object.freeze([]),
});

export class StreamChecker {
  private readonly histories = new Map<string, History>();

  constructor(
    private readonly options: StreamCheckOptions,
    private readonly rangeFor: RangeLookup,
  ) {}

  /** Seeds histories with values oldest first (as `HotStore.recentValues` returns them). */
  warm(recent: ReadonlyMap<string, readonly number[]>): void {
    for (const [sensorId, values] of recent) {
      const history = this.historyOf(sensorId);
      for (const v of values.slice(-this.options.zscoreWindow)) history.push(v);
    }
  }

  /** Flags one reading and adds its value to the sensor's history. Call in arrival order. */
  check(reading: Reading): AnomalyFlags {
    let reasons: AnomalyRule[] | undefined;
    const value = reading.value;
    if (value !== null) {
      const range = this.rangeFor(reading.sensorId, reading.sensorType);
      if (range && (value < range.min || value > range.max)) (reasons ??= []).push('range');
      const history = this.historyOf(reading.sensorId);
      if (history.size >= this.options.zscoreMinHistory) {
        const z = history.zscore(value);
        if (z !== undefined && Math.abs(z) > this.options.zscoreThreshold)
          (reasons ??= []).push('zscore');
      }
      history.push(value);
    }
    if (reading.anomalyScore !== null && reading.anomalyScore > this.options.deviceScoreThreshold) {
      (reasons ??= []).push('device');
    }
    return reasons ? { isAnomaly: true, anomalyReasons: reasons } : NOT_ANOMALOUS;
  }

  private historyOf(sensorId: string): History {
    let history = this.histories.get(sensorId);
    if (!history) {
      history = new History(this.options.zscoreWindow);
      this.histories.set(sensorId, history);
    }
    return history;
  }
}
