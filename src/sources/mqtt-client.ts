/**
 * MQTT client source: subscribes to an external broker (Mosquitto, EMQX, AWS
 * IoT Core) at QoS 1 with a persistent session, so messages published while
 * Canopy is down wait at the broker.
 *
 * mqtt.js sends the PUBACK for a QoS 1 message only after `handleMessage`
 * calls back; Canopy calls back after the commit, so an acknowledged message
 * is stored. mqtt.js handles inbound packets of one connection one at a
 * time, so this source commits one message at a time per connection: batch
 * readings per message for volume, or run several subscribers with shared
 * subscriptions (scale-out).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { CanopyError } from '../core/errors.js';
import type { IngestSink } from '../core/ingest.js';
import type { Logger } from '../observability/logger.js';
import { submitPatiently } from './submit.js';

export interface MqttClientSourceOptions {
  url: string;
  clientId: string;
  topics: string[];
  username?: string | undefined;
  password?: string | undefined;
  cleanSession: boolean;
  /** For `mqtts://`: CA to trust, client certificate and key, whether to verify the broker. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean };
  sink: IngestSink;
  logger: Logger;
  /** How long to wait for the first connection before start() fails. */
  connectTimeoutMs?: number;
}

/**
 * Reconnect delays double from the first to the last and reset on a
 * successful connection, so a broker down for long is not hammered.
 */
const FIRST_RECONNECT_DELAY_MS = 1_000;
const LONGEST_RECONNECT_DELAY_MS = 30_000;

export class MqttClientSource {
  private client: MqttClient | undefined;
  private closed = false;

  constructor(private readonly o: MqttClientSourceOptions) {}

  /** Connects and subscribes; rejects with CANOPY_SOURCE_START_FAILED if the broker is unreachable. */
  async start(): Promise<void> {
    const client = mqtt.connect(this.o.url, {
      clientId: this.o.clientId,
      clean: this.o.cleanSession,
      username: this.o.username,
      password: this.o.password,
      ...this.o.tls,
      protocolVersion: 4,
      reconnectPeriod: FIRST_RECONNECT_DELAY_MS,
      connectTimeout: this.o.connectTimeoutMs ?? 10_000,
      // Re-subscribing is harmless and covers brokers that lost the session.
      resubscribe: true,
    });
    this.client = client;
    client.handleMessage = (packet, callback) => {
      submitPatiently(
        this.o.sink,
        {
          source: 'mqtt-client',
          payload: packet.payload,
          origin: packet.topic,
          contentType: 'application/json',
        },
        { isClosed: () => this.closed },
      ).then(
        () => callback(),
        (err: unknown) => {
          // No PUBACK: the broker redelivers on the next connection.
          this.o.logger.warn(
            { err, topic: packet.topic },
            'message not acknowledged; reconnecting for redelivery',
          );
          callback(err instanceof Error ? err : new Error(String(err)));
          if (!this.closed) client.reconnect();
        },
      );
    };
    client.on('error', (err) =>
      this.o.logger.warn({ err: err.message, url: this.o.url }, 'mqtt client error'),
    );
    // mqtt.js reads `reconnectPeriod` each time a connection closes: widening it here backs off.
    let attempts = 0;
    client.on('reconnect', () => {
      attempts += 1;
      const nextDelayMs = Math.min(
        FIRST_RECONNECT_DELAY_MS * 2 ** attempts,
        LONGEST_RECONNECT_DELAY_MS,
      );
      client.options.reconnectPeriod = nextDelayMs;
      this.o.logger.warn(
        { url: this.o.url, attempt: attempts, nextDelayMs },
        'reconnecting to the MQTT broker',
      );
    });
    client.on('connect', () => {
      if (attempts > 0)
        this.o.logger.info({ url: this.o.url, attempts }, 'MQTT client reconnected');
      attempts = 0;
      client.options.reconnectPeriod = FIRST_RECONNECT_DELAY_MS;
    });

    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no CONNACK from ${this.o.url} within ${this.o.connectTimeoutMs ?? 10_000} ms`,
              ),
            ),
          this.o.connectTimeoutMs ?? 10_000,
        );
        client.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const granted = await client.subscribeAsync(this.o.topics, { qos: 1 });
      const refused = granted.filter((g) => g.qos === 128);
      if (refused.length > 0)
        throw new Error(`broker refused subscriptions: ${refused.map((g) => g.topic).join(', ')}`);
    } catch (cause) {
      await this.stop();
      throw new CanopyError(
        'CANOPY_SOURCE_START_FAILED',
        `MQTT client cannot start against ${this.o.url}: ${(cause as Error).message}`,
        { cause },
      );
    }
    this.o.logger.info(
      { url: this.o.url, topics: this.o.topics, clientId: this.o.clientId },
      'MQTT client source subscribed',
    );
  }

  /** Whether the connection to the broker is up now (for `/readyz`); mqtt.js reconnects when not. */
  get connected(): boolean {
    return this.client?.connected === true;
  }

  async stop(): Promise<void> {
    this.closed = true;
    await this.client?.endAsync();
  }
}
