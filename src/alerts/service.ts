/**
 * Runs the AlertEngine against an AlertStore: every engine call happens on
 * one SerialQueue and its changes are applied in call order, so the store
 * sees the same sequence the engine produced.
 *
 * Group commit: an engine call does not wait for the store. Its change set
 * joins the pending list, and one write at a time applies everything pending
 * as one merged change set (one transaction), so evaluations that arrive
 * while a write runs share the next one. Merging keeps the outcome of
 * applying the sets one by one (mergeChanges). Callers that need to know
 * (act, observe, tick, flush) wait for the write that took their set.
 *
 * Nothing is dropped when the store refuses a change set: it stays in a
 * pending list (in order), `canopy_alert_apply_failures_total` counts the
 * attempt, one error line is logged per failure streak, and the next tick
 * retries the pending sets first. While sets are pending, new ones queue
 * behind them without touching the store until that tick.
 */
import {
  ALERT_SEVERITIES,
  ALERT_STATES,
  emptyChanges,
  hasChanges,
  type Alert,
  type AlertChanges,
  type AlertStore,
  type OutboxEntry,
  type SubjectState,
} from '../core/alerts.js';
import type { Clock } from '../core/clock.js';
import { CanopyError, isCanopyError } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type {
  AlertAction,
  AlertEngine,
  EngineReading,
  KnownSensor,
  PipelineEvent,
} from './engine.js';
import type { RuleSet } from './rules/schema.js';

export interface AlertServiceOptions {
  store: AlertStore;
  engine: AlertEngine;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  /** How often `tick` runs once started. */
  tickMs: number;
  /**
   * Called with the outbox entries of each write, once they are stored
   * (hands them to the outbox dispatcher); not called for writes without any.
   */
  onQueued?: (entries: readonly OutboxEntry[]) => void;
}

const subjectKey = (s: { ruleId: string; subject: string }) => `${s.ruleId}\u0000${s.subject}`;

/**
 * One change set equal to applying `sets` one by one, in order: alerts,
 * events and outbox entries in order (a store keeps an alert's last version
 * and an outbox id's first), and per subject state only its last step (a
 * save, or a clear), since a store applies a set's clears before its saves.
 */
export function mergeChanges(sets: readonly AlertChanges[]): AlertChanges {
  if (sets.length === 1) return sets[0]!;
  const merged = emptyChanges();
  const lastStep = new Map<string, SubjectState | { ruleId: string; subject: string }>();
  const saved = new Set<string>();
  for (const c of sets) {
    merged.alerts.push(...c.alerts);
    merged.events.push(...c.events);
    merged.outbox.push(...c.outbox);
    for (const cleared of c.clearedSubjectStates) {
      lastStep.set(subjectKey(cleared), cleared);
      saved.delete(subjectKey(cleared));
    }
    for (const state of c.subjectStates) {
      lastStep.set(subjectKey(state), state);
      saved.add(subjectKey(state));
    }
  }
  for (const [key, step] of lastStep) {
    if (saved.has(key)) merged.subjectStates.push(step as SubjectState);
    else merged.clearedSubjectStates.push({ ruleId: step.ruleId, subject: step.subject });
  }
  return merged;
}

function concatChanges(a: AlertChanges, b: AlertChanges): AlertChanges {
  return {
    alerts: [...a.alerts, ...b.alerts],
    events: [...a.events, ...b.events],
    outbox: [...a.outbox, ...b.outbox],
    subjectStates: [...a.subjectStates, ...b.subjectStates],
    clearedSubjectStates: [...a.clearedSubjectStates, ...b.clearedSubjectStates],
  };
}

/** The snapshot after the tick's own changes, minus states the tick cleared. */
function withSnapshot(
  changes: AlertChanges,
  snapshot: AlertChanges['subjectStates'],
): AlertChanges {
  if (snapshot.length === 0) return changes;
  const key = (s: { ruleId: string; subject: string }) => `${s.ruleId}\u0000${s.subject}`;
  const cleared = new Set(changes.clearedSubjectStates.map(key));
  const byKey = new Map(changes.subjectStates.map((s) => [key(s), s]));
  for (const s of snapshot) if (!cleared.has(key(s))) byKey.set(key(s), s);
  return { ...changes, subjectStates: [...byKey.values()] };
}

export class AlertService {
  private readonly store: AlertStore;
  private readonly engine: AlertEngine;
  private readonly clock: Clock;
  private readonly metrics: Metrics;
  private readonly logger: Logger;
  private readonly tickMs: number;
  private readonly onQueued: ((entries: readonly OutboxEntry[]) => void) | undefined;
  private readonly queue = new SerialQueue();
  /** Change sets the store has not taken yet, oldest first. */
  private readonly pending: AlertChanges[] = [];
  /** The last write failed: sets stay pending until a forced write (tick, act) succeeds. */
  private failing = false;
  /** The write in progress, and the one queued behind it (which takes every set pending by then). */
  private writing: Promise<boolean> | undefined;
  private nextWrite: Promise<boolean> | undefined;
  private forceNext = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly changeListeners: ((alerts: readonly Alert[]) => void)[] = [];

  constructor(o: AlertServiceOptions) {
    this.store = o.store;
    this.engine = o.engine;
    this.clock = o.clock;
    this.metrics = o.metrics;
    this.logger = o.logger;
    this.tickMs = o.tickMs;
    this.onQueued = o.onQueued;
  }

  /**
   * Loads the active alerts and subject states, restores the engine and
   * starts ticking. Throws what the store throws (CANOPY_META_UNAVAILABLE).
   */
  async start(sensors: KnownSensor[]): Promise<void> {
    const [active, states] = await Promise.all([
      this.store.activeAlerts(),
      this.store.subjectStates(),
    ]);
    this.engine.restore(active, states, sensors, this.clock.now());
    this.setGauge();
    this.timer = setInterval(() => void this.tick(), this.tickMs);
    this.timer.unref();
  }

  /**
   * A committed group: its readings (accepted) and how many were rejected.
   * Returns at once; evaluation happens on the queue and storing in the
   * next write, and a failure there is logged, never thrown at the ingest path.
   */
  readingsCommitted(readings: readonly EngineReading[], rejected: number): void {
    const at = this.clock.now();
    void this.queue.run(() => {
      const end = this.metrics.alertEvaluationDuration.startTimer();
      try {
        const changes = concatChanges(
          this.engine.evaluate(readings, at),
          this.engine.observe({ kind: 'ingest', at, accepted: readings.length, rejected }),
        );
        // Not awaited: the next evaluation runs while this write does, and joins the next one.
        void this.commit(changes, false).finally(end);
      } catch (err) {
        end();
        this.logger.error({ err }, 'alert evaluation of committed readings failed');
      }
      return Promise.resolve();
    });
  }

  /** A pipeline event; resolves once its changes are stored or kept for retry. */
  async observe(event: PipelineEvent): Promise<void> {
    const { stored } = await this.queue.run(() =>
      Promise.resolve({ stored: this.commit(this.engine.observe(event), false) }),
    );
    await stored;
  }

  /**
   * Retries pending change sets, runs the engine's time-based work and
   * persists its subject-state snapshot. Never throws (logs instead).
   */
  async tick(): Promise<void> {
    const end = this.metrics.alertEvaluationDuration.startTimer();
    try {
      const { stored } = await this.queue.run(() => {
        const now = this.clock.now();
        const changes = withSnapshot(this.engine.tick(now), this.engine.snapshot());
        return Promise.resolve({ stored: this.commit(changes, true) });
      });
      await stored;
    } catch (err) {
      this.logger.error({ err }, 'alert tick failed');
    } finally {
      end();
    }
  }

  /**
   * A person's action. Returns the alert as stored after it. Throws
   * CANOPY_ALERT_NOT_FOUND, CANOPY_ALERT_INVALID_TRANSITION (a resolved alert,
   * a snooze into the past, acknowledging twice), or CANOPY_META_UNAVAILABLE
   * when the store refuses: the action is then kept with the pending change
   * sets and takes effect when the store is back.
   */
  async act(alertId: string, action: AlertAction): Promise<Alert> {
    const { changes, stored } = await this.queue.run(async () => {
      let changes: AlertChanges;
      try {
        changes = this.engine.act(alertId, action, this.clock.now());
      } catch (err) {
        if (isCanopyError(err, 'CANOPY_ALERT_NOT_FOUND')) await this.explainMissing(alertId);
        throw err;
      }
      return { changes, stored: this.commit(changes, true) };
    });
    if (!(await stored)) {
      throw new CanopyError(
        'CANOPY_META_UNAVAILABLE',
        `the action on alert ${alertId} could not be stored yet; it is kept and retried`,
      );
    }
    const alert = changes.alerts.find((a) => a.id === alertId);
    if (alert === undefined) throw new Error(`engine changed no alert ${alertId}`);
    return alert;
  }

  /** Alerts of rules that are gone (or disabled) resolve with note `rule removed`. */
  async replaceRules(rules: RuleSet): Promise<void> {
    const { stored } = await this.queue.run(() =>
      Promise.resolve({
        stored: this.commit(this.engine.setRules(rules, this.clock.now()), false),
      }),
    );
    await stored;
  }

  rules(): RuleSet {
    return this.engine.ruleSet();
  }

  /** The alerts not yet resolved, as the engine holds them (ahead of the store while a write runs). */
  activeAlerts(): readonly Alert[] {
    return this.engine.activeAlerts();
  }

  /**
   * Tells `listener` of every alert a stored write changed, each once per
   * write in its latest version. Listeners must return at once and never
   * throw (the dashboard's live stream).
   */
  onChange(listener: (alerts: readonly Alert[]) => void): void {
    this.changeListeners.push(listener);
  }

  /** Settles once every evaluation queued so far has been applied (or kept as pending). */
  async flush(): Promise<void> {
    await this.queue.drain();
    // Every set pushed so far is in the queued write, or (none queued) in the running one.
    await (this.nextWrite ?? this.writing);
  }

  /** Stops ticking, applies what is queued and stores a final subject-state snapshot. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    const { stored } = await this.queue.run(() => {
      const snapshot = this.engine.snapshot();
      return Promise.resolve({
        stored: this.commit({ ...emptyChanges(), subjectStates: snapshot }, true),
      });
    });
    if (!(await stored)) {
      this.logger.error(
        { pending: this.pending.length },
        'alert changes could not be stored before stopping; they are lost',
      );
    }
  }

  /** Loads a resolved alert to tell "resolved" from "unknown" (the engine keeps only active ones). */
  private async explainMissing(alertId: string): Promise<void> {
    let stored: Alert | undefined;
    try {
      stored = await this.store.getAlert(alertId);
    } catch (cause) {
      throw new CanopyError('CANOPY_META_UNAVAILABLE', 'the alert store is unavailable', {
        cause,
      });
    }
    if (stored?.state === 'resolved') {
      throw new CanopyError(
        'CANOPY_ALERT_INVALID_TRANSITION',
        `alert ${alertId} is resolved; it takes no more actions`,
      );
    }
  }

  /**
   * Adds a change set to the pending ones and has them written: at once, or
   * (a write running) by the write queued behind it. While the store is
   * failing, only a forced commit (tick, act, stop) touches it; the others
   * resolve false at once and their sets wait. True when this set, and every
   * one before it, was stored.
   */
  private commit(changes: AlertChanges, force: boolean): Promise<boolean> {
    if (hasChanges(changes)) this.pending.push(changes);
    if (this.failing && !force) return Promise.resolve(false);
    if (force) this.forceNext = true;
    if (this.nextWrite !== undefined) return this.nextWrite;
    if (this.writing === undefined) return this.startWrite();
    this.nextWrite = this.writing.then(() => {
      this.nextWrite = undefined;
      return this.startWrite();
    });
    return this.nextWrite;
  }

  private startWrite(): Promise<boolean> {
    const forced = this.forceNext;
    this.forceNext = false;
    if (this.failing && !forced) return Promise.resolve(false);
    const write = this.writePending().finally(() => {
      if (this.writing === write) this.writing = undefined;
    });
    this.writing = write;
    return write;
  }

  /**
   * Applies the pending sets, oldest first, all merged into one transaction;
   * after a failure one at a time, so that one refused set does not hold
   * back the sets before it. Never throws.
   */
  private async writePending(): Promise<boolean> {
    while (this.pending.length > 0) {
      const count = this.failing ? 1 : this.pending.length;
      const sets = this.pending.slice(0, count);
      try {
        await this.store.apply(mergeChanges(sets));
      } catch (err) {
        this.metrics.alertApplyFailures.inc();
        if (!this.failing) {
          this.logger.error(
            { err, pending: this.pending.length },
            'the alert store refused changes; keeping them and retrying on the next tick',
          );
        }
        this.failing = true;
        return false;
      }
      this.pending.splice(0, count);
      this.applied(sets);
    }
    if (this.failing) this.logger.info('the alert store takes changes again');
    this.failing = false;
    return true;
  }

  private applied(sets: readonly AlertChanges[]): void {
    const entries: OutboxEntry[] = [];
    const changed = new Map<string, Alert>();
    for (const changes of sets) {
      for (const e of changes.events)
        this.metrics.alertEvents.inc({ kind: e.kind, severity: e.severity });
      entries.push(...changes.outbox);
      for (const a of changes.alerts) changed.set(a.id, a);
    }
    this.setGauge();
    if (entries.length > 0) this.onQueued?.(entries);
    if (changed.size > 0)
      for (const listener of this.changeListeners) listener([...changed.values()]);
  }

  /** Every state × severity combination is set, zeros included, so a cleared one reads 0. */
  private setGauge(): void {
    const counts = new Map<string, number>();
    for (const a of this.engine.activeAlerts()) {
      const k = `${a.state}/${a.severity}`;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    for (const state of ALERT_STATES) {
      if (state === 'resolved') continue;
      for (const severity of ALERT_SEVERITIES) {
        this.metrics.alerts.set({ state, severity }, counts.get(`${state}/${severity}`) ?? 0);
      }
    }
  }
}
