/**
 * The windowed load driver shared by every load generator: keeps at most
 * `window` units (messages or requests) in flight, and counts acknowledged
 * readings through three phases:
 *
 *   warm-up  until `warmupReadings` are acknowledged or `warmupMs` passed;
 *   measure  until `measureReadings` more are acknowledged or `measureMs` passed;
 *   drain    nothing new is sent; wait for the units still in flight.
 *
 * The load never pauses between warm-up and measurement, so the measured
 * window is steady state. The first failed unit stops the run (a benchmark
 * with lost messages has no figure).
 */
import type { ChildMessage, Percentiles, RunResult, RunSpec } from './protocol.js';
import type { Unit } from './readings.js';

/** Called once per unit: the error, or the number of readings the peer acknowledged. */
export type Done = (err: Error | null, acceptedReadings: number) => void;

export interface Connection {
  send(unit: Unit, done: Done): void;
  close(): Promise<void>;
}

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { p50: 0, p90: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number =>
    round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: round(sorted[sorted.length - 1]!) };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/**
 * Runs one warm-up + measurement + drain over `units` (from the first again
 * at the end when `spec.cycle`). `result.unitsSent` tells the caller where
 * the next run may continue.
 */
export function drive(
  units: readonly Unit[],
  spec: RunSpec,
  conn: Connection,
  notify: (m: ChildMessage) => void,
): Promise<RunResult> {
  if (units.length === 0) return Promise.reject(new Error(`payload set ${spec.set} is empty`));
  return new Promise<RunResult>((resolve) => {
    let phase: 'warmup' | 'measure' | 'drain' = 'warmup';
    let finished = false;
    let pumping = false;
    let exhausted = false;
    let cursor = 0;
    let sent = 0;
    let inflight = 0;
    let acked = 0;
    let ackedUnits = 0;
    let errors = 0;
    let firstError: string | null = null;
    const started = performance.now();
    let warmupReadings = 0;
    let warmupMs = 0;
    let t0 = 0;
    let acked0 = 0;
    let units0 = 0;
    let cpu0 = process.cpuUsage();
    let measuredMs = 0;
    let measuredReadings = 0;
    let measuredUnits = 0;
    let endedBy: RunResult['endedBy'] = 'time';
    let loadCpu = 0;
    const latencies: number[] = [];
    let measureTimer: NodeJS.Timeout | undefined;

    const warmupTimer = setTimeout(() => {
      if (phase === 'warmup') startMeasure();
    }, spec.warmupMs);

    function startMeasure(): void {
      clearTimeout(warmupTimer);
      const now = performance.now();
      phase = 'measure';
      warmupReadings = acked;
      warmupMs = now - started;
      t0 = now;
      acked0 = acked;
      units0 = ackedUnits;
      cpu0 = process.cpuUsage();
      notify({ type: 'measuring' });
      measureTimer = setTimeout(() => endMeasure('time'), spec.measureMs);
    }

    function endMeasure(by: RunResult['endedBy']): void {
      if (phase !== 'measure') return;
      clearTimeout(measureTimer);
      const now = performance.now();
      phase = 'drain';
      endedBy = by;
      measuredMs = now - t0;
      measuredReadings = acked - acked0;
      measuredUnits = ackedUnits - units0;
      const cpu = process.cpuUsage(cpu0);
      loadCpu = (cpu.user + cpu.system) / 1000 / measuredMs;
      notify({ type: 'measured' });
    }

    function maybeFinish(): void {
      if (finished || phase !== 'drain' || inflight > 0) return;
      finished = true;
      clearTimeout(warmupTimer);
      clearTimeout(measureTimer);
      const seconds = measuredMs / 1000;
      resolve({
        label: spec.label,
        readingsPerSecond: seconds > 0 ? Math.round(measuredReadings / seconds) : 0,
        unitsPerSecond: seconds > 0 ? Math.round(measuredUnits / seconds) : 0,
        measuredReadings,
        measuredUnits,
        measuredMs: Math.round(measuredMs),
        endedBy,
        warmupReadings,
        warmupMs: Math.round(warmupMs),
        ackedReadings: acked,
        ackedUnits,
        unitsSent: sent,
        errors,
        firstError,
        ackLatencyMs: percentiles(latencies),
        loadCpu: Math.round(loadCpu * 100) / 100,
      });
    }

    function onDone(sentAt: number, err: Error | null, accepted: number): void {
      inflight--;
      const now = performance.now();
      if (err) {
        errors++;
        firstError ??= err.message;
        if (phase === 'warmup') startMeasure();
        endMeasure('error');
      } else {
        acked += accepted;
        ackedUnits++;
        if (phase === 'measure') latencies.push(now - sentAt);
      }
      if (phase === 'warmup' && acked >= spec.warmupReadings) startMeasure();
      if (phase === 'measure') {
        if (acked - acked0 >= spec.measureReadings) endMeasure('count');
        else if (now - t0 >= spec.measureMs) endMeasure('time');
      }
      pump();
      if (exhausted && inflight === 0) {
        if (phase === 'warmup') startMeasure();
        endMeasure('exhausted');
      }
      maybeFinish();
    }

    function pump(): void {
      // A send may complete synchronously; the outer loop carries on.
      if (pumping) return;
      pumping = true;
      try {
        while (phase !== 'drain' && inflight < spec.window) {
          if (cursor >= units.length) {
            if (!spec.cycle) {
              exhausted = true;
              break;
            }
            cursor = 0;
          }
          const unit = units[cursor++]!;
          sent++;
          inflight++;
          const sentAt = performance.now();
          conn.send(unit, (err, accepted) => onDone(sentAt, err, accepted));
        }
      } finally {
        pumping = false;
      }
    }

    pump();
  });
}
