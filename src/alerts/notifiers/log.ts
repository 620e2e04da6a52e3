/**
 * Log notifier: writes each notification as one log line at the configured
 * level, the whole payload under `notification` and the headline as the
 * message; a report likewise, the ReportPayload under `report` and as the
 * message its title then its facts (`<title> — Label: value; …`), so the
 * summary reads whole in any log view. The default channel when none is
 * configured, and a way to see what would be sent. Never fails (the logger
 * does not throw).
 */
import type { NotificationPayload, ReportPayload } from '../../core/alerts.js';
import type { Logger } from '../../observability/logger.js';
import { headline } from './format.js';
import type { Notifier } from './index.js';

export interface LogNotifierOptions {
  channel: string;
  level: 'info' | 'warn' | 'error';
  logger: Logger;
}

export class LogNotifier implements Notifier {
  readonly kind = 'log' as const;
  readonly channel: string;
  readonly #level: LogNotifierOptions['level'];
  readonly #logger: Logger;

  constructor(options: LogNotifierOptions) {
    this.channel = options.channel;
    this.#level = options.level;
    this.#logger = options.logger;
  }

  send(payload: NotificationPayload): Promise<void> {
    this.#logger[this.#level]({ notification: payload }, headline(payload));
    return Promise.resolve();
  }

  sendReport(report: ReportPayload): Promise<void> {
    const facts = report.facts.map(([label, value]) => `${label}: ${value}`).join('; ');
    this.#logger[this.#level](
      { report },
      facts === '' ? report.title : `${report.title} — ${facts}`,
    );
    return Promise.resolve();
  }
}
