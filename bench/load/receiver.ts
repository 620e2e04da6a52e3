/**
 * The webhook receiver of the alert-latency scenario, hosted by the load
 * process: it answers every POST 200 at once and records when each
 * notification arrived, by `alert.sensorId`. Living next to the publisher,
 * it reads arrival times from the same `performance.now()` that timed the
 * publish, and it shares neither event loop nor core with Canopy, as an
 * external receiver would not.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface WebhookReceiver {
  port: number;
  /** Arrival times (`performance.now()`, after the whole body) per sensor id, in order. */
  arrivals: Map<string, number[]>;
  /** Requests whose body was not a notification about a sensor. */
  malformed: number;
  /** Called after each recorded arrival. */
  onArrival: (() => void) | undefined;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const receiver: WebhookReceiver = {
    port: 0,
    arrivals: new Map(),
    malformed: 0,
    onArrival: undefined,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      res.statusCode = 200;
      res.end();
      let sensorId: unknown;
      try {
        sensorId = (
          JSON.parse(Buffer.concat(chunks).toString('utf8')) as { alert?: { sensorId?: unknown } }
        ).alert?.sensorId;
      } catch {
        sensorId = undefined;
      }
      if (typeof sensorId !== 'string') {
        receiver.malformed++;
        return;
      }
      const times = receiver.arrivals.get(sensorId);
      if (times === undefined) receiver.arrivals.set(sensorId, [at]);
      else times.push(at);
      receiver.onArrival?.();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  receiver.port = (server.address() as AddressInfo).port;
  return receiver;
}
