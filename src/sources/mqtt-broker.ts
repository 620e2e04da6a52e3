/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1): devices publish straight to
 * Canopy with no broker to run.
 *
 * A QoS 1 PUBLISH on an ingest topic is answered with PUBACK only after its
 * readings are committed: aedes calls `authorizePublish` before it writes the
 * PUBACK, and Canopy completes that hook after the commit. Malformed payloads
 * are committed as dead letters and acknowledged (resending them cannot help).
 * If the store keeps failing past the patience window the client is
 * disconnected without PUBACK, so it resends after reconnecting.
 * Messages on other topics pass through the broker untouched.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { CanopyError } from '../core/errors.js';
import type { IngestSink } from '../core/ingest.js';
import type { Logger } from '../observability/logger.js';
import { submitPatiently } from './submit.js';
import { topicMatches } from './topic.js';

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  topics: string[];
  /** When the port is taken, listen on a free one (with a warning) instead of failing. */
  portFallback: boolean;
  sink: IngestSink;
  logger: Logger;
}

export class EmbeddedMqttBroker {
  private broker: Aedes | undefined;
  private server: net.Server | undefined;
  private closed = false;

  constructor(private readonly o: EmbeddedBrokerOptions) {}

  /** Starts listening; resolves with the bound port (useful with port 0). */
  async start(): Promise<number> {
    const broker = await Aedes.createBroker();
    this.broker = broker;
    broker.authorizePublish = (client, packet, callback) => {
      if (packet.topic.startsWith('$SYS')) return callback(new Error('$SYS topics are reserved'));
      if (!this.o.topics.some((filter) => topicMatches(filter, packet.topic)))
        return callback(null);
      submitPatiently(
        this.o.sink,
        {
          source: 'mqtt',
          payload: packet.payload,
          origin: packet.topic,
          contentType: 'application/json',
        },
        { isClosed: () => this.closed },
      ).then(
        () => callback(null),
        (err: unknown) => {
          this.o.logger.warn(
            { err, client: client?.id, topic: packet.topic },
            'publish not acknowledged; client will resend',
          );
          callback(err instanceof Error ? err : new Error(String(err)));
        },
      );
    };
    broker.on('clientError', (client, err) => {
      this.o.logger.debug({ client: client.id, err: err.message }, 'mqtt client error');
    });

    const server = net.createServer(broker.handle);
    this.server = server;
    const listen = (port: number): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, this.o.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    try {
      await listen(this.o.port);
    } catch (err) {
      const inUse = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
      if (!inUse || !this.o.portFallback) {
        throw new CanopyError(
          'CANOPY_SOURCE_START_FAILED',
          `embedded MQTT broker cannot listen on ${this.o.host}:${this.o.port}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      await listen(0);
      this.o.logger.warn(
        { wanted: this.o.port, port: (server.address() as AddressInfo).port },
        'MQTT port in use (another broker?); the embedded broker took a free port instead. Set CANOPY_MQTT_PORT to choose one',
      );
    }
    const port = (server.address() as AddressInfo).port;
    this.o.logger.info(
      { host: this.o.host, port, topics: this.o.topics },
      'embedded MQTT broker listening',
    );
    return port;
  }

  /** Whether the broker is accepting connections (for `/readyz`). */
  get listening(): boolean {
    return !this.closed && this.server?.listening === true;
  }

  async stop(): Promise<void> {
    this.closed = true;
    const server = this.server;
    const broker = this.broker;
    // The server stops accepting at once, but its close completes only when every
    // connection has ended, and connected devices stay until the broker closes them.
    const serverClosed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    await serverClosed;
  }
}
