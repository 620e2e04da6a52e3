/**
 * Where simulated readings go: an MQTT broker, an HTTP endpoint or a folder.
 *
 * Contract of a target (the runner in run.ts relies on it):
 * - construction checks nothing on the network; `open()` prepares (connects
 *   lazily for MQTT, creates the folder for files);
 * - `send(unit)` resolves once the peer has taken the whole unit (PUBACK,
 *   2xx, file renamed into place) and otherwise rejects with
 *   CANOPY_SIMULATOR_TARGET_FAILED; it does its own retries (HTTP 503/429,
 *   network errors) and never logs: the runner counts and logs;
 * - `close(force)` releases connections; with `force`, unacknowledged sends
 *   are abandoned instead of awaited.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open as openFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import type { FileTarget, HttpTarget, MqttTarget, SimulatorTarget } from './options.js';
import { redactUrl, sleep } from './util.js';
import { toLongCsv, type SimReading } from './wire.js';

export interface Target {
  /** Readings per send: per MQTT message, per HTTP request, per file. */
  readonly unitSize: number;
  /** Sends outstanding at once, at most. */
  readonly maxInFlight: number;
  /** How long (clock ms) a partial unit may wait for more readings in paced modes; 0 = send at each tick. */
  readonly maxDelayMs: number;
  /** A name safe to log (no password). */
  readonly description: string;
  open(): Promise<void>;
  send(unit: readonly SimReading[]): Promise<void>;
  close(force: boolean): Promise<void>;
}

export interface TargetDeps {
  clock: Clock;
  logger: Logger;
}

function targetFailed(message: string, cause?: unknown, details?: unknown): CanopyError {
  return new CanopyError('CANOPY_SIMULATOR_TARGET_FAILED', message, { cause, details });
}

export function createTarget(spec: SimulatorTarget, deps: TargetDeps): Target {
  switch (spec.kind) {
    case 'mqtt':
      return new MqttSimTarget(spec, deps);
    case 'http':
      return new HttpSimTarget(spec, deps);
    case 'file':
      return new FileSimTarget(spec, deps);
  }
}

/** Publishes JSON with mqtt.js; one object per message, or an array when readingsPerMessage > 1. */
class MqttSimTarget implements Target {
  readonly unitSize: number;
  readonly maxInFlight: number;
  readonly maxDelayMs = 0;
  readonly description: string;
  private readonly topic: string;
  private readonly qos: 0 | 1;
  private client: MqttClient | null = null;
  private readonly log: Logger;
  /** Connection errors repeat every reconnect period; log the first of a streak only. */
  private errorStreak = false;

  constructor(
    private readonly spec: MqttTarget,
    deps: TargetDeps,
  ) {
    this.unitSize = spec.readingsPerMessage ?? 1;
    this.maxInFlight = spec.maxInFlight ?? 100;
    this.topic = spec.topic ?? 'iot/data';
    this.qos = spec.qos ?? 1;
    this.description = `mqtt ${redactUrl(spec.url)} topic ${this.topic}`;
    this.log = deps.logger;
  }

  open(): Promise<void> {
    // Not waiting for CONNACK: publishes made before it (or while the broker
    // is away) are queued by mqtt.js and sent on (re)connection; the runner's
    // in-flight bound keeps that queue small.
    const client = connect(this.spec.url, {
      clientId: this.spec.clientId ?? `canopy-sim-${randomBytes(4).toString('hex')}`,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...(this.spec.username === undefined ? {} : { username: this.spec.username }),
      ...(this.spec.password === undefined ? {} : { password: this.spec.password }),
    });
    client.on('connect', () => {
      if (this.errorStreak)
        this.log.info({ target: this.description }, 'simulator reconnected to the broker');
      this.errorStreak = false;
    });
    // Without a listener an 'error' event would crash the process.
    client.on('error', (err) => {
      if (!this.errorStreak)
        this.log.warn(
          { err, target: this.description },
          'simulator cannot reach the broker; retrying',
        );
      this.errorStreak = true;
    });
    client.on('offline', () => {
      if (!this.errorStreak)
        this.log.warn({ target: this.description }, 'simulator lost the broker; retrying');
      this.errorStreak = true;
    });
    this.client = client;
    return Promise.resolve();
  }

  async send(unit: readonly SimReading[]): Promise<void> {
    const client = this.client;
    if (client === null) throw targetFailed('mqtt target used before open()');
    const payload =
      this.unitSize === 1 && unit.length === 1 ? JSON.stringify(unit[0]) : JSON.stringify(unit);
    try {
      await client.publishAsync(this.topic, payload, { qos: this.qos });
    } catch (err) {
      throw targetFailed(`publish to ${this.description} failed`, err);
    }
  }

  async close(force: boolean): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client === null) return;
    // Graceful end waits for outstanding PUBACKs; forced end drops them.
    await client.endAsync(force);
  }
}

/** POSTs batches as a JSON array or NDJSON. */
class HttpSimTarget implements Target {
  readonly unitSize: number;
  readonly maxInFlight: number;
  readonly maxDelayMs = 0;
  readonly description: string;
  private readonly closing = new AbortController();
  private readonly clock: Clock;

  constructor(
    private readonly spec: HttpTarget,
    deps: TargetDeps,
  ) {
    this.unitSize = spec.batchSize ?? 100;
    this.maxInFlight = spec.maxInFlight ?? 4;
    this.description = `http ${redactUrl(spec.url)}`;
    this.clock = deps.clock;
  }

  open(): Promise<void> {
    return Promise.resolve();
  }

  async send(unit: readonly SimReading[]): Promise<void> {
    const ndjson = this.spec.format === 'ndjson';
    const body = ndjson
      ? unit.map((r) => JSON.stringify(r)).join('\n') + '\n'
      : JSON.stringify(unit);
    const headers = {
      'content-type': ndjson ? 'application/x-ndjson' : 'application/json',
      ...this.spec.headers,
    };
    const maxRetries = this.spec.maxRetries ?? 3;
    const timeoutMs = this.spec.timeoutMs ?? 10_000;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(this.spec.url, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.any([this.closing.signal, AbortSignal.timeout(timeoutMs)]),
        });
      } catch (err) {
        if (this.closing.signal.aborted || attempt >= maxRetries) {
          throw targetFailed(`POST to ${this.description} failed`, err);
        }
        if (!(await sleep(250 * 2 ** attempt, this.closing.signal))) {
          throw targetFailed(`POST to ${this.description} abandoned: target closed`, err);
        }
        continue;
      }
      // Read the body in full so the keep-alive connection can be reused.
      const text = await res.text().catch(() => '');
      if (res.ok) return;
      if ((res.status === 503 || res.status === 429) && attempt < maxRetries) {
        const waitMs = this.retryAfterMs(res.headers.get('retry-after'));
        if (!(await sleep(waitMs, this.closing.signal))) {
          throw targetFailed(`POST to ${this.description} abandoned: target closed`);
        }
        continue;
      }
      throw targetFailed(`POST to ${this.description} answered ${res.status}`, undefined, {
        status: res.status,
        body: text.slice(0, 500),
      });
    }
  }

  /** Retry-After in seconds or as an HTTP date; 1 s when absent or unreadable; at most 30 s. */
  private retryAfterMs(header: string | null): number {
    const cap = 30_000;
    if (header === null || header.trim() === '') return 1000;
    const s = header.trim();
    if (/^\d+$/.test(s)) return Math.min(cap, Number(s) * 1000);
    const at = Date.parse(s);
    if (Number.isNaN(at)) return 1000;
    return Math.min(cap, Math.max(0, at - this.clock.now()));
  }

  close(): Promise<void> {
    this.closing.abort();
    return Promise.resolve();
  }
}

/**
 * Writes one file per unit. Each file is written under a hidden temporary
 * name (`.<name>.tmp`) in the same folder, synced, then renamed: a rename
 * within one file system is atomic, so a watcher sees whole files only.
 */
class FileSimTarget implements Target {
  readonly unitSize: number;
  readonly maxInFlight = 1; // sequential: file names sort in reading order
  readonly maxDelayMs: number;
  readonly description: string;
  private readonly runId: string;
  private seq = 0;

  constructor(
    private readonly spec: FileTarget,
    deps: TargetDeps,
  ) {
    this.unitSize = spec.readingsPerFile ?? 1000;
    this.maxDelayMs = spec.maxDelayMs ?? 5000;
    this.description = `file ${spec.dir}`;
    // Distinct per run, so two runs into one folder never overwrite each other.
    this.runId = `${deps.clock.now().toString(36)}${randomBytes(2).toString('hex')}`;
  }

  async open(): Promise<void> {
    try {
      await mkdir(this.spec.dir, { recursive: true });
    } catch (err) {
      throw targetFailed(`cannot create ${this.spec.dir}`, err);
    }
  }

  async send(unit: readonly SimReading[]): Promise<void> {
    const csv = this.spec.format === 'csv';
    const name = `${this.spec.prefix ?? 'sim'}-${this.runId}-${String(++this.seq).padStart(6, '0')}.${csv ? 'csv' : 'ndjson'}`;
    const finalPath = join(this.spec.dir, name);
    const tempPath = join(this.spec.dir, `.${name}.tmp`);
    const data = csv ? toLongCsv(unit) : unit.map((r) => JSON.stringify(r)).join('\n') + '\n';
    try {
      const fh = await openFile(tempPath, 'w');
      try {
        await fh.writeFile(data, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tempPath, finalPath);
    } catch (err) {
      await unlink(tempPath).catch(() => undefined);
      throw targetFailed(`cannot write ${finalPath}`, err);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
