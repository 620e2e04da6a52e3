/**
 * Runs the AlertEngine against an AlertStore: every engine call happens on
 * one SerialQueue and its changes are applied in call order, so the store
 * sees the same sequence the engine produced.
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
  /** Called after a change set with outbox entries is stored (wakes the outbox dispatcher). */
  onQueued?: () => void;
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
  private readonly onQueued: (() => void) | undefined;
  private readonly queue = new SerialQueue();
  /** Change sets the store has not taken yet, oldest first. */
  private readonly pending: AlertChanges[] = [];
  private failing = false;
  private timer: NodeJS.Timeout | undefined;

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
   * Returns at once; evaluation and storing happen on the queue, and a
   * failure there is logged, never thrown at the ingest path.
   */
  readingsCommitted(readings: readonly EngineReading[], rejected: number): void {
    const at = this.clock.now();
    void this.queue.run(() =>
      this.timed(async () => {
        try {
          const changes = concatChanges(
            this.engine.evaluate(readings, at),
            this.engine.observe({ kind: 'ingest', at, accepted: readings.length, rejected }),
          );
          await this.commit(changes, false);
        } catch (err) {
          this.logger.error({ err }, 'alert evaluation of committed readings failed');
        }
      }),
    );
  }

  /** A pipeline event; resolves once its changes are stored or kept for retry. */
  observe(event: PipelineEvent): Promise<void> {
    return this.queue.run(() =>
      this.commit(this.engine.observe(event), false).then(() => undefined),
    );
  }

  /**
   * Retries pending change sets, runs the engine's time-based work and
   * persists its subject-state snapshot. Never throws (logs instead).
   */
  tick(): Promise<void> {
    return this.queue.run(() =>
      this.timed(async () => {
        try {
          await this.retryPending();
          const now = this.clock.now();
          await this.commit(withSnapshot(this.engine.tick(now), this.engine.snapshot()), false);
        } catch (err) {
          this.logger.error({ err }, 'alert tick failed');
        }
      }),
    );
  }

  /**
   * A person's action. Returns the alert as stored after it. Throws
   * CANOPY_ALERT_NOT_FOUND, CANOPY_ALERT_INVALID_TRANSITION (a resolved alert,
   * a snooze into the past, acknowledging twice), or CANOPY_META_UNAVAILABLE
   * when the store refuses: the action is then kept with the pending change
   * sets and takes effect when the store is back.
   */
  act(alertId: string, action: AlertAction): Promise<Alert> {
    return this.queue.run(async () => {
      let changes: AlertChanges;
      try {
        changes = this.engine.act(alertId, action, this.clock.now());
      } catch (err) {
        if (isCanopyError(err, 'CANOPY_ALERT_NOT_FOUND')) await this.explainMissing(alertId);
        throw err;
      }
      const stored = await this.commit(changes, true);
      if (!stored) {
        throw new CanopyError(
          'CANOPY_META_UNAVAILABLE',
          `the action on alert ${alertId} could not be stored yet; it is kept and retried`,
        );
      }
      const alert = changes.alerts.find((a) => a.id === alertId);
      if (alert === undefined) throw new Error(`engine changed no alert ${alertId}`);
      return alert;
    });
  }

  /** Alerts of rules that are gone (or disabled) resolve with note `rule removed`. */
  replaceRules(rules: RuleSet): Promise<void> {
    return this.queue.run(async () => {
      await this.commit(this.engine.setRules(rules, this.clock.now()), false);
    });
  }

  rules(): RuleSet {
    return this.engine.ruleSet();
  }

  /** Settles once every evaluation queued so far has been applied (or kept as pending). */
  flush(): Promise<void> {
    return this.queue.drain();
  }

  /** Stops ticking, applies what is queued and stores a final subject-state snapshot. */
  async stop(): Promise<void> {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    await this.queue.run(async () => {
      await this.retryPending();
      const snapshot = this.engine.snapshot();
      const stored = await this.commit({ ...emptyChanges(), subjectStates: snapshot }, false);
      if (!stored) {
        this.logger.error(
          { pending: this.pending.length },
          'alert changes could not be stored before stopping; they are lost',
        );
      }
    });
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
   * Queues a change set behind the pending ones and, if nothing is pending
   * (or `force`), applies all of them in order. True when all were stored.
   */
  private async commit(changes: AlertChanges, force: boolean): Promise<boolean> {
    const blocked = this.pending.length > 0;
    if (hasChanges(changes)) this.pending.push(changes);
    if (blocked && !force) return false;
    return this.retryPending();
  }

  private async retryPending(): Promise<boolean> {
    while (this.pending.length > 0) {
      const next = this.pending[0]!;
      try {
        await this.store.apply(next);
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
      this.pending.shift();
      this.applied(next);
    }
    if (this.failing) this.logger.info('the alert store takes changes again');
    this.failing = false;
    return true;
  }

  private applied(changes: AlertChanges): void {
    for (const e of changes.events)
      this.metrics.alertEvents.inc({ kind: e.kind, severity: e.severity });
    this.setGauge();
    if (changes.outbox.length > 0) this.onQueued?.();
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

  private async timed(task: () => Promise<void>): Promise<void> {
    const end = this.metrics.alertEvaluationDuration.startTimer();
    try {
      await task();
    } finally {
      end();
    }
  }
}
