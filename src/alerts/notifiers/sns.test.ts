import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import {
  startHttpReceiver,
  type HttpReceiver,
  type Answer,
} from '../../../test/helpers/http-receiver.js';
import { samplePayload, sampleReport } from '../../../test/helpers/notification.js';
import { headline } from './format.js';
import { SnsNotifier, snsSubject } from './sns.js';

const TOPIC = 'arn:aws:sns:eu-west-1:123456789012:canopy-alerts';
const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';

/**
 * The SNS Query protocol's Publish, as AWS answers it: a form-encoded body
 * in, a PublishResponse (or, for an unknown topic, a 400 ErrorResponse) out.
 */
const snsPublish: Answer = (request, response) => {
  const form = new URLSearchParams(request.body);
  if (form.get('Action') !== 'Publish') {
    response
      .writeHead(400, { 'content-type': 'text/xml' })
      .end(
        `<ErrorResponse xmlns="${XMLNS}"><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>Unknown action</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      );
    return;
  }
  if (form.get('TopicArn') !== TOPIC && form.get('TopicArn') !== `${TOPIC}.fifo`) {
    response
      .writeHead(400, { 'content-type': 'text/xml' })
      .end(
        `<ErrorResponse xmlns="${XMLNS}"><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      );
    return;
  }
  response
    .writeHead(200, { 'content-type': 'text/xml' })
    .end(
      `<PublishResponse xmlns="${XMLNS}"><PublishResult><MessageId>${randomUUID()}</MessageId></PublishResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishResponse>`,
    );
};

/** `MessageAttributes.entry.N.Name` / `.Value.StringValue` as a plain record. */
function messageAttributes(form: URLSearchParams): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (let n = 1; form.has(`MessageAttributes.entry.${n}.Name`); n++) {
    out[form.get(`MessageAttributes.entry.${n}.Name`) ?? ''] = form.get(
      `MessageAttributes.entry.${n}.Value.StringValue`,
    );
  }
  return out;
}

let receiver: HttpReceiver | undefined;
let notifier: SnsNotifier | undefined;
afterEach(async () => {
  await notifier?.close();
  await receiver?.close();
  notifier = undefined;
  receiver = undefined;
});

function snsNotifier(endpoint: string, topicArn = TOPIC): SnsNotifier {
  return new SnsNotifier({
    channel: 'aws-alerts',
    topicArn,
    region: 'eu-west-1',
    endpoint,
    accessKeyId: 'AKIDCANOPYTEST',
    secretAccessKey: 'dummy-secret-key-for-tests',
  });
}

describe('SnsNotifier', () => {
  it('publishes the payload as JSON with subject and attributes, signed', async () => {
    receiver = await startHttpReceiver(snsPublish);
    notifier = snsNotifier(receiver.url.replace('/hook', '/'));
    const payload = samplePayload();
    await notifier.send(payload, AbortSignal.timeout(5_000));

    const [request] = await receiver.received(1);
    expect(request?.method).toBe('POST');
    expect(request?.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDCANOPYTEST\/\d{8}\/eu-west-1\/sns\/aws4_request/,
    );
    const form = new URLSearchParams(request?.body);
    expect(form.get('Action')).toBe('Publish');
    expect(form.get('TopicArn')).toBe(TOPIC);
    expect(form.get('Subject')).toBe(`[CRITICAL] escalated: ${payload.alert.summary}`);
    expect(JSON.parse(form.get('Message') ?? '')).toEqual(payload);
    expect(messageAttributes(form)).toEqual({
      severity: 'critical',
      event: 'escalated',
      notification_id: payload.id,
    });
    expect(form.has('MessageDeduplicationId')).toBe(false);
  });

  it('sets the group and deduplication id on a FIFO topic', async () => {
    const fifo = `${TOPIC}.fifo`;
    receiver = await startHttpReceiver(snsPublish);
    notifier = snsNotifier(receiver.url.replace('/hook', '/'), fifo);
    await notifier.send(samplePayload(), AbortSignal.timeout(5_000));
    const form = new URLSearchParams((await receiver.received(1))[0]?.body);
    expect(form.get('MessageGroupId')).toBe('alert-1');
    expect(form.get('MessageDeduplicationId')).toBe('evt-7f3a:ops-hook');
  });

  it('publishes a report as JSON with its title as subject and event and id attributes', async () => {
    receiver = await startHttpReceiver(snsPublish);
    notifier = snsNotifier(receiver.url.replace('/hook', '/'));
    const report = sampleReport();
    await notifier.sendReport(report, AbortSignal.timeout(5_000));

    const [request] = await receiver.received(1);
    expect(request?.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDCANOPYTEST\//);
    const form = new URLSearchParams(request?.body);
    expect(form.get('Action')).toBe('Publish');
    expect(form.get('TopicArn')).toBe(TOPIC);
    expect(form.get('Subject')).toBe(report.title);
    expect(JSON.parse(form.get('Message') ?? '')).toEqual(report);
    expect(messageAttributes(form)).toEqual({
      event: 'daily-summary',
      notification_id: report.id,
    });
  });

  it('fits a long report title into a subject SNS takes, and groups reports on a FIFO topic', async () => {
    receiver = await startHttpReceiver(snsPublish);
    notifier = snsNotifier(receiver.url.replace('/hook', '/'), `${TOPIC}.fifo`);
    const report = sampleReport({ title: `Résumé quotidien — ${'serre '.repeat(30)}` });
    await notifier.sendReport(report, AbortSignal.timeout(5_000));

    const form = new URLSearchParams((await receiver.received(1))[0]?.body);
    const subject = form.get('Subject') ?? '';
    expect(subject.length).toBeLessThanOrEqual(100);
    expect(subject).toMatch(/^[\x20-\x7e]+$/);
    expect(subject.startsWith('Resume quotidien ? serre serre')).toBe(true);
    expect(form.get('MessageGroupId')).toBe('daily-summary');
    expect(form.get('MessageDeduplicationId')).toBe(report.id);
  });

  it('fails a report with CANOPY_NOTIFY_FAILED and the SNS error, without the keys', async () => {
    receiver = await startHttpReceiver(snsPublish);
    notifier = snsNotifier(receiver.url.replace('/hook', '/'), `${TOPIC}-gone`);
    const error = await notifier
      .sendReport(sampleReport(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain('Topic does not exist');
    expect((error as Error).message).not.toContain('dummy-secret-key-for-tests');
  });

  it('fails with CANOPY_NOTIFY_FAILED and the SNS error for an unknown topic', async () => {
    receiver = await startHttpReceiver(snsPublish);
    notifier = snsNotifier(receiver.url.replace('/hook', '/'), `${TOPIC}-gone`);
    const error = await notifier
      .send(samplePayload(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain('Topic does not exist');
    expect((error as Error).cause).toMatchObject({ name: 'NotFoundException' });
    expect((error as Error).message).not.toContain('dummy-secret-key-for-tests');
    // One attempt only: the outbox owns retries.
    expect(receiver.requests).toHaveLength(1);
  });

  it('fails with CANOPY_NOTIFY_FAILED when the signal aborts a hanging endpoint', async () => {
    receiver = await startHttpReceiver(() => {
      // never answers
    });
    notifier = snsNotifier(receiver.url.replace('/hook', '/'));
    const controller = new AbortController();
    const sending = notifier.send(samplePayload(), controller.signal).catch((e: unknown) => e);
    await receiver.received(1);
    controller.abort();
    expect(await sending).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
  });

  it('refuses half a key pair', () => {
    expect(
      () =>
        new SnsNotifier({
          channel: 'x',
          topicArn: TOPIC,
          region: 'us-east-1',
          accessKeyId: 'AKID',
        }),
    ).toThrow(expect.objectContaining({ code: 'CANOPY_CONFIG_INVALID' }) as Error);
  });
});

describe('snsSubject', () => {
  it('keeps to printable ASCII and 100 characters', () => {
    const base = samplePayload();
    const long = {
      ...base,
      alert: { ...base.alert, summary: `Température ≥ 38 °C\nin zone ${'x'.repeat(200)}` },
    };
    const subject = snsSubject(headline(long));
    expect(subject).toHaveLength(100);
    expect(subject).toMatch(/^[\x20-\x7e]+$/);
    expect(subject.startsWith('[CRITICAL] escalated: Temperature ? 38 ?C in zone xxx')).toBe(true);
    expect(subject.endsWith('...')).toBe(true);
  });
});
