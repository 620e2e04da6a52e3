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
import type { HotStore } from '../core/store.js';
import type { CanopyConfig } from '../config/schema.js';
import { buildApi } from '../api/server.js';
import { LiveFeed } from '../api/live.js';
import { rateLimitEnabled, resolveAuthMode } from '../auth/mode.js';
import { AuthService } from '../auth/service.js';
import { openLakeQueries } from '../query/index.js';
import { buildCatalog, lakeCacheDir, lakeEngineSettings, QualityHistory } from '../lake/index.js';
import type { DiskVolume } from '../observability/disk-gauges.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import type { ReadinessCheck } from '../observability/readiness.js';
import type { EmbeddedMqttBroker } from '../sources/mqtt-broker.js';
import { PlantDirectory } from '../sources/plant-directory.js';
import { createNotifiers, type Notifier } from '../alerts/index.js';
import type { MetaStore } from '../core/meta.js';
import {
  createObjectStore,
  DuckDbHotStore,
  PostgresHotStore,
  openMetaStore,
} from '../storage/index.js';
import { startAlerting, type Alerting } from './alerting.js';
import { startHousekeeping, type Housekeeping, type RetentionPurge } from './housekeeping.js';
import { startWorkflows, type Workflows } from './workflows.js';
import { housekeepingIsWorkflow } from '../workflows/platform.js';
import { startBus } from './bus.js';
import { CommitFollower } from './commit-follower.js';
import { createPipeline, type IngestPipeline } from './pipeline.js';
import { startSources } from './sources.js';
import { serverTlsOptions } from './tls.js';
import { ROLES, type Role } from '../config/roles.js';
import { AuthFailureLimiter } from '../auth/failure-limit.js';

export interface CanopyApp {
  config: CanopyConfig;
  /** Null in a process with the ingest role alone. */
  store: HotStore | null;
  /** Null without the process role. */
  pipeline: IngestPipeline | null;
  metrics: Metrics;
  /** Bound ports (0 in config resolves to the real one here); null when that part is off. */
  httpPort: number | null;
  mqttPort: number | null;
  api: FastifyInstance;
  /** Export to bronze, then purge the hot window: the `housekeeping` workflow's steps, or on `lake.exportIntervalMs` without workflows. Null without the jobs role. */
  housekeeping: Housekeeping | null;
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
/** How often a process without the pipeline reads new commits (alert evaluation and live view lag by up to this). */
const FOLLOW_INTERVAL_MS = 500;

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
          memoryLimit: `${config.store.memoryLimitMB}MB`,
        });
  await store.open();
  return store;
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

  const runs = (role: Role): boolean => config.roles.includes(role);
  if (config.roles.length < ROLES.length)
    logger.info({ roles: config.roles }, 'running these roles');

  try {
    // Every role but ingest reads or writes the hot store.
    const store =
      runs('process') || runs('jobs') || runs('api')
        ? await openStore(config, logger, clock)
        : null;
    if (store !== null) {
      stops.push(() => store.close());
      // A one-row read: count(*) would scan the whole hot window on PostgreSQL at every probe.
      readiness.push({
        name: 'hot-store',
        probe: () => store.getExportWatermark().then(() => undefined),
      });
    }

    // Alerts, workflow runs and credentials share one metadata store, closed last.
    const jobsUseMeta = runs('jobs') && (config.alerting.enabled || config.workflows.enabled);
    let meta: MetaStore | null = null;
    if (jobsUseMeta || auth.mode === 'required') {
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
    const notifiers: ReadonlyMap<string, Notifier> = runs('jobs')
      ? createNotifiers(config.alerting.notifiers, { logger })
      : new Map();
    const authService =
      meta === null
        ? null
        : new AuthService({
            store: meta,
            clock,
            sessionTtlMs: config.auth.sessionTtlMs,
            logger,
          });
    // One throttle for HTTP and MQTT: an address guessing on one channel is refused on both.
    const failureLimiter = new AuthFailureLimiter(config.auth.failureLimit, clock);

    // Stopped after the pipeline drains (stops run in reverse), so the last commits are evaluated.
    let alerting: Alerting | null = null;
    stops.push(() => alerting?.stop() ?? closeNotifiers(notifiers));
    const pipeline =
      runs('process') && store !== null
        ? await createPipeline(config, store, { clock, metrics, logger })
        : null;
    if (pipeline !== null) stops.push(() => pipeline.drain());
    // With a NATS or Kafka bus, sources publish to it and a consumer (the process role) feeds the pipeline.
    const bus =
      runs('ingest') || runs('process')
        ? await startBus(config, { pipeline, clock, metrics, logger, readiness, stops })
        : null;
    const sink = runs('ingest') ? (bus?.sink ?? pipeline) : null;
    if (runs('ingest') && sink === null)
      throw new CanopyError(
        'CANOPY_CONFIG_INVALID',
        'the ingest role has nowhere to send readings: add the process role or a bus',
      );

    // Commits as the jobs and api roles learn of them: from the pipeline in this process, else from the store.
    let follower: CommitFollower | null = null;
    if (pipeline === null && store !== null)
      follower = new CommitFollower({
        store,
        logger: logger.child({ component: 'store' }),
        intervalMs: FOLLOW_INTERVAL_MS,
      });
    const commits = pipeline ?? follower;

    const lake =
      runs('jobs') || runs('api') || (runs('ingest') && config.landing.enabled)
        ? createObjectStore(config.lake, config.dataDir)
        : null;
    if (lake !== null) {
      stops.push(() => Promise.resolve(lake.close()));
      readiness.push({
        name: 'lake',
        probe: () => lake.head(LAKE_READINESS_KEY).then(() => undefined),
      });
    }
    const quality = lake === null ? null : new QualityHistory(lake, clock);
    if (
      runs('jobs') &&
      config.alerting.enabled &&
      meta !== null &&
      store !== null &&
      quality !== null
    ) {
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
      commits?.onCommit((readings, rejected) =>
        started.service.readingsCommitted(readings, rejected),
      );
    }

    // The dashboard's live stream, told of every commit and every stored alert change.
    const alertService = alerting?.service;
    const live =
      runs('api') && store !== null
        ? new LiveFeed({
            clock,
            store,
            metrics,
            logger: logger.child({ component: 'api' }),
            ...(alertService === undefined
              ? {}
              : { activeAlerts: () => alertService.activeAlerts() }),
          })
        : null;
    if (live !== null) {
      commits?.onCommit((readings) => live.readingsCommitted(readings));
      alertService?.onChange((alerts) => live.alertsChanged(alerts));
    }
    if (follower !== null) {
      const started = follower;
      await started.start();
      stops.push(() => started.stop());
    }

    // One budget for every lake engine of this process: compaction and the lake jobs share it.
    const lakeEngine = lakeEngineSettings(config.lake.engineMemoryMB, config.dataDir);
    let housekeeping: Housekeeping | null = null;
    if (runs('jobs') && store !== null && lake !== null) {
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
      const started = startHousekeeping({
        config,
        store,
        lake,
        clock,
        metrics,
        logger,
        lakeEngine,
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
      housekeeping = started;
      stops.push(() => started.stop());
    }

    const cacheDir = lakeCacheDir(config.lake.cacheDir, config.dataDir);
    const queries =
      lake !== null && (runs('jobs') || runs('api'))
        ? await openLakeQueries(lake, logger.child({ component: 'query' }), { cacheDir })
        : null;
    if (queries !== null) stops.push(() => queries.close());

    let workflows: Workflows | null = null;
    if (
      config.workflows.enabled &&
      meta !== null &&
      store !== null &&
      lake !== null &&
      queries !== null &&
      housekeeping !== null
    ) {
      const started = alerting;
      workflows = await startWorkflows({
        config,
        store: meta,
        lake,
        hotStore: store,
        housekeeping,
        queries,
        notifiers,
        lakeEngine,
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
    // Kept from the plants poll (ingest) for the dashboard (api); saved after the polls stop.
    let plants: PlantDirectory | null = null;
    if (runs('ingest') || runs('api')) {
      const opened = await PlantDirectory.open({
        file: path.join(config.dataDir, 'plants.json'),
        logger: logger.child({ component: 'poll' }),
      });
      stops.push(() => opened.close());
      plants = opened;
    }
    const reads =
      runs('api') && store !== null && queries !== null && lake !== null && quality !== null
        ? { store, queries, lake, quality }
        : null;
    const api = buildApi({
      ...(sink === null ? {} : { sink }),
      ...(reads === null
        ? {}
        : {
            store: reads.store,
            queries: reads.queries,
            catalog: () => buildCatalog(reads.lake, { cacheDir }),
            quality: reads.quality,
            ...(alerting === null ? {} : { alerts: alerting.api }),
            ...(workflows === null ? {} : { workflows: workflows.api }),
          }),
      metrics,
      logger,
      maxPayloadBytes: config.ingest.maxPayloadBytes,
      readiness,
      diskVolumes: diskVolumes(config),
      ...(live === null || plants === null
        ? {}
        : {
            dashboard: {
              live,
              clock,
              hotWindowMs: config.store.retentionHours * 3_600_000,
              plants,
              ...(config.http.dashboardDir === undefined
                ? {}
                : { webDist: path.resolve(config.http.dashboardDir) }),
            },
          }),
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
        failureLimiter,
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
    if (sink !== null && plants !== null) {
      const ingest = await startSources(config, {
        sink,
        lake,
        plants,
        auth: auth.mode === 'required' ? authService : null,
        failureLimiter,
        clock,
        metrics,
        logger,
        readiness,
        stops,
        httpPort,
      });
      broker = ingest.broker;
      mqttPort = ingest.mqttPort;
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
