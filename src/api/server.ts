/**
 * The HTTP API. `buildApi(deps)` returns a Fastify instance that is not
 * listening, so tests drive it with `inject` and no port.
 *
 * Errors reach clients as `{ "error": { "code", "message", "details"? } }`
 * with the status of the code (docs/errors.md).
 *
 * Every request has an id: the client's `X-Request-Id` when it is a sane
 * token, else a fresh UUID. It is echoed in the `X-Request-Id` response
 * header and carried as `requestId` by every log line of the request.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
} from 'fastify';
import { CanopyError, isCanopyError } from '../core/errors.js';
import type { IngestSink, PayloadFormat } from '../core/ingest.js';
import { toWire } from '../core/reading.js';
import type { HotStore } from '../core/store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { DiskGauges, type DiskVolume } from '../observability/disk-gauges.js';
import { LakeGauges } from '../observability/lake-gauges.js';
import { checkReadiness, type ReadinessCheck } from '../observability/readiness.js';
import type { LakeQueries } from '../query/index.js';
import type { CatalogTable, QualityHistory } from '../lake/index.js';
import { parseLimit, parseTimeParam, optionalString } from './params.js';
import { registerAlertRoutes, type AlertApiDeps } from './alerts.js';
import { registerAuth, type AuthApiDeps } from './auth.js';
import { registerRateLimit, type HttpRateLimit } from './rate-limit.js';
import { registerWorkflowRoutes, type WorkflowApiDeps } from './workflows.js';
import { registerImputationRoutes } from './imputation.js';
import { registerDashboardRoutes, type DashboardDeps } from './dashboard.js';
import { toCsv } from './csv.js';

/** The read side (the api role): all four, or none in a process without it. */
export interface ApiReadDeps {
  store: HotStore;
  /** SQL over the lake (`POST /api/query`). */
  queries: LakeQueries;
  /** The lake catalogue (`GET /api/catalog`). */
  catalog: () => Promise<CatalogTable[]>;
  /** Quality run results (`GET /api/quality`, the `canopy_quality_*` metrics). */
  quality: Pick<QualityHistory, 'list' | 'get' | 'latestBySuite'>;
}

/**
 * Every process serves `/healthz`, `/readyz` and `/metrics`. With a sink it
 * takes readings (`POST /api/data`: the ingest role); with the read side it
 * serves the read routes and the alert, workflow and dashboard routes given.
 */
export interface ApiDeps extends Partial<ApiReadDeps> {
  sink?: IngestSink;
  metrics: Metrics;
  logger: Logger;
  maxPayloadBytes: number;
  /** Seconds clients are told to wait when ingest is overloaded. */
  retryAfterSeconds?: number;
  /** What `GET /readyz` probes (hot store, lake, MQTT); none means always ready. */
  readiness?: readonly ReadinessCheck[];
  /** Local folders whose free disk space `/metrics` reports (`canopy_disk_*`); none by default. */
  diskVolumes?: readonly DiskVolume[];
  /** Alerts and alert rules (`/api/alerts`, `/api/alert-rules`); absent when alerting is off. */
  alerts?: AlertApiDeps & {
    /** Sets the outbox gauges at scrape time. */
    sampleGauges(): Promise<void>;
  };
  /** Workflows, their runs and callbacks (`/api/workflows`); absent when workflows are off. */
  workflows?: WorkflowApiDeps;
  /** The dashboard: the app at `/`, `/api/live` and its read endpoints (src/api/dashboard.ts). */
  dashboard?: DashboardDeps;
  /** Authentication, sessions and credentials (src/api/auth.ts); absent: every route open. */
  auth?: AuthApiDeps;
  /** Requests per caller and window (src/api/rate-limit.ts); absent: no limit. */
  rateLimit?: HttpRateLimit;
  /** Serve HTTPS with this certificate and key, and send HSTS; absent: plain HTTP. */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer };
}

/** Closing waits until no request came for CLOSE_QUIET_MS, at most CLOSE_GRACE_MS (wall clock). */
const CLOSE_QUIET_MS = 100;
const CLOSE_GRACE_MS = 2_000;

/** Browsers that once reached Canopy over HTTPS refuse plain HTTP to it for 180 days. */
const HSTS = 'max-age=15552000; includeSubDomains';

const FORMAT_BY_MEDIA_TYPE: Record<string, PayloadFormat> = {
  'application/json': 'json',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  'application/jsonl': 'ndjson',
  'text/csv': 'csv',
};

function sendError(reply: FastifyReply, err: CanopyError, retryAfter?: number): FastifyReply {
  // Every 503 is passing (an overloaded pipeline, a store that could not commit, a shutdown,
  // a dependency down), so it tells the client when to try again.
  if (err.status === 503 && retryAfter !== undefined)
    reply.header('retry-after', String(retryAfter));
  return reply.status(err.status).send({
    error: {
      code: err.code,
      message: err.message,
      ...(err.details === undefined ? {} : { details: err.details }),
    },
  });
}

/** Longest `Idempotency-Key` accepted (UUIDs and hashes fit with room to spare). */
const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** The `Idempotency-Key` header: 1–255 visible ASCII characters, or absent. */
function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (
    typeof header !== 'string' ||
    header.length === 0 ||
    header.length > MAX_IDEMPOTENCY_KEY_LENGTH ||
    !/^[\x21-\x7e]+$/.test(header)
  ) {
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      `Idempotency-Key must be one header of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters`,
    );
  }
  return header;
}

/** An incoming request id is kept when it is 1–128 of these characters (UUIDs, trace ids, ULIDs). */
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

function requestId(req: IncomingMessage): string {
  const header = req.headers['x-request-id'];
  return typeof header === 'string' && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}

export function buildApi(deps: ApiDeps): FastifyInstance {
  // Typed as Fastify's logger so the instance has the default FastifyInstance type.
  const apiLogger: FastifyBaseLogger = deps.logger.child({ component: 'api' });
  const app = Fastify({
    loggerInstance: apiLogger,
    // Requests are counted and timed in metrics; logging each would flood the log.
    logController: new LogController({
      disableRequestLogging: true,
      requestIdLogLabel: 'requestId',
    }),
    genReqId: requestId,
    bodyLimit: deps.maxPayloadBytes,
    // Fastify's own 503 while closing has no Retry-After; the first hook below answers instead.
    return503OnClosing: false,
    // HTTPS when configured; routes and hooks do not depend on the transport.
    ...(deps.tls === undefined ? {} : { https: deps.tls }),
  });
  const retryAfter = deps.retryAfterSeconds ?? 1;

  // Bodies are decoded by the ingest decoders, not by Fastify: keep them raw.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    Object.keys(FORMAT_BY_MEDIA_TYPE),
    { parseAs: 'buffer' },
    (_req, body, done) => done(null, body),
  );

  // Set by the preClose hook below, once `close()` starts.
  let closing = false;
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    if (deps.tls !== undefined) reply.header('strict-transport-security', HSTS);
    // Before authentication and routing: a stopping server takes no new work.
    if (closing) {
      sendError(
        reply,
        new CanopyError(
          'CANOPY_API_SHUTTING_DOWN',
          'Canopy is stopping; retry after the Retry-After seconds (or on another instance)',
        ),
        retryAfter,
      );
      return;
    }
    done();
  });

  // Before any route: the hook applies to every route, including those of plugins.
  if (deps.auth) registerAuth(app, deps.auth);
  // After the auth hook, so that it counts per principal.
  if (deps.rateLimit) registerRateLimit(app, deps.rateLimit, deps.metrics);

  // Once closing starts, a response to a request already in flight closes its connection:
  // left keep-alive, an idle socket would hold `close()` open until keepAliveTimeout.
  let lastRequestAt = 0;
  app.addHook('onRequest', (_request, _reply, done) => {
    lastRequestAt = Date.now();
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    // Any other 503 (a route's own, e.g. the live stream while stopping) says when to retry
    // too; readiness is polled by orchestrators on their own schedule.
    if (
      reply.statusCode === 503 &&
      !reply.hasHeader('retry-after') &&
      request.routeOptions.url !== '/readyz'
    )
      reply.header('retry-after', String(retryAfter));
    done(null, payload);
  });
  // Canopy answers 503 CANOPY_API_SHUTTING_DOWN (with `Connection: close`) from here on. The listener stays open until
  // requests stop coming (or CLOSE_GRACE_MS), so busy clients are told 503 on connections they
  // use rather than having those connections reaped under a request they are sending.
  app.addHook('preClose', async () => {
    closing = true;
    const giveUpAt = Date.now() + CLOSE_GRACE_MS;
    while (Date.now() - lastRequestAt < CLOSE_QUIET_MS && Date.now() < giveUpAt)
      await new Promise((resolve) => setTimeout(resolve, CLOSE_QUIET_MS / 4));
  });

  app.addHook('onResponse', (request, reply, done) => {
    deps.metrics.httpDuration.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
    done();
  });

  app.setErrorHandler((error: FastifyError | CanopyError, request, reply) => {
    if (isCanopyError(error)) return sendError(reply, error, retryAfter);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendError(
        reply,
        new CanopyError(
          'CANOPY_INGEST_PAYLOAD_TOO_LARGE',
          `request body exceeds ${deps.maxPayloadBytes} bytes`,
        ),
      );
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return sendError(
        reply,
        new CanopyError(
          'CANOPY_INGEST_UNSUPPORTED_MEDIA_TYPE',
          `content type ${String(request.headers['content-type'])} is not supported; use one of ${Object.keys(FORMAT_BY_MEDIA_TYPE).join(', ')}`,
        ),
      );
    }
    if (error.statusCode !== undefined && error.statusCode < 500) {
      return sendError(reply, new CanopyError('CANOPY_API_BAD_REQUEST', error.message));
    }
    request.log.error({ err: error }, 'unhandled API error');
    return sendError(
      reply,
      new CanopyError('CANOPY_API_INTERNAL', 'internal error; see the server log'),
    );
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      new CanopyError('CANOPY_API_NOT_FOUND', `no route ${request.method} ${request.url}`),
    ),
  );

  /** Liveness: the process answers. Restarting it would not fix what /readyz reports. */
  app.get('/healthz', () => ({ status: 'ok' }));

  /** Readiness: 200 when every dependency answers, else 503 with each failing check's reason. */
  app.get('/readyz', async (_request, reply) => {
    const { ready, checks } = await checkReadiness(deps.readiness ?? []);
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks });
  });

  const { store, queries, catalog, quality } = deps;
  const reads =
    store && queries && catalog && quality ? { ...deps, store, queries, catalog, quality } : null;
  const lakeGauges =
    catalog === undefined
      ? null
      : new LakeGauges({
          catalog,
          metrics: deps.metrics,
          logger: deps.logger.child({ component: 'api' }),
        });

  const diskGauges = new DiskGauges({
    volumes: deps.diskVolumes ?? [],
    metrics: deps.metrics,
    logger: deps.logger.child({ component: 'api' }),
  });

  /** The quality gauges follow the lake's history, which other processes also write. */
  const sampleQuality = async (): Promise<void> => {
    if (quality === undefined) return;
    try {
      for (const suite of await quality.latestBySuite()) {
        const labels = { suite: suite.suite };
        deps.metrics.qualitySuiteSuccess.set(labels, suite.success ? 1 : 0);
        deps.metrics.qualitySuiteFailedExpectations.set(labels, suite.failed);
        deps.metrics.qualitySuiteLastRun.set(labels, Date.parse(suite.finished_at) / 1000);
      }
    } catch (err) {
      // The lake being unreachable must not take the other metrics down with it.
      apiLogger.warn({ err }, 'could not read quality results for /metrics');
    }
  };

  app.get('/metrics', async (_request, reply) => {
    if (store) deps.metrics.hotStoreRows.set(await store.countReadings());
    await sampleQuality();
    await lakeGauges?.sample();
    await diskGauges.sample();
    await deps.alerts?.sampleGauges();
    return reply
      .type(deps.metrics.registry.contentType)
      .send(await deps.metrics.registry.metrics());
  });

  if (deps.sink) registerIngestRoute(app, deps.sink);
  if (reads) registerReadRoutes(app, reads);

  return app;
}

/** `POST /api/data`: a body in any ingest format, handed to the sink. */
function registerIngestRoute(app: FastifyInstance, sink: IngestSink): void {
  app.post('/api/data', async (request, reply) => {
    if (!request.headers['content-type']) {
      throw new CanopyError(
        'CANOPY_INGEST_UNSUPPORTED_MEDIA_TYPE',
        'a Content-Type header is required (application/json, application/x-ndjson or text/csv)',
      );
    }
    const mediaType = request.headers['content-type'].split(';')[0]!.trim().toLowerCase();
    const body = request.body as Buffer | undefined;
    const idempotencyKey = parseIdempotencyKey(request.headers['idempotency-key']);
    const result = await sink.submit({
      source: 'http',
      payload: body ?? Buffer.alloc(0),
      format: FORMAT_BY_MEDIA_TYPE[mediaType],
      contentType: mediaType,
      origin: `${request.method} ${request.url}`,
      // Namespaced so a client key can never match another source's key.
      ...(idempotencyKey === undefined ? {} : { idempotencyKey: `http:${idempotencyKey}` }),
    });
    // A replay answers with the first response's body (its rejections come from the receipt).
    if (result.duplicate) reply.header('idempotent-replayed', 'true');
    if (result.rejected.length === 0) {
      return reply
        .status(200)
        .send({ batch_id: result.batchId, accepted: result.accepted, rejected: [] });
    }
    // Good records were committed; the bad ones are in the dead-letter store.
    const rejected = result.rejected.map((r) => ({
      index: r.index ?? null,
      reason: r.reason,
      message: r.message,
    }));
    return reply.status(400).send({
      error: {
        code: 'CANOPY_INGEST_REJECTED',
        message: `${rejected.length} record(s) rejected, ${result.accepted} stored: ${rejected
          .slice(0, 5)
          .map((r) =>
            r.index === null
              ? `${r.reason}: ${r.message}`
              : `#${r.index} ${r.reason}: ${r.message}`,
          )
          .join('; ')}${rejected.length > 5 ? '; …' : ''}`,
      },
      batch_id: result.batchId,
      accepted: result.accepted,
      rejected,
    });
  });
}

/** Readings, SQL, catalogue, quality, sensors, dead letters; then alerts, workflows, dashboard. */
function registerReadRoutes(app: FastifyInstance, deps: ApiDeps & ApiReadDeps): void {
  app.get('/api/data', async (request) => {
    const q = request.query as Record<string, unknown>;
    const page = await deps.store.queryReadings({
      sensorId: optionalString(q, 'sensor_id'),
      sensorType: optionalString(q, 'sensor_type'),
      location: optionalString(q, 'location'),
      from: parseTimeParam(q, 'from'),
      to: parseTimeParam(q, 'to'),
      limit: parseLimit(q, 100, 10_000),
      cursor: optionalString(q, 'cursor'),
    });
    return { data: page.items.map(toWire), next_cursor: page.nextCursor };
  });

  app.post('/api/query', async (request, reply) => {
    const raw = request.body;
    let sql: unknown;
    try {
      sql = (JSON.parse(Buffer.isBuffer(raw) ? raw.toString('utf8') : '') as { sql?: unknown }).sql;
    } catch {
      throw new CanopyError('CANOPY_API_BAD_REQUEST', 'the body must be JSON: {"sql": "SELECT …"}');
    }
    if (typeof sql !== 'string' || sql.trim() === '') {
      throw new CanopyError('CANOPY_API_BAD_REQUEST', 'the body must be JSON: {"sql": "SELECT …"}');
    }
    const format = optionalString(request.query as Record<string, unknown>, 'format');
    if (format !== undefined && format !== 'json' && format !== 'csv')
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `format must be json or csv, got "${format}"`,
      );
    const csv =
      format === 'csv' ||
      (format === undefined && (request.headers.accept ?? '').includes('text/csv'));
    const result = await deps.queries.run(sql);
    if (csv)
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="canopy-query.csv"')
        .header('x-canopy-truncated', String(result.truncated))
        .send(
          toCsv(
            result.columns.map((c) => c.name),
            result.rows,
          ),
        );
    return {
      columns: result.columns,
      rows: result.rows,
      row_count: result.rowCount,
      truncated: result.truncated,
      elapsed_ms: result.elapsedMs,
    };
  });

  app.get('/api/catalog', async () => {
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      tables: (await deps.catalog()).map((t) => ({
        table: t.table,
        layer: t.layer,
        files: t.files,
        bytes: t.bytes,
        rows: t.rows,
        last_modified: iso(t.lastModified),
        columns: t.columns,
        partitions: t.partitions.map((p) => ({
          partition: p.partition,
          files: p.files,
          bytes: p.bytes,
          rows: p.rows,
          last_modified: iso(p.lastModified),
          dirty: p.dirty,
        })),
      })),
    };
  });

  app.get('/api/quality', async (request) => {
    const q = request.query as Record<string, unknown>;
    return {
      suites: await deps.quality.latestBySuite(),
      runs: await deps.quality.list(parseLimit(q, 20, 500)),
    };
  });

  app.get('/api/quality/runs/:runId', async (request) => {
    const { runId } = request.params as { runId: string };
    const run = await deps.quality.get(runId);
    if (run === null) throw new CanopyError('CANOPY_API_NOT_FOUND', `no quality run ${runId}`);
    return run;
  });

  app.get('/api/sensors', async () => {
    const sensors = await deps.store.listSensors();
    return {
      data: sensors.map((s) => ({
        sensor_id: s.sensorId,
        sensor_type: s.sensorType,
        unit: s.unit,
        location: s.location,
        origin: s.origin,
        interval_ms: s.intervalMs,
        first_seen: s.firstSeen === null ? null : new Date(s.firstSeen).toISOString(),
        last_seen: s.lastSeen === null ? null : new Date(s.lastSeen).toISOString(),
        last_value: s.lastValue,
        reading_count: s.readingCount,
        anomaly_count: s.anomalyCount,
      })),
    };
  });

  app.get('/api/deadletters', async (request) => {
    const q = request.query as Record<string, unknown>;
    const page = await deps.store.listDeadLetters({
      reason: optionalString(q, 'reason'),
      source: optionalString(q, 'source'),
      limit: parseLimit(q, 100, 1_000),
      cursor: optionalString(q, 'cursor'),
    });
    return {
      data: page.items.map((d) => ({
        id: d.id.toString(),
        received_at: new Date(d.receivedAt).toISOString(),
        source: d.source,
        origin: d.origin,
        reason: d.reason,
        message: d.message,
        raw: d.raw,
      })),
      next_cursor: page.nextCursor,
    };
  });

  if (deps.alerts) registerAlertRoutes(app, deps.alerts);
  if (deps.workflows) {
    registerWorkflowRoutes(app, deps.workflows);
    registerImputationRoutes(app, deps.workflows);
  }
  if (deps.dashboard) registerDashboardRoutes(app, { ...deps, dashboard: deps.dashboard });
}
