/**
 * SNS notifier: one Publish per notification to `topicArn`. `Message` is the
 * NotificationPayload as JSON (subscribers parse it); `Subject` the headline
 * made fit for SNS (printable ASCII, at most 100 characters; email
 * subscriptions show it). Message attributes `severity`, `event` and
 * `notification_id` let subscriptions filter and receivers dedupe. On a FIFO
 * topic (`….fifo`) the message group is the alert and the deduplication id
 * the payload id, so SNS itself drops a resend within its five-minute window.
 *
 * A report is one Publish the same way: `Message` the ReportPayload as JSON,
 * `Subject` its title, attributes `event` (`daily-summary`) and
 * `notification_id` (the report id), no `severity`; on a FIFO topic the
 * group is the report kind.
 *
 * The SDK makes one attempt (the outbox owns retries) and stops at an abort
 * of `signal`. Every failure is CANOPY_NOTIFY_FAILED with the SDK error as
 * `cause`; messages never carry the access keys.
 */
import {
  PublishCommand,
  type PublishCommandInput,
  SNSClient,
  type SNSClientConfig,
} from '@aws-sdk/client-sns';
import type { NotificationPayload, ReportPayload } from '../../core/alerts.js';
import { CanopyError } from '../../core/errors.js';
import { abortReason, alertNotice, type Notice, notifyFailed, reportNotice } from './format.js';
import type { Notifier } from './index.js';

export interface SnsNotifierOptions {
  channel: string;
  topicArn: string;
  region: string;
  /** Custom endpoint (LocalStack, a VPC endpoint); default AWS. */
  endpoint?: string | undefined;
  /** Both or neither; neither means the AWS SDK's default credential chain. */
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
}

const SUBJECT_MAX = 100;

/** `headline` made an SNS subject: printable ASCII, no line breaks, 1..100 characters. */
export function snsSubject(headline: string): string {
  const ascii = headline
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/\s+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .trim();
  return ascii.length <= SUBJECT_MAX ? ascii : `${ascii.slice(0, SUBJECT_MAX - 3)}...`;
}

export class SnsNotifier implements Notifier {
  readonly kind = 'sns' as const;
  readonly channel: string;
  readonly #topicArn: string;
  readonly #client: SNSClient;
  readonly #secrets: string[];

  constructor(options: SnsNotifierOptions) {
    if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
      throw new CanopyError(
        'CANOPY_CONFIG_INVALID',
        `alerting.notifiers.${options.channel}: accessKeyId and secretAccessKey must be given together`,
      );
    }
    this.channel = options.channel;
    this.#topicArn = options.topicArn;
    this.#secrets = [options.secretAccessKey, options.accessKeyId].filter(
      (s): s is string => s !== undefined && s !== '',
    );
    const config: SNSClientConfig = { region: options.region, maxAttempts: 1 };
    if (options.endpoint !== undefined) config.endpoint = options.endpoint;
    if (options.accessKeyId !== undefined && options.secretAccessKey !== undefined) {
      config.credentials = {
        accessKeyId: options.accessKeyId,
        secretAccessKey: options.secretAccessKey,
      };
    }
    this.#client = new SNSClient(config);
  }

  send(payload: NotificationPayload, signal: AbortSignal): Promise<void> {
    return this.#publish(alertNotice(payload), signal);
  }

  sendReport(report: ReportPayload, signal: AbortSignal): Promise<void> {
    return this.#publish(reportNotice(report), signal);
  }

  close(): Promise<void> {
    this.#client.destroy();
    return Promise.resolve();
  }

  async #publish(notice: Notice, signal: AbortSignal): Promise<void> {
    const input: PublishCommandInput = {
      TopicArn: this.#topicArn,
      Subject: snsSubject(notice.headline),
      Message: JSON.stringify(notice.body),
      MessageAttributes: {
        ...(notice.severity === null
          ? {}
          : { severity: { DataType: 'String', StringValue: notice.severity } }),
        event: { DataType: 'String', StringValue: notice.event },
        notification_id: { DataType: 'String', StringValue: notice.id },
      },
    };
    if (this.#topicArn.endsWith('.fifo')) {
      input.MessageGroupId = notice.group;
      input.MessageDeduplicationId = notice.id.replace(/[^\x21-\x7e]/g, '_').slice(0, 128);
    }
    try {
      await this.#client.send(new PublishCommand(input), { abortSignal: signal });
    } catch (err) {
      if (signal.aborted)
        throw notifyFailed(this.channel, `SNS publish ${abortReason(signal)}`, err);
      const e = err as Error;
      throw notifyFailed(
        this.channel,
        this.#redact(`SNS publish failed: ${e.name}: ${e.message}`),
        err,
      );
    }
  }

  #redact(message: string): string {
    let out = message;
    for (const secret of this.#secrets) out = out.split(secret).join('***');
    return out;
  }
}
