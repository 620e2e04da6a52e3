/**
 * Bad input of every kind gets its reason code, shows up in the dead-letter
 * store, and the good readings in the same batch are stored. The process
 * keeps running throughout.
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';

let app: TestApp;
const now = Date.now();
const iso = (offsetMs = 0): string => new Date(now + offsetMs).toISOString();

interface DeadLetterRow {
  reason: string;
  source: string;
  raw: string;
  origin: string | null;
}

async function deadLetters(query = ''): Promise<DeadLetterRow[]> {
  const res = await app.api.inject({ method: 'GET', url: `/api/deadletters?limit=1000${query}` });
  expect(res.statusCode).toBe(200);
  return res.json<{ data: DeadLetterRow[] }>().data;
}

async function readingsOf(sensorId: string): Promise<{ value: number | null }[]> {
  const res = await app.api.inject({
    method: 'GET',
    url: `/api/data?sensor_id=${sensorId}&limit=1000`,
  });
  return res.json<{ data: { value: number | null }[] }>().data;
}

beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app.dispose();
});

describe('HTTP ingest with bad records', () => {
  it('stores the good records, names each bad one, and dead-letters it', async () => {
    const records = [
      { sensor_id: 'good-1', value: 1.5, timestamp: iso() },
      { sensor_id: 'bad-value', value: 'hot', timestamp: iso() },
      { value: 3, timestamp: iso() },
      { sensor_id: 'no-time', value: 3 },
      { sensor_id: 'bad-time', value: 3, timestamp: 'yesterday' },
      { sensor_id: 'future', value: 3, timestamp: iso(3_600_000) },
      { sensor_id: 'no-value', timestamp: iso() },
      { sensor_id: 'bad id!', value: 3, timestamp: iso() },
      { sensor_id: 'x'.repeat(300), value: 3, timestamp: iso() },
      { sensor_id: 'bad-score', value: 3, timestamp: iso(), anomaly_score: 'high' },
      42,
      { sensor_id: 'good-1', value: null, timestamp: iso(-1000) },
      { sensor_id: 'good-1', value: 2.5, timestamp: Math.floor(now / 1000) - 5 },
    ];
    const res = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: records,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(400);
    const body = res.json<{
      error: { code: string; message: string };
      accepted: number;
      rejected: { index: number; reason: string }[];
    }>();
    expect(body.error.code).toBe('CANOPY_INGEST_REJECTED');
    expect(body.accepted).toBe(3);
    expect(body.rejected.map((r) => [r.index, r.reason])).toEqual([
      [1, 'INVALID_VALUE'],
      [2, 'MISSING_SENSOR_ID'],
      [3, 'MISSING_TIMESTAMP'],
      [4, 'INVALID_TIMESTAMP'],
      [5, 'FUTURE_TIMESTAMP'],
      [6, 'MISSING_VALUE'],
      [7, 'INVALID_SENSOR_ID'],
      [8, 'STRING_TOO_LONG'],
      [9, 'INVALID_FIELD'],
      [10, 'NOT_AN_OBJECT'],
    ]);
    expect(body.error.message).toMatch(/10 record\(s\) rejected, 3 stored/);

    const stored = await readingsOf('good-1');
    expect(stored.map((r) => r.value).sort()).toEqual([1.5, 2.5, null].sort());
    const letters = await deadLetters('&source=http');
    expect(letters).toHaveLength(10);
    expect(letters.find((d) => d.reason === 'INVALID_VALUE')?.raw).toContain('"hot"');
  });

  it('rejects a whole payload that is not JSON, and an unsupported content type or oversized body', async () => {
    const garbage = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: '{"sensor_id": "a", ',
      headers: { 'content-type': 'application/json' },
    });
    expect(garbage.statusCode).toBe(400);
    expect(garbage.json<{ rejected: { reason: string }[] }>().rejected[0]?.reason).toBe(
      'INVALID_JSON',
    );

    const xml = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: '<reading/>',
      headers: { 'content-type': 'application/xml' },
    });
    expect(xml.statusCode).toBe(415);
    expect(xml.json<{ error: { code: string } }>().error.code).toBe(
      'CANOPY_INGEST_UNSUPPORTED_MEDIA_TYPE',
    );

    const huge = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: 'x'.repeat(app.config.ingest.maxPayloadBytes + 1),
      headers: { 'content-type': 'application/json' },
    });
    expect(huge.statusCode).toBe(413);
    expect(huge.json<{ error: { code: string } }>().error.code).toBe(
      'CANOPY_INGEST_PAYLOAD_TOO_LARGE',
    );

    const empty = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(empty.statusCode).toBe(400);
    expect(empty.json<{ rejected: { reason: string }[] }>().rejected[0]?.reason).toBe(
      'EMPTY_PAYLOAD',
    );
    expect(
      (await deadLetters('&reason=INVALID_JSON')).some((d) =>
        d.raw.startsWith('{"sensor_id": "a"'),
      ),
    ).toBe(true);
  });

  it('accepts NDJSON and CSV, rejecting only the bad lines', async () => {
    const ndjson = [
      `{"sensor_id":"nd-1","value":1,"timestamp":"${iso()}"}`,
      'not json',
      `{"sensor_id":"nd-1","value":2,"timestamp":"${iso(-5)}"}`,
    ].join('\n');
    const nd = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: ndjson,
      headers: { 'content-type': 'application/x-ndjson' },
    });
    expect(nd.statusCode).toBe(400);
    expect(nd.json<{ accepted: number }>().accepted).toBe(2);

    const csv = `timestamp,device_id,value,unit,anomaly_score\n${iso()},csv-1,20.5,C,0.1\n${iso(-1)},csv-1,warm,C,0.1\n${iso(-2)},csv-1,,C,\n`;
    const c = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: csv,
      headers: { 'content-type': 'text/csv' },
    });
    expect(c.statusCode).toBe(400);
    expect(
      c.json<{ accepted: number; rejected: { reason: string }[] }>().rejected.map((r) => r.reason),
    ).toEqual(['INVALID_VALUE']);
    expect((await readingsOf('csv-1')).map((r) => r.value).sort()).toEqual([20.5, null].sort());

    const ok = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: `timestamp,device_id,value\n${iso()},csv-2,1\n`,
      headers: { 'content-type': 'text/csv' },
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ accepted: 1, rejected: [] });
  });
});

describe('MQTT ingest with bad payloads', () => {
  it('acknowledges, dead-letters garbage, keeps the connection and stores the good readings', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.mqttPort}`, {
      clientId: 'bad-input-test',
    });
    try {
      await client.publishAsync('iot/data', 'definitely not json', { qos: 1 });
      await client.publishAsync(
        'sensors/greenhouse/1',
        JSON.stringify([
          { sensor_id: 'mq-1', value: 4, timestamp: iso() },
          { sensor_id: 'mq-1', value: 'x', timestamp: iso() },
        ]),
        { qos: 1 },
      );
      await client.publishAsync(
        'iot/data',
        JSON.stringify({
          sensor_id: 'mq-1',
          timestamp: iso(-10),
          readings: { temperature: 21, humidity: 'wet' },
        }),
        { qos: 1 },
      );
      expect(client.connected).toBe(true);
    } finally {
      await client.endAsync();
    }
    const letters = await deadLetters('&source=mqtt');
    expect(letters.map((d) => d.reason).sort()).toEqual(
      ['INVALID_JSON', 'INVALID_VALUE', 'INVALID_VALUE'].sort(),
    );
    expect(letters.find((d) => d.reason === 'INVALID_JSON')).toMatchObject({
      raw: 'definitely not json',
      origin: 'iot/data',
    });
    expect((await readingsOf('mq-1')).map((r) => r.value)).toEqual([4]);
    expect((await readingsOf('mq-1.temperature')).map((r) => r.value)).toEqual([21]);
  });

  it('passes messages on other topics through the broker without ingesting them', async () => {
    const before = await app.store.countReadings();
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.mqttPort}`);
    await client.publishAsync(
      'other/topic',
      JSON.stringify({ sensor_id: 'elsewhere', value: 1, timestamp: iso() }),
      { qos: 1 },
    );
    await client.endAsync();
    expect(await app.store.countReadings()).toBe(before);
  });
});
