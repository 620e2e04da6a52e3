/**
 * What every human-facing notifier says about a notification: one headline
 * and the same list of facts, so Slack, email, SNS and the log agree.
 *
 * Alert notifications and reports reach a notifier's one transport as a
 * Notice: the same shape for both, so each notifier has one sending path.
 */
import type { AlertSeverity, NotificationPayload, ReportPayload } from '../../core/alerts.js';
import { CanopyError } from '../../core/errors.js';

export interface Fact {
  label: string;
  value: string;
}

/** `[CRITICAL] escalated: <summary>`. */
export function headline(payload: NotificationPayload): string {
  return `[${payload.alert.severity.toUpperCase()}] ${payload.event}: ${payload.alert.summary}`;
}

function orDash(value: string | number | null): string {
  return value === null ? '—' : String(value);
}

/** The facts shown under the headline, in display order; optional ones only when set. */
export function facts(payload: NotificationPayload): Fact[] {
  const { alert } = payload;
  const list: Fact[] = [
    { label: 'Severity', value: alert.severity },
    { label: 'Event', value: payload.event },
    { label: 'State', value: alert.state },
    { label: 'Sensor', value: orDash(alert.sensorId) },
    { label: 'Location', value: orDash(alert.location) },
    { label: 'Value', value: orDash(alert.value) },
    { label: 'Threshold', value: orDash(alert.threshold) },
    { label: 'Rule', value: alert.ruleId },
    { label: 'Opened', value: alert.openedAt },
  ];
  if (payload.tier !== null) list.push({ label: 'Tier', value: String(payload.tier) });
  if (payload.actor !== 'system') list.push({ label: 'By', value: payload.actor });
  if (payload.note !== null) list.push({ label: 'Note', value: payload.note });
  return list;
}

/** One thing to send, alert notification or report, as every notifier renders it. */
export interface Notice {
  /** What the notice is about; links read "Open the <about>". */
  about: 'alert' | 'report';
  /** Stable across retries: the dedupe key (webhook header, Message-ID, SNS attribute). */
  id: string;
  /** The alert event or the report kind (`X-Canopy-Event`, SNS `event`). */
  event: string;
  /** The alert's severity; null for a report. */
  severity: AlertSeverity | null;
  /** What notices of the same thing share (the alert id, the report kind): the SNS FIFO group. */
  group: string;
  headline: string;
  facts: Fact[];
  url: string | null;
  /** The payload as machines receive it (webhook body, SNS message). */
  body: NotificationPayload | ReportPayload;
}

export function alertNotice(payload: NotificationPayload): Notice {
  return {
    about: 'alert',
    id: payload.id,
    event: payload.event,
    severity: payload.alert.severity,
    group: payload.alert.id,
    headline: headline(payload),
    facts: facts(payload),
    url: payload.alert.url,
    body: payload,
  };
}

export function reportNotice(report: ReportPayload): Notice {
  return {
    about: 'report',
    id: report.id,
    event: report.kind,
    severity: null,
    group: report.kind,
    headline: report.title,
    facts: report.facts.map(([label, value]) => ({ label, value })),
    url: report.url,
    body: report,
  };
}

/** At most `max` characters of a receiver's answer, on one line, for error messages. */
export function excerpt(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max)}…`;
}

/**
 * The one error every notifier throws: CANOPY_NOTIFY_FAILED, naming the
 * channel. Messages never carry URLs or credentials (a Slack URL is a secret).
 */
export function notifyFailed(channel: string, message: string, cause?: unknown): CanopyError {
  return new CanopyError('CANOPY_NOTIFY_FAILED', `channel ${channel}: ${message}`, { cause });
}

/** Why `signal` fired, in words: a timeout or another abort. */
export function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  const name = typeof reason === 'object' && reason !== null && 'name' in reason ? reason.name : '';
  return name === 'TimeoutError' ? 'timed out' : 'aborted';
}

/**
 * `work`, or a rejection with `signal.reason` as soon as `signal` aborts,
 * for work that takes no signal of its own (it is left to finish or fail by
 * itself; its outcome is then ignored).
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: Error) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
