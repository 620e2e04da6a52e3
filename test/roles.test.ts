/**
 * Roles split across three Canopy instances sharing the machine's NATS
 * JetStream and PostgreSQL and one lake folder: `ingest` (HTTP and MQTT,
 * publishing to the bus), `process` (the bus into the PostgreSQL hot store)
 * and `jobs,api` (alerting, housekeeping, the read API) with an S3 lake
 * (s3rver). Each answers only its own routes; readings posted to the first
 * are read from the last, alerts are raised from commits it only sees in
 * the store, and its export fills the bucket, queried through its cache.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../src/bus/bus.conformance.js';
import type { CanopyConfigInput } from '../src/config/schema.js';
import { silentLogger } from '../src/observability/logger.js';
import { startCanopy, type CanopyApp } from '../src/runtime/app.js';
import { testConfig } from './helpers/app.js';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from './helpers/s3rver.js';
import { serviceForTests } from './helpers/services.js';

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const services =
  (await serviceForTests('NATS', 4222)) && (await serviceForTests('PostgreSQL', 5432));

describe.runIf(services)('roles in separate instances', () => {
  const id = randomBytes(5).toString('hex');
  const root = mkdtempSync(path.join(tmpdir(), 'canopy-roles-'));
  let s3: S3rverHandle;
  const rulesFile = path.join(root, 'rules.yaml');
  const stream = `CANOPY_ROLES_${id}`;
  const schemas = { store: `canopy_roles_hot_${id}`, meta: `canopy_roles_meta_${id}` };
  let ingest: CanopyApp;
  let processor: CanopyApp;
  let control: CanopyApp;

  /** One deployment's shared settings; each instance adds its roles and its own data folder. */
  function start(name: string, roles: string[], extra: CanopyConfigInput = {}): Promise<CanopyApp> {
    const shared = {
      roles,
      store: { kind: 'postgres', postgres: { url: PG_URL, schema: schemas.store } },
      meta: { kind: 'postgres', postgres: { url: PG_URL, schema: schemas.meta } },
      lake: {
        kind: 's3',
        s3: {
          bucket: s3.bucket,
          prefix: `roles-${id}/`,
          endpoint: s3.endpoint,
          forcePathStyle: true,
          ...S3RVER_CREDENTIALS,
        },
      },
      landing: { enabled: false },
      workflows: { enabled: false },
      alerting: { rulesFile, tickMs: 3_600_000 },
      bus: {
        kind: 'nats',
        partitions: 4,
        nats: { stream, subjectPrefix: `canopy-roles.${id}`, consumer: `canopy-roles-${id}` },
      },
      ...extra,
    } as CanopyConfigInput;
    return startCanopy(testConfig(shared, path.join(root, name)), { logger: silentLogger() });
  }

  beforeAll(async () => {
    s3 = await startS3rver();
    writeFileSync(
      rulesFile,
      `rules:
  - id: plant-moisture
    kind: reading
    select: { sensorTypes: [soil_moisture] }
    critical: { below: 15 }
`,
    );
    // The store's schema is created by the first instance to open it; the others find it.
    control = await start('control', ['jobs', 'api']);
    processor = await start('process', ['process']);
    ingest = await start('ingest', ['ingest']);
  }, 60_000);

  afterAll(async () => {
    for (const app of [ingest, processor, control]) await app?.stop();
    const nc = await connect({ servers: ['nats://127.0.0.1:4222'] });
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
    await nc.close();
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    for (const schema of Object.values(schemas))
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
    await s3?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const url = (app: CanopyApp, route: string): string => `http://127.0.0.1:${app.httpPort}${route}`;

  it('gives each instance only the parts of its roles', () => {
    expect(ingest.store).toBeNull();
    expect(ingest.pipeline).toBeNull();
    expect(ingest.mqttPort).not.toBeNull();
    expect(processor.pipeline).not.toBeNull();
    expect(processor.housekeeping).toBeNull();
    expect(processor.mqttPort).toBeNull();
    expect(control.pipeline).toBeNull();
    expect(control.alerting).not.toBeNull();
    expect(control.housekeeping).not.toBeNull();
  });

  it('serves health, readiness and metrics everywhere, and each route only where its role runs', async () => {
    for (const app of [ingest, processor, control]) {
      expect((await fetch(url(app, '/healthz'))).status).toBe(200);
      expect((await fetch(url(app, '/readyz'))).status).toBe(200);
      expect((await fetch(url(app, '/metrics'))).status).toBe(200);
    }
    const post = (app: CanopyApp): Promise<Response> =>
      fetch(url(app, '/api/data'), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '[]',
      });
    expect((await post(processor)).status).toBe(404);
    expect((await post(control)).status).toBe(404);
    expect((await fetch(url(ingest, '/api/data'))).status).toBe(404);
    expect((await fetch(url(processor, '/api/alerts'))).status).toBe(404);
  });

  it('stores what the ingest instance took, reads it on the api instance and raises alerts there', async () => {
    const at = Date.now() - 60_000;
    const readings = Array.from({ length: 50 }, (_, i) => ({
      sensor_id: `roles-${i % 5}`,
      sensor_type: 'temperature',
      timestamp: new Date(at + i * 1000).toISOString(),
      value: 20 + (i % 7),
    }));
    const res = await fetch(url(ingest, '/api/data'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(readings),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ accepted: 50, rejected: [] });

    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ingest.mqttPort}`);
    await client.publishAsync(
      'sensors/conservatory',
      JSON.stringify({
        sensor_id: 'plant-7',
        sensor_type: 'soil_moisture',
        timestamp: new Date().toISOString(),
        value: 9,
      }),
      { qos: 1 },
    );
    await client.endAsync();

    const stored = async (): Promise<number> =>
      (
        (await (await fetch(url(control, '/api/data?limit=1000'))).json()) as {
          data: unknown[];
        }
      ).data.length;
    await until(async () => (await stored()) === 51, 'all 51 readings on the api instance');

    // The jobs instance learns of the commit from the store, then evaluates the rule.
    await until(async () => {
      const body = (await (await fetch(url(control, '/api/alerts'))).json()) as {
        data: { rule_id: string; sensor_id: string; severity: string }[];
      };
      return body.data.some(
        (a) =>
          a.rule_id === 'plant-moisture' && a.sensor_id === 'plant-7' && a.severity === 'critical',
      );
    }, 'a critical plant-moisture alert for plant-7');

    // Its housekeeping exports the hot window into the shared lake; the api instance queries it.
    await control.housekeeping!.step('export');
    const query = await fetch(url(control, '/api/query'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        sql: "SELECT count(*) FROM bronze_readings WHERE sensor_id LIKE 'roles-%'",
      }),
    });
    expect(query.status, await query.clone().text()).toBe(200);
    expect(((await query.json()) as { rows: unknown[][] }).rows).toEqual([[50]]);
  }, 60_000);
});
