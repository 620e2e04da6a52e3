/**
 * Options of `runSimulator`, with their defaults, and the check that runs
 * before anything starts.
 */
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';

/** Publish to an MQTT broker with mqtt.js. */
export interface MqttTarget {
  kind: 'mqtt';
  /** e.g. `mqtt://127.0.0.1:1883`. */
  url: string;
  /** Default `iot/data`. */
  topic?: string;
  /** Default 1: a message counts as sent once its PUBACK arrives. With 0, once written to the socket. */
  qos?: 0 | 1;
  /** Default 1 (one JSON object per message); above 1 each message is a JSON array. */
  readingsPerMessage?: number;
  /** Messages published and not yet acknowledged, at most. Default 100. */
  maxInFlight?: number;
  /** Default `canopy-sim-<random>`. */
  clientId?: string;
  username?: string;
  password?: string;
}

/** POST batches to an HTTP endpoint such as Canopy's `/api/data`. */
export interface HttpTarget {
  kind: 'http';
  /** e.g. `http://127.0.0.1:3000/api/data`. */
  url: string;
  /** Readings per request. Default 100. */
  batchSize?: number;
  /** `json` (an array, `application/json`; the default) or `ndjson` (`application/x-ndjson`). */
  format?: 'json' | 'ndjson';
  /** Requests outstanding at once. Default 4. */
  maxInFlight?: number;
  /**
   * Retries of one request after a 503 or 429 (waiting `Retry-After`, capped
   * at 30 s; 1 s when absent) or a network error (backing off). Default 3.
   * Other non-2xx answers are not retried: the batch counts as failed.
   */
  maxRetries?: number;
  /** Per-attempt timeout, ms. Default 10 000. */
  timeoutMs?: number;
  /** Extra request headers (e.g. `authorization`). */
  headers?: Record<string, string>;
}

/** Write files into a folder, each one atomically (temp name, then rename). */
export interface FileTarget {
  kind: 'file';
  dir: string;
  /** `ndjson` (the default) or `csv` (long form `timestamp,device_id,value,unit,anomaly_score`). */
  format?: 'ndjson' | 'csv';
  /** Readings per file. Default 1000. */
  readingsPerFile?: number;
  /** File names are `<prefix>-<run id>-<6-digit seq>.<ext>`. Default `sim`. */
  prefix?: string;
  /**
   * In continuous and paced replay modes, a file that is not full is written
   * anyway once its first reading is this old (clock ms). Default 5000.
   */
  maxDelayMs?: number;
}

export type SimulatorTarget = MqttTarget | HttpTarget | FileTarget;

export type SimulatorMode = 'continuous' | 'batch' | 'replay';

export interface SimulatorOptions {
  /**
   * - `continuous`: readings in event time = now, paced by timers, until
   *   `stop()` (or `count` readings).
   * - `batch`: `count` readings as fast as the target accepts, then done.
   * - `replay`: the rows of a long CSV `file`, as fast as possible or at
   *   `speed`× the original pace, then done.
   */
  mode: SimulatorMode;
  target: SimulatorTarget;

  /** Fleet size (continuous, batch). Default 50. */
  sensors?: number;
  /** Default 1. */
  seed?: number;
  /** Fraction of readings with an injected anomaly. Default 0.02. */
  anomalyRate?: number;
  /**
   * Interval of each sensor, ms (continuous, batch). Default 1000. In
   * continuous mode `ratePerSecond`, when given, decides it instead:
   * intervalMs = round(sensors × 1000 / ratePerSecond).
   */
  intervalMs?: number;

  /** Continuous: readings per second over the fleet. Default sensors × 1000 / intervalMs (50). */
  ratePerSecond?: number;
  /** Continuous and paced replay: how often the timer wakes, ms. Default 100. */
  tickMs?: number;

  /** Batch: readings to send (required). Continuous: stop after this many (default: no limit). */
  count?: number;
  /**
   * Batch: event time of the first slot, epoch ms. Default: early enough that
   * the batch ends shortly before now (it never runs into the future).
   */
  start?: number;

  /** Replay: path of the long CSV file (required). */
  file?: string;
  /** Replay: 0 or absent = as fast as possible; k = k× the pace of the file's timestamps. */
  speed?: number;
  /**
   * Replay: move timestamps to now. Paced: each row gets the time it is due
   * (the first row = start). Unpaced: one offset for all, so the latest row = now.
   * Default false (timestamps as in the file, normalised to ISO).
   */
  shiftToNow?: boolean;

  /** After `stop()`, how long to wait for unacknowledged sends before counting them failed, ms. Default 5000. */
  stopTimeoutMs?: number;
}

export interface SimulatorDeps {
  clock: Clock;
  logger: Logger;
}

function isPositiveInt(v: unknown): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1;
}

function checkUrl(value: string, protocols: string[], problems: string[], name: string): void {
  try {
    const u = new URL(value);
    if (!protocols.includes(u.protocol)) {
      problems.push(`${name}: protocol must be one of ${protocols.join(' ')}, got ${u.protocol}`);
    }
  } catch {
    problems.push(`${name}: not a URL: ${value}`);
  }
}

/**
 * Lists every problem with the options at once; throws CANOPY_CONFIG_INVALID
 * (with `details: string[]`) if there is any. Runs before anything starts.
 */
export function validateSimulatorOptions(o: SimulatorOptions): void {
  const problems: string[] = [];
  const positiveInts: [string, unknown][] = [
    ['sensors', o.sensors],
    ['intervalMs', o.intervalMs],
    ['tickMs', o.tickMs],
    ['stopTimeoutMs', o.stopTimeoutMs],
  ];
  for (const [name, v] of positiveInts) {
    if (v !== undefined && !isPositiveInt(v)) problems.push(`${name} must be a positive integer`);
  }
  if (o.anomalyRate !== undefined && !(o.anomalyRate >= 0 && o.anomalyRate <= 1)) {
    problems.push('anomalyRate must be within 0..1');
  }
  if (o.seed !== undefined && !Number.isFinite(o.seed))
    problems.push('seed must be a finite number');
  if (o.ratePerSecond !== undefined && !(o.ratePerSecond > 0 && Number.isFinite(o.ratePerSecond))) {
    problems.push('ratePerSecond must be a positive number');
  }
  if (o.start !== undefined && !Number.isFinite(o.start)) problems.push('start must be epoch ms');

  switch (o.mode) {
    case 'continuous':
      if (o.count !== undefined && !isPositiveInt(o.count))
        problems.push('count must be a positive integer');
      break;
    case 'batch':
      if (!isPositiveInt(o.count)) problems.push('batch mode needs count, a positive integer');
      break;
    case 'replay':
      if (typeof o.file !== 'string' || o.file === '') problems.push('replay mode needs file');
      if (o.speed !== undefined && !(o.speed >= 0 && Number.isFinite(o.speed))) {
        problems.push('speed must be 0 (as fast as possible) or a positive number');
      }
      break;
    default:
      problems.push(
        `mode must be continuous, batch or replay, got ${String((o as { mode: unknown }).mode)}`,
      );
  }

  const t = o.target as SimulatorTarget | undefined;
  switch (t?.kind) {
    case 'mqtt':
      checkUrl(
        t.url,
        ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'],
        problems,
        'target.url',
      );
      if (t.topic !== undefined && (t.topic === '' || /[+#]/.test(t.topic))) {
        problems.push('target.topic must be a non-empty topic without wildcards');
      }
      if (t.qos !== undefined && t.qos !== 0 && t.qos !== 1)
        problems.push('target.qos must be 0 or 1');
      if (t.readingsPerMessage !== undefined && !isPositiveInt(t.readingsPerMessage)) {
        problems.push('target.readingsPerMessage must be a positive integer');
      }
      if (t.maxInFlight !== undefined && !isPositiveInt(t.maxInFlight)) {
        problems.push('target.maxInFlight must be a positive integer');
      }
      break;
    case 'http':
      checkUrl(t.url, ['http:', 'https:'], problems, 'target.url');
      if (t.batchSize !== undefined && !isPositiveInt(t.batchSize)) {
        problems.push('target.batchSize must be a positive integer');
      }
      if (t.format !== undefined && t.format !== 'json' && t.format !== 'ndjson') {
        problems.push('target.format must be json or ndjson');
      }
      if (t.maxInFlight !== undefined && !isPositiveInt(t.maxInFlight)) {
        problems.push('target.maxInFlight must be a positive integer');
      }
      if (t.maxRetries !== undefined && !(Number.isInteger(t.maxRetries) && t.maxRetries >= 0)) {
        problems.push('target.maxRetries must be a non-negative integer');
      }
      if (t.timeoutMs !== undefined && !isPositiveInt(t.timeoutMs)) {
        problems.push('target.timeoutMs must be a positive integer');
      }
      break;
    case 'file':
      if (typeof t.dir !== 'string' || t.dir === '') problems.push('target.dir is required');
      if (t.format !== undefined && t.format !== 'ndjson' && t.format !== 'csv') {
        problems.push('target.format must be ndjson or csv');
      }
      if (t.readingsPerFile !== undefined && !isPositiveInt(t.readingsPerFile)) {
        problems.push('target.readingsPerFile must be a positive integer');
      }
      if (t.prefix !== undefined && !/^[A-Za-z0-9._-]+$/.test(t.prefix)) {
        problems.push('target.prefix may hold only letters, digits, ".", "_" and "-"');
      }
      if (t.maxDelayMs !== undefined && !(Number.isFinite(t.maxDelayMs) && t.maxDelayMs >= 0)) {
        problems.push('target.maxDelayMs must be a non-negative number');
      }
      break;
    default:
      problems.push('target.kind must be mqtt, http or file');
  }

  if (problems.length > 0) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `invalid simulator options: ${problems.join('; ')}`,
      {
        details: problems,
      },
    );
  }
}
