import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../observability/logger.js';
import { samplePayload, sampleReport } from '../../../test/helpers/notification.js';
import { startSmtpReceiver, type SmtpReceiver } from '../../../test/helpers/receivers.js';
import { EmailNotifier } from './email.js';

/** Headers of a raw message, unfolded, names lower-cased. */
function headersOf(raw: string): Map<string, string> {
  const head = raw.slice(0, raw.indexOf('\r\n\r\n')).replace(/\r\n[ \t]+/g, ' ');
  const headers = new Map<string, string>();
  for (const line of head.split('\r\n')) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/** The decoded body of the first MIME part of `type` (quoted-printable or 7bit). */
function partOf(raw: string, type: string): string {
  const start = raw.indexOf(`Content-Type: ${type}`);
  expect(start).toBeGreaterThan(-1);
  const bodyStart = raw.indexOf('\r\n\r\n', start) + 4;
  const body = raw.slice(bodyStart, raw.indexOf('\r\n--', bodyStart));
  const bytes = body
    .replace(/=\r\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => `%${hex}`)
    .replace(/%(?![0-9A-F]{2})/g, '%25');
  return decodeURIComponent(bytes);
}

let receiver: SmtpReceiver | undefined;
let notifier: EmailNotifier | undefined;
afterEach(async () => {
  await notifier?.close();
  await receiver?.close();
  notifier = undefined;
  receiver = undefined;
});

function emailNotifier(
  port: number,
  extra: Partial<ConstructorParameters<typeof EmailNotifier>[0]> = {},
) {
  return new EmailNotifier({
    channel: 'oncall-mail',
    host: '127.0.0.1',
    port,
    secure: false,
    from: 'Canopy <alerts@canopy.example.com>',
    to: ['oncall@example.com', 'growers@example.com'],
    timeoutMs: 5_000,
    logger: silentLogger(),
    ...extra,
  });
}

describe('EmailNotifier', () => {
  it('sends one message with the subject, recipients, id header, Message-ID and the facts', async () => {
    receiver = await startSmtpReceiver();
    notifier = emailNotifier(receiver.port);
    const payload = samplePayload();
    await notifier.send(payload, AbortSignal.timeout(5_000));

    expect(receiver.mails).toHaveLength(1);
    const mail = receiver.mails[0]!;
    expect(mail.from).toBe('alerts@canopy.example.com');
    expect(mail.to).toEqual(['oncall@example.com', 'growers@example.com']);
    const headers = headersOf(mail.raw);
    expect(headers.get('subject')).toBe(`[CRITICAL] escalated: ${payload.alert.summary}`);
    expect(headers.get('to')).toBe('oncall@example.com, growers@example.com');
    expect(headers.get('x-canopy-notification-id')).toBe(payload.id);
    // `:` is not allowed in a Message-ID local part: it is written as =3a.
    expect(headers.get('message-id')).toBe('<canopy.evt-7f3a=3aops-hook@canopy.example.com>');

    const text = partOf(mail.raw, 'text/plain');
    for (const line of [
      'Sensor: gh-temp-17',
      'Location: greenhouse/1/a',
      'Value: 41.5',
      'Threshold: 38',
      'State: escalated',
      `Open the alert: ${payload.alert.url}`,
    ]) {
      expect(text).toContain(line);
    }
    const html = partOf(mail.raw, 'text/html');
    expect(html).toContain('<td>gh-temp-17</td>');
    expect(html).toContain(`<a href="${payload.alert.url}">`);
  });

  it('sends a report: subject the title, Message-ID from its id, facts as text and as an HTML table', async () => {
    receiver = await startSmtpReceiver();
    notifier = emailNotifier(receiver.port);
    const report = sampleReport();
    await notifier.sendReport(report, AbortSignal.timeout(5_000));

    expect(receiver.mails).toHaveLength(1);
    const mail = receiver.mails[0]!;
    expect(mail.to).toEqual(['oncall@example.com', 'growers@example.com']);
    const headers = headersOf(mail.raw);
    expect(headers.get('subject')).toBe(report.title);
    expect(headers.get('x-canopy-notification-id')).toBe(report.id);
    expect(headers.get('message-id')).toBe(
      '<canopy.daily-summary=3a2026-11-28=3aops-hook@canopy.example.com>',
    );

    const text = partOf(mail.raw, 'text/plain').split(/\r?\n/);
    expect(text[0]).toBe(report.title);
    for (const [label, value] of report.facts) expect(text).toContain(`${label}: ${value}`);
    expect(text).toContain(`Open the report: ${report.url}`);

    // The table as a mail client shows it: one row per fact, in order, entities decoded.
    const html = partOf(mail.raw, 'text/html');
    const decode = (t: string) =>
      t
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"')
        .replace(/&amp;/g, '&');
    const rows = [...html.matchAll(/<tr><th[^>]*>(.*?)<\/th><td>(.*?)<\/td><\/tr>/g)].map((m) => [
      decode(m[1] ?? ''),
      decode(m[2] ?? ''),
    ]);
    expect(rows).toEqual(report.facts);
    expect(html).toContain(`<a href="${report.url}">Open the report</a>`);
  });

  it('gives a resent report the same Message-ID and another report another one', async () => {
    receiver = await startSmtpReceiver();
    notifier = emailNotifier(receiver.port);
    await notifier.sendReport(sampleReport(), AbortSignal.timeout(5_000));
    await notifier.sendReport(sampleReport(), AbortSignal.timeout(5_000));
    await notifier.sendReport(
      sampleReport({ id: 'daily-summary:2026-11-29:ops-hook' }),
      AbortSignal.timeout(5_000),
    );
    const ids = receiver.mails.map((m) => headersOf(m.raw).get('message-id'));
    expect(ids[0]).toBe(ids[1]);
    expect(ids[2]).not.toBe(ids[0]);
  });

  it('fails a report with CANOPY_NOTIFY_FAILED when the signal is already aborted', async () => {
    receiver = await startSmtpReceiver();
    notifier = emailNotifier(receiver.port);
    const error = await notifier
      .sendReport(sampleReport(), AbortSignal.abort())
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).toContain('aborted');
    expect(receiver.mails).toHaveLength(0);
  });

  it('gives a resend the same Message-ID', async () => {
    receiver = await startSmtpReceiver();
    notifier = emailNotifier(receiver.port);
    await notifier.send(samplePayload(), AbortSignal.timeout(5_000));
    await notifier.send(samplePayload(), AbortSignal.timeout(5_000));
    await notifier.send(samplePayload({ id: 'evt-other:ops-hook' }), AbortSignal.timeout(5_000));
    const ids = receiver.mails.map((m) => headersOf(m.raw).get('message-id'));
    expect(ids[0]).toBe(ids[1]);
    expect(ids[2]).not.toBe(ids[0]);
  });

  it('logs in when a user is configured', async () => {
    receiver = await startSmtpReceiver({ credentials: { user: 'canopy', password: 'pw-123' } });
    notifier = emailNotifier(receiver.port, { user: 'canopy', password: 'pw-123' });
    await notifier.send(samplePayload(), AbortSignal.timeout(5_000));
    expect(receiver.mails[0]?.user).toBe('canopy');
  });

  it('fails with CANOPY_NOTIFY_FAILED on a refused login, without the password', async () => {
    receiver = await startSmtpReceiver({ credentials: { user: 'canopy', password: 'pw-123' } });
    notifier = emailNotifier(receiver.port, { user: 'canopy', password: 'wrong-password' });
    const error = await notifier
      .send(samplePayload(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect((error as Error).message).not.toContain('wrong-password');
    expect(receiver.mails).toHaveLength(0);
  });

  it('delivers to the recipients accepted when the server refuses some', async () => {
    receiver = await startSmtpReceiver({ refuse: 'growers@example.com' });
    notifier = emailNotifier(receiver.port);
    await notifier.send(samplePayload(), AbortSignal.timeout(5_000));
    expect(receiver.mails[0]?.to).toEqual(['oncall@example.com']);
  });

  it('fails with CANOPY_NOTIFY_FAILED when the server refuses every recipient', async () => {
    receiver = await startSmtpReceiver({ refuse: 'oncall@example.com' });
    notifier = emailNotifier(receiver.port, { to: ['oncall@example.com'] });
    const error = await notifier
      .send(samplePayload(), AbortSignal.timeout(5_000))
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
  });

  it('fails with CANOPY_NOTIFY_FAILED when the signal is already aborted', async () => {
    receiver = await startSmtpReceiver();
    notifier = emailNotifier(receiver.port);
    const controller = new AbortController();
    controller.abort();
    const error = await notifier.send(samplePayload(), controller.signal).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
    expect(receiver.mails).toHaveLength(0);
  });

  it('fails with CANOPY_NOTIFY_FAILED as soon as the signal aborts a server that never greets', async () => {
    const sockets: net.Socket[] = [];
    const controller = new AbortController();
    const silent = net.createServer((socket) => {
      sockets.push(socket);
      controller.abort();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      notifier = emailNotifier((silent.address() as AddressInfo).port, { timeoutMs: 60_000 });
      const error = await notifier
        .send(samplePayload(), controller.signal)
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CANOPY_NOTIFY_FAILED' });
      expect((error as Error).message).toContain('aborted');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
