/** Starting a whole Canopy in-process for end-to-end tests: temp data dir, ports 0, silent logs. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Clock } from '../../src/core/clock.js';
import { loadConfig } from '../../src/config/load.js';
import type { CanopyConfig, CanopyConfigInput } from '../../src/config/schema.js';
import { silentLogger } from '../../src/observability/logger.js';
import type { HotStore } from '../../src/core/store.js';
import { startCanopy, type CanopyApp } from '../../src/runtime/app.js';
import type { Housekeeping } from '../../src/runtime/housekeeping.js';
import type { IngestPipeline } from '../../src/runtime/pipeline.js';

/** A Canopy running every role, so every part is there. */
export interface WholeApp extends Omit<CanopyApp, 'store' | 'pipeline' | 'housekeeping'> {
  store: HotStore;
  pipeline: IngestPipeline;
  housekeeping: Housekeeping;
}

/** The app with its every-role parts typed as present; throws if one is missing. */
export function wholeApp(app: CanopyApp): WholeApp {
  const { store, pipeline, housekeeping } = app;
  if (store === null || pipeline === null || housekeeping === null)
    throw new Error('this test needs every role in one process (config roles left at default)');
  return { ...app, store, pipeline, housekeeping };
}

export interface TestApp extends WholeApp {
  dataDir: string;
  /** Stops the app and deletes its data dir. */
  dispose(): Promise<void>;
}

export function testConfig(overrides: CanopyConfigInput = {}, dataDir?: string): CanopyConfig {
  const dir = dataDir ?? mkdtempSync(path.join(tmpdir(), 'canopy-e2e-'));
  return loadConfig({
    env: {},
    overrides: (raw) => {
      Object.assign(raw, { dataDir: dir, log: { level: 'silent' } }, overrides);
      const http = (raw.http as Record<string, unknown> | undefined) ?? {};
      raw.http = { port: 0, ...http };
      const mqtt = (raw.mqtt as Record<string, unknown> | undefined) ?? {};
      raw.mqtt = {
        ...mqtt,
        embedded: { port: 0, ...((mqtt.embedded as object | undefined) ?? {}) },
      };
    },
  }).config;
}

export async function startTestApp(
  overrides: CanopyConfigInput = {},
  dataDir?: string,
  options: { clock?: Clock } = {},
): Promise<TestApp> {
  const config = testConfig(overrides, dataDir);
  const app = await startCanopy(config, { logger: silentLogger(), ...options });
  let whole: WholeApp;
  try {
    whole = wholeApp(app);
  } catch (err) {
    await app.stop();
    throw err;
  }
  return {
    ...whole,
    dataDir: config.dataDir,
    async dispose() {
      await app.stop();
      rmSync(config.dataDir, { recursive: true, force: true });
    },
  };
}

/** Rows of `POST /api/query` (SQL over the lake); fails the test unless it answers 200. */
export async function lakeSql(app: TestApp, query: string): Promise<unknown[][]> {
  const res = await app.api.inject({
    method: 'POST',
    url: '/api/query',
    headers: { 'content-type': 'application/json' },
    payload: { sql: query },
  });
  if (res.statusCode !== 200)
    throw new Error(`POST /api/query answered ${res.statusCode}: ${res.body}`);
  return res.json<{ rows: unknown[][] }>().rows;
}
