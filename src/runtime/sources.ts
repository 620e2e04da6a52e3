/**
 * The ingest role: every configured source — the embedded MQTT broker, the
 * MQTT client, polled endpoints, the file drop — and the simulator, each
 * handing its messages to one sink (the pipeline, or the bus) and
 * acknowledging its peer only when the sink has them. HTTP ingest is a route
 * of the API (src/api/server.ts), given the same sink.
 *
 * Each source registers its own stop step and readiness check; stops run in
 * reverse, so the sources stop before the sink drains.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { AuthService } from '../auth/service.js';
import { rateLimitEnabled } from '../auth/mode.js';
import type { Clock } from '../core/clock.js';
import type { IngestSink } from '../core/ingest.js';
import type { ObjectStore } from '../core/object-store.js';
import type { CanopyConfig } from '../config/schema.js';
import { BUILT_IN_WIDE_CSV_MAPPINGS } from '../ingest/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { ReadinessCheck } from '../observability/readiness.js';
import { FileDropSource } from '../sources/file-drop.js';
import { HttpPollSource } from '../sources/http-poll.js';
import { EmbeddedMqttBroker } from '../sources/mqtt-broker.js';
import { MqttClientSource } from '../sources/mqtt-client.js';
import type { PlantDirectory } from '../sources/plant-directory.js';
import { LocalObjectStore } from '../storage/index.js';
import { startSimulation } from './simulation.js';
import { readPemFile, serverTlsOptions } from './tls.js';
import type { AuthFailureLimiter } from '../auth/failure-limit.js';

export interface SourcesDeps {
  sink: IngestSink;
  /** The lake, for a landing area inside an S3 lake's bucket; null when landing is off. */
  lake: ObjectStore | null;
  /** Keeps the plant records the plants poll brings. */
  plants: PlantDirectory;
  /** Device credentials for the embedded broker; null when authentication is off. */
  auth: AuthService | null;
  /** Failed-login throttle per client address, shared with the API. */
  failureLimiter?: AuthFailureLimiter;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  readiness: ReadinessCheck[];
  stops: (() => Promise<void>)[];
  /** The API's port, for the simulator's HTTP target; null when HTTP is off. */
  httpPort: number | null;
}

/**
 * Where the landing area is: `landing.path` (a local folder) if set; else
 * `<dataDir>/landing` for a local lake — outside the lake folder, so files not
 * yet validated are not visible to SQL over the lake — and `landing/` inside
 * the lake's bucket and prefix for an S3 lake.
 */
export function landingArea(
  config: CanopyConfig,
  lake: ObjectStore,
): { store: ObjectStore; prefix: string; watchPath?: string } {
  const folder =
    config.landing.path ??
    (config.lake.kind === 'local' ? path.join(config.dataDir, 'landing') : undefined);
  if (folder === undefined) return { store: lake, prefix: 'landing/' };
  const root = path.resolve(folder);
  mkdirSync(root, { recursive: true });
  return { store: new LocalObjectStore({ root }), prefix: '', watchPath: root };
}

export async function startSources(
  config: CanopyConfig,
  deps: SourcesDeps,
): Promise<{ broker: EmbeddedMqttBroker | null; mqttPort: number | null }> {
  const { sink, clock, metrics, logger, readiness, stops } = deps;
  let broker: EmbeddedMqttBroker | null = null;
  let mqttPort: number | null = null;
  if (config.mqtt.embedded.enabled) {
    const { tls, publishRateLimit, ...embedded } = config.mqtt.embedded;
    const started = new EmbeddedMqttBroker({
      ...embedded,
      ...(rateLimitEnabled(publishRateLimit.enabled, embedded.host)
        ? { publishRateLimit, clock }
        : {}),
      ...(tls === undefined ? {} : { tls: serverTlsOptions(tls, 'mqtt.embedded.tls') }),
      sink,
      logger: logger.child({ component: 'mqtt-broker' }),
      ...(deps.auth === null ? {} : { auth: deps.auth }),
      ...(deps.failureLimiter === undefined ? {} : { failureLimiter: deps.failureLimiter }),
      metrics,
    });
    broker = started;
    stops.push(() => started.stop());
    mqttPort = await started.start();
    readiness.push({
      name: 'mqtt-broker',
      probe: () =>
        started.listening
          ? Promise.resolve()
          : Promise.reject(new Error('the embedded MQTT broker is not listening')),
    });
  }
  if (config.mqtt.client.enabled) {
    const { tls, ...options } = config.mqtt.client;
    const client = new MqttClientSource({
      ...options,
      ...(tls === undefined
        ? {}
        : {
            tls: {
              rejectUnauthorized: tls.rejectUnauthorized,
              ...(tls.caFile === undefined
                ? {}
                : { ca: readPemFile(tls.caFile, 'mqtt.client.tls.caFile') }),
              ...(tls.certFile === undefined
                ? {}
                : { cert: readPemFile(tls.certFile, 'mqtt.client.tls.certFile') }),
              ...(tls.keyFile === undefined
                ? {}
                : { key: readPemFile(tls.keyFile, 'mqtt.client.tls.keyFile') }),
            },
          }),
      sink,
      logger: logger.child({ component: 'mqtt-client' }),
    });
    stops.push(() => client.stop());
    await client.start();
    readiness.push({
      name: 'mqtt-client',
      probe: () =>
        client.connected
          ? Promise.resolve()
          : Promise.reject(new Error('not connected to the MQTT broker; reconnecting')),
    });
  }
  const startPoll = (poll: CanopyConfig['poll'][number]): void => {
    const source = new HttpPollSource({
      ...poll,
      // Plant records also carry names, watering and botanists: the directory keeps those.
      sink: poll.format === 'plants' ? deps.plants.observe(sink) : sink,
      metrics,
      logger: logger.child({ component: 'poll', source: poll.name }),
    });
    stops.push(() => source.stop());
    source.start();
  };
  config.poll.forEach(startPoll);

  if (config.landing.enabled && deps.lake !== null) {
    const lake = deps.lake;
    const area = landingArea(config, lake);
    if (area.store !== lake) stops.push(() => Promise.resolve(area.store.close()));
    const landing = new FileDropSource({
      ...area,
      sink,
      clock,
      metrics,
      logger: logger.child({ component: 'landing' }),
      scanIntervalMs: config.landing.scanIntervalMs,
      settleMs: config.landing.settleMs,
      maxFileBytes: config.landing.maxFileBytes,
      decode: { limits: config.ingest },
      wideCsvMappings: { ...BUILT_IN_WIDE_CSV_MAPPINGS, ...config.ingest.wideCsv },
    });
    // Stopped before the pipeline drains (stops run in reverse), after the file in progress.
    stops.push(() => landing.stop());
    landing.start();
  }

  if (config.simulator.enabled) {
    const simulation = await startSimulation(config, {
      httpPort: deps.httpPort,
      mqttPort,
      // With authentication on, the built-in fleet gets credentials that live only in this process.
      ...(deps.auth === null ? {} : { credentials: deps.auth }),
      clock,
      logger: logger.child({ component: 'simulator' }),
      startPoll,
    });
    stops.push(() => simulation.stop());
  }
  return { broker, mqttPort };
}
