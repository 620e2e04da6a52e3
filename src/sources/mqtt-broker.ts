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
 *
 * With `auth` (authentication required), every client must log in as a
 * device (username = device id, its generated password) with a client id
 * that is the device id or starts with `<device id>:` — so one device cannot
 * take over another's session — and may publish and subscribe only within
 * its topic filters (default `sensors/<device id>/#`). A publish outside
 * them is refused: no PUBACK, and aedes closes the connection.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Aedes, type AuthenticateError, type AuthErrorCode, type Client } from 'aedes';
import type { Device } from '../core/auth.js';
import { systemClock, type Clock } from '../core/clock.js';
import { TokenBuckets, type TokenBucketLimit } from '../core/token-bucket.js';
import type { AuthFailureLimiter } from '../auth/failure-limit.js';
import { CanopyError } from '../core/errors.js';
import type { IngestSink } from '../core/ingest.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { submitPatiently } from './submit.js';
import { filterCovers, topicMatches } from './topic.js';

/** How the broker checks device credentials (AuthService). */
export interface DeviceAuthenticator {
  /** The device with this username and password; undefined when unknown, wrong or revoked. */
  authenticateDevice(username: string, password: string): Promise<Device | undefined>;
}

export interface EmbeddedBrokerOptions {
  host: string;
  port: number;
  topics: string[];
  /** When the port is taken, listen on a free one (with a warning) instead of failing. */
  portFallback: boolean;
  sink: IngestSink;
  logger: Logger;
  /** Require device credentials and enforce their topic filters; absent: anyone may connect. */
  auth?: DeviceAuthenticator;
  /** Counts refused connections and publishes (`canopy_auth_failures_total`). */
  metrics?: Metrics;
  /** Accept MQTT over TLS only (MQTTS), with this certificate and key; absent: plain TCP. */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * Publishes each device (each client id without authentication) may make,
   * a token bucket; over it the publish is refused without PUBACK and the
   * client disconnected. Absent: no limit.
   */
  publishRateLimit?: TokenBucketLimit;
  /** Time for the rate limit; default the system clock. */
  clock?: Clock;
  /**
   * With `auth`: counts refused device credentials per client address and
   * refuses CONNECTs from a throttled address unchecked (`auth.failureLimit`).
   */
  failureLimiter?: AuthFailureLimiter;
}

const BAD_USERNAME_OR_PASSWORD = 4 as AuthErrorCode;
const NOT_AUTHORIZED = 5 as AuthErrorCode;
const SERVER_UNAVAILABLE = 3 as AuthErrorCode;

export class EmbeddedMqttBroker {
  private broker: Aedes | undefined;
  private server: net.Server | tls.Server | undefined;
  private closed = false;
  /** The device each connected, authenticated client logged in as. */
  private readonly devices = new Map<Client, Device>();

  constructor(private readonly o: EmbeddedBrokerOptions) {}

  private refuse(reason: 'invalid' | 'forbidden'): void {
    this.o.metrics?.authFailures.inc({ credential: 'mqtt', reason });
  }

  /** Requires credentials at CONNECT and keeps subscriptions inside each device's filters. */
  private requireDevices(broker: Aedes, auth: DeviceAuthenticator): void {
    broker.authenticate = (client, username, password, callback) => {
      const refuse = (returnCode: AuthErrorCode, why: string): void => {
        this.refuse('invalid');
        this.o.logger.info({ client: client.id, username, why }, 'MQTT connection refused');
        const err: AuthenticateError = Object.assign(new Error(why), { returnCode });
        callback(err, false);
      };
      if (username === undefined || password === undefined)
        return refuse(BAD_USERNAME_OR_PASSWORD, 'no username or password');
      const limiter = this.o.failureLimiter;
      const address = (client.conn as { remoteAddress?: string }).remoteAddress ?? '';
      if (limiter !== undefined && limiter.retryAfterMs(address) > 0) {
        // Refused unchecked: MQTT 3.1.1 has no retry hint, so "not authorized" it is.
        this.o.metrics?.authThrottled.inc({ channel: 'mqtt' });
        this.o.logger.info({ client: client.id, username, address }, 'MQTT connection throttled');
        const err: AuthenticateError = Object.assign(
          new Error('too many refused logins from this address'),
          { returnCode: NOT_AUTHORIZED },
        );
        return callback(err, false);
      }
      auth.authenticateDevice(username, password.toString('utf8')).then(
        (device) => {
          if (device === undefined) {
            limiter?.recordFailure(address);
            return refuse(BAD_USERNAME_OR_PASSWORD, 'unknown device, wrong password or revoked');
          }
          if (client.id !== device.id && !client.id.startsWith(`${device.id}:`))
            return refuse(
              NOT_AUTHORIZED,
              `client id must be "${device.id}" or start with "${device.id}:"`,
            );
          this.devices.set(client, device);
          callback(null, true);
        },
        (err: unknown) => {
          this.o.logger.warn({ err, client: client.id }, 'could not check MQTT credentials');
          const unavailable: AuthenticateError = Object.assign(
            new Error('credentials cannot be checked now'),
            { returnCode: SERVER_UNAVAILABLE },
          );
          callback(unavailable, false);
        },
      );
    };
    broker.authorizeSubscribe = (client, subscription, callback) => {
      const device = this.devices.get(client);
      if (device?.topics.some((allowed) => filterCovers(allowed, subscription.topic))) {
        return callback(null, subscription);
      }
      this.refuse('forbidden');
      this.o.logger.info(
        { client: client.id, topic: subscription.topic },
        'MQTT subscription outside the device’s topics refused',
      );
      // A null subscription is refused with return code 0x80; the connection stays.
      callback(null, null);
    };
    broker.on('clientDisconnect', (client) => this.devices.delete(client));
  }

  /** Ends the connections of a device (after its credentials are revoked). */
  disconnectDevice(id: string): void {
    for (const [client, device] of this.devices) {
      if (device.id !== id) continue;
      this.devices.delete(client);
      client.close();
    }
  }

  /** Starts listening; resolves with the bound port (useful with port 0). */
  async start(): Promise<number> {
    const broker = await Aedes.createBroker();
    this.broker = broker;
    if (this.o.auth) this.requireDevices(broker, this.o.auth);
    const limit = this.o.publishRateLimit;
    const buckets =
      limit === undefined ? undefined : new TokenBuckets(limit, this.o.clock ?? systemClock);
    broker.authorizePublish = (client, packet, callback) => {
      if (packet.topic.startsWith('$SYS')) return callback(new Error('$SYS topics are reserved'));
      // Keyed by device when logged in: a device may open sessions under several client ids.
      const bucketKey = client === null ? undefined : (this.devices.get(client)?.id ?? client.id);
      if (buckets !== undefined && bucketKey !== undefined && !buckets.take(bucketKey)) {
        // MQTT 3.1.1 has no way to refuse one publish: the client is disconnected
        // without PUBACK, and resends after reconnecting, which slows it down.
        this.o.metrics?.mqttPublishesRateLimited.inc();
        this.o.logger.warn(
          { client: client?.id, bucket: bucketKey, topic: packet.topic, limit },
          'MQTT publish over the rate limit refused; disconnecting',
        );
        return callback(new Error(`publish rate limit of ${limit!.perSecond}/s exceeded`));
      }
      if (this.o.auth) {
        const device = client === null ? undefined : this.devices.get(client);
        if (!device?.topics.some((allowed) => topicMatches(allowed, packet.topic))) {
          this.refuse('forbidden');
          this.o.logger.warn(
            { client: client?.id, device: device?.id, topic: packet.topic },
            'MQTT publish outside the device’s topics refused; disconnecting',
          );
          return callback(new Error(`not allowed to publish to ${packet.topic}`));
        }
      }
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

    const server =
      this.o.tls === undefined
        ? net.createServer(broker.handle)
        : tls.createServer(this.o.tls, broker.handle);
    // A client that fails the TLS handshake (say, plain MQTT on this port) never reaches aedes.
    server.on('tlsClientError', (err: Error) =>
      this.o.logger.debug({ err: err.message }, 'MQTTS handshake failed'),
    );
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
      { host: this.o.host, port, topics: this.o.topics, tls: this.o.tls !== undefined },
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
