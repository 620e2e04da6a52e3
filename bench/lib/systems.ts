/**
 * The systems under test, all hosted by the bench process on 127.0.0.1 with
 * port 0: Canopy itself, and the bare peers that give each scenario its limit.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Aedes } from 'aedes';
import Fastify from 'fastify';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { Metrics } from '../../src/observability/metrics.js';
import { startCanopy, type CanopyApp } from '../../src/runtime/app.js';

export interface BenchCanopy {
  app: CanopyApp;
  dataDir: string;
  httpPort: number;
  mqttPort: number;
  /** Stops Canopy (drain, checkpoint, close) and deletes its data dir. */
  dispose(): Promise<void>;
}

export interface BenchCanopyOptions {
  /** Replaces the instance's own registry (metrics-cost passes one with recording off). */
  metrics?: Metrics;
  /**
   * Alert rules (YAML), written to `<dataDir>/alert-rules.yaml` before the
   * start; without it Canopy writes its starter rules there (log channel only).
   */
  alertRules?: string;
  /** The `alerting` config section (e.g. notifiers); rulesFile is the file above. */
  alerting?: Record<string, unknown>;
  /** `shutdownTimeoutMs` (default 30 s): the soak stops with half an hour of hot window. */
  shutdownTimeoutMs?: number;
  /** `store.memoryLimitMB` (default 1024): the hot store's buffer pool. */
  storeMemoryLimitMB?: number;
  /** `workflows.hourly.cron` (default `5 * * * *`): when the hourly-lake workflow runs. */
  hourlyLakeCron?: string;
}

/**
 * A full Canopy (pipeline, stream checks, DuckDB file store, embedded broker,
 * API, alerting) on a fresh temp data dir, silent logs, simulator off, ports 0.
 * `BENCH_TMPDIR` chooses where the data dir goes (default: the OS temp dir).
 */
export async function startBenchCanopy(options: BenchCanopyOptions = {}): Promise<BenchCanopy> {
  const { metrics } = options;
  const dataDir = mkdtempSync(path.join(process.env.BENCH_TMPDIR ?? tmpdir(), 'canopy-bench-'));
  try {
    const rulesFile = path.join(dataDir, 'alert-rules.yaml');
    if (options.alertRules !== undefined) writeFileSync(rulesFile, options.alertRules);
    const { config } = loadConfig({
      env: {},
      overrides: (raw) => {
        Object.assign(raw, {
          dataDir,
          log: { level: 'silent' },
          http: { host: '127.0.0.1', port: 0 },
          mqtt: { embedded: { host: '127.0.0.1', port: 0 } },
          simulator: { enabled: false },
          ...(options.shutdownTimeoutMs === undefined
            ? {}
            : { shutdownTimeoutMs: options.shutdownTimeoutMs }),
          ...(options.storeMemoryLimitMB === undefined
            ? {}
            : { store: { memoryLimitMB: options.storeMemoryLimitMB } }),
          ...(options.hourlyLakeCron === undefined
            ? {}
            : { workflows: { hourly: { cron: options.hourlyLakeCron } } }),
          ...(options.alerting === undefined
            ? {}
            : { alerting: { ...options.alerting, rulesFile } }),
        });
      },
    });
    const app = await startCanopy(config, {
      logger: silentLogger(),
      ...(metrics === undefined ? {} : { metrics }),
    });
    if (app.httpPort === null || app.mqttPort === null)
      throw new Error('Canopy started without its HTTP API or MQTT broker');
    return {
      app,
      dataDir,
      httpPort: app.httpPort,
      mqttPort: app.mqttPort,
      async dispose() {
        try {
          await app.stop();
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

export interface BarePeer {
  port: number;
  stop(): Promise<void>;
}

/** A bare aedes broker: default in-memory persistence, no hooks, no subscribers, no store. */
export async function startBareBroker(): Promise<BarePeer> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    async stop() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

/**
 * A bare Fastify server: takes `POST /api/data` bodies of the same media types
 * as raw buffers (no decoding, no hooks, no store) and answers 200.
 */
export async function startBareHttp(bodyLimit: number): Promise<BarePeer> {
  const app = Fastify({ logger: false, bodyLimit });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ['application/json', 'application/x-ndjson'],
    { parseAs: 'buffer' },
    (_req, body, done) => done(null, body),
  );
  app.post('/api/data', (request, reply) =>
    reply.send({ ok: true, bytes: (request.body as Buffer).length }),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    port: (app.server.address() as AddressInfo).port,
    stop: () => app.close(),
  };
}
