/**
 * Webhook notifier: one JSON POST per notification, the body being the
 * NotificationPayload exactly as stored; a report is POSTed the same way,
 * its body the ReportPayload.
 *
 * Headers: `Content-Type: application/json`, `X-Canopy-Notification-Id`
 * (the payload or report id, stable across retries: dedupe on it),
 * `X-Canopy-Event` (the alert event, or `daily-summary` for that report),
 * then the configured ones (which cannot replace those).
 *
 * Signing, when `secret` is set:
 *   X-Canopy-Timestamp: <unix seconds when this attempt was sent>
 *   X-Canopy-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 * where `<body>` is the exact request body bytes (UTF-8) and `<timestamp>` the
 * header's value as sent. A receiver recomputes the HMAC over the raw body it
 * received, compares in constant time, and refuses timestamps older than a
 * few minutes: signing the timestamp with the body stops a captured request
 * from being replayed later. Each retry is signed afresh (new timestamp).
 */
import { createHmac } from 'node:crypto';
import type { NotificationPayload, ReportPayload } from '../../core/alerts.js';
import type { Clock } from '../../core/clock.js';
import {
  abortReason,
  alertNotice,
  excerpt,
  type Notice,
  notifyFailed,
  reportNotice,
} from './format.js';
import type { Notifier } from './index.js';

/** The signature value without its `sha256=` prefix: hex HMAC-SHA256 of `<timestamp>.<body>`. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
}

/**
 * POSTs `body`; resolves with the answer's text when the status is 2xx.
 * Throws CANOPY_NOTIFY_FAILED on a network error, an abort of `signal`, or
 * another status (with a short excerpt of the answer). Never puts the URL in
 * a message: it may hold a token.
 */
export async function postForText(
  channel: string,
  url: string,
  body: string,
  headers: Headers,
  signal: AbortSignal,
): Promise<string> {
  let status: number;
  let text: string;
  try {
    const response = await fetch(url, { method: 'POST', body, headers, signal });
    status = response.status;
    text = await response.text();
  } catch (err) {
    if (signal.aborted) throw notifyFailed(channel, `request ${abortReason(signal)}`, err);
    throw notifyFailed(channel, `request failed: ${describeFetchError(err)}`, err);
  }
  if (status < 200 || status > 299) {
    throw notifyFailed(channel, `receiver answered ${status}: ${excerpt(text)}`);
  }
  return text;
}

/** undici's `fetch failed` hides the reason (ECONNREFUSED, …) in `cause`. */
function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause: unknown = err.cause;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code === undefined ? cause.message : `${err.message} (${code})`;
  }
  return err.message;
}

export interface WebhookNotifierOptions {
  channel: string;
  url: string;
  secret?: string | undefined;
  headers?: Readonly<Record<string, string>>;
  /** For `X-Canopy-Timestamp`. */
  clock: Clock;
}

export class WebhookNotifier implements Notifier {
  readonly kind = 'webhook' as const;
  readonly channel: string;
  readonly #url: string;
  readonly #secret: string | undefined;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #clock: Clock;

  constructor(options: WebhookNotifierOptions) {
    this.channel = options.channel;
    this.#url = options.url;
    this.#secret = options.secret;
    this.#headers = options.headers ?? {};
    this.#clock = options.clock;
  }

  send(payload: NotificationPayload, signal: AbortSignal): Promise<void> {
    return this.#post(alertNotice(payload), signal);
  }

  sendReport(report: ReportPayload, signal: AbortSignal): Promise<void> {
    return this.#post(reportNotice(report), signal);
  }

  async #post(notice: Notice, signal: AbortSignal): Promise<void> {
    const body = JSON.stringify(notice.body);
    const headers = new Headers(this.#headers);
    headers.set('content-type', 'application/json');
    headers.set('x-canopy-notification-id', notice.id);
    headers.set('x-canopy-event', notice.event);
    if (this.#secret !== undefined) {
      const timestamp = String(Math.floor(this.#clock.now() / 1000));
      headers.set('x-canopy-timestamp', timestamp);
      headers.set(
        'x-canopy-signature',
        `sha256=${webhookSignature(this.#secret, timestamp, body)}`,
      );
    }
    await postForText(this.channel, this.#url, body, headers, signal);
  }
}
