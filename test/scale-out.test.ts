/**
 * The scale-out proof (issue 8): two `canopy up --role ingest,process`
 * processes share the work through the machine's Mosquitto (an MQTT 5
 * shared subscription), NATS JetStream (the bus) and PostgreSQL (the hot
 * store). A fixed set of readings — with exact duplicates and late
 * messages — is published at QoS 1; one worker is killed with SIGKILL
 * half-way and started again. Then:
 *
 * - every reading the broker acknowledged to the publisher is in the hot
 *   store exactly once (the duplicates and redeliveries stored nothing twice);
 * - both workers took a share;
 * - the lake built from that store (bronze → silver → gold) equals the lake a
 *   single all-roles process builds from the same readings.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import mqtt from 'mqtt';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runJob, queryLake } from '../src/cli/jobs.js';
import type { CanopyConfig, CanopyConfigInput } from '../src/config/schema.js';
import { startTestApp, testConfig } from './helpers/app.js';
import { waitFor } from './helpers/faults.js';
import { spawnCanopy, type CanopyProcess } from './helpers/process.js';
import { seededRandom } from './helpers/random.js';
import { serviceForTests } from './helpers/services.js';

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const services =
  (await serviceForTests('Mosquitto', 1883)) &&
  (await serviceForTests('NATS', 4222)) &&
  (await serviceForTests('PostgreSQL', 5432));

// 390 messages: under the machine's Mosquitto's per-session queue (max_queued_messages 1000),
// which drops QoS 1 messages beyond it for a subscriber that is away (the killed worker).
const SENSORS = 12;
const READINGS_PER_SENSOR = 150;
const PER_MESSAGE = 5;
const STEP_MS = 60_000;

interface Message {
  topic: string;
  payload: string;
}

/**
 * One message per 5 consecutive readings of a sensor; a seeded tenth of them
 * held back and published last (late data), and 30 published twice
 * (exact duplicates, as a device retrying without its PUBACK sends them).
 */
function fixedSet(prefix: string, start: number): { messages: Message[]; readings: number } {
  const random = seededRandom(8);
  const onTime: Message[] = [];
  const late: Message[] = [];
  for (let block = 0; block < READINGS_PER_SENSOR / PER_MESSAGE; block++) {
    for (let s = 0; s < SENSORS; s++) {
      const sensor = `scale-${s}`;
      const records = Array.from({ length: PER_MESSAGE }, (_, i) => {
        const n = block * PER_MESSAGE + i;
        // A steady signal with noise, and a spike now and then for the anomaly checks.
        const spike = random() < 0.01 ? 30 : 0;
        return {
          sensor_id: sensor,
          sensor_type: 'temperature',
          location: `site-a/floor-${s % 3}/zone-${s % 2}`,
          timestamp: new Date(start + n * STEP_MS).toISOString(),
          value: Math.round((20 + s / 2 + Math.sin(n / 10) + random() + spike) * 1000) / 1000,
          unit: 'C',
        };
      });
      const message = { topic: `${prefix}/${sensor}`, payload: JSON.stringify(records) };
      (random() < 0.1 ? late : onTime).push(message);
    }
  }
  const all = [...onTime, ...late];
  const duplicates = Array.from({ length: 30 }, () => all[Math.floor(random() * all.length)]!);
  return { messages: [...all, ...duplicates], readings: SENSORS * READINGS_PER_SENSOR };
}

/** Columns compared between the two lakes: everything but lineage (when, which batch, which run). */
const SILVER_SQL = `SELECT sensor_id, sensor_type, location, event_time, value, unit,
  round(anomaly_score, 9) AS anomaly_score, is_anomaly, list_sort(anomaly_reasons) AS reasons, imputed
  FROM silver_readings ORDER BY sensor_id, event_time`;
const GOLD_TABLES = ['gold_sensor_5min', 'gold_location_hourly', 'gold_daily_summary'];

/** A counter of one worker, summed over its labels. */
async function metric(worker: CanopyProcess, name: string): Promise<number> {
  const text = await (await fetch(`${worker.httpUrl}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + '{') || l.startsWith(name + ' '))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function buildLake(config: CanopyConfig): Promise<Record<string, unknown[][]>> {
  await runJob(config, 'bronze-export');
  await runJob(config, 'silver');
  await runJob(config, 'gold');
  const tables: Record<string, unknown[][]> = {
    silver_readings: (await queryLake(config, SILVER_SQL)).rows,
  };
  for (const name of GOLD_TABLES)
    tables[name] = (await queryLake(config, `SELECT * FROM ${name} ORDER BY ALL`)).rows;
  return tables;
}

describe.runIf(services)('two ingest/process workers on Mosquitto, NATS and PostgreSQL', () => {
  const id = randomBytes(5).toString('hex');
  const root = mkdtempSync(path.join(tmpdir(), 'canopy-scale-out-'));
  const prefix = `scale-out/${id}`;
  const stream = `CANOPY_SCALE_${id}`;
  const schema = `canopy_scale_${id}`;
  const workers: CanopyProcess[] = [];

  const shared: CanopyConfigInput = {
    store: { kind: 'postgres', postgres: { url: PG_URL, schema } },
    lake: { kind: 'local', path: path.join(root, 'lake') },
    landing: { enabled: false },
    alerting: { enabled: false },
    workflows: { enabled: false },
    bus: {
      kind: 'nats',
      partitions: 4,
      // A killed worker's unacknowledged messages go to the other after this.
      ackWaitMs: 2_000,
      nats: { stream, subjectPrefix: `canopy-scale.${id}`, consumer: `canopy-scale-${id}` },
    },
  };

  function startWorker(name: string): Promise<CanopyProcess> {
    const file = path.join(root, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        ...shared,
        roles: ['ingest', 'process'],
        dataDir: path.join(root, name),
        log: { level: 'info' },
        mqtt: {
          embedded: { enabled: false },
          client: {
            enabled: true,
            url: 'mqtt://127.0.0.1:1883',
            clientId: `canopy-scale-${id}-${name}`,
            topics: [`${prefix}/#`],
            shareGroup: `canopy-${id}`,
            cleanSession: false,
          },
        },
      }),
    );
    return spawnCanopy({ CANOPY_CONFIG: file }, [], 30_000, [
      'API listening',
      'MQTT client source subscribed',
    ]);
  }

  afterAll(async () => {
    for (const worker of workers) worker.child.kill('SIGKILL');
    const nc = await connect({ servers: ['nats://127.0.0.1:4222'] });
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined);
    await nc.close();
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
    // The brokers' sessions of the two workers: a clean connection with each id ends them.
    for (const name of ['w1', 'w2']) {
      const c = await mqtt.connectAsync('mqtt://127.0.0.1:1883', {
        clientId: `canopy-scale-${id}-${name}`,
        clean: true,
      });
      await c.endAsync();
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('stores every acknowledged reading exactly once through a SIGKILL, and builds the same lake as one process', async () => {
    const start = Date.UTC(2026, 10, 20, 6, 0, 0);
    const { messages, readings } = fixedSet(prefix, start);

    workers.push(await startWorker('w1'), await startWorker('w2'));
    const hot = new pg.Client({ connectionString: PG_URL });
    await hot.connect();
    const count = async (): Promise<{ rows: number; distinct: number }> => {
      const { rows } = await hot.query<{ rows: string; distinct: string }>(
        `SELECT count(*) AS rows, count(DISTINCT (sensor_id, event_time)) AS distinct FROM "${schema}".readings`,
      );
      return { rows: Number(rows[0]!.rows), distinct: Number(rows[0]!.distinct) };
    };

    const publisher = await mqtt.connectAsync('mqtt://127.0.0.1:1883', {
      clientId: `scale-publisher-${id}`,
      protocolVersion: 5,
    });
    const half = Math.floor(messages.length / 2);
    // QoS 1: each publish resolves on the broker's PUBACK, so all of them are acknowledged.
    for (const m of messages.slice(0, half))
      await publisher.publishAsync(m.topic, m.payload, { qos: 1 });

    // Kill the first worker while it has work in hand.
    await waitFor('the first readings stored', async () => (await count()).rows > 0);
    const firstAccepted = await metric(workers[0]!, 'canopy_readings_accepted_total');
    workers[0]!.child.kill('SIGKILL');
    await workers[0]!.exited;
    for (const m of messages.slice(half))
      await publisher.publishAsync(m.topic, m.payload, { qos: 1 });
    await publisher.endAsync();

    // Same client id: the broker hands it its session's queued and unacknowledged messages.
    workers[0] = await startWorker('w1');
    await waitFor(
      'every reading stored',
      async () => (await count()).distinct === readings,
      120_000,
    );
    // Redeliveries the bus still holds would show up now, as duplicates.
    await new Promise((r) => setTimeout(r, 3_000));
    const final = await count();
    expect(final).toMatchObject({ rows: readings, distinct: readings });

    await hot.end();
    // Both took a share: the first before it was killed, the second (which ran throughout) some.
    const secondAccepted = await metric(workers[1]!, 'canopy_readings_accepted_total');
    expect(firstAccepted).toBeGreaterThan(0);
    expect(secondAccepted).toBeGreaterThan(0);
    const figures = {
      messagesPublished: messages.length,
      readingsAcknowledged: readings,
      stored: final.distinct,
      storedTwice: final.rows - final.distinct,
      lost: readings - final.distinct,
      acceptedByFirstBeforeKill: firstAccepted,
      acceptedBySecond: secondAccepted,
      duplicatesAbsorbed:
        (await metric(workers[0], 'canopy_ingest_duplicates_total')) +
        (await metric(workers[1]!, 'canopy_ingest_duplicates_total')),
      busRedeliveries:
        (await metric(workers[0], 'canopy_bus_redelivered_total')) +
        (await metric(workers[1]!, 'canopy_bus_redelivered_total')),
    };
    console.log(`scale-out figures ${JSON.stringify(figures)}`);

    for (const worker of workers) worker.child.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));

    // The lake from the split deployment's store, and from one process fed the same readings.
    const splitLake = await buildLake(testConfig({ ...shared, dataDir: path.join(root, 'jobs') }));
    const single = await startTestApp({
      lake: { kind: 'local', path: path.join(root, 'single-lake') },
      landing: { enabled: false },
      alerting: { enabled: false },
      workflows: { enabled: false },
    });
    try {
      for (const m of messages) {
        const res = await single.api.inject({
          method: 'POST',
          url: '/api/data',
          headers: { 'content-type': 'application/json' },
          payload: m.payload,
        });
        expect(res.statusCode).toBe(200);
      }
      await single.pipeline.drain();
    } finally {
      await single.stop();
    }
    const singleLake = await buildLake(single.config);
    expect(splitLake.silver_readings).toHaveLength(readings);
    expect(splitLake).toEqual(singleLake);
  }, 300_000);
});
