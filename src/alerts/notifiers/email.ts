/**
 * Email notifier: one message per notification through an SMTP server
 * (nodemailer). Subject `[CRITICAL] escalated: <summary>`; a plain-text and
 * a simple HTML body with the same facts and the link to the alert. A report
 * is one message the same way: subject its title, its facts in the text and
 * in an HTML table, the link to the report.
 *
 * Resends are recognisable: the Message-ID is derived from the payload or report id
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
import type { NotificationPayload, ReportPayload } from '../../core/alerts.js';
import type { Logger } from '../../observability/logger.js';
import {
  abortReason,
  alertNotice,
  type Notice,
  notifyFailed,
  reportNotice,
  untilAborted,
} from './format.js';
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
export function emailMessageId(id: string, from: string): string {
  const local = id.replace(/[^A-Za-z0-9_-]/g, (c) => `=${c.codePointAt(0)?.toString(16) ?? ''}`);
  const domain = /@([A-Za-z0-9.-]+)>?\s*$/.exec(from)?.[1] ?? 'canopy.invalid';
  return `<canopy.${local}@${domain}>`;
}

export function emailBodies(notice: Notice): { text: string; html: string } {
  const { facts: list, url } = notice;
  const open = `Open the ${notice.about}`;
  const text = [
    notice.headline,
    '',
    ...list.map((f) => `${f.label}: ${f.value}`),
    ...(url === null ? [] : ['', `${open}: ${url}`]),
    '',
    `Notification ${notice.id}`,
  ].join('\n');
  const rows = list
    .map(
      (f) => `<tr><th align="left">${escapeHtml(f.label)}</th><td>${escapeHtml(f.value)}</td></tr>`,
    )
    .join('');
  const html = [
    `<p><strong>${escapeHtml(notice.headline)}</strong></p>`,
    `<table>${rows}</table>`,
    url === null ? '' : `<p><a href="${escapeHtml(url)}">${open}</a></p>`,
    `<p><small>Notification ${escapeHtml(notice.id)}</small></p>`,
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

  send(payload: NotificationPayload, signal: AbortSignal): Promise<void> {
    return this.#mail(alertNotice(payload), signal);
  }

  sendReport(report: ReportPayload, signal: AbortSignal): Promise<void> {
    return this.#mail(reportNotice(report), signal);
  }

  close(): Promise<void> {
    this.#transport.close();
    return Promise.resolve();
  }

  async #mail(notice: Notice, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw notifyFailed(this.channel, `SMTP send ${abortReason(signal)}`);
    const { text, html } = emailBodies(notice);
    const sending = this.#transport.sendMail({
      from: this.#from,
      to: [...this.#to],
      subject: notice.headline,
      text,
      html,
      messageId: emailMessageId(notice.id, this.#from),
      headers: { 'X-Canopy-Notification-Id': notice.id },
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
        { notificationId: notice.id, rejected: info.rejected.map(String) },
        'SMTP server refused some recipients',
      );
    }
  }
}
