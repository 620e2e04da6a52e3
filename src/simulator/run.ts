/**
 * runSimulator: drives a fleet (or a CSV file) into a target.
 *
 * Contract:
 * - Options are checked first; bad options throw CANOPY_CONFIG_INVALID, an
 *   unreadable replay file CANOPY_SOURCE_FILE_UNREADABLE, both synchronously.
 * - After that nothing throws: a unit the target does not take is counted in
 *   `failed` and logged (throttled), and the loop goes on. An error that ends
 *   the run early (the file vanishes mid-replay, the output folder cannot be
 *   created) is logged and kept in `stats().error`; `done` still resolves.
 * - `stop()` ends generation, sends what was already generated, waits up to
 *   `stopTimeoutMs` for acknowledgements (then counts the rest as failed),
 *   closes the connection, and resolves with `done`.
 * - `sent` counts readings the target acknowledged, `failed` readings it did
 *   not (plus replay rows that could not be read), `batches` acknowledged
 *   units (MQTT messages, HTTP requests, files).
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { CanopyError, isCanopyError } from '../core/errors.js';
import { createFleet, type Fleet } from './fleet.js';
import { validateSimulatorOptions, type SimulatorDeps, type SimulatorOptions } from './options.js';
import { latestTimestamp, readLongCsv, type BadRow } from './replay.js';
import { createTarget, type Target } from './targets.js';
import { sleep } from './util.js';
import type { SimReading } from './wire.js';

export interface SimulatorStats {
  sent: number;
  failed: number;
  batches: number;
  /** The error that ended the run early, if one did. */
  error: CanopyError | null;
}

export interface SimulatorHandle {
  /** The simulated fleet (null in replay mode), e.g. to register its sensors. */
  readonly fleet: Fleet | null;
  /** A snapshot of the counters. */
  stats(): SimulatorStats;
  /** Ends the run cleanly; resolves when `done` does. Idempotent. */
  stop(): Promise<void>;
  /** Resolves when the run has finished (batch or replay complete, or stopped). Never rejects. */
  readonly done: Promise<void>;
}

/** Failure logs at most this often; the suppressed count goes with the next one. */
const FAILURE_LOG_INTERVAL_MS = 5000;
/** Replay rows that cannot be read are logged one by one up to this many. */
const BAD_ROWS_LOGGED = 10;

/**
 * Groups readings into units of the target's size and keeps at most
 * `maxInFlight` sends outstanding: back-pressure for the generating loop.
 */
class Dispatcher {
  private buffer: SimReading[] = [];
  private bufferSince = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private giveUp: (reason: Error) => void = () => undefined;
  /** Rejects when the runner stops waiting for acknowledgements. */
  private readonly abandoned: Promise<never>;
  private lastFailureLog = -Infinity;
  private suppressedFailures = 0;

  constructor(
    private readonly target: Target,
    private readonly counters: SimulatorStats,
    private readonly log: Logger,
  ) {
    this.abandoned = new Promise<never>((_, reject) => {
      this.giveUp = reject;
    });
    this.abandoned.catch(() => undefined);
  }

  /** Adds a reading; returns a promise only when the caller must wait for room. */
  add(reading: SimReading, now: number): Promise<void> | undefined {
    if (this.buffer.length === 0) this.bufferSince = now;
    this.buffer.push(reading);
    return this.buffer.length >= this.target.unitSize ? this.flush() : undefined;
  }

  /** Sends a partial unit that has waited the target's maxDelayMs. */
  flushIfDue(now: number): Promise<void> | undefined {
    if (this.buffer.length > 0 && now - this.bufferSince >= this.target.maxDelayMs)
      return this.flush();
    return undefined;
  }

  /** Starts sending what is buffered, once a slot is free. Never rejects. */
  async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const unit = this.buffer;
    this.buffer = [];
    while (this.inFlight.size >= this.target.maxInFlight) await Promise.race(this.inFlight);
    const pending: Promise<void> = this.deliver(unit).finally(() => this.inFlight.delete(pending));
    this.inFlight.add(pending);
  }

  private async deliver(unit: readonly SimReading[]): Promise<void> {
    try {
      await Promise.race([this.target.send(unit), this.abandoned]);
      this.counters.sent += unit.length;
      this.counters.batches++;
    } catch (err) {
      this.counters.failed += unit.length;
      this.reportFailure(err, unit.length);
    }
  }

  private reportFailure(err: unknown, readings: number): void {
    const now = performance.now();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS) {
      this.suppressedFailures++;
      return;
    }
    this.lastFailureLog = now;
    this.log.warn(
      {
        err,
        target: this.target.description,
        readings,
        suppressedSinceLastLog: this.suppressedFailures,
      },
      'simulator could not deliver to its target',
    );
    this.suppressedFailures = 0;
  }

  /** Resolves once every send has settled (acknowledged, failed or abandoned). */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /**
   * Stops waiting for acknowledgements: every outstanding send, and any sent
   * later, counts as failed at once. Returns how many were outstanding.
   */
  abandon(): number {
    const outstanding = this.inFlight.size;
    this.giveUp(
      new CanopyError(
        'CANOPY_SIMULATOR_TARGET_FAILED',
        `stopped with ${outstanding} sends unacknowledged`,
      ),
    );
    return outstanding;
  }
}

/** Interval that gives `ratePerSecond` readings/s over `sensors` sensors. */
function intervalFor(o: SimulatorOptions, sensors: number): number {
  if (o.mode === 'continuous' && o.ratePerSecond !== undefined) {
    return Math.max(1, Math.round((sensors * 1000) / o.ratePerSecond));
  }
  return o.intervalMs ?? 1000;
}

/**
 * Starts a run and returns at once. See the module comment for the contract.
 * Defaults are documented on `SimulatorOptions` and the target types.
 */
export function runSimulator(options: SimulatorOptions, deps: SimulatorDeps): SimulatorHandle {
  validateSimulatorOptions(options);
  if (options.mode === 'replay') {
    const file = options.file as string;
    try {
      accessSync(file, fsConstants.R_OK);
    } catch (err) {
      throw new CanopyError('CANOPY_SOURCE_FILE_UNREADABLE', `cannot read ${file}`, { cause: err });
    }
  }

  const clock: Clock = deps.clock;
  const log = deps.logger.child({ component: 'simulator' });
  const sensors = options.sensors ?? 50;
  const fleet =
    options.mode === 'replay'
      ? null
      : createFleet({
          sensors,
          seed: options.seed ?? 1,
          anomalyRate: options.anomalyRate ?? 0.02,
          intervalMs: intervalFor(options, sensors),
        });
  const tickMs = options.tickMs ?? 100;
  // "Now" for the run is the call, not whenever the async loop gets going.
  const startedAt = clock.now();
  const counters: SimulatorStats = { sent: 0, failed: 0, batches: 0, error: null };
  const stopper = new AbortController();
  const target = createTarget(options.target, { clock, logger: log });
  const dispatcher = new Dispatcher(target, counters, log);
  // Once stopped, unacknowledged sends get stopTimeoutMs; then they are
  // abandoned, which also frees a loop blocked on a saturated target.
  let watchdog: NodeJS.Timeout | undefined;
  let abandoned = 0;
  let finished = false;
  stopper.signal.addEventListener(
    'abort',
    () => {
      if (finished) return;
      watchdog = setTimeout(() => {
        abandoned = dispatcher.abandon();
      }, options.stopTimeoutMs ?? 5000);
    },
    { once: true },
  );

  /** Sleeps one tick; sends a partial unit that has waited long enough. False once stopped. */
  async function tick(): Promise<boolean> {
    const wait = dispatcher.flushIfDue(clock.now());
    if (wait !== undefined) await wait;
    return sleep(tickMs, stopper.signal);
  }

  async function runContinuous(f: Fleet): Promise<void> {
    const cap = options.count ?? Infinity;
    let produced = 0;
    let last = startedAt;
    while (produced < cap && (await tick())) {
      const now = clock.now();
      if (now <= last) continue;
      // Every slot in (last, now]: after a stall the loop catches up rather
      // than skipping, as a buffering device would.
      for (const g of f.readings({ from: last + 1, to: now + 1, count: cap - produced })) {
        produced++;
        // Awaiting only when the dispatcher asks keeps the hot loop free of
        // a promise per reading.
        const wait = dispatcher.add(g.reading, now);
        if (wait !== undefined) await wait;
        if (stopper.signal.aborted) return;
      }
      last = now;
    }
  }

  async function runBatch(f: Fleet, count: number): Promise<void> {
    // Dropouts thin the slots a little; 5 % spare slots keep the end in the past.
    const slots = Math.ceil((count * 1.05) / f.sensors.length) + 1;
    const from =
      options.start ?? Math.floor(startedAt / f.intervalMs) * f.intervalMs - slots * f.intervalMs;
    for (const g of f.readings({ from, count })) {
      const wait = dispatcher.add(g.reading, startedAt);
      if (wait !== undefined) await wait;
      if (stopper.signal.aborted) return;
    }
  }

  async function runReplay(file: string): Promise<void> {
    const speed = options.speed ?? 0;
    const paced = speed > 0;
    const shift = options.shiftToNow ?? false;
    let badRows = 0;
    const onBadRow = (bad: BadRow): void => {
      counters.failed++;
      if (++badRows <= BAD_ROWS_LOGGED) {
        log.warn(
          { file, line: bad.line, reason: bad.reason },
          'replay skipped a row it cannot read',
        );
      }
    };
    let offset = 0;
    if (shift && !paced) {
      const latest = await latestTimestamp(file);
      if (latest !== null) offset = startedAt - latest;
    }
    let first: number | null = null;
    for await (const row of readLongCsv(file, onBadRow)) {
      if (stopper.signal.aborted) break;
      let time = row.time + offset;
      if (paced) {
        first ??= row.time;
        const due = startedAt + (row.time - first) / speed;
        while (clock.now() < due) {
          const wait = dispatcher.flushIfDue(clock.now());
          if (wait !== undefined) await wait;
          if (!(await sleep(Math.min(tickMs, due - clock.now()), stopper.signal))) return;
        }
        if (shift) time = Math.round(due);
      }
      const reading = shift
        ? { ...row.reading, timestamp: new Date(time).toISOString() }
        : row.reading;
      const wait = dispatcher.add(reading, clock.now());
      if (wait !== undefined) await wait;
    }
    if (badRows > BAD_ROWS_LOGGED) {
      log.warn({ file, badRows }, 'replay skipped rows it cannot read');
    }
  }

  const done = (async () => {
    try {
      await target.open();
      switch (options.mode) {
        case 'continuous':
          await runContinuous(fleet as Fleet);
          break;
        case 'batch':
          await runBatch(fleet as Fleet, options.count as number);
          break;
        case 'replay':
          await runReplay(options.file as string);
          break;
      }
    } catch (err) {
      counters.error = isCanopyError(err)
        ? err
        : new CanopyError('CANOPY_SIMULATOR_TARGET_FAILED', 'simulator run failed', { cause: err });
      log.error({ err }, 'simulator run ended early');
    }
    await dispatcher.flush();
    await dispatcher.settle();
    finished = true;
    clearTimeout(watchdog);
    try {
      await target.close(abandoned > 0);
    } catch (err) {
      log.warn({ err, target: target.description }, 'simulator could not close its target cleanly');
    }
  })();

  return {
    fleet,
    stats: () => ({ ...counters }),
    stop: async () => {
      stopper.abort();
      await done;
    },
    done,
  };
}
