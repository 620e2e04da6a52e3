/**
 * Messages between the bench process (which hosts the system under test) and
 * a load-generator child process. The child is started with its parameters
 * in `BENCH_LOAD_PARAMS` (JSON), generates every payload, reports `ready`,
 * then executes `run` commands one at a time until told to `exit`.
 */

/** What a load process generates before any timing starts. */
export interface LoadParams {
  /** Readings to generate per payload set (e.g. 1 or 100 per MQTT message, 1000 per HTTP body). */
  readingsPerUnit: number;
  /** Payload sets to build, each from its own distinct readings (distinct timestamps). */
  sets: { name: string; encoding: 'json-object' | 'json-array' | 'ndjson'; units: number }[];
  /** Simulated sensors (round-robin over types and locations). */
  sensors: number;
  /** Fleet seed, so a run is reproducible. */
  seed: number;
  /**
   * Start a webhook receiver (HTTP on 127.0.0.1, port 0) that records alert
   * notifications by `alert.sensorId`; its port comes with `ready`.
   */
  receiver?: boolean;
}

/**
 * A paced run (instead of a windowed one): units go out at a steady rate,
 * and trigger readings are interleaved for the alert-latency scenario.
 */
export interface PacedLoad {
  /** Units (messages) sent per second, evenly spaced. */
  unitsPerSecond: number;
  /**
   * One reading per trigger message, for a sensor never seen before
   * (`<sensorPrefix><n>`, n counting on across runs) with this value. Gaps
   * between triggers are uniform in [minGapMs, maxGapMs]. Without it (the
   * soak), only the background units go out.
   */
  triggers?: { sensorPrefix: string; value: number; minGapMs: number; maxGapMs: number };
  /** After the drain, how long to wait for the notifications still missing. */
  notificationTimeoutMs: number;
}

export interface MqttTarget {
  kind: 'mqtt';
  port: number;
  topic: string;
}

export interface HttpTarget {
  kind: 'http';
  port: number;
  path: string;
}

export interface RunSpec {
  /** A label for the result, e.g. `canopy` or `bare-aedes`. */
  label: string;
  target: MqttTarget | HttpTarget;
  /** Which payload set to send. */
  set: string;
  /**
   * true: start at the set's first payload and start over when it runs out
   * (only for peers, which store nothing). false: continue after the last
   * payload an earlier non-cycling run sent, so that Canopy sees every
   * reading once even when a run is repeated.
   */
  cycle: boolean;
  /** Units (messages or requests) in flight at most. */
  window: number;
  /** Warm-up ends at this many acknowledged readings or after warmupMs, whichever is first. */
  warmupReadings: number;
  warmupMs: number;
  /** Measurement ends at this many acknowledged readings or after measureMs, whichever is first. */
  measureReadings: number;
  measureMs: number;
  /** Paced instead of windowed: `window` then only caps what is in flight. */
  pace?: PacedLoad;
}

/** Latency summary, ms. */
export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** What a paced run's triggers gave (measured by the child: one clock at both ends). */
export interface TriggerResult {
  /** Triggers sent in the whole run (warm-up, measurement), each expecting one notification. */
  sent: number;
  /** Triggers sent during the measured window. */
  measured: number;
  /** Triggers of this run with a notification received. */
  notified: number;
  /** Notifications beyond the first for a trigger of this run. */
  duplicates: number;
  /** Notifications so far (this process, every run) for no trigger it sent; expected 0. */
  unknown: number;
  /** Publish → webhook received, over the measured triggers that were notified. */
  alertLatencyMs: LatencySummary;
  /** Publish → PUBACK of the same measured trigger messages (broker + durable commit). */
  pubackLatencyMs: LatencySummary;
  /** How long after the drain the last notification of the run arrived, ms. */
  lastNotificationAfterDrainMs: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface RunResult {
  label: string;
  /** Acknowledged readings per second over the measured window. */
  readingsPerSecond: number;
  /** Acknowledged units (messages / requests) per second over the measured window. */
  unitsPerSecond: number;
  measuredReadings: number;
  measuredUnits: number;
  measuredMs: number;
  /** What ended the measurement. */
  endedBy: 'count' | 'time' | 'exhausted' | 'error';
  warmupReadings: number;
  warmupMs: number;
  /** Every reading acknowledged in the run: warm-up, measured and the drain after it. */
  ackedReadings: number;
  ackedUnits: number;
  /** Units sent in this run (acknowledged + failed). */
  unitsSent: number;
  /** Units that failed (no PUBACK / non-2xx); any of these makes the run invalid. */
  errors: number;
  firstError: string | null;
  /** Send → acknowledgement latency of the units acknowledged in the measured window, ms. */
  ackLatencyMs: Percentiles;
  /** CPU the load generator used over the measured window, as a share of one core (1 = 100 %). */
  loadCpu: number;
  /** Paced runs only. */
  triggers?: TriggerResult;
}

export type ParentMessage = { type: 'run'; spec: RunSpec } | { type: 'exit' };

export type ChildMessage =
  | {
      type: 'ready';
      generatedReadings: number;
      generatedBytes: number;
      generateMs: number;
      /** With `LoadParams.receiver`: the webhook receiver's port. */
      receiverPort?: number;
    }
  | { type: 'measuring' }
  | { type: 'measured' }
  | { type: 'result'; result: RunResult }
  | { type: 'error'; message: string };
