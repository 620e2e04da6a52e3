/**
 * The paced load driver of the alert-latency scenario. Unlike the windowed
 * driver (driver.ts), which sends as fast as acknowledgements allow, this one
 * sends background units at a steady rate and interleaves trigger readings,
 * each for a sensor never seen before, so each should open exactly one alert
 * and cause exactly one webhook notification.
 *
 * Phases end by time only: warm-up (`warmupMs`), measurement (`measureMs`),
 * then the drain (nothing new is sent; every PUBACK is awaited), then the
 * wait for the notifications still missing (`pace.notificationTimeoutMs` at
 * most). A trigger counts as measured when it was sent during the measured
 * window. Send, PUBACK and arrival times all come from this process's
 * `performance.now()`, so a latency never mixes two clocks.
 *
 * Trigger gaps are uniform in [minGapMs, maxGapMs] (seeded) rather than
 * fixed, so triggers fall at every phase of the background sends and of
 * Canopy's group commits instead of locking onto one.
 */
import { percentiles, type Connection } from './driver.js';
import type {
  ChildMessage,
  LatencySummary,
  RunResult,
  RunSpec,
  TriggerResult,
} from './protocol.js';
import type { Unit } from './readings.js';
import type { WebhookReceiver } from './receiver.js';

/** Trigger numbering, carried across runs so every trigger sensor is fresh. */
export interface TriggerCounter {
  next: number;
}

interface Trigger {
  sensorId: string;
  sentAt: number;
  measured: boolean;
  pubackMs: number | null;
}

/** Seeded uniform [0, 1) (mulberry32): reproducible trigger gaps. */
function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function summary(values: number[]): LatencySummary {
  if (values.length === 0) return { count: 0, p50: 0, p95: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number =>
    Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 100) / 100;
  return {
    count: sorted.length,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: Math.round(sorted[sorted.length - 1]! * 100) / 100,
  };
}

function triggerPayload(sensorId: string, value: number): Buffer {
  return Buffer.from(
    JSON.stringify({
      sensor_id: sensorId,
      sensor_type: 'temperature',
      value,
      unit: 'C',
      timestamp: new Date().toISOString(),
      location: 'bench/triggers',
    }),
  );
}

export async function drivePaced(
  units: readonly Unit[],
  spec: RunSpec,
  conn: Connection,
  notify: (m: ChildMessage) => void,
  /** Needed when `spec.pace.triggers` is set. */
  receiver: WebhookReceiver | undefined,
  counter: TriggerCounter,
  seed: number,
): Promise<RunResult> {
  const pace = spec.pace;
  if (pace === undefined) throw new Error('drivePaced needs spec.pace');
  if (units.length === 0) throw new Error(`payload set ${spec.set} is empty`);
  const period = 1000 / pace.unitsPerSecond;
  const gap = uniform(seed + counter.next);
  const triggerSpec = pace.triggers;
  if (triggerSpec !== undefined && receiver === undefined)
    throw new Error('paced triggers need a webhook receiver');
  // Without triggers the next one is never due.
  const nextGap = (): number =>
    triggerSpec === undefined
      ? Infinity
      : triggerSpec.minGapMs + gap() * (triggerSpec.maxGapMs - triggerSpec.minGapMs);

  const triggers: Trigger[] = [];
  const unitLatencies: number[] = [];
  let phase: 'warmup' | 'measure' | 'drain' = 'warmup';
  let endedBy: RunResult['endedBy'] = 'time';
  let cursor = 0;
  let sent = 0;
  let inflight = 0;
  let acked = 0;
  let ackedUnits = 0;
  let measuredReadings = 0;
  let measuredUnits = 0;
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  let t0 = 0;
  let warmupReadings = 0;
  let measuredMs = 0;
  let cpu0 = process.cpuUsage();
  let loadCpu = 0;
  let nextUnitAt = started;
  let nextTriggerAt = started + nextGap();
  let timer: NodeJS.Timeout | undefined;
  let drained: () => void = () => undefined;
  const allAcked = new Promise<void>((resolve) => (drained = resolve));

  const startMeasure = (now: number): void => {
    phase = 'measure';
    t0 = now;
    warmupReadings = acked;
    cpu0 = process.cpuUsage();
    notify({ type: 'measuring' });
  };
  const endMeasure = (now: number, by: RunResult['endedBy']): void => {
    if (phase === 'warmup') startMeasure(now);
    if (phase !== 'measure') return;
    phase = 'drain';
    endedBy = by;
    measuredMs = now - t0;
    const cpu = process.cpuUsage(cpu0);
    loadCpu = (cpu.user + cpu.system) / 1000 / measuredMs;
    notify({ type: 'measured' });
  };
  const settle = (): void => {
    if (phase === 'drain' && inflight === 0) drained();
  };
  const failed = (err: Error): void => {
    errors++;
    firstError ??= err.message;
    endMeasure(performance.now(), 'error');
  };

  const sendUnit = (unit: Unit): void => {
    const sentAt = performance.now();
    const measured = phase === 'measure';
    sent++;
    inflight++;
    conn.send(unit, (err, accepted) => {
      inflight--;
      if (err) failed(err);
      else {
        acked += accepted;
        ackedUnits++;
        if (measured) {
          measuredReadings += accepted;
          measuredUnits++;
          unitLatencies.push(performance.now() - sentAt);
        }
      }
      settle();
    });
  };

  const sendTrigger = (): void => {
    const { sensorPrefix, value } = triggerSpec!;
    const sensorId = `${sensorPrefix}${++counter.next}`;
    const unit: Unit = { payload: triggerPayload(sensorId, value), readings: 1 };
    const trigger: Trigger = {
      sensorId,
      sentAt: performance.now(),
      measured: phase === 'measure',
      pubackMs: null,
    };
    triggers.push(trigger);
    inflight++;
    conn.send(unit, (err, accepted) => {
      inflight--;
      if (err) failed(err);
      else {
        acked += accepted;
        trigger.pubackMs = performance.now() - trigger.sentAt;
      }
      settle();
    });
  };

  const tick = (): void => {
    const now = performance.now();
    if (phase === 'warmup' && now - started >= spec.warmupMs) startMeasure(now);
    if (phase === 'measure' && now - t0 >= spec.measureMs) endMeasure(now, 'time');
    if (phase === 'drain') {
      settle();
      return;
    }
    while (nextUnitAt <= now && inflight < spec.window) {
      if (cursor >= units.length) {
        if (!spec.cycle) {
          endMeasure(now, 'exhausted');
          settle();
          return;
        }
        cursor = 0;
      }
      sendUnit(units[cursor++]!);
      nextUnitAt += period;
    }
    while (nextTriggerAt <= now) {
      sendTrigger();
      nextTriggerAt += nextGap();
    }
    const phaseEnd = phase === 'warmup' ? started + spec.warmupMs : t0 + spec.measureMs;
    const wake = Math.min(nextUnitAt, nextTriggerAt, phaseEnd);
    timer = setTimeout(tick, Math.max(0, wake - performance.now()));
  };
  tick();
  await allAcked;
  clearTimeout(timer);
  const drainedAt = performance.now();

  const triggerResult =
    triggerSpec === undefined || receiver === undefined
      ? undefined
      : await triggerOutcome(triggers, receiver, {
          prefix: triggerSpec.sensorPrefix,
          counter,
          timeoutMs: pace.notificationTimeoutMs,
          drainedAt,
        });

  const seconds = measuredMs / 1000;
  return {
    label: spec.label,
    readingsPerSecond: seconds > 0 ? Math.round(measuredReadings / seconds) : 0,
    unitsPerSecond: seconds > 0 ? Math.round(measuredUnits / seconds) : 0,
    measuredReadings,
    measuredUnits,
    measuredMs: Math.round(measuredMs),
    endedBy,
    warmupReadings,
    warmupMs: Math.round(t0 - started),
    ackedReadings: acked,
    ackedUnits,
    unitsSent: sent,
    errors,
    firstError,
    ackLatencyMs: percentiles(unitLatencies),
    loadCpu: Math.round(loadCpu * 100) / 100,
    ...(triggerResult === undefined ? {} : { triggers: triggerResult }),
  };
}

/** Waits (up to the timeout) for the notifications still missing, then sums up the triggers. */
async function triggerOutcome(
  triggers: readonly Trigger[],
  receiver: WebhookReceiver,
  o: { prefix: string; counter: TriggerCounter; timeoutMs: number; drainedAt: number },
): Promise<TriggerResult> {
  const { counter, drainedAt } = o;
  // Wait for the notifications still missing, or give up after the timeout.
  const missing = (): number => triggers.filter((t) => !receiver.arrivals.has(t.sensorId)).length;
  if (missing() > 0) {
    await new Promise<void>((resolve) => {
      const giveUp = setTimeout(done, o.timeoutMs);
      function done(): void {
        clearTimeout(giveUp);
        receiver.onArrival = undefined;
        resolve();
      }
      receiver.onArrival = () => {
        if (missing() === 0) done();
      };
    });
  }

  let notified = 0;
  let duplicates = 0;
  let lastArrival = drainedAt;
  const alertLatencies: number[] = [];
  const pubackLatencies: number[] = [];
  for (const t of triggers) {
    const arrivals = receiver.arrivals.get(t.sensorId);
    if (arrivals === undefined) continue;
    notified++;
    duplicates += arrivals.length - 1;
    lastArrival = Math.max(lastArrival, arrivals[0]!);
    if (!t.measured) continue;
    alertLatencies.push(arrivals[0]! - t.sentAt);
    if (t.pubackMs !== null) pubackLatencies.push(t.pubackMs);
  }
  // Known: a trigger of this process, this run or an earlier one.
  const prefix = o.prefix;
  let unknown = receiver.malformed;
  for (const id of receiver.arrivals.keys()) {
    const n = id.startsWith(prefix) ? Number(id.slice(prefix.length)) : NaN;
    if (!(Number.isInteger(n) && n >= 1 && n <= counter.next)) unknown++;
  }

  return {
    sent: triggers.length,
    measured: triggers.filter((t) => t.measured).length,
    notified,
    duplicates,
    unknown,
    alertLatencyMs: summary(alertLatencies),
    pubackLatencyMs: summary(pubackLatencies),
    lastNotificationAfterDrainMs: Math.round(lastArrival - drainedAt),
  };
}
