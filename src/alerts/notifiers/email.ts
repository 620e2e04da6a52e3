/**
 * Email notifier: one message per notification through an SMTP server
 * (nodemailer). Subject `[CRITICAL] escalated: <summary>`; a plain-text and
 * a simple HTML body with the same facts and the link to the alert.
 *
 * Resends are recognisable: the Message-ID is derived from the payload id
 * (`<canopy.<id>@<sender's domain>>`) and the id is also sent as
 * `X-Canopy-Notification-Id`, so a mail system or a person can tell a retry
 * of the same notification from a new one.
 *
 * The transport is not pooled: each send opens its own SMTP connection,
 * bounded by `timeoutMs` for connecting, the greeting and each socket wait.
 * An abort of `signal` fails the attempt at once; the connection then ends
 * by that socket timeout at the latest. Accepted by the server for at least
 * one recipient counts as delivered (recipients refused are logged); refused
 * for all is CANOPY_NOTIFY_FAILED.
 */
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { NotificationPayload } from '../../core/alerts.js';
import type { Logger } from '../../observability/logger.js';
import { abortReason, facts, headline, notifyFailed, untilAborted } from './format.js';
import type { Notifier } from './index.js';

export interface EmailNotifierOptions {
  channel: string;
  host: string;
  port: number;
  /** TLS from the start; otherwise STARTTLS when the server offers it. */
  secure: boolean;
  user?: string | undefined;
  password?: string | undefined;
  from: string;
  to: readonly string[];
  timeoutMs: number;
  logger: Logger;
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

/**
 * A Message-ID local part allows letters, digits and a few marks; every other
 * character of the id becomes `=<hex>` (injective, so distinct ids stay distinct).
 */
export function emailMessageId(payloadId: string, from: string): string {
  const local = payloadId.replace(
    /[^A-Za-z0-9_-]/g,
    (c) => `=${c.codePointAt(0)?.toString(16) ?? ''}`,
  );
  const domain = /@([A-Za-z0-9.-]+)>?\s*$/.exec(from)?.[1] ?? 'canopy.invalid';
  return `<canopy.${local}@${domain}>`;
}

export function emailBodies(payload: NotificationPayload): { text: string; html: string } {
  const list = facts(payload);
  const url = payload.alert.url;
  const text = [
    headline(payload),
    '',
    ...list.map((f) => `${f.label}: ${f.value}`),
    ...(url === null ? [] : ['', `Open the alert: ${url}`]),
    '',
    `Notification ${payload.id}`,
  ].join('\n');
  const rows = list
    .map(
      (f) => `<tr><th align="left">${escapeHtml(f.label)}</th><td>${escapeHtml(f.value)}</td></tr>`,
    )
    .join('');
  const html = [
    `<p><strong>${escapeHtml(headline(payload))}</strong></p>`,
    `<table>${rows}</table>`,
    url === null ? '' : `<p><a href="${escapeHtml(url)}">Open the alert</a></p>`,
    `<p><small>Notification ${escapeHtml(payload.id)}</small></p>`,
  ].join('\n');
  return { text, html };
}

export class EmailNotifier implements Notifier {
  readonly kind = 'email' as const;
  readonly channel: string;
  readonly #from: string;
  readonly #to: readonly string[];
  readonly #logger: Logger;
  readonly #transport: Transporter<SMTPTransport.SentMessageInfo>;

  constructor(options: EmailNotifierOptions) {
    this.channel = options.channel;
    this.#from = options.from;
    this.#to = options.to;
    this.#logger = options.logger;
    const transport: SMTPTransport.Options = {
      host: options.host,
      port: options.port,
      secure: options.secure,
      connectionTimeout: options.timeoutMs,
      greetingTimeout: options.timeoutMs,
      socketTimeout: options.timeoutMs,
    };
    if (options.user !== undefined) {
      transport.auth = { user: options.user, pass: options.password ?? '' };
    }
    this.#transport = nodemailer.createTransport(transport);
  }

  async send(payload: NotificationPayload, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw notifyFailed(this.channel, `SMTP send ${abortReason(signal)}`);
    const { text, html } = emailBodies(payload);
    const sending = this.#transport.sendMail({
      from: this.#from,
      to: [...this.#to],
      subject: headline(payload),
      text,
      html,
      messageId: emailMessageId(payload.id, this.#from),
      headers: { 'X-Canopy-Notification-Id': payload.id },
    });
    let info: SMTPTransport.SentMessageInfo;
    try {
      info = await untilAborted(sending, signal);
    } catch (err) {
      if (signal.aborted) throw notifyFailed(this.channel, `SMTP send ${abortReason(signal)}`, err);
      throw notifyFailed(this.channel, `SMTP send failed: ${(err as Error).message}`, err);
    }
    if (info.rejected.length > 0) {
      this.#logger.warn(
        { notificationId: payload.id, rejected: info.rejected.map(String) },
        'SMTP server refused some recipients',
      );
    }
  }

  close(): Promise<void> {
    this.#transport.close();
    return Promise.resolve();
  }
}
