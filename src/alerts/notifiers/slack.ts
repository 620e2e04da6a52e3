/**
 * Slack notifier: a POST of `{ text, blocks }` to an incoming-webhook URL,
 * for an alert notification and a report alike. `text` carries everything
 * (it is what phone notifications and clients without blocks show): the
 * headline, one `Label: value` line per fact and the link; `blocks` lays the
 * same facts out as fields with a link to the alert or report. Slack answers
 * `ok` with 200; any other answer (a 4xx `invalid_payload`, `no_service`, a
 * 5xx, a 200 with another body) is CANOPY_NOTIFY_FAILED. The URL is a
 * secret and never appears in messages.
 */
import type { NotificationPayload, ReportPayload } from '../../core/alerts.js';
import { alertNotice, excerpt, type Notice, notifyFailed, reportNotice } from './format.js';
import type { Notifier } from './index.js';
import { postForText } from './webhook.js';

/** Slack's mrkdwn treats these three as control characters. */
function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function icon(notice: Notice): string {
  if (notice.severity === null) return ':bar_chart:';
  if (notice.event === 'resolved') return ':white_check_mark:';
  return notice.severity === 'critical' ? ':red_circle:' : ':warning:';
}

/** Slack refuses a section with more than this many fields. */
const FIELDS_PER_SECTION = 10;

export interface SlackMessage {
  text: string;
  blocks: Record<string, unknown>[];
}

export function slackMessage(notice: Notice): SlackMessage {
  const title = `${icon(notice)} *${escapeMrkdwn(notice.headline)}*`;
  const list = notice.facts;
  const link = notice.url === null ? null : `<${notice.url}|Open the ${notice.about} in Canopy>`;
  const text = [
    title,
    ...list.map((f) => `${escapeMrkdwn(f.label)}: ${escapeMrkdwn(f.value)}`),
    ...(link === null ? [] : [link]),
  ].join('\n');
  const blocks: Record<string, unknown>[] = [
    { type: 'section', text: { type: 'mrkdwn', text: title } },
  ];
  for (let i = 0; i < list.length; i += FIELDS_PER_SECTION) {
    blocks.push({
      type: 'section',
      fields: list.slice(i, i + FIELDS_PER_SECTION).map((f) => ({
        type: 'mrkdwn',
        text: `*${escapeMrkdwn(f.label)}*\n${escapeMrkdwn(f.value)}`,
      })),
    });
  }
  if (link !== null) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: link } });
  return { text, blocks };
}

export interface SlackNotifierOptions {
  channel: string;
  /** The incoming-webhook URL. */
  url: string;
}

export class SlackNotifier implements Notifier {
  readonly kind = 'slack' as const;
  readonly channel: string;
  readonly #url: string;

  constructor(options: SlackNotifierOptions) {
    this.channel = options.channel;
    this.#url = options.url;
  }

  send(payload: NotificationPayload, signal: AbortSignal): Promise<void> {
    return this.#post(alertNotice(payload), signal);
  }

  sendReport(report: ReportPayload, signal: AbortSignal): Promise<void> {
    return this.#post(reportNotice(report), signal);
  }

  async #post(notice: Notice, signal: AbortSignal): Promise<void> {
    const headers = new Headers({ 'content-type': 'application/json' });
    const answer = await postForText(
      this.channel,
      this.#url,
      JSON.stringify(slackMessage(notice)),
      headers,
      signal,
    );
    if (answer.trim() !== 'ok') {
      throw notifyFailed(this.channel, `Slack answered 200 without ok: ${excerpt(answer)}`);
    }
  }
}
