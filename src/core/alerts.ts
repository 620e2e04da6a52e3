/**
 * The alerting contract: alerts, their recorded history, the notification
 * outbox, and the store that keeps all three. Every adapter (DuckDB by
 * default, PostgreSQL by config) passes the one conformance suite in
 * `src/storage/meta/alert-store.conformance.ts`.
 *
 * Times are epoch milliseconds (UTC) throughout.
 */

export type AlertSeverity = 'warning' | 'critical';

/**
 * `open` → `escalated` → `acknowledged` → `resolved`. An alert may also go
 * from `escalated` back to `open` (de-escalated: critical held no longer) and
 * be resolved from any state. Snoozing is not a state: it is `snoozedUntil`,
 * which silences reminders and escalation tiers until that time.
 */
export type AlertState = 'open' | 'escalated' | 'acknowledged' | 'resolved';

export const ALERT_STATES: readonly AlertState[] = [
  'open',
  'escalated',
  'acknowledged',
  'resolved',
];
export const ALERT_SEVERITIES: readonly AlertSeverity[] = ['warning', 'critical'];

/**
 * One alert per (rule, subject) at a time: a new one opens only after the
 * previous one for that pair is resolved. A subject is `sensor:<sensor_id>`,
 * `location:<site/floor/zone>` or `pipeline:<signal>[:<name>]`.
 */
export interface Alert {
  /** UUID. */
  id: string;
  ruleId: string;
  subject: string;
  /** The sensor the alert is about, when it is about one (for filtering). */
  sensorId: string | null;
  /** The location the alert is about, or its sensor's location. */
  location: string | null;
  severity: AlertSeverity;
  state: AlertState;
  /** One line for people: what is wrong, with the value and the bound. */
  summary: string;
  /** The rule's labels, then the subject's (`sensor_type`, `location`, …); used for routing. */
  labels: Record<string, string>;
  /** The value that last changed the alert, and the bound it was held against. */
  value: number | null;
  threshold: number | null;
  openedAt: number;
  updatedAt: number;
  escalatedAt: number | null;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  resolvedAt: number | null;
  snoozedUntil: number | null;
  /** How many escalation tiers have been notified (0: none yet). */
  tier: number;
  /** When the last notification (of any kind) was queued; reminders count from here. */
  lastNotifiedAt: number | null;
  /**
   * Every channel told about this alert so far: reminders, acknowledgement and
   * resolution go to these.
   */
  notifiedChannels: string[];
}

export type AlertEventKind =
  | 'opened'
  | 'severity-raised'
  | 'severity-lowered'
  | 'escalated'
  | 'de-escalated'
  | 'tier-notified'
  | 'reminder'
  | 'acknowledged'
  | 'snoozed'
  | 'resolved';

/** One recorded step in an alert's life: a transition, or a notification round. */
export interface AlertEvent {
  /** UUID. */
  id: string;
  alertId: string;
  at: number;
  kind: AlertEventKind;
  /** `system`, or who acted through the API or CLI. */
  actor: string;
  fromState: AlertState | null;
  toState: AlertState;
  severity: AlertSeverity;
  note: string | null;
  value: number | null;
}

/**
 * What a notifier sends: frozen when the event is recorded, so a retry after
 * a restart sends the same bytes. `id` is stable across retries: receivers
 * dedupe on it.
 */
export interface NotificationPayload {
  id: string;
  event: AlertEventKind;
  at: string;
  alert: {
    id: string;
    ruleId: string;
    subject: string;
    sensorId: string | null;
    location: string | null;
    severity: AlertSeverity;
    state: AlertState;
    summary: string;
    value: number | null;
    threshold: number | null;
    labels: Record<string, string>;
    openedAt: string;
    /** Link to the alert in the dashboard or API, when a public URL is configured. */
    url: string | null;
  };
  /** Escalation tier (1-based) for `escalated` / `tier-notified`; else null. */
  tier: number | null;
  actor: string;
  note: string | null;
}

/**
 * A periodic report (the daily summary): not about one alert. `id` is stable
 * per report and channel so receivers dedupe. Times are ISO strings, as in
 * NotificationPayload.
 */
export interface ReportPayload {
  id: string;
  kind: 'daily-summary';
  /** One line, e.g. "Canopy daily summary for 2026-11-28". */
  title: string;
  /** When the report was made. */
  at: string;
  period: { from: string; to: string };
  /**
   * Ordered label/value facts people read, e.g.
   * [["Readings", "4 320 000"], ["Anomalies", "1.9 %"]].
   */
  facts: [string, string][];
  /** The same data for machines. */
  data: Record<string, unknown>;
  url: string | null;
}

export type OutboxStatus = 'pending' | 'delivered' | 'failed';

/**
 * One notification to one channel. Written in the same transaction as the
 * event that caused it; delivered at least once (a crash between sending and
 * recording the delivery sends it again with the same `id`).
 */
export interface OutboxEntry {
  /** `<eventId>:<channel>`. */
  id: string;
  alertId: string;
  eventId: string;
  channel: string;
  payload: NotificationPayload;
  createdAt: number;
  status: OutboxStatus;
  attempts: number;
  /** When the next attempt is due (pending entries only). */
  nextAttemptAt: number;
  deliveredAt: number | null;
  lastError: string | null;
}

/**
 * The evaluator's memory for one (rule, subject): consecutive counts, first
 * breach times, last value. Opaque to the store (stored as JSON). Saved with
 * each change set and periodically, so a restart resumes counting close to
 * where it stopped.
 */
export interface SubjectState {
  ruleId: string;
  subject: string;
  state: Record<string, unknown>;
}

/** Everything one evaluation step changed; a store applies it in one transaction. */
export interface AlertChanges {
  /** Inserted or replaced by id. */
  alerts: Alert[];
  events: AlertEvent[];
  /** Inserted; an id already present is left as it is (the insert is idempotent). */
  outbox: OutboxEntry[];
  /** Upserted by (ruleId, subject). */
  subjectStates: SubjectState[];
  /** Deleted by (ruleId, subject). */
  clearedSubjectStates: { ruleId: string; subject: string }[];
}

export function emptyChanges(): AlertChanges {
  return { alerts: [], events: [], outbox: [], subjectStates: [], clearedSubjectStates: [] };
}

export function hasChanges(c: AlertChanges): boolean {
  return (
    c.alerts.length > 0 ||
    c.events.length > 0 ||
    c.outbox.length > 0 ||
    c.subjectStates.length > 0 ||
    c.clearedSubjectStates.length > 0
  );
}

export interface AlertFilter {
  state?: readonly AlertState[];
  severity?: readonly AlertSeverity[];
  ruleId?: string;
  sensorId?: string;
  /** Prefix of the location path: `greenhouse` matches `greenhouse/1/a`. */
  location?: string;
  /** Alerts active at some point in [from, to): opened before `to`, not resolved before `from`. */
  from?: number;
  to?: number;
  /** Newest `openedAt` first; 1..1000. */
  limit: number;
}

export interface OutboxStats {
  pending: number;
  failed: number;
  /** `createdAt` of the oldest pending entry. */
  oldestPendingAt: number | null;
}

export type DeliveryOutcome =
  | { ok: true; at: number }
  | {
      ok: false;
      at: number;
      error: string;
      /** When to try again; null gives up (status `failed`). */
      nextAttemptAt: number | null;
    };

/** One delivery attempt's outcome for the outbox entry `id`. */
export interface DeliveryRecord {
  id: string;
  outcome: DeliveryOutcome;
}

export interface AlertStore {
  open(): Promise<void>;
  close(): Promise<void>;
  /** Atomically: all of it, or (on throw) none of it. */
  apply(changes: AlertChanges): Promise<void>;
  /** Every alert not resolved. */
  activeAlerts(): Promise<Alert[]>;
  listAlerts(filter: AlertFilter): Promise<Alert[]>;
  getAlert(id: string): Promise<Alert | undefined>;
  /** Oldest first. */
  alertEvents(alertId: string): Promise<AlertEvent[]>;
  /** Oldest first. */
  alertNotifications(alertId: string): Promise<OutboxEntry[]>;
  /** Pending entries with `nextAttemptAt <= now`, oldest `createdAt` first. */
  dueNotifications(now: number, limit: number): Promise<OutboxEntry[]>;
  /** Earliest `nextAttemptAt` among pending entries, or null when none is pending. */
  nextDueAt(): Promise<number | null>;
  /** Counts an attempt; success marks it delivered, failure reschedules or gives up. */
  recordDelivery(id: string, outcome: DeliveryOutcome): Promise<void>;
  /**
   * `recordDelivery` for each record, in order, in one transaction: all of
   * them, or (on throw) none. An empty list does nothing.
   */
  recordDeliveries(records: readonly DeliveryRecord[]): Promise<void>;
  outboxStats(): Promise<OutboxStats>;
  subjectStates(): Promise<SubjectState[]>;
  /**
   * Deletes alerts resolved before `before`, with their events and outbox
   * entries (delivered or failed ones only). Returns how many alerts went.
   */
  purgeResolved(before: number): Promise<number>;
}
