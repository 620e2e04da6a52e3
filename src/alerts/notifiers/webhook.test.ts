import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../core/clock.js';
import { CanopyError } from '../../core/errors.js';
import {
  answerStatus,
  startHttpReceiver,
  type HttpReceiver,
} from '../../../test/helpers/http-receiver.js';
import { samplePayload, sampleReport } from '../../../test/helpers/notification.js';
import { WebhookNotifier } from './webhook.js';

const SECRET = 'a-shared-secret-of-some-length';

/** What a receiver does, written from the documented scheme, not from the sender's code. */
function verifiedByReceiver(
  headers: IncomingHttpHeaders,
  rawBody: string,
  secret: string,
): boolean {
  const timestamp = headers['x-canopy-timestamp'];
  const signature = headers['x-canopy-signature'];
  if (typeof timestamp !== 'string' || typeof signature !== 'string') return false;
  if (!signature.startsWith('sha256=')) return false;
  const expected = createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest();
  const given = Buffer.from(signature.slice('sha256='.length), 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

let receiver: HttpReceiver | undefined;
afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

describe('WebhookNotifier', () => {
  it('POSTs the payload as JSON with id, event, configured headers and a verifiable signature', async () => {
    receiver = await startHttpReceiver(answerStatus(204));
    const clock = new ManualClock(Date.UTC(2025, 5, 1, 12, 0, 5, 750));
    const notifier = new WebhookNotifier({
      channel: 'ops-hook',
      url: receiver.url,
      secret: SECRET,
      headers: { Authorization: 'Bearer xyz', 'X-Team': 'growers', 'Content-Type': 'text/plain' },
      clock,
    });
    const payload = samplePayload();
    await notifier.send(payload, AbortSignal.timeout(5_000));

    const [request] = await receiver.received(1);
    expect(request?.method).toBe('POST');
    expect(request?.path).toBe('/hook');
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['x-canopy-notification-id']).toBe(payload.id);
    expect(request?.headers['x-canopy-event']).toBe('escalated');
    expect(request?.headers.authorization).toBe('Bearer xyz');
    expect(request?.headers['x-team']).toBe('growers');
    expect(request?.headers['x-canopy-timestamp']).toBe(String(Math.floor(clock.now() / 1000)));
    expect(JSON.parse(request?.body ?? '')).toEqual(payload);
    expect(verifiedByReceiver(request?.headers ?? {}, request?.body ?? '', SECRET)).toBe(true);
    // The timestamp is part of what is signed: replaying the body under another timestamp fails.
    const replayed = {
      ...request?.headers,
      'x-canopy-timestamp': String(Math.floor(clock.now() / 1000) + 600),
    };
    expect(verifiedByReceiver(replayed, request?.body ?? '', SECRET)).toBe(false);
    expect(verifiedByReceiver(request?.headers ?? {}, request?.body ?? '', `${SECRET}x`)).toBe(
      false,
    );
  });

  it('POSTs a report as JSON with its id, the daily-summary event and a verifiable signature', async () => {
    receiver = await startHttpReceiver(answerStatus(204));
    const clock = new ManualClock(Date.UTC(2026, 10, 29, 6, 0, 1));
    const notifier = new WebhookNotifier({
      channel: 'ops-hook',
      url: receiver.url,
      secret: SECRET,
      headers: { 'X-Team': 'growers', 'X-Canopy-Event': 'forged' },
      clock,
    });
    const report = sampleReport();
    await notifier.sendReport(report, AbortSignal.timeout(5_000));

    const [request] = await receiver.received(1);
    expect(request?.method).toBe('POST');
    expect(request?.headers['content-type']).toBe('application/json');
    expect(request?.headers['x-canopy-notification-id']).toBe(report.id);
    expect(request?.headers['x-canopy-event']).toBe('daily-summary');
    expect(request?.headers['x-team']).toBe('growers');
    expect(request?.headers['x-canopy-timestamp']).toBe(String(Math.floor(clock.now() / 1000)));
    expect(JSON.parse(request?.body ?? '')).toEqual(report);
    expect(verifiedByReceiver(request?.headers ?? {}, request?.body ?? '', SECRET)).toBe(true);
  });

  it('fails a report with CANOPY_NOTIFY_FAILED on a non-2xx answer, without the URL', async () => {
    receiver = await startHttpReceiver(answerStatus(503, 'try later'));
    const notifier = new WebhookNotifier({
      channel: 'ops-hook',
      url: `${receiver.url}?token=s3cr3t`,
      clock: new ManualClock(0),
    });
    const error = await notifier
      .sendReport(sampleReport(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain('503: try later');
    expect((error as Error).message).not.toContain('s3cr3t');
  });

  it('sends no signature headers without a secret', async () => {
    receiver = await startHttpReceiver(answerStatus(200, 'thanks'));
    const notifier = new WebhookNotifier({
      channel: 'plain',
      url: receiver.url,
      clock: new ManualClock(0),
    });
    await notifier.send(samplePayload(), AbortSignal.timeout(5_000));
    const [request] = await receiver.received(1);
    expect(request?.headers['x-canopy-signature']).toBeUndefined();
    expect(request?.headers['x-canopy-timestamp']).toBeUndefined();
  });

  it('fails with CANOPY_NOTIFY_FAILED, the status and an excerpt on a non-2xx answer', async () => {
    receiver = await startHttpReceiver(answerStatus(500, 'database is down\nstack trace here'));
    const notifier = new WebhookNotifier({
      channel: 'ops-hook',
      url: `${receiver.url}?token=s3cr3t`,
      clock: new ManualClock(0),
    });
    const error = await notifier
      .send(samplePayload(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CanopyError);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    const message = (error as Error).message;
    expect(message).toContain('ops-hook');
    expect(message).toContain('500');
    expect(message).toContain('database is down stack trace here');
    expect(message).not.toContain('s3cr3t');
  });

  it('fails with CANOPY_NOTIFY_FAILED when the signal aborts a hanging receiver', async () => {
    receiver = await startHttpReceiver(() => {
      // never answers
    });
    const notifier = new WebhookNotifier({
      channel: 'slow',
      url: receiver.url,
      clock: new ManualClock(0),
    });
    const controller = new AbortController();
    const sending = notifier.send(samplePayload(), controller.signal).catch((e: unknown) => e);
    await receiver.received(1);
    controller.abort();
    const error = await sending;
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain('aborted');
  });

  it.each([
    ['an alert', (n: WebhookNotifier, s: AbortSignal) => n.send(samplePayload(), s)],
    ['a report', (n: WebhookNotifier, s: AbortSignal) => n.sendReport(sampleReport(), s)],
  ])('says "timed out" when the abort of %s is a timeout', async (_what, sendOne) => {
    receiver = await startHttpReceiver(() => {
      // never answers
    });
    const notifier = new WebhookNotifier({
      channel: 'slow',
      url: receiver.url,
      clock: new ManualClock(0),
    });
    const error = await sendOne(notifier, AbortSignal.timeout(50)).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain('timed out');
  });

  it('fails with CANOPY_NOTIFY_FAILED when nothing listens', async () => {
    receiver = await startHttpReceiver(answerStatus(204));
    const url = receiver.url;
    await receiver.close();
    receiver = undefined;
    const notifier = new WebhookNotifier({ channel: 'gone', url, clock: new ManualClock(0) });
    const error = await notifier
      .send(samplePayload(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain('ECONNREFUSED');
  });
});
