/**
 * TLS end to end, with a self-signed certificate made by `openssl` for this
 * run: the API over HTTPS (HSTS, `Secure` session cookie), the embedded
 * broker over MQTTS (authenticated devices), and the MQTT client source of a
 * second Canopy reaching that broker over MQTTS with the CA and device
 * credentials from its config. Plain connections to the TLS ports fail.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { runCanopy } from './helpers/cli.js';

const certDir = mkdtempSync(path.join(tmpdir(), 'canopy-tls-'));
const certFile = path.join(certDir, 'cert.pem');
const keyFile = path.join(certDir, 'key.pem');
let ca: Buffer;
let app: TestApp;
let adminKey: string;

interface HttpsAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request to the app trusting only the test certificate. */
function request(
  method: string,
  url: string,
  options: { headers?: Record<string, string>; body?: string } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      `https://127.0.0.1:${app.httpPort}${url}`,
      { method, ca, headers: options.headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function json(body: unknown, key?: string): { headers: Record<string, string>; body: string } {
  return {
    headers: {
      'content-type': 'application/json',
      ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
    },
    body: JSON.stringify(body),
  };
}

async function storedValues(target: TestApp, sensorId: string): Promise<number[]> {
  const page = await target.store.queryReadings({ sensorId, limit: 100 });
  return page.items.map((r) => r.value as number).sort((a, b) => a - b);
}

beforeAll(async () => {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  ca = readFileSync(certFile);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-tls-data-'));
  const created = await runCanopy(['keys', 'create', '--name', 'tls', '--scopes', 'admin'], {
    CANOPY_DATA_DIR: dataDir,
  });
  expect(created.code).toBe(0);
  adminKey = created.stdout.trim();
  app = await startTestApp(
    {
      workflows: { enabled: false },
      auth: { mode: 'required' },
      http: { tls: { certFile, keyFile } },
      mqtt: { embedded: { tls: { certFile, keyFile } } },
    },
    dataDir,
  );
}, 60_000);

afterAll(async () => {
  await app.dispose();
  rmSync(certDir, { recursive: true, force: true });
});

describe('HTTPS', () => {
  it('answers over TLS with HSTS, and stores a reading posted over it', async () => {
    const health = await request('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.headers['strict-transport-security']).toBe('max-age=15552000; includeSubDomains');

    const posted = await request(
      'POST',
      '/api/data',
      json({ sensor_id: 'tls-http', value: 21.5, timestamp: Date.now() }, adminKey),
    );
    expect(posted.status).toBe(200);
    expect(await storedValues(app, 'tls-http')).toEqual([21.5]);
  });

  it('marks the session cookie Secure', async () => {
    const added = await request(
      'POST',
      '/api/users',
      json({ username: 'tls-user', role: 'viewer', password: 'a long enough password' }, adminKey),
    );
    expect(added.status).toBe(201);
    const login = await request(
      'POST',
      '/api/session',
      json({ username: 'tls-user', password: 'a long enough password' }),
    );
    expect(login.status).toBe(200);
    expect(String(login.headers['set-cookie'])).toMatch(/; Secure(;|$)/);
  });

  it('refuses a client that does not trust the certificate, and plain HTTP', async () => {
    await expect(fetch(`https://127.0.0.1:${app.httpPort}/healthz`)).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${app.httpPort}/healthz`)).rejects.toThrow();
  });
});

describe('MQTTS', () => {
  async function createDevice(id: string): Promise<string> {
    const answer = await request('POST', '/api/devices', json({ id }, adminKey));
    expect(answer.status).toBe(201);
    return (JSON.parse(answer.body) as { password: string }).password;
  }

  it('stores a QoS 1 reading a device publishes over mqtts://', async () => {
    const password = await createDevice('tls-dev');
    const client = await mqtt.connectAsync(`mqtts://127.0.0.1:${app.mqttPort}`, {
      ca,
      clientId: 'tls-dev',
      username: 'tls-dev',
      password,
      reconnectPeriod: 0,
    });
    try {
      await client.publishAsync(
        'sensors/tls-dev/t',
        JSON.stringify({ sensor_id: 'tls-mqtt', value: 7, timestamp: Date.now() }),
        { qos: 1 },
      );
    } finally {
      await client.endAsync();
    }
    // The PUBACK came after the commit, so the reading is there now.
    expect(await storedValues(app, 'tls-mqtt')).toEqual([7]);
  });

  it('refuses plain MQTT on the MQTTS port', async () => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${app.mqttPort}`, { reconnectPeriod: 0 });
    // The TLS server drops a connection that does not start with a handshake: no CONNACK.
    const outcome = await new Promise<string>((resolve) => {
      client.once('connect', () => resolve('connected'));
      client.once('close', () => resolve('closed'));
    });
    client.end(true);
    expect(outcome).toBe('closed');
  });

  it('feeds the MQTT client source of another Canopy over mqtts:// with CA and credentials from config', async () => {
    const password = await createDevice('tls-relay');
    const relay = await startTestApp({
      workflows: { enabled: false },
      http: { enabled: false },
      mqtt: {
        embedded: { enabled: false },
        client: {
          enabled: true,
          url: `mqtts://127.0.0.1:${app.mqttPort}`,
          clientId: 'tls-relay',
          // Canopy's embedded broker (aedes) speaks MQTT 3.1.1 only.
          protocolVersion: 4,
          username: 'tls-relay',
          password,
          topics: ['sensors/tls-relay/#'],
          tls: { caFile: certFile },
        },
      },
    });
    try {
      const publisher = await mqtt.connectAsync(`mqtts://127.0.0.1:${app.mqttPort}`, {
        ca,
        clientId: 'tls-relay:publisher',
        username: 'tls-relay',
        password,
        reconnectPeriod: 0,
      });
      try {
        await publisher.publishAsync(
          'sensors/tls-relay/t',
          JSON.stringify({ sensor_id: 'tls-relayed', value: 3, timestamp: Date.now() }),
          { qos: 1 },
        );
      } finally {
        await publisher.endAsync();
      }
      // The relay acknowledges after its own commit; wait for that commit to show.
      let values: number[] = [];
      while (values.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        values = await storedValues(relay, 'tls-relayed');
      }
      expect(values).toEqual([3]);
    } finally {
      await relay.dispose();
    }
  });
});
