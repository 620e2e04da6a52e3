/**
 * `auth.failureLimit` end to end: refused API keys, passwords at login and
 * MQTT device logins count per client address; past the limit that
 * address's attempts are refused unchecked (HTTP 429 CANOPY_AUTH_THROTTLED
 * with Retry-After, MQTT CONNACK "not authorized") until the window ends.
 * Time is a ManualClock, so the window ends when the test says so.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { runCanopy } from './helpers/cli.js';

const WINDOW_MS = 60_000;
const clock = new ManualClock(Date.now());
let app: TestApp;
let adminKey: string;

interface Answer {
  status: number;
  code: unknown;
  retryAfter: unknown;
}

async function call(
  method: 'GET' | 'POST',
  url: string,
  from: string,
  options: { key?: string; body?: unknown } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await app.api.inject({
    method,
    url,
    headers,
    remoteAddress: from,
    ...(options.body === undefined ? {} : { payload: JSON.stringify(options.body) }),
  });
  const body = res.body.startsWith('{')
    ? (JSON.parse(res.body) as { error?: { code?: unknown } })
    : {};
  return { status: res.statusCode, code: body.error?.code, retryAfter: res.headers['retry-after'] };
}

async function metric(series: string): Promise<number> {
  const answer = await app.api.inject({ method: 'GET', url: '/metrics' });
  const line = answer.body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-auth-limit-'));
  const created = await runCanopy(['keys', 'create', '--name', 'bootstrap', '--scopes', 'admin'], {
    CANOPY_DATA_DIR: dataDir,
  });
  expect(created.code).toBe(0);
  adminKey = created.stdout.trim();
  app = await startTestApp(
    {
      workflows: { enabled: false },
      auth: { mode: 'required', failureLimit: { maxFailures: 3, windowMs: WINDOW_MS } },
    },
    dataDir,
    { clock },
  );
}, 60_000);

afterAll(async () => {
  await app.dispose();
});

const WRONG_KEY = `cnp_0000000000000000_${'x'.repeat(43)}`;

describe('auth.failureLimit over HTTP', () => {
  it('refuses a key from an address with too many refused keys, even a good one, until the window ends', async () => {
    const throttledBefore = await metric('canopy_auth_throttled_total{channel="http"}');
    for (let i = 0; i < 3; i++)
      expect(await call('GET', '/api/sensors', '192.0.2.1', { key: WRONG_KEY })).toMatchObject({
        status: 401,
        code: 'CANOPY_AUTH_REQUIRED',
      });
    expect(await call('GET', '/api/sensors', '192.0.2.1', { key: adminKey })).toEqual({
      status: 429,
      code: 'CANOPY_AUTH_THROTTLED',
      retryAfter: String(WINDOW_MS / 1000),
    });
    // Login from that address is throttled too; other addresses are not.
    expect(
      await call('POST', '/api/session', '192.0.2.1', {
        body: { username: 'nobody', password: 'whatever' },
      }),
    ).toMatchObject({ status: 429, code: 'CANOPY_AUTH_THROTTLED' });
    expect((await call('GET', '/api/sensors', '192.0.2.2', { key: adminKey })).status).toBe(200);
    expect(await metric('canopy_auth_throttled_total{channel="http"}')).toBe(throttledBefore + 2);

    clock.advance(WINDOW_MS / 2);
    expect(await call('GET', '/api/sensors', '192.0.2.1', { key: adminKey })).toMatchObject({
      status: 429,
      retryAfter: String(WINDOW_MS / 2000),
    });
    clock.advance(WINDOW_MS / 2);
    expect((await call('GET', '/api/sensors', '192.0.2.1', { key: adminKey })).status).toBe(200);
  });

  it('does not count successful attempts or requests without credentials', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await call('GET', '/api/sensors', '192.0.2.3', { key: adminKey })).status).toBe(200);
      expect((await call('GET', '/api/sensors', '192.0.2.3')).status).toBe(401);
    }
    for (let i = 0; i < 2; i++)
      expect((await call('GET', '/api/sensors', '192.0.2.3', { key: WRONG_KEY })).status).toBe(401);
    expect((await call('GET', '/api/sensors', '192.0.2.3', { key: adminKey })).status).toBe(200);
  });

  it('counts wrong passwords at login', async () => {
    const added = await call('POST', '/api/users', '192.0.2.9', {
      key: adminKey,
      body: { username: 'olga', role: 'viewer', password: 'correct horse battery' },
    });
    expect(added.status).toBe(201);
    for (let i = 0; i < 3; i++)
      expect(
        await call('POST', '/api/session', '192.0.2.4', {
          body: { username: 'olga', password: 'wrong password!' },
        }),
      ).toMatchObject({ status: 401, code: 'CANOPY_AUTH_REQUIRED' });
    const right = { username: 'olga', password: 'correct horse battery' };
    expect(await call('POST', '/api/session', '192.0.2.4', { body: right })).toMatchObject({
      status: 429,
      code: 'CANOPY_AUTH_THROTTLED',
    });
    expect((await call('POST', '/api/session', '192.0.2.5', { body: right })).status).toBe(200);
    clock.advance(WINDOW_MS);
    expect((await call('POST', '/api/session', '192.0.2.4', { body: right })).status).toBe(200);
  });
});

describe('auth.failureLimit on the embedded broker', () => {
  /** The CONNACK outcome: 'connected', or mqtt.js's error message for the refusal. */
  async function connect(username: string, password: string): Promise<string> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${app.mqttPort}`, {
      clientId: username,
      username,
      password,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    client.on('error', () => undefined);
    try {
      return await new Promise<string>((resolve) => {
        client.once('connect', () => resolve('connected'));
        client.once('error', (err) => resolve(err.message));
      });
    } finally {
      await client.endAsync(true);
    }
  }

  it('refuses CONNECTs from an address with too many bad device logins, until the window ends', async () => {
    // Made before the failures: the test's HTTP calls come from 127.0.0.1 too.
    const made = await app.api.inject({
      method: 'POST',
      url: '/api/devices',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ id: 'limit-dev' }),
    });
    expect(made.statusCode).toBe(201);
    const password = (JSON.parse(made.body) as { password: string }).password;
    expect(await connect('limit-dev', password)).toBe('connected');

    const throttledBefore = await metric('canopy_auth_throttled_total{channel="mqtt"}');
    for (let i = 0; i < 3; i++)
      expect(await connect('limit-dev', 'not-the-password')).toMatch(/Bad username or password/);
    expect(await connect('limit-dev', password)).toMatch(/Not authorized/);
    expect(await metric('canopy_auth_throttled_total{channel="mqtt"}')).toBe(throttledBefore + 1);

    clock.advance(WINDOW_MS);
    expect(await connect('limit-dev', password)).toBe('connected');
  });
});
