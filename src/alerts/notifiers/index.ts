/**
 * Notifiers: one per entry of `alerting.notifiers`, each a sink that sends
 * one notification per call: an alert notification (`send`) or a periodic
 * report such as the daily summary (`sendReport`), through the same
 * transport. A notifier never retries: its caller does, and bounds each
 * attempt by the AbortSignal (for alerts the outbox dispatcher, ../outbox.ts,
 * which owns retries, backoff and the per-attempt timeout).
 *
 * Contract of `send` and `sendReport`: resolves once the receiver accepted
 * the notification; otherwise throws CANOPY_NOTIFY_FAILED (with the
 * underlying error as `cause`, never a URL or credential in the message),
 * including when `signal` aborts first. Delivery is at least once: a retry
 * sends the same payload with the same `id` (webhook
 * `X-Canopy-Notification-Id`, email Message-ID, SNS `notification_id`), on
 * which receivers dedupe.
 */
import type { NotificationPayload, ReportPayload } from '../../core/alerts.js';
import { type Clock, systemClock } from '../../core/clock.js';
import type { AlertingConfig } from '../../config/schema.js';
import type { Logger } from '../../observability/logger.js';
import { EmailNotifier } from './email.js';
import { LogNotifier } from './log.js';
import { SlackNotifier } from './slack.js';
import { SnsNotifier } from './sns.js';
import { WebhookNotifier } from './webhook.js';

export type NotifierKind = 'webhook' | 'slack' | 'email' | 'sns' | 'log';

export interface Notifier {
  readonly kind: NotifierKind;
  /** The name under `alerting.notifiers`. */
  readonly channel: string;
  send(payload: NotificationPayload, signal: AbortSignal): Promise<void>;
  /** Sends a report (the daily summary), rendered for this kind of channel. */
  sendReport(report: ReportPayload, signal: AbortSignal): Promise<void>;
  /** Releases connections (SMTP transport, SNS client); the notifier is not used afterwards. */
  close?(): Promise<void>;
}

export interface NotifierDeps {
  logger: Logger;
  /** Wall time for the webhook signature timestamp; default the system clock. */
  clock?: Clock;
}

/**
 * Builds every configured notifier, keyed by channel name. Builds only:
 * nothing here touches the network. Throws CANOPY_CONFIG_INVALID for a
 * setting the schema cannot check on its own (SNS keys given by halves).
 */
export function createNotifiers(
  config: AlertingConfig['notifiers'],
  deps: NotifierDeps,
): Map<string, Notifier> {
  const clock = deps.clock ?? systemClock;
  const notifiers = new Map<string, Notifier>();
  for (const [channel, c] of Object.entries(config)) {
    const logger = deps.logger.child({ channel, notifier: c.kind });
    switch (c.kind) {
      case 'webhook':
        notifiers.set(
          channel,
          new WebhookNotifier({ channel, url: c.url, secret: c.secret, headers: c.headers, clock }),
        );
        break;
      case 'slack':
        notifiers.set(channel, new SlackNotifier({ channel, url: c.url }));
        break;
      case 'email':
        notifiers.set(channel, new EmailNotifier({ ...c, channel, logger }));
        break;
      case 'sns':
        notifiers.set(channel, new SnsNotifier({ ...c, channel }));
        break;
      case 'log':
        notifiers.set(channel, new LogNotifier({ channel, level: c.level, logger }));
        break;
    }
  }
  return notifiers;
}
