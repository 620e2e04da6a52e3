/**
 * Real notification receivers for end-to-end tests, on port 0: a webhook
 * endpoint (over the recording HTTP receiver) and an in-process SMTP server
 * (the `smtp-server` package) that records mail.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { startHttpReceiver } from './http-receiver.js';

export interface WebhookDelivery {
  headers: IncomingHttpHeaders;
  body: string;
  json: { id: string; event: string; alert: { id: string; state: string; severity: string } };
}

export interface WebhookReceiver {
  url: string;
  /** Deliveries answered 2xx, in arrival order. */
  deliveries: WebhookDelivery[];
  /** Every request, including the ones answered with an error status. */
  readonly attempts: number;
  /** The status to answer with from now on (default 200). */
  status: number;
  /** Resolves once `count` deliveries have been accepted. */
  waitFor(count: number, timeoutMs?: number): Promise<WebhookDelivery[]>;
  close(): Promise<void>;
}

/** A webhook endpoint: the recording HTTP receiver, answering `status` and keeping what it accepted. */
export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const deliveries: WebhookDelivery[] = [];
  let status = 200;
  const http = await startHttpReceiver((request, response) => {
    response.writeHead(status).end();
    if (status < 300)
      deliveries.push({
        headers: request.headers,
        body: request.body,
        json: JSON.parse(request.body) as WebhookDelivery['json'],
      });
  });
  return {
    url: http.url,
    deliveries,
    get attempts() {
      return http.requests.length;
    },
    get status() {
      return status;
    },
    set status(value: number) {
      status = value;
    },
    async waitFor(count, timeoutMs = 15_000) {
      await until(
        () => deliveries.length >= count,
        timeoutMs,
        () => `${count} webhook deliveries, got ${deliveries.length}`,
      );
      return deliveries;
    },
    close: () => http.close(),
  };
}

async function until(
  done: () => boolean,
  timeoutMs: number,
  expected: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`expected ${expected()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Checks a delivery's signature as a receiver would: HMAC-SHA256 over `<timestamp>.<body>`. */
export function signatureValid(delivery: WebhookDelivery, secret: string): boolean {
  const timestamp = delivery.headers['x-canopy-timestamp'];
  const signature = delivery.headers['x-canopy-signature'];
  if (typeof timestamp !== 'string' || typeof signature !== 'string') return false;
  const expected = `sha256=${createHmac('sha256', secret).update(`${timestamp}.${delivery.body}`).digest('hex')}`;
  return (
    expected.length === signature.length &&
    timingSafeEqual(Buffer.from(expected), Buffer.from(signature))
  );
}

export interface ReceivedMail {
  from: string;
  to: string[];
  /** The user that logged in, when one did. */
  user: string | undefined;
  raw: string;
}

export interface SmtpReceiver {
  port: number;
  mails: ReceivedMail[];
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

/**
 * An in-process SMTP server on port 0 that keeps every message whole. With
 * `credentials` it accepts that login only; `refuse` names a recipient it
 * answers "no such mailbox" for.
 */
export async function startSmtpReceiver(
  options: { credentials?: { user: string; password: string }; refuse?: string } = {},
): Promise<SmtpReceiver> {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, callback) {
      const ok =
        options.credentials !== undefined &&
        auth.username === options.credentials.user &&
        auth.password === options.credentials.password;
      if (ok) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onRcptTo(address, _session, callback) {
      if (address.address === options.refuse) callback(new Error('No such mailbox'));
      else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return {
    port,
    mails,
    async waitFor(count, timeoutMs = 15_000) {
      await until(
        () => mails.length >= count,
        timeoutMs,
        () => `${count} mails, got ${mails.length}`,
      );
      return mails;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
