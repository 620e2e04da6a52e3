/**
 * Slack notifier: a POST of `{ text, blocks }` to an incoming-webhook URL.
 * `text` carries everything (it is what phone notifications and clients
 * without blocks show); `blocks` lays the same facts out as fields with a
 * link to the alert. Slack answers `ok` with 200; any other answer (a 4xx
 * `invalid_payload`, `no_service`, a 5xx, a 200 with another body) is
 * CANOPY_NOTIFY_FAILED. The URL is a secret and never appears in messages.
 */
import type { NotificationPayload } from '../../core/alerts.js';
import { excerpt, facts, headline, notifyFailed } from './format.js';
import type { Notifier } from './index.js';
import { postForText } from './webhook.js';

/** Slack's mrkdwn treats these three as control characters. */
function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function icon(payload: NotificationPayload): string {
  if (payload.event === 'resolved') return ':white_check_mark:';
  return payload.alert.severity === 'critical' ? ':red_circle:' : ':warning:';
}

/** Slack refuses a section with more than this many fields. */
const FIELDS_PER_SECTION = 10;

export interface SlackMessage {
  text: string;
  blocks: Record<string, unknown>[];
}

export function slackMessage(payload: NotificationPayload): SlackMessage {
  const title = `${icon(payload)} *${escapeMrkdwn(headline(payload))}*`;
  const list = facts(payload);
  const link =
    payload.alert.url === null ? null : `<${payload.alert.url}|Open the alert in Canopy>`;
  const text = [
    title,
    ...list.map((f) => `${f.label}: ${escapeMrkdwn(f.value)}`),
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
        text: `*${f.label}*\n${escapeMrkdwn(f.value)}`,
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

  async send(payload: NotificationPayload, signal: AbortSignal): Promise<void> {
    const headers = new Headers({ 'content-type': 'application/json' });
    const answer = await postForText(
      this.channel,
      this.#url,
      JSON.stringify(slackMessage(payload)),
      headers,
      signal,
    );
    if (answer.trim() !== 'ok') {
      throw notifyFailed(this.channel, `Slack answered 200 without ok: ${excerpt(answer)}`);
    }
  }
}
