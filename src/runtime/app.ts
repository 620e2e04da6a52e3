/**
 * Composition: builds a whole Canopy from a validated config — store,
 * pipeline, alerting, sources, API, housekeeping and (with --simulate) the simulator —
 * and stops it in the reverse order. With src/cli this is the only place
 * that picks concrete adapters.
 *
 * Shutdown order matters for "nothing acknowledged is lost": sources stop
 * taking new messages first, the pipeline drains its queue into the store,
 * alerting applies what those last commits changed, then the stores close.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import { systemClock } from '../core/clock.js';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { CanopyConfig } from '../config/schema.js';
import { buildApi } from '../api/server.js';
import { LiveFeed } from '../api/live.js';
import { rateLimitEnabled, resolveAuthMode } from '../auth/mode.js';
import { AuthService } from '../auth/service.js';
import { openLakeQueries } from '../query/index.js';
import { buildCatalog, lakeCacheDir, QualityHistory } from '../lake/index.js';
import type { DiskVolume } from '../observability/disk-gauges.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import type { ReadinessCheck } from '../observability/readiness.js';
import { EmbeddedMqttBroker } from '../sources/mqtt-broker.js';
import { MqttClientSource } from '../sources/mqtt-client.js';
import { HttpPollSource } from '../sources/http-poll.js';
import { FileDropSource } from '../sources/file-drop.js';
import { PlantDirectory } from '../sources/plant-directory.js';
import { BUILT_IN_WIDE_CSV_MAPPINGS } from '../ingest/index.js';
import { createNotifiers, type Notifier } from '../alerts/index.js';
import type { MetaStore } from '../core/meta.js';
import {
  createObjectStore,
  DuckDbHotStore,
  LocalObjectStore,
  PostgresHotStore,
  openMetaStore,
} from '../storage/index.js';
import { startAlerting, type Alerting } from './alerting.js';
import { startHousekeeping, type Housekeeping, type RetentionPurge } from './housekeeping.js';
import { startWorkflows, type Workflows } from './workflows.js';
import { housekeepingIsWorkflow } from '../workflows/platform.js';
import { startBus } from './bus.js';
import { createPipeline, type IngestPipeline } from './pipeline.js';
import { startSimulation } from './simulation.js';
import { readPemFile, serverTlsOptions } from './tls.js';

export interface CanopyApp {
  config: CanopyConfig;
  store: HotStore;
  pipeline: IngestPipeline;
  metrics: Metrics;
  /** Bound ports (0 in config resolves to the real one here); null when that part is off. */
  httpPort: number | null;
  mqttPort: number | null;
  api: FastifyInstance;
  /** Export to bronze, then purge the hot window: the `housekeeping` workflow's steps, or on `lake.exportIntervalMs` without workflows. */
  housekeeping: Housekeeping;
  /** Rules, alerts and the notification outbox; null when `alerting.enabled` is false. */
  alerting: Alerting | null;
  /** The platform workflows and their runner; null when `workflows.enabled` is false. */
  workflows: Workflows | null;
  stop(): Promise<void>;
}

export interface StartOptions {
  logger: Logger;
  clock?: Clock;
  /** Default: a fresh registry with the default process metrics (the bench passes a muted one). */
  metrics?: Metrics;
}

/**
 * The local folders whose disks `/metrics` watches: the data folder (hot store,
 * landing, the S3 lake's cache) and a local lake's folder. An S3 lake has no
 * local disk of its own.
 */
function diskVolumes(config: CanopyConfig): DiskVolume[] {
  const volumes: DiskVolume[] = [{ volume: 'data', path: path.resolve(config.dataDir) }];
  if (config.lake.kind === 'local')
    volumes.push({
      volume: 'lake',
      path: path.resolve(config.lake.path ?? path.join(config.dataDir, 'lake')),
    });
  return volumes;
}

const DAY_MS = 86_400_000;

/** Notifiers without an outbox dispatcher to close them (alerting off). */
async function closeNotifiers(notifiers: ReadonlyMap<string, Notifier>): Promise<void> {
  for (const notifier of notifiers.values()) await notifier.close?.();
}

/** A key no one writes: its HEAD answers "absent" from a reachable lake and throws otherwise. */
const LAKE_READINESS_KEY = '_canopy/readyz';

/**
 * Opens the configured hot store (creating the data folder). A PostgreSQL
 * password left unset falls back to libpq's `PGPASSWORD`, which `pg` reads.
 */
export async function openStore(
  config: CanopyConfig,
  logger: Logger,
  clock: Clock = systemClock,
): Promise<HotStore> {
  mkdirSync(config.dataDir, { recursive: true });
  const storeLogger = logger.child({ component: 'store' });
  const pg = config.store.postgres;
  const store =
    config.store.kind === 'postgres'
      ? new PostgresHotStore({
          connectionString: pg.url,
          host: pg.host,
          port: pg.port,
          user: pg.user,
          password: pg.password,
          database: pg.database,
          schema: pg.schema,
          logger: storeLogger,
          clock,
        })
      : new DuckDbHotStore({
          path: config.store.path ?? path.join(config.dataDir, 'canopy.duckdb'),
          logger: storeLogger,
        });
  await store.open();
  return store;
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

export async function startCanopy(config: CanopyConfig, options: StartOptions): Promise<CanopyApp> {
  const { logger } = options;
  const clock = options.clock ?? systemClock;
  const metrics = options.metrics ?? new Metrics();
  // Filled as the parts start; `/readyz` reads the list on each request.
  const readiness: ReadinessCheck[] = [];
  const stops: (() => Promise<void>)[] = [];
  const stopInOrder = async (): Promise<void> => {
    for (const stop of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        logger.error({ err }, 'error during shutdown');
      }
    }
  };
  /**
   * Stops within `shutdownTimeoutMs` or rejects with CANOPY_SHUTDOWN_TIMEOUT,
   * leaving the rest stopping in the background for the caller to exit over.
   */
  const stopAll = async (): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new CanopyError(
              'CANOPY_SHUTDOWN_TIMEOUT',
              `stopping took longer than shutdownTimeoutMs (${config.shutdownTimeoutMs} ms)`,
            ),
          ),
        config.shutdownTimeoutMs,
      );
    });
    try {
      await Promise.race([stopInOrder(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };

  // Before anything opens: a listener beyond loopback with auth.mode unset refuses to start.
  const auth = resolveAuthMode(config);
  if (auth.warning !== undefined) logger.warn(auth.warning);

  try {
    const store = await openStore(config, logger, clock);
    stops.push(() => store.close());
    // A one-row read: count(*) would scan the whole hot window on PostgreSQL at every probe.
    readiness.push({
      name: 'hot-store',
      probe: () => store.getExportWatermark().then(() => undefined),
    });

    // Alerts, workflow runs and credentials share one metadata store, closed last.
    let meta: MetaStore | null = null;
    if (config.alerting.enabled || config.workflows.enabled || auth.mode === 'required') {
      const opened = openMetaStore(
        config.meta,
        config.dataDir,
        logger.child({ component: 'meta' }),
      );
      await opened.open();
      stops.push(() => opened.close());
      readiness.push({
        name: 'meta-store',
        probe: () => opened.outboxStats().then(() => undefined),
      });
      meta = opened;
    }
    const notifiers = createNotifiers(config.alerting.notifiers, { logger });
    const authService =
      meta === null
        ? null
        : new AuthService({
            store: meta,
            clock,
            sessionTtlMs: config.auth.sessionTtlMs,
            logger,
          });

    // Stopped after the pipeline drains (stops run in reverse), so the last commits are evaluated.
    let alerting: Alerting | null = null;
    stops.push(() => alerting?.stop() ?? closeNotifiers(notifiers));
    const pipeline = await createPipeline(config, store, { clock, metrics, logger });
    stops.push(() => pipeline.drain());
    // With a NATS or Kafka bus, sources publish to it and a consumer feeds the pipeline.
    const sink =
      (await startBus(config, { pipeline, clock, metrics, logger, readiness, stops }))?.sink ??
      pipeline;

    const lake = createObjectStore(config.lake, config.dataDir);
    stops.push(() => Promise.resolve(lake.close()));
    readiness.push({
      name: 'lake',
      probe: () => lake.head(LAKE_READINESS_KEY).then(() => undefined),
    });
    const quality = new QualityHistory(lake, clock);
    if (config.alerting.enabled && meta !== null) {
      const started = await startAlerting({
        config,
        store: meta,
        notifiers,
        hotStore: store,
        quality,
        clock,
        metrics,
        logger,
      });
      alerting = started;
      pipeline.onCommit((readings, rejected) =>
        started.service.readingsCommitted(readings, rejected),
      );
    }

    // The dashboard's live stream, told of every commit and every stored alert change.
    const alertService = alerting?.service;
    const live = new LiveFeed({
      clock,
      store,
      metrics,
      logger: logger.child({ component: 'api' }),
      ...(alertService === undefined ? {} : { activeAlerts: () => alertService.activeAlerts() }),
    });
    pipeline.onCommit((readings) => live.readingsCommitted(readings));
    alertService?.onChange((alerts) => live.alertsChanged(alerts));

    const retention: RetentionPurge[] = [];
    if (meta !== null) {
      const metaStore = meta;
      retention.push({
        name: 'expired sessions',
        olderThanMs: 0,
        purge: (before) => metaStore.purgeSessions(before),
      });
      if (config.alerting.enabled)
        retention.push({
          name: 'resolved alerts',
          olderThanMs: config.alerting.retentionDays * DAY_MS,
          purge: (before) => metaStore.purgeResolved(before),
        });
      if (config.workflows.enabled)
        retention.push({
          name: 'workflow runs',
          olderThanMs: config.workflows.historyDays * DAY_MS,
          purge: (before) => metaStore.purgeRuns(before),
        });
    }
    const housekeeping = startHousekeeping({
      config,
      store,
      lake,
      clock,
      metrics,
      logger,
      retention,
      // Else the `housekeeping` workflow runs the steps every minute.
      timer: !housekeepingIsWorkflow(config),
      onStep: (step, error) =>
        alerting?.observe({
          kind: 'job',
          name: `housekeeping-${step}`,
          ok: error === undefined,
          at: clock.now(),
          ...(error === undefined
            ? {}
            : { error: error instanceof Error ? error.message : 'unknown error' }),
        }),
    });
    stops.push(() => housekeeping.stop());

    const cacheDir = lakeCacheDir(config.lake.cacheDir, config.dataDir);
    const queries = await openLakeQueries(lake, logger.child({ component: 'query' }), {
      cacheDir,
    });
    stops.push(() => queries.close());

    let workflows: Workflows | null = null;
    if (config.workflows.enabled && meta !== null) {
      const started = alerting;
      workflows = await startWorkflows({
        config,
        store: meta,
        lake,
        hotStore: store,
        housekeeping,
        queries,
        notifiers,
        ...(started === null
          ? {}
          : { alerts: { store: started.store, observe: (e) => started.observe(e) } }),
        clock,
        metrics,
        logger,
      });
      const running = workflows;
      stops.push(() => running.stop());
    }

    // Set once the broker starts: revoking a device through the API disconnects it.
    let broker: EmbeddedMqttBroker | null = null;
    // Saved after the polling sources stop (stops run in reverse).
    const plants = await PlantDirectory.open({
      file: path.join(config.dataDir, 'plants.json'),
      logger: logger.child({ component: 'poll' }),
    });
    stops.push(() => plants.close());
    const api = buildApi({
      sink,
      store,
      queries,
      catalog: () => buildCatalog(lake, { cacheDir }),
      quality,
      ...(alerting === null ? {} : { alerts: alerting.api }),
      ...(workflows === null ? {} : { workflows: workflows.api }),
      metrics,
      logger,
      maxPayloadBytes: config.ingest.maxPayloadBytes,
      readiness,
      diskVolumes: diskVolumes(config),
      dashboard: {
        live,
        clock,
        hotWindowMs: config.store.retentionHours * 3_600_000,
        plants,
        ...(config.http.dashboardDir === undefined
          ? {}
          : { webDist: path.resolve(config.http.dashboardDir) }),
      },
      ...(rateLimitEnabled(config.http.rateLimit.enabled, config.http.host)
        ? { rateLimit: config.http.rateLimit }
        : {}),
      auth: {
        mode: auth.mode,
        service: authService,
        publicMetrics: config.auth.publicMetrics,
        // Over HTTPS the cookie must never travel in clear, whatever the setting says.
        secureCookies: config.auth.secureCookies || config.http.tls !== undefined,
        metrics,
        onDeviceRevoked: (id) => broker?.disconnectDevice(id),
      },
      ...(config.http.tls === undefined
        ? {}
        : { tls: serverTlsOptions(config.http.tls, 'http.tls') }),
    });
    let httpPort: number | null = null;
    if (config.http.enabled) {
      await api.listen({ host: config.http.host, port: config.http.port });
      httpPort = (api.server.address() as AddressInfo).port;
      const scheme = config.http.tls === undefined ? 'http' : 'https';
      logger.info({ url: `${scheme}://${config.http.host}:${httpPort}` }, 'API listening');
    }
    stops.push(() => api.close());

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
        ...(auth.mode === 'required' && authService !== null ? { auth: authService } : {}),
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
        sink: poll.format === 'plants' ? plants.observe(sink) : sink,
        metrics,
        logger: logger.child({ component: 'poll', source: poll.name }),
      });
      stops.push(() => source.stop());
      source.start();
    };
    config.poll.forEach(startPoll);

    if (config.landing.enabled) {
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
        httpPort,
        mqttPort,
        // With authentication on, the built-in fleet gets credentials that live only in this process.
        ...(auth.mode === 'required' && authService !== null ? { credentials: authService } : {}),
        clock,
        logger: logger.child({ component: 'simulator' }),
        startPoll,
      });
      stops.push(() => simulation.stop());
    }

    return {
      config,
      store,
      pipeline,
      metrics,
      httpPort,
      mqttPort,
      api,
      housekeeping,
      alerting,
      workflows,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
