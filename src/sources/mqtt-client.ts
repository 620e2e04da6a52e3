/**
 * MQTT client source: subscribes to an external broker (Mosquitto, EMQX, AWS
 * IoT Core) at QoS 1 with a persistent session, so messages published while
 * Canopy is down wait at the broker. MQTT 5 by default (the session then
 * lasts `sessionExpirySeconds` after a disconnect), MQTT 3.1.1 on request.
 *
 * Scale-out: with `shareGroup`, every topic filter is subscribed as
 * `$share/<group>/<filter>`, and the broker hands each message to one of the
 * group's sessions. Each process needs its own client id (`{hostname}` in the
 * configured id); a message in flight to a session that never comes back
 * waits for that session until it expires. Deliveries carry the real topic
 * (the broker publishes to the matching topic name, never the filter), and
 * topic aliases are not used (Canopy advertises no Topic Alias Maximum), so
 * `packet.topic` is the topic the device published to.
 *
 * Redeliveries: a QoS 1 message whose PUBACK was lost (a crash or a broken
 * connection after the commit) is delivered again; the message's content key
 * (`mqttMessageKey`) makes the pipeline store it once.
 *
 * mqtt.js sends the PUBACK for a QoS 1 message only after `handleMessage`
 * calls back; Canopy calls back after the commit, so an acknowledged message
 * is stored. mqtt.js handles inbound packets of one connection one at a
 * time, so this source commits one message at a time per connection: batch
 * readings per message for volume, or run several subscribers with shared
 * subscriptions (scale-out).
 */
import { hostname } from 'node:os';
import mqtt, { type MqttClient } from 'mqtt';
import { CanopyError } from '../core/errors.js';
import type { IngestSink } from '../core/ingest.js';
import type { Logger } from '../observability/logger.js';
import { mqttMessageKey } from './mqtt-key.js';
import { submitPatiently } from './submit.js';

export interface MqttClientSourceOptions {
  url: string;
  /** May hold `{hostname}` and `{pid}` (see `expandClientId`). */
  clientId: string;
  topics: string[];
  /** 5 (MQTT 5, the default) or 4 (MQTT 3.1.1); nothing else. */
  protocolVersion?: number;
  /** Subscribe as `$share/<group>/<filter>` (no `/`, `+` or `#` in the name). */
  shareGroup?: string | undefined;
  /** MQTT 5 with `cleanSession: false`: seconds the broker keeps the session after a disconnect. */
  sessionExpirySeconds?: number;
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
const DEFAULT_SESSION_EXPIRY_SECONDS = 3600;

/**
 * The client id with `{hostname}` and `{pid}` replaced, so that replicas
 * sharing one config get ids of their own. `{hostname}` is read inside the
 * process: a compose file's `${HOSTNAME}` would be the host's, the same for
 * every replica.
 */
export function expandClientId(
  template: string,
  env: { hostname: string; pid: number } = { hostname: hostname(), pid: process.pid },
): string {
  return template.replaceAll('{hostname}', env.hostname).replaceAll('{pid}', String(env.pid));
}

/** The filters to subscribe: each as a shared subscription when there is a group. */
export function subscriptionFilters(topics: readonly string[], shareGroup?: string): string[] {
  if (shareGroup === undefined) return [...topics];
  if (shareGroup === '' || /[/+#]/.test(shareGroup))
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `MQTT share group ${JSON.stringify(shareGroup)} must be non-empty without "/", "+" or "#"`,
    );
  return topics.map((filter) => `$share/${shareGroup}/${filter}`);
}

export class MqttClientSource {
  private client: MqttClient | undefined;
  private closed = false;

  /** The client id in use (placeholders replaced). */
  readonly clientId: string;
  private readonly filters: string[];

  constructor(private readonly o: MqttClientSourceOptions) {
    this.clientId = expandClientId(o.clientId);
    this.filters = subscriptionFilters(o.topics, o.shareGroup);
    if (o.protocolVersion !== undefined && o.protocolVersion !== 4 && o.protocolVersion !== 5)
      throw new CanopyError(
        'CANOPY_CONFIG_INVALID',
        `MQTT protocol version must be 4 (3.1.1) or 5, not ${o.protocolVersion}`,
      );
  }

  /** Connects and subscribes; rejects with CANOPY_SOURCE_START_FAILED if the broker is unreachable. */
  async start(): Promise<void> {
    const protocolVersion = this.o.protocolVersion === 4 ? 4 : 5;
    const client = mqtt.connect(this.o.url, {
      clientId: this.clientId,
      clean: this.o.cleanSession,
      username: this.o.username,
      password: this.o.password,
      ...this.o.tls,
      protocolVersion,
      // MQTT 5 ends a session at disconnect unless it is given an expiry.
      ...(protocolVersion === 5 && !this.o.cleanSession
        ? {
            properties: {
              sessionExpiryInterval: this.o.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS,
            },
          }
        : {}),
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
          idempotencyKey: mqttMessageKey(packet.topic, packet.payload),
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
                `no CONNACK from ${this.o.url} within ${this.o.connectTimeoutMs ?? 10_000} ms${
                  protocolVersion === 5
                    ? ' (a broker without MQTT 5, such as Canopy’s embedded broker, drops an MQTT 5 CONNECT: set mqtt.client.protocolVersion to 4)'
                    : ''
                }`,
              ),
            ),
          this.o.connectTimeoutMs ?? 10_000,
        );
        client.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      const granted = await client.subscribeAsync(this.filters, { qos: 1 });
      // 0x80 and up are refusals (MQTT 5 adds reasons such as 0x9E, shared subscriptions unsupported).
      const refused = granted.filter((g) => g.qos >= 0x80);
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
      { url: this.o.url, topics: this.filters, clientId: this.clientId, protocolVersion },
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
