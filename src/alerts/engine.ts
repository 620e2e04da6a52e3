/**
 * The alert evaluator: pure and clock-driven. It keeps the active alerts and
 * the per-(rule, subject) memory in process, takes time only from its
 * arguments, does no I/O, and answers every call with the `AlertChanges` a
 * store applies in one transaction (the AlertService does that, in order).
 *
 * Semantics (they are the user documentation of the rule language):
 *
 * Reading rules. Each reading with a value gets a level per rule: `critical`
 * when the critical condition matches, else `warning` when the warning one
 * does, else `ok`. A null value skips reading rules (it still counts as seen
 * for no-data rules). Per (rule, `sensor:<id>`) the engine counts consecutive
 * breaching (warning or critical), critical, non-critical and ok readings and
 * when (in event time) each streak started. A hold (`open`, `escalate`,
 * `clear`) is met by N consecutive readings and, with `for`, a streak that has
 * lasted at least that long in event time.
 * - `open` held → an alert opens with the current level as severity (`opened`).
 * - `escalate` held by critical readings (default 3) → `escalated`; tier 1 of
 *   `notify.tiers` is told at once when its `after` is 0s.
 * - A critical reading on a warning alert → `severity-raised`.
 * - `clear` held by non-critical readings on a critical alert →
 *   `severity-lowered`, and `de-escalated` (back to `open`) if it was escalated.
 * - `clear` held by ok readings → `resolved` (this wins over a lowering due on
 *   the same reading).
 * - An acknowledged alert stays acknowledged until resolved; only after a
 *   de-escalation can a new escalation make it `escalated` again.
 * - rateOfChange compares with the sensor's previous reading; anomalyRate
 *   keeps a per-sensor window of (event time, flagged). Rules using either
 *   keep that history in their subject state for as long as the sensor reports.
 *
 * No-data rules. A sensor's last-seen time is the arrival time of its latest
 * reading (`now` of `evaluate`), or its `lastSeenAt` given to `restore` (a
 * known sensor never seen counts from the restore time). At each tick a
 * selected sensor is silent when `now - lastSeen > after`. `per: sensor`: one
 * alert per silent sensor (`sensor:<id>`), except that when every selected
 * sensor of a location (two or more) is silent, one `location:<path>` alert
 * opens instead of new per-sensor ones. `per: location`: only whole-location
 * alerts (one sensor or more). A reading resolves its sensor's alert and its
 * location's at once.
 *
 * Pipeline rules (`pipeline:<signal>` or `pipeline:<signal>:<name>`).
 * dead-letter-rate: rejected / (accepted + rejected) over the ingest events of
 * the last `window` (kept in 1/60-window buckets, so the window edge is that
 * coarse), only with at least `minMessages` readings; it resolves when the
 * share is no longer above `above`. ingest-stopped: no accepted reading for
 * longer than `after` (counted from the restore time at start). job-failed,
 * quality-failed, deadline-missed: a failure (filtered by `names`) opens, the
 * next success for that name resolves.
 *
 * No-data and pipeline alerts have the rule's fixed severity. With
 * `escalateAfter` they escalate that long after opening (if not
 * acknowledged); without it a critical one escalates as it opens.
 *
 * Time-based work happens at `tick`: silence, dead-letter windows sliding,
 * `escalateAfter`, escalation tiers (tier n+1 when escalated for at least
 * `tiers[n].after`, unacknowledged, not snoozed), reminders (every
 * `reminderEvery` since `lastNotifiedAt`, while open or escalated,
 * unacknowledged, not snoozed and told to at least one channel), snooze
 * expiry, and resolving alerts whose rule is gone.
 *
 * A time condition (no-data, ingest-stopped, dead-letter-rate) resolved by
 * hand while it still holds does not reopen until it has cleared (a reading
 * from the sensor, an accepted reading, a share back below `above`); a
 * restart forgets that.
 *
 * Notifications: one OutboxEntry per (event, channel), channels being the
 * rule's for that event (opened → `notify.open`; escalated → tier 1 when its
 * `after` is 0s; tier-notified → that tier; reminder, severity changes,
 * de-escalated, acknowledged → the channels already told; resolved → those,
 * if `notify.resolved`) plus every matching `alerting.routes` entry.
 */
import { randomUUID } from 'node:crypto';
import type {
  Alert,
  AlertChanges,
  AlertEvent,
  AlertEventKind,
  AlertSeverity,
  AlertState,
  OutboxEntry,
  SubjectState,
} from '../core/alerts.js';
import { CanopyError } from '../core/errors.js';
import type { AlertRouteConfig } from '../config/schema.js';
import {
  compileRules,
  type CompiledNoDataRule,
  type CompiledPipelineRule,
  type CompiledReadingRule,
  type CompiledRule,
  type ConfiguredBounds,
  type Hold,
  type LeafMatch,
} from './compile.js';
import type { PipelineSignal, RuleSet } from './rules/schema.js';

/** What the engine needs of a committed reading. */
export interface EngineReading {
  sensorId: string;
  sensorType: string | null;
  location: string | null;
  eventTime: number;
  value: number | null;
  /** Shown after the value in summaries, when known. */
  unit?: string | null;
  isAnomaly: boolean;
  anomalyReasons: readonly string[];
}

export type PipelineEvent =
  /** One per committed group of readings. */
  | { kind: 'ingest'; at: number; accepted: number; rejected: number }
  | { kind: 'job'; name: string; ok: boolean; at: number; error?: string }
  | { kind: 'quality'; suite: string; ok: boolean; at: number; failedExpectations: number }
  | { kind: 'deadline'; workflow: string; missed: boolean; at: number; slot?: string };

export interface KnownSensor {
  sensorId: string;
  sensorType: string | null;
  location: string | null;
  lastSeenAt: number | null;
}

export type AlertAction =
  | { kind: 'acknowledge' | 'resolve'; actor: string; note?: string }
  | { kind: 'snooze'; actor: string; until: number; note?: string };

export interface AlertEngineOptions {
  rules: RuleSet;
  routes: readonly AlertRouteConfig[];
  configuredBounds: ConfiguredBounds;
  /** Base URL for the alert links in notifications. */
  publicUrl?: string;
  /** Ids of alerts and events; default random UUIDs (tests pass counters). */
  newId?: () => string;
}

interface Streak {
  n: number;
  since: number | null;
}

/** Memory of a reading rule for one sensor. Persisted as JSON. */
interface ReadingState {
  breach: Streak;
  critical: Streak;
  nonCritical: Streak;
  ok: Streak;
  /** A critical hold may escalate: false once escalated or acknowledged, true again after a de-escalation. */
  armed: boolean;
  /** Previous non-null reading (event time, value), for rateOfChange. */
  prev: [number, number] | null;
  /** (event time, flagged 0/1) within the longest anomalyRate window. */
  flags: [number, number][];
}

/** Ingest events of a dead-letter-rate rule: [bucket start, accepted, rejected]. */
interface DeadLetterState {
  buckets: [number, number, number][];
}

interface StateRecord {
  ruleId: string;
  subject: string;
  data: ReadingState | DeadLetterState;
  /** Some change set or snapshot has handed it to the store. */
  persisted: boolean;
}

const SYSTEM = 'system';
const REMINDED_STATES: ReadonlySet<AlertState> = new Set(['open', 'escalated']);

const keyOf = (ruleId: string, subject: string) => `${ruleId}\u0000${subject}`;

function cloneAlert(a: Alert): Alert {
  return { ...a, labels: { ...a.labels }, notifiedChannels: [...a.notifiedChannels] };
}

function freshStreak(): Streak {
  return { n: 0, since: null };
}

function freshReadingState(armed: boolean): ReadingState {
  return {
    breach: freshStreak(),
    critical: freshStreak(),
    nonCritical: freshStreak(),
    ok: freshStreak(),
    armed,
    prev: null,
    flags: [],
  };
}

function advance(s: Streak, hit: boolean, t: number): void {
  if (hit) {
    s.n += 1;
    s.since ??= t;
  } else {
    s.n = 0;
    s.since = null;
  }
}

function held(s: Streak, hold: Hold, t: number): boolean {
  if (s.n < hold.consecutive) return false;
  return hold.forMs === null || (s.since !== null && t - s.since >= hold.forMs);
}

/** Persisted JSON back to a state; anything unreadable starts afresh. */
function parseState(raw: Record<string, unknown>): ReadingState | DeadLetterState {
  if (Array.isArray(raw.buckets)) return { buckets: raw.buckets as DeadLetterState['buckets'] };
  const streak = (v: unknown): Streak => {
    const s = v as Partial<Streak> | undefined;
    return {
      n: typeof s?.n === 'number' ? s.n : 0,
      since: typeof s?.since === 'number' ? s.since : null,
    };
  };
  return {
    breach: streak(raw.breach),
    critical: streak(raw.critical),
    nonCritical: streak(raw.nonCritical),
    ok: streak(raw.ok),
    armed: raw.armed !== false,
    prev: Array.isArray(raw.prev) ? (raw.prev as [number, number]) : null,
    flags: Array.isArray(raw.flags) ? (raw.flags as [number, number][]) : [],
  };
}

function fmt(n: number): string {
  return String(Number(n.toFixed(3)));
}

function pct(share: number): string {
  return `${fmt(share * 100)} %`;
}

/** Collects one call's changes; alerts and states are copied when built. */
class ChangeSet {
  readonly alerts = new Map<string, Alert>();
  readonly events: AlertEvent[] = [];
  readonly outbox: OutboxEntry[] = [];
  /** null: cleared. The last word per (rule, subject) wins. */
  readonly states = new Map<string, { ruleId: string; subject: string; rec: StateRecord | null }>();

  build(): AlertChanges {
    const subjectStates: SubjectState[] = [];
    const clearedSubjectStates: { ruleId: string; subject: string }[] = [];
    for (const { ruleId, subject, rec } of this.states.values()) {
      if (rec === null) clearedSubjectStates.push({ ruleId, subject });
      else subjectStates.push(serializeState(rec));
    }
    return {
      alerts: [...this.alerts.values()].map(cloneAlert),
      events: this.events,
      outbox: this.outbox,
      subjectStates,
      clearedSubjectStates,
    };
  }
}

function serializeState(rec: StateRecord): SubjectState {
  return {
    ruleId: rec.ruleId,
    subject: rec.subject,
    state: structuredClone(rec.data) as unknown as Record<string, unknown>,
  };
}

interface SensorSeen {
  sensorType: string | null;
  location: string | null;
  lastSeenAt: number;
}

interface OpenFields {
  subject: string;
  sensorId: string | null;
  location: string | null;
  severity: AlertSeverity;
  summary: string;
  value: number | null;
  threshold: number | null;
  labels: Record<string, string>;
}

export class AlertEngine {
  private ruleSetValue: RuleSet;
  private rules = new Map<string, CompiledRule>();
  private readingRules: CompiledReadingRule[] = [];
  private noDataRules: CompiledNoDataRule[] = [];
  private pipelineRules: CompiledPipelineRule[] = [];
  private readonly routes: readonly AlertRouteConfig[];
  private readonly configuredBounds: ConfiguredBounds;
  private readonly publicUrl: string | null;
  private readonly newId: () => string;

  /** Active alerts by (rule, subject), and the key of each by alert id. */
  private readonly active = new Map<string, Alert>();
  private readonly keyById = new Map<string, string>();
  private readonly states = new Map<string, StateRecord>();
  private readonly dirty = new Set<string>();
  private readonly sensors = new Map<string, SensorSeen>();
  private readonly suppressed = new Set<string>();
  private lastAcceptedAt = 0;

  constructor(o: AlertEngineOptions) {
    this.routes = o.routes;
    this.configuredBounds = o.configuredBounds;
    this.publicUrl = o.publicUrl === undefined ? null : o.publicUrl.replace(/\/+$/, '');
    this.newId = o.newId ?? randomUUID;
    this.ruleSetValue = o.rules;
    this.install(o.rules);
  }

  private install(set: RuleSet): void {
    this.ruleSetValue = set;
    this.rules = compileRules(set, this.configuredBounds);
    const all = [...this.rules.values()];
    this.readingRules = all.filter((r): r is CompiledReadingRule => r.kind === 'reading');
    this.noDataRules = all.filter((r): r is CompiledNoDataRule => r.kind === 'no-data');
    this.pipelineRules = all.filter((r): r is CompiledPipelineRule => r.kind === 'pipeline');
  }

  /** The rule set in force, as given. */
  ruleSet(): RuleSet {
    return this.ruleSetValue;
  }

  /**
   * Starts over from what the store kept: the active alerts, the persisted
   * subject states and the known sensors. `now` stands for "last seen" of a
   * sensor never seen and for the last accepted reading.
   */
  restore(active: Alert[], states: SubjectState[], sensors: KnownSensor[], now: number): void {
    this.active.clear();
    this.keyById.clear();
    this.states.clear();
    this.dirty.clear();
    this.sensors.clear();
    this.suppressed.clear();
    for (const a of active) {
      if (a.state === 'resolved') continue;
      const key = keyOf(a.ruleId, a.subject);
      this.active.set(key, cloneAlert(a));
      this.keyById.set(a.id, key);
    }
    for (const s of states) {
      this.states.set(keyOf(s.ruleId, s.subject), {
        ruleId: s.ruleId,
        subject: s.subject,
        data: parseState(s.state),
        persisted: true,
      });
    }
    for (const s of sensors) {
      this.sensors.set(s.sensorId, {
        sensorType: s.sensorType,
        location: s.location,
        lastSeenAt: s.lastSeenAt ?? now,
      });
    }
    this.lastAcceptedAt = now;
  }

  /**
   * Replaces the rules; alerts of removed or disabled rules resolve (note
   * `rule removed`), as do reading alerts of sensors the rule no longer selects.
   * Counting state of rules that stay carries over.
   */
  setRules(rules: RuleSet, now: number): AlertChanges {
    const ch = new ChangeSet();
    const previous = this.rules;
    this.install(rules);
    for (const [key, alert] of [...this.active]) {
      const next = this.rules.get(alert.ruleId);
      const before = previous.get(alert.ruleId);
      if (next === undefined || (before !== undefined && before.kind !== next.kind)) {
        this.resolve(ch, key, alert, before, now, SYSTEM, 'rule removed', alert.value);
      } else if (
        next.kind === 'reading' &&
        alert.sensorId !== null &&
        !next.selects(alert.sensorId, alert.labels.sensor_type ?? null, alert.location)
      ) {
        this.resolve(ch, key, alert, next, now, SYSTEM, 'sensor no longer selected', alert.value);
      }
    }
    for (const [key, rec] of [...this.states]) {
      if (!this.rules.has(rec.ruleId)) this.dropState(ch, key);
    }
    return ch.build();
  }

  /** One committed group of readings; `now` is the commit (arrival) time. */
  evaluate(readings: readonly EngineReading[], now: number): AlertChanges {
    const ch = new ChangeSet();
    if (readings.length > 0) this.accepted(ch, now);
    for (const r of readings) {
      this.seen(ch, r, now);
      if (r.value === null) continue;
      for (const rule of this.readingRules) this.evaluateReading(ch, rule, r, r.value, now);
    }
    return ch.build();
  }

  observe(event: PipelineEvent): AlertChanges {
    const ch = new ChangeSet();
    switch (event.kind) {
      case 'ingest':
        if (event.accepted > 0) this.accepted(ch, event.at);
        for (const rule of this.pipelineRules) {
          if (rule.signal !== 'dead-letter-rate') continue;
          this.addIngest(rule, event);
          this.judgeDeadLetters(ch, rule, event.at);
        }
        break;
      case 'job':
        this.outcome(ch, 'job-failed', event.name, !event.ok, event.at, {
          summary: `job ${event.name} failed${event.error === undefined ? '' : `: ${event.error}`}`,
          value: null,
          resolvedNote: `job ${event.name} succeeded`,
        });
        break;
      case 'quality':
        this.outcome(ch, 'quality-failed', event.suite, !event.ok, event.at, {
          summary: `quality suite ${event.suite} failed ${event.failedExpectations} expectation(s)`,
          value: event.failedExpectations,
          resolvedNote: `quality suite ${event.suite} passed`,
        });
        break;
      case 'deadline':
        this.outcome(ch, 'deadline-missed', event.workflow, event.missed, event.at, {
          summary: `workflow ${event.workflow} missed its deadline${event.slot === undefined ? '' : ` (slot ${event.slot})`}`,
          value: null,
          resolvedNote: `workflow ${event.workflow} met its deadline`,
        });
        break;
    }
    return ch.build();
  }

  tick(now: number): AlertChanges {
    const ch = new ChangeSet();
    for (const rule of this.noDataRules) this.tickNoData(ch, rule, now);
    for (const rule of this.pipelineRules) {
      if (rule.signal === 'dead-letter-rate') this.judgeDeadLetters(ch, rule, now);
      if (rule.signal === 'ingest-stopped') this.tickIngestStopped(ch, rule, now);
    }
    for (const [key, alert] of [...this.active]) {
      const rule = this.rules.get(alert.ruleId);
      if (rule === undefined) {
        this.resolve(ch, key, alert, undefined, now, SYSTEM, 'rule removed', alert.value);
        continue;
      }
      if (
        rule.kind !== 'reading' &&
        rule.escalateAfterMs !== null &&
        alert.state === 'open' &&
        now - alert.openedAt >= rule.escalateAfterMs
      ) {
        this.escalate(ch, alert, rule, now, alert.value);
      }
      this.runTimers(ch, alert, rule, now);
    }
    return ch.build();
  }

  /**
   * A person's action. Throws CANOPY_ALERT_NOT_FOUND for an id that is not
   * active here, CANOPY_ALERT_INVALID_TRANSITION for acknowledging an
   * acknowledged alert or snoozing into the past.
   */
  act(alertId: string, action: AlertAction, now: number): AlertChanges {
    const key = this.keyById.get(alertId);
    const alert = key === undefined ? undefined : this.active.get(key);
    if (key === undefined || alert === undefined) {
      throw new CanopyError('CANOPY_ALERT_NOT_FOUND', `no active alert ${alertId}`);
    }
    const rule = this.rules.get(alert.ruleId);
    const ch = new ChangeSet();
    const note = action.note ?? null;
    switch (action.kind) {
      case 'acknowledge': {
        if (alert.state === 'acknowledged') {
          throw new CanopyError(
            'CANOPY_ALERT_INVALID_TRANSITION',
            `alert ${alertId} is already acknowledged`,
          );
        }
        const from = alert.state;
        alert.state = 'acknowledged';
        alert.acknowledgedAt = now;
        alert.acknowledgedBy = action.actor;
        this.emit(ch, alert, 'acknowledged', {
          from,
          at: now,
          actor: action.actor,
          note,
          value: alert.value,
          channels: alert.notifiedChannels,
        });
        const rec = this.states.get(key);
        if (rec !== undefined && 'armed' in rec.data) {
          rec.data.armed = false;
          this.putState(ch, key, rec);
        } else if (rule?.kind === 'reading') {
          this.putState(ch, key, this.createState(key, alert, freshReadingState(false)));
        }
        break;
      }
      case 'snooze': {
        if (action.until <= now) {
          throw new CanopyError(
            'CANOPY_ALERT_INVALID_TRANSITION',
            `cannot snooze alert ${alertId} into the past`,
          );
        }
        alert.snoozedUntil = action.until;
        this.emit(ch, alert, 'snoozed', {
          from: alert.state,
          at: now,
          actor: action.actor,
          note,
          value: alert.value,
          channels: [],
        });
        break;
      }
      case 'resolve':
        if (rule !== undefined && this.timeConditionHolds(rule, now)) this.suppressed.add(key);
        this.resolve(ch, key, alert, rule, now, action.actor, note, alert.value);
        break;
    }
    return ch.build();
  }

  /** Copies of the alerts not resolved. */
  activeAlerts(): readonly Alert[] {
    return [...this.active.values()].map(cloneAlert);
  }

  /** Subject states changed since the last snapshot (or change set that carried them). */
  snapshot(): SubjectState[] {
    const out: SubjectState[] = [];
    for (const key of this.dirty) {
      const rec = this.states.get(key);
      if (rec === undefined) continue;
      rec.persisted = true;
      out.push(serializeState(rec));
    }
    this.dirty.clear();
    return out;
  }

  // ---- subject states -------------------------------------------------------

  private createState(key: string, alert: Alert, data: ReadingState): StateRecord {
    const rec: StateRecord = {
      ruleId: alert.ruleId,
      subject: alert.subject,
      data,
      persisted: false,
    };
    this.states.set(key, rec);
    return rec;
  }

  /** Hands the state to this change set (it is persisted with the transition). */
  private putState(ch: ChangeSet, key: string, rec: StateRecord): void {
    rec.persisted = true;
    this.dirty.delete(key);
    ch.states.set(key, { ruleId: rec.ruleId, subject: rec.subject, rec });
  }

  private dropState(ch: ChangeSet, key: string): void {
    const rec = this.states.get(key);
    if (rec === undefined) return;
    this.states.delete(key);
    this.dirty.delete(key);
    if (rec.persisted) ch.states.set(key, { ruleId: rec.ruleId, subject: rec.subject, rec: null });
  }

  // ---- reading rules ----------------------------------------------------------

  private evaluateReading(
    ch: ChangeSet,
    rule: CompiledReadingRule,
    r: EngineReading,
    value: number,
    now: number,
  ): void {
    if (!rule.selects(r.sensorId, r.sensorType, r.location)) return;
    const bounds = rule.boundsFor(r.sensorId, r.sensorType, r.location);
    if (bounds.warning === undefined && bounds.critical === undefined) return;
    const subject = `sensor:${r.sensorId}`;
    const key = keyOf(rule.id, subject);
    const alert = this.active.get(key);
    const keepsHistory = bounds.needsPrevious || bounds.anomalyWindowMs > 0;
    let rec = this.states.get(key);
    const data =
      rec !== undefined && 'breach' in rec.data
        ? rec.data
        : freshReadingState(alert === undefined || alert.state === 'open');
    // Holds count in event time; transitions are stamped with the arrival time, like ticks.
    const t = r.eventTime;

    if (bounds.anomalyWindowMs > 0) {
      data.flags.push([t, r.isAnomaly ? 1 : 0]);
      const from = t - bounds.anomalyWindowMs;
      if (data.flags.length > 0 && data.flags[0]![0] <= from) {
        data.flags = data.flags.filter(([ft]) => ft > from);
      }
    }
    const input = {
      value,
      eventTime: t,
      isAnomaly: r.isAnomaly,
      anomalyReasons: r.anomalyReasons,
      previous: data.prev ?? undefined,
      flags: data.flags,
    };
    const critical = bounds.critical?.match(input);
    const warning = critical === undefined ? bounds.warning?.match(input) : undefined;
    const match = critical ?? warning;
    const level: 'ok' | AlertSeverity =
      critical !== undefined ? 'critical' : warning !== undefined ? 'warning' : 'ok';
    if (bounds.needsPrevious && (data.prev === null || t > data.prev[0])) data.prev = [t, value];

    // The common case: nothing going on for this sensor, nothing to remember.
    if (rec === undefined && alert === undefined && level === 'ok' && !keepsHistory) return;
    if (rec === undefined) {
      rec = { ruleId: rule.id, subject, data, persisted: false };
      this.states.set(key, rec);
    }

    advance(data.breach, level !== 'ok', t);
    advance(data.critical, level === 'critical', t);
    advance(data.nonCritical, level !== 'critical', t);
    advance(data.ok, level === 'ok', t);

    const describe = (m: LeafMatch, sev: AlertSeverity) => readingSummary(r, m, sev);
    let changed = false;
    if (alert === undefined) {
      if (level !== 'ok' && match !== undefined && held(data.breach, rule.open, t)) {
        const opened = this.open(ch, rule, key, now, {
          subject,
          sensorId: r.sensorId,
          location: r.location,
          severity: level,
          summary: describe(match, level),
          value: match.value,
          threshold: 'threshold' in match ? match.threshold : null,
          labels: this.labels(rule, r.sensorId, r.sensorType, r.location),
        });
        data.armed = true;
        changed = true;
        if (level === 'critical' && held(data.critical, rule.escalate, t)) {
          this.escalate(ch, opened, rule, now, match.value);
          data.armed = false;
        }
      }
    } else if (level === 'ok' && held(data.ok, rule.clear, t)) {
      this.resolve(ch, key, alert, rule, now, SYSTEM, null, value);
      return;
    } else {
      if (level === 'critical' && alert.severity === 'warning' && match !== undefined) {
        alert.severity = 'critical';
        this.setReason(alert, match, describe(match, 'critical'));
        this.emit(ch, alert, 'severity-raised', {
          from: alert.state,
          at: now,
          value: match.value,
          channels: alert.notifiedChannels,
        });
        changed = true;
      }
      if (
        alert.severity === 'critical' &&
        level !== 'critical' &&
        held(data.nonCritical, rule.clear, t)
      ) {
        alert.severity = 'warning';
        if (match !== undefined) this.setReason(alert, match, describe(match, 'warning'));
        else alert.value = value;
        this.emit(ch, alert, 'severity-lowered', {
          from: alert.state,
          at: now,
          value,
          channels: alert.notifiedChannels,
        });
        if (alert.state === 'escalated') {
          alert.state = 'open';
          alert.escalatedAt = null;
          alert.tier = 0;
          this.emit(ch, alert, 'de-escalated', {
            from: 'escalated',
            at: now,
            value,
            channels: alert.notifiedChannels,
          });
        }
        data.armed = true;
        changed = true;
      }
      if (
        level === 'critical' &&
        data.armed &&
        alert.state !== 'escalated' &&
        held(data.critical, rule.escalate, t)
      ) {
        this.escalate(ch, alert, rule, now, match?.value ?? value);
        data.armed = false;
        changed = true;
      }
    }

    if (!this.active.has(key) && data.breach.n === 0 && !keepsHistory) {
      this.dropState(ch, key);
      return;
    }
    if (changed) this.putState(ch, key, rec);
    else this.dirty.add(key);
  }

  private setReason(alert: Alert, m: LeafMatch, summary: string): void {
    alert.summary = summary;
    alert.value = m.value;
    alert.threshold = 'threshold' in m ? m.threshold : null;
  }

  private labels(
    rule: CompiledRule,
    sensorId: string | null,
    sensorType: string | null,
    location: string | null,
    extra: Record<string, string> = {},
  ): Record<string, string> {
    const out: Record<string, string> = { ...rule.labels };
    if (sensorId !== null) out.sensor_id = sensorId;
    if (sensorType !== null) out.sensor_type = sensorType;
    if (location !== null) out.location = location;
    Object.assign(out, extra);
    out.rule = rule.id;
    return out;
  }

  // ---- no-data rules ----------------------------------------------------------

  /** A reading arrived: the sensor is seen, and its silence alerts resolve. */
  private seen(ch: ChangeSet, r: EngineReading, now: number): void {
    const known = this.sensors.get(r.sensorId);
    const sensorType = r.sensorType ?? known?.sensorType ?? null;
    const location = r.location ?? known?.location ?? null;
    this.sensors.set(r.sensorId, { sensorType, location, lastSeenAt: now });
    for (const rule of this.noDataRules) {
      const subjects = [`sensor:${r.sensorId}`];
      if (location !== null) subjects.push(`location:${location}`);
      for (const subject of subjects) {
        const key = keyOf(rule.id, subject);
        this.suppressed.delete(key);
        const alert = this.active.get(key);
        if (alert !== undefined) {
          this.resolve(ch, key, alert, rule, now, SYSTEM, `reading from ${r.sensorId}`, null);
        }
      }
    }
  }

  private tickNoData(ch: ChangeSet, rule: CompiledNoDataRule, now: number): void {
    const silent = new Set<string>();
    const byLocation = new Map<string, { total: number; silent: number }>();
    const selected = new Map<string, SensorSeen>();
    for (const [id, s] of this.sensors) {
      if (!rule.selects(id, s.sensorType, s.location)) continue;
      selected.set(id, s);
      const isSilent = now - s.lastSeenAt > rule.afterMs;
      if (isSilent) silent.add(id);
      if (s.location !== null) {
        const g = byLocation.get(s.location) ?? { total: 0, silent: 0 };
        g.total += 1;
        if (isSilent) g.silent += 1;
        byLocation.set(s.location, g);
      }
    }
    const minimum = rule.per === 'location' ? 1 : 2;
    const silentLocations = new Set<string>();
    for (const [loc, g] of byLocation) {
      if (g.total >= minimum && g.silent === g.total) silentLocations.add(loc);
    }

    for (const [key, alert] of [...this.active]) {
      if (alert.ruleId !== rule.id) continue;
      const stillSilent = alert.subject.startsWith('location:')
        ? silentLocations.has(alert.subject.slice('location:'.length))
        : alert.sensorId !== null && silent.has(alert.sensorId);
      if (!stillSilent) this.resolve(ch, key, alert, rule, now, SYSTEM, 'no longer silent', null);
    }

    for (const loc of silentLocations) {
      const subject = `location:${loc}`;
      const key = keyOf(rule.id, subject);
      if (this.active.has(key) || this.suppressed.has(key)) continue;
      const count = byLocation.get(loc)?.total ?? 0;
      const alert = this.open(ch, rule, key, now, {
        subject,
        sensorId: null,
        location: loc,
        severity: rule.severity,
        summary: `no reading from any of the ${count} sensor(s) at ${loc} for more than ${rule.after}`,
        value: null,
        threshold: null,
        labels: this.labels(rule, null, null, loc),
      });
      this.escalateAtOpen(ch, alert, rule, now);
    }
    if (rule.per === 'location') return;
    for (const id of silent) {
      const s = selected.get(id)!;
      if (s.location !== null && silentLocations.has(s.location)) continue;
      const subject = `sensor:${id}`;
      const key = keyOf(rule.id, subject);
      if (this.active.has(key) || this.suppressed.has(key)) continue;
      const alert = this.open(ch, rule, key, now, {
        subject,
        sensorId: id,
        location: s.location,
        severity: rule.severity,
        summary: `no reading from ${id} for more than ${rule.after}${s.location === null ? '' : ` (${s.location})`}`,
        value: null,
        threshold: null,
        labels: this.labels(rule, id, s.sensorType, s.location),
      });
      this.escalateAtOpen(ch, alert, rule, now);
    }
  }

  // ---- pipeline rules -------------------------------------------------------

  private accepted(ch: ChangeSet, at: number): void {
    this.lastAcceptedAt = Math.max(this.lastAcceptedAt, at);
    for (const rule of this.pipelineRules) {
      if (rule.signal !== 'ingest-stopped') continue;
      const key = keyOf(rule.id, 'pipeline:ingest-stopped');
      this.suppressed.delete(key);
      const alert = this.active.get(key);
      if (alert !== undefined)
        this.resolve(ch, key, alert, rule, at, SYSTEM, 'readings accepted', null);
    }
  }

  private tickIngestStopped(ch: ChangeSet, rule: CompiledPipelineRule, now: number): void {
    const subject = 'pipeline:ingest-stopped';
    const key = keyOf(rule.id, subject);
    if (now - this.lastAcceptedAt <= rule.afterMs) return;
    if (this.active.has(key) || this.suppressed.has(key)) return;
    const alert = this.open(ch, rule, key, now, {
      subject,
      sensorId: null,
      location: null,
      severity: rule.severity,
      summary: `no reading accepted for more than ${rule.after}`,
      value: null,
      threshold: null,
      labels: this.labels(rule, null, null, null, { signal: rule.signal }),
    });
    this.escalateAtOpen(ch, alert, rule, now);
  }

  private bucketMs(rule: CompiledPipelineRule): number {
    return Math.max(1, Math.floor(rule.windowMs / 60));
  }

  private addIngest(
    rule: CompiledPipelineRule,
    e: { at: number; accepted: number; rejected: number },
  ): void {
    const key = keyOf(rule.id, 'pipeline:dead-letter-rate');
    let rec = this.states.get(key);
    if (rec === undefined || !('buckets' in rec.data)) {
      rec = {
        ruleId: rule.id,
        subject: 'pipeline:dead-letter-rate',
        data: { buckets: [] },
        persisted: false,
      };
      this.states.set(key, rec);
    }
    const buckets = (rec.data as DeadLetterState).buckets;
    const size = this.bucketMs(rule);
    const start = Math.floor(e.at / size) * size;
    const last = buckets[buckets.length - 1];
    if (last !== undefined && last[0] === start) {
      last[1] += e.accepted;
      last[2] += e.rejected;
    } else {
      buckets.push([start, e.accepted, e.rejected]);
      buckets.sort((a, b) => a[0] - b[0]);
    }
    this.dirty.add(key);
  }

  private judgeDeadLetters(ch: ChangeSet, rule: CompiledPipelineRule, now: number): void {
    const subject = 'pipeline:dead-letter-rate';
    const key = keyOf(rule.id, subject);
    const rec = this.states.get(key);
    const alert = this.active.get(key);
    let accepted = 0;
    let rejected = 0;
    if (rec !== undefined && 'buckets' in rec.data) {
      const from = now - rule.windowMs;
      const kept = rec.data.buckets.filter(([start]) => start > from);
      if (kept.length !== rec.data.buckets.length) {
        rec.data.buckets = kept;
        this.dirty.add(key);
      }
      for (const [, a, r] of kept) {
        accepted += a;
        rejected += r;
      }
      if (kept.length === 0 && alert === undefined) this.dropState(ch, key);
    }
    const total = accepted + rejected;
    const share = total === 0 ? 0 : rejected / total;
    const breach = total >= rule.minMessages && share > rule.above;
    if (!breach) {
      this.suppressed.delete(key);
      if (alert !== undefined) {
        this.resolve(ch, key, alert, rule, now, SYSTEM, `dead-letter rate ${pct(share)}`, share);
      }
      return;
    }
    if (alert !== undefined || this.suppressed.has(key)) return;
    const opened = this.open(ch, rule, key, now, {
      subject,
      sensorId: null,
      location: null,
      severity: rule.severity,
      summary: `${pct(share)} of readings rejected in the last ${rule.window} (${rejected} of ${total}), above ${pct(rule.above)}`,
      value: share,
      threshold: rule.above,
      labels: this.labels(rule, null, null, null, { signal: rule.signal }),
    });
    this.escalateAtOpen(ch, opened, rule, now);
  }

  private outcome(
    ch: ChangeSet,
    signal: PipelineSignal,
    name: string,
    failed: boolean,
    at: number,
    text: { summary: string; value: number | null; resolvedNote: string },
  ): void {
    for (const rule of this.pipelineRules) {
      if (rule.signal !== signal || (rule.names !== null && !rule.names.has(name))) continue;
      const subject = `pipeline:${signal}:${name}`;
      const key = keyOf(rule.id, subject);
      const alert = this.active.get(key);
      if (!failed) {
        if (alert !== undefined)
          this.resolve(ch, key, alert, rule, at, SYSTEM, text.resolvedNote, null);
        continue;
      }
      if (alert !== undefined) continue;
      const opened = this.open(ch, rule, key, at, {
        subject,
        sensorId: null,
        location: null,
        severity: rule.severity,
        summary: text.summary,
        value: text.value,
        threshold: null,
        labels: this.labels(rule, null, null, null, { signal, name }),
      });
      this.escalateAtOpen(ch, opened, rule, at);
    }
  }

  private timeConditionHolds(rule: CompiledRule, now: number): boolean {
    if (rule.kind === 'no-data') return true;
    if (rule.kind !== 'pipeline') return false;
    if (rule.signal === 'ingest-stopped') return now - this.lastAcceptedAt > rule.afterMs;
    return rule.signal === 'dead-letter-rate';
  }

  // ---- transitions and notifications --------------------------------------------

  private open(ch: ChangeSet, rule: CompiledRule, key: string, at: number, f: OpenFields): Alert {
    const alert: Alert = {
      id: this.newId(),
      ruleId: rule.id,
      subject: f.subject,
      sensorId: f.sensorId,
      location: f.location,
      severity: f.severity,
      state: 'open',
      summary: f.summary,
      labels: f.labels,
      value: f.value,
      threshold: f.threshold,
      openedAt: at,
      updatedAt: at,
      escalatedAt: null,
      acknowledgedAt: null,
      acknowledgedBy: null,
      resolvedAt: null,
      snoozedUntil: null,
      tier: 0,
      lastNotifiedAt: null,
      notifiedChannels: [],
    };
    this.active.set(key, alert);
    this.keyById.set(alert.id, key);
    this.emit(ch, alert, 'opened', {
      from: null,
      at,
      value: f.value,
      channels: rule.notify.open,
    });
    return alert;
  }

  /** No-data and pipeline alerts: critical without `escalateAfter` escalates as it opens. */
  private escalateAtOpen(
    ch: ChangeSet,
    alert: Alert,
    rule: CompiledNoDataRule | CompiledPipelineRule,
    at: number,
  ): void {
    if (rule.escalateAfterMs === null && rule.severity === 'critical') {
      this.escalate(ch, alert, rule, at, alert.value);
    } else if (rule.escalateAfterMs === 0) {
      this.escalate(ch, alert, rule, at, alert.value);
    }
  }

  private escalate(
    ch: ChangeSet,
    alert: Alert,
    rule: CompiledRule,
    at: number,
    value: number | null,
  ): void {
    const from = alert.state;
    alert.state = 'escalated';
    alert.escalatedAt = at;
    alert.tier = 0;
    const first = rule.notify.tiers[0];
    const tellFirst = first !== undefined && first.afterMs === 0;
    if (tellFirst) alert.tier = 1;
    this.emit(ch, alert, 'escalated', {
      from,
      at,
      value,
      channels: tellFirst ? first.channels : [],
      tier: tellFirst ? 1 : null,
    });
  }

  private resolve(
    ch: ChangeSet,
    key: string,
    alert: Alert,
    rule: CompiledRule | undefined,
    at: number,
    actor: string,
    note: string | null,
    value: number | null,
  ): void {
    const from = alert.state;
    alert.state = 'resolved';
    alert.resolvedAt = at;
    alert.snoozedUntil = null;
    if (value !== null) alert.value = value;
    this.active.delete(key);
    this.keyById.delete(alert.id);
    const tell = rule === undefined || rule.notify.resolved;
    this.emit(ch, alert, 'resolved', {
      from,
      at,
      actor,
      note,
      value,
      channels: tell ? alert.notifiedChannels : [],
    });
    const rec = this.states.get(key);
    if (rec === undefined) return;
    // A reading rule with rateOfChange / anomalyRate keeps the sensor's history past the alert.
    if ('breach' in rec.data && (rec.data.prev !== null || rec.data.flags.length > 0)) {
      const { prev, flags } = rec.data;
      rec.data = { ...freshReadingState(true), prev, flags };
      this.putState(ch, key, rec);
    } else {
      this.dropState(ch, key);
    }
  }

  /** Escalation tiers, reminders and snooze expiry of one alert. */
  private runTimers(ch: ChangeSet, alert: Alert, rule: CompiledRule, now: number): void {
    if (alert.snoozedUntil !== null && alert.snoozedUntil <= now) {
      alert.snoozedUntil = null;
      alert.updatedAt = now;
      ch.alerts.set(alert.id, alert);
    }
    if (alert.snoozedUntil !== null) return;
    const tiers = rule.notify.tiers;
    if (alert.state === 'escalated' && alert.escalatedAt !== null) {
      for (let next = tiers[alert.tier]; next !== undefined; next = tiers[alert.tier]) {
        if (now - alert.escalatedAt < next.afterMs) break;
        alert.tier += 1;
        this.emit(ch, alert, 'tier-notified', {
          from: alert.state,
          at: now,
          value: alert.value,
          channels: next.channels,
          tier: alert.tier,
        });
      }
    }
    const every = rule.notify.reminderEveryMs;
    if (
      every !== null &&
      REMINDED_STATES.has(alert.state) &&
      alert.notifiedChannels.length > 0 &&
      alert.lastNotifiedAt !== null &&
      now - alert.lastNotifiedAt >= every
    ) {
      this.emit(ch, alert, 'reminder', {
        from: alert.state,
        at: now,
        value: alert.value,
        channels: alert.notifiedChannels,
      });
    }
  }

  /**
   * Records one event: its channels are the rule's (given) plus every
   * matching route, deduplicated; one outbox entry per channel, payload frozen
   * now. The alert remembers the channels told and when.
   */
  private emit(
    ch: ChangeSet,
    alert: Alert,
    kind: AlertEventKind,
    o: {
      from: AlertState | null;
      at: number;
      value: number | null;
      channels: readonly string[];
      actor?: string;
      note?: string | null;
      tier?: number | null;
    },
  ): void {
    alert.updatedAt = o.at;
    const actor = o.actor ?? SYSTEM;
    const note = o.note ?? null;
    const event: AlertEvent = {
      id: this.newId(),
      alertId: alert.id,
      at: o.at,
      kind,
      actor,
      fromState: o.from,
      toState: alert.state,
      severity: alert.severity,
      note,
      value: o.value,
    };
    ch.events.push(event);
    ch.alerts.set(alert.id, alert);
    const channels = new Set(o.channels);
    for (const route of this.routes) {
      if (!route.events.includes(kind)) continue;
      if (route.severity !== undefined && !route.severity.includes(alert.severity)) continue;
      const labels = route.labels ?? {};
      if (Object.entries(labels).some(([k, v]) => alert.labels[k] !== v)) continue;
      for (const c of route.channels) channels.add(c);
    }
    if (channels.size === 0) return;
    const at = new Date(o.at).toISOString();
    for (const channel of channels) {
      const id = `${event.id}:${channel}`;
      ch.outbox.push({
        id,
        alertId: alert.id,
        eventId: event.id,
        channel,
        payload: {
          id,
          event: kind,
          at,
          alert: {
            id: alert.id,
            ruleId: alert.ruleId,
            subject: alert.subject,
            sensorId: alert.sensorId,
            location: alert.location,
            severity: alert.severity,
            state: alert.state,
            summary: alert.summary,
            value: alert.value,
            threshold: alert.threshold,
            labels: { ...alert.labels },
            openedAt: new Date(alert.openedAt).toISOString(),
            url: this.publicUrl === null ? null : `${this.publicUrl}/alerts/${alert.id}`,
          },
          tier: kind === 'escalated' || kind === 'tier-notified' ? (o.tier ?? null) : null,
          actor,
          note,
        },
        createdAt: o.at,
        status: 'pending',
        attempts: 0,
        nextAttemptAt: o.at,
        deliveredAt: null,
        lastError: null,
      });
    }
    const told = new Set(alert.notifiedChannels);
    for (const c of channels) told.add(c);
    alert.notifiedChannels = [...told];
    alert.lastNotifiedAt = o.at;
  }
}

/** `soil moisture at plant-07 is 12.1 %, below the critical bound 15 (conservatory/bench-1)` */
export function readingSummary(r: EngineReading, m: LeafMatch, level: AlertSeverity): string {
  const what =
    r.sensorType === null ? r.sensorId : `${r.sensorType.replaceAll('_', ' ')} at ${r.sensorId}`;
  const unit = r.unit === undefined || r.unit === null ? '' : ` ${r.unit}`;
  const where = r.location === null ? '' : ` (${r.location})`;
  switch (m.kind) {
    case 'above':
    case 'below':
      return `${what} is ${fmt(m.value)}${unit}, ${m.kind} the ${level} bound ${fmt(m.threshold)}${where}`;
    case 'rate':
      return `${what} changes by ${fmt(m.value)}${unit} per ${m.per}, above the ${level} bound ${fmt(m.threshold)}${where}`;
    case 'anomaly':
      return `${what} is ${fmt(m.value)}${unit}, flagged as an anomaly${m.reasons.length === 0 ? '' : ` (${m.reasons.join(', ')})`}${where}`;
    case 'anomaly-rate':
      return `${what}: ${pct(m.value)} of readings flagged in the last ${m.window}, above the ${level} bound ${pct(m.threshold)}${where}`;
  }
}
