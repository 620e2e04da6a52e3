/**
 * Log notifier: writes each notification as one log line at the configured
 * level, the whole payload under `notification` and the headline as the
 * message. The default channel when none is configured, and a way to see
 * what would be sent. Never fails (the logger does not throw).
 */
import type { NotificationPayload } from '../../core/alerts.js';
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
}
