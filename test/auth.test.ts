/**
 * Authentication end to end, with `auth.mode: required`: the first admin
 * key made by the CLI before start-up, then API keys and scopes (401 / 403 /
 * 200), dashboard sessions with a cookie, and devices publishing over real
 * MQTT connections to the embedded broker, each only under its own topic.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app.js';
import { runCanopy } from './helpers/cli.js';

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | number | undefined>;
}

let app: TestApp;
let adminKey: string;

async function call(
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  url: string,
  options: { key?: string; cookie?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  if (options.cookie !== undefined) headers.cookie = options.cookie;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const res = await app.api.inject({
    method,
    url,
    headers,
    ...(options.body === undefined ? {} : { payload: JSON.stringify(options.body) }),
  });
  const text = res.body;
  return {
    status: res.statusCode,
    body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : { text },
    headers: res.headers,
  };
}

function errorCode(answer: Answer): unknown {
  return (answer.body.error as { code?: unknown } | undefined)?.code;
}

async function createKey(
  scopes: string[],
  name = scopes.join('+'),
): Promise<{ id: string; key: string }> {
  const answer = await call('POST', '/api/keys', { key: adminKey, body: { name, scopes } });
  expect(answer.status).toBe(201);
  return { id: answer.body.id as string, key: answer.body.key as string };
}

function reading(sensorId: string, value: number): Record<string, unknown> {
  return { sensor_id: sensorId, sensor_type: 'temperature', value, timestamp: Date.now() };
}

async function storedValues(sensorId: string): Promise<unknown[]> {
  const answer = await call('GET', `/api/data?sensor_id=${sensorId}`, { key: adminKey });
  expect(answer.status).toBe(200);
  return (answer.body.data as { value: unknown }[]).map((r) => r.value);
}

async function metric(series: string): Promise<number> {
  const answer = await app.api.inject({ method: 'GET', url: '/metrics' });
  const line = answer.body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

beforeAll(async () => {
  // The first key is made before anything runs, straight in the metadata store.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-auth-'));
  const created = await runCanopy(['keys', 'create', '--name', 'bootstrap', '--scopes', 'admin'], {
    CANOPY_DATA_DIR: dataDir,
  });
  expect(created.code).toBe(0);
  expect(created.stderr).toMatch(/not shown again/);
  adminKey = created.stdout.trim();
  expect(adminKey).toMatch(/^cnp_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);

  app = await startTestApp({ workflows: { enabled: false }, auth: { mode: 'required' } }, dataDir);
}, 60_000);

afterAll(async () => {
  await app.dispose();
});

describe('API keys and scopes', () => {
  it('refuses every API route without credentials (401), and leaves health and metrics open', async () => {
    const before = await metric('canopy_auth_failures_total{credential="none",reason="missing"}');
    const routes: ['GET' | 'POST' | 'PUT' | 'DELETE', string][] = [
      ['GET', '/api/data'],
      ['POST', '/api/data'],
      ['GET', '/api/sensors'],
      ['GET', '/api/deadletters'],
      ['POST', '/api/query'],
      ['GET', '/api/alerts'],
      ['POST', '/api/alerts/some-id/ack'],
      ['PUT', '/api/alert-rules'],
      ['GET', '/api/keys'],
      ['POST', '/api/users'],
      ['DELETE', '/api/devices/d1'],
      ['GET', '/api/overview'],
      ['GET', '/api/no-such-route'],
    ];
    for (const [method, url] of routes) {
      const answer = await call(method, url, { body: {} });
      expect([method, url, answer.status, errorCode(answer)]).toEqual([
        method,
        url,
        401,
        'CANOPY_AUTH_REQUIRED',
      ]);
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="canopy"');
    }
    expect(await metric('canopy_auth_failures_total{credential="none",reason="missing"}')).toBe(
      before + routes.length,
    );
    for (const url of ['/healthz', '/readyz', '/metrics'])
      expect((await app.api.inject({ method: 'GET', url })).statusCode).toBe(200);
    // The dashboard's page itself is open (200, or 503 before `npm run build:web`); its data is not.
    expect([200, 503]).toContain((await app.api.inject({ method: 'GET', url: '/' })).statusCode);
  });

  it('refuses a key without the route’s scope (403), naming the scope', async () => {
    const ingest = await createKey(['ingest']);
    const read = await createKey(['read']);
    const forbidden: [string, 'GET' | 'POST' | 'PUT', string, unknown?][] = [
      [ingest.key, 'GET', '/api/data'],
      [ingest.key, 'POST', '/api/query', { sql: 'SELECT 1' }],
      [read.key, 'POST', '/api/data', [reading('s-403', 1)]],
      [read.key, 'POST', '/api/query', { sql: 'SELECT 1' }],
      [read.key, 'POST', '/api/alerts/some-id/ack', {}],
      [read.key, 'PUT', '/api/alert-rules', { rules: [] }],
      [read.key, 'GET', '/api/keys'],
      [read.key, 'POST', '/api/keys', { name: 'escalate', scopes: ['admin'] }],
    ];
    for (const [key, method, url, body] of forbidden) {
      const answer = await call(method, url, { key, body });
      expect([method, url, answer.status, errorCode(answer)]).toEqual([
        method,
        url,
        403,
        'CANOPY_AUTH_FORBIDDEN',
      ]);
    }
    const answer = await call('GET', '/api/data', { key: ingest.key });
    expect((answer.body.error as { message: string }).message).toMatch(/needs the "read" scope/);
    expect(await storedValues('s-403')).toEqual([]);
    expect((await call('GET', '/api/keys', { key: adminKey })).body.data).not.toContainEqual(
      expect.objectContaining({ name: 'escalate' }),
    );
  });

  it('accepts a good key (200) in either header, and the reading is stored', async () => {
    const ingest = await createKey(['ingest']);
    const read = await createKey(['read', 'query']);
    const sent = await call('POST', '/api/data', {
      key: ingest.key,
      body: [reading('s-200', 21.5)],
    });
    expect([sent.status, sent.body.accepted]).toEqual([200, 1]);
    const viaHeader = await call('GET', '/api/data?sensor_id=s-200', {
      headers: { 'x-api-key': read.key },
    });
    expect(viaHeader.status).toBe(200);
    expect((viaHeader.body.data as { value: number }[]).map((r) => r.value)).toEqual([21.5]);
    // The key list shows the key, its use, never its secret or hash.
    const listed = (await call('GET', '/api/keys', { key: adminKey })).body.data as Record<
      string,
      unknown
    >[];
    const entry = listed.find((k) => k.id === ingest.id)!;
    expect(entry).toMatchObject({ state: 'active', scopes: ['ingest'], revoked_at: null });
    expect(typeof entry.last_used_at).toBe('string');
    expect(JSON.stringify(listed)).not.toContain(ingest.key.slice(21));
    expect(Object.keys(entry)).not.toContain('hash');
  });

  it('refuses a revoked key, a tampered key and an unknown key (401)', async () => {
    const { id, key } = await createKey(['read']);
    expect((await call('GET', '/api/sensors', { key })).status).toBe(200);
    const revoked = await call('DELETE', `/api/keys/${id}`, { key: adminKey });
    expect(revoked.body).toEqual({ id, revoked: true });

    const before = await metric(
      'canopy_auth_failures_total{credential="api_key",reason="invalid"}',
    );
    const tampered = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
    for (const bad of [key, tampered, 'cnp_0000000000000000_' + 'A'.repeat(43), 'secret']) {
      const answer = await call('GET', '/api/sensors', { key: bad });
      expect([answer.status, errorCode(answer)]).toEqual([401, 'CANOPY_AUTH_REQUIRED']);
      expect((answer.body.error as { message: string }).message).toBe(
        'the API key is not accepted',
      );
    }
    expect(await metric('canopy_auth_failures_total{credential="api_key",reason="invalid"}')).toBe(
      before + 4,
    );
    const listed = (await call('GET', '/api/keys', { key: adminKey })).body.data as {
      id: string;
      state: string;
    }[];
    expect(listed.find((k) => k.id === id)?.state).toBe('revoked');
    // Revoking again: no such active key.
    expect((await call('DELETE', `/api/keys/${id}`, { key: adminKey })).status).toBe(404);
  });
});

describe('dashboard sessions', () => {
  const password = 'a viewer password';

  function sessionCookie(answer: Answer): string {
    const header = answer.headers['set-cookie'];
    expect(typeof header).toBe('string');
    return (header as string).split(';')[0]!;
  }

  it('logs in with a cookie, serves the role’s scopes, and logs out', async () => {
    const added = await call('POST', '/api/users', {
      key: adminKey,
      body: { username: 'vera', role: 'viewer', password },
    });
    expect(added.status).toBe(201);
    expect(added.body).not.toHaveProperty('password_hash');

    const login = await call('POST', '/api/session', { body: { username: 'vera', password } });
    expect(login.status).toBe(200);
    const setCookie = login.headers['set-cookie'] as string;
    expect(setCookie).toMatch(/^canopy_session=[A-Za-z0-9_-]{43}; /);
    for (const attribute of ['HttpOnly', 'SameSite=Strict', 'Path=/', 'Max-Age=43200'])
      expect(setCookie.split('; ')).toContain(attribute);
    expect(setCookie).not.toMatch(/Secure/);
    const cookie = sessionCookie(login);

    const whoami = await call('GET', '/api/session', { cookie });
    expect(whoami.body).toMatchObject({
      auth: 'required',
      principal: { kind: 'session', name: 'vera', role: 'viewer', scopes: ['read'] },
    });
    expect((await call('GET', '/api/data', { cookie })).status).toBe(200);
    expect((await call('POST', '/api/query', { cookie, body: { sql: 'SELECT 1' } })).status).toBe(
      403,
    );
    expect((await call('POST', '/api/alerts/x/ack', { cookie, body: {} })).status).toBe(403);

    const logout = await call('DELETE', '/api/session', { cookie });
    expect(logout.body).toEqual({ ended: true });
    expect(logout.headers['set-cookie']).toMatch(/^canopy_session=; .*Max-Age=0/);
    expect((await call('GET', '/api/data', { cookie })).status).toBe(401);
    expect((await call('GET', '/api/session', { cookie })).status).toBe(401);
  });

  it('refuses a wrong password or unknown user alike (401)', async () => {
    for (const body of [
      { username: 'vera', password: 'not the password' },
      { username: 'nobody', password },
    ]) {
      const answer = await call('POST', '/api/session', { body });
      expect([answer.status, errorCode(answer), answer.headers['set-cookie']]).toEqual([
        401,
        'CANOPY_AUTH_REQUIRED',
        undefined,
      ]);
      expect((answer.body.error as { message: string }).message).toBe(
        'the username or password is wrong',
      );
    }
  });

  it('an operator acts on alerts; a cross-site request with the cookie is refused', async () => {
    await call('POST', '/api/users', {
      key: adminKey,
      body: { username: 'otto', role: 'operator', password: 'an operator password' },
    });
    const cookie = sessionCookie(
      await call('POST', '/api/session', {
        body: { username: 'otto', password: 'an operator password' },
      }),
    );
    // Allowed through to the route: an unknown alert is 404, not 403.
    const ack = await call('POST', '/api/alerts/no-such-alert/ack', { cookie, body: {} });
    expect([ack.status, errorCode(ack)]).toEqual([404, 'CANOPY_ALERT_NOT_FOUND']);
    const sameSite = await call('POST', '/api/alerts/no-such-alert/ack', {
      cookie,
      body: {},
      headers: { origin: 'http://localhost' },
    });
    expect(sameSite.status).toBe(404);
    const crossSite = await call('POST', '/api/alerts/no-such-alert/ack', {
      cookie,
      body: {},
      headers: { origin: 'https://evil.example' },
    });
    expect([crossSite.status, errorCode(crossSite)]).toEqual([403, 'CANOPY_AUTH_FORBIDDEN']);
    // Behind a proxy that rewrites Host, the host the browser used comes as X-Forwarded-Host.
    const proxied = await call('POST', '/api/alerts/no-such-alert/ack', {
      cookie,
      body: {},
      headers: { origin: 'https://canopy.example.org', 'x-forwarded-host': 'canopy.example.org' },
    });
    expect(proxied.status).toBe(404);
    // An operator does not manage credentials.
    expect((await call('GET', '/api/users', { cookie })).status).toBe(403);
  });
});

describe('MQTT device credentials', () => {
  const clients: MqttClient[] = [];
  afterAll(async () => {
    for (const client of clients) await client.endAsync(true);
  });

  async function createDevice(id: string): Promise<string> {
    const answer = await call('POST', '/api/devices', { key: adminKey, body: { id } });
    expect(answer.status).toBe(201);
    expect(answer.body.topics).toEqual([`sensors/${id}/#`]);
    return answer.body.password as string;
  }

  function connect(options: mqtt.IClientOptions): Promise<MqttClient> {
    const client = mqtt.connect(`mqtt://127.0.0.1:${app.mqttPort}`, {
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...options,
    });
    clients.push(client);
    return new Promise((resolve, reject) => {
      client.once('connect', () => resolve(client));
      client.once('error', reject);
    });
  }

  it('a device publishes under its own topic, and not under another’s', async () => {
    const passwordA = await createDevice('dev-a');
    await createDevice('dev-b');
    const a = await connect({ clientId: 'dev-a', username: 'dev-a', password: passwordA });
    await a.publishAsync('sensors/dev-a/temp', JSON.stringify(reading('dev-a-temp', 1)), {
      qos: 1,
    });
    expect(await storedValues('dev-a-temp')).toEqual([1]);

    const forbiddenBefore = await metric(
      'canopy_auth_failures_total{credential="mqtt",reason="forbidden"}',
    );
    let acknowledged = false;
    const closed = new Promise<void>((resolve) => a.once('close', () => resolve()));
    a.publish(
      'sensors/dev-b/temp',
      JSON.stringify(reading('dev-b-temp', 666)),
      { qos: 1 },
      (err) => {
        if (!err) acknowledged = true;
      },
    );
    await closed;
    expect(acknowledged).toBe(false);
    expect(await metric('canopy_auth_failures_total{credential="mqtt",reason="forbidden"}')).toBe(
      forbiddenBefore + 1,
    );

    // Reconnected, the device's next reading is acknowledged once stored; the refused one never was submitted.
    const again = await connect({ clientId: 'dev-a:2', username: 'dev-a', password: passwordA });
    await again.publishAsync('sensors/dev-a/temp', JSON.stringify(reading('dev-a-temp', 2)), {
      qos: 1,
    });
    expect(await storedValues('dev-a-temp')).toEqual(expect.arrayContaining([1, 2]));
    expect(await storedValues('dev-b-temp')).toEqual([]);
  });

  it('refuses a wrong password, no credentials, a revoked device and another device’s client id', async () => {
    const password = await createDevice('dev-c');
    const refusal = async (options: mqtt.IClientOptions): Promise<unknown> =>
      connect(options).then(
        () => 'connected',
        (err: unknown) => (err as { code?: unknown }).code,
      );
    expect(await refusal({ clientId: 'dev-c', username: 'dev-c', password: `${password}x` })).toBe(
      4,
    );
    expect(await refusal({ clientId: 'dev-c' })).toBe(4);
    expect(await refusal({ clientId: 'dev-a', username: 'dev-c', password })).toBe(5);
    expect(await refusal({ clientId: 'dev-cx', username: 'dev-c', password })).toBe(5);

    // Revoked while connected: the connection ends, and the password no longer works.
    const live = await connect({ clientId: 'dev-c', username: 'dev-c', password });
    const closed = new Promise<void>((resolve) => live.once('close', () => resolve()));
    expect((await call('DELETE', '/api/devices/dev-c', { key: adminKey })).status).toBe(200);
    await closed;
    expect(await refusal({ clientId: 'dev-c', username: 'dev-c', password })).toBe(4);
  });

  it('grants subscriptions inside the device’s topics only', async () => {
    const password = await createDevice('dev-d');
    const client = await connect({ clientId: 'dev-d', username: 'dev-d', password });
    const granted = await client.subscribeAsync('sensors/dev-d/#', { qos: 1 });
    expect(granted.map((g) => [g.topic, g.qos])).toEqual([['sensors/dev-d/#', 1]]);
    for (const outside of ['sensors/+/temp', '#', 'sensors/dev-a/temp']) {
      const err = (await client.subscribeAsync(outside, { qos: 1 }).catch((e: unknown) => e)) as {
        packet?: { granted?: number[] };
      };
      expect([outside, err.packet?.granted]).toEqual([outside, [128]]);
    }
    // Refused subscriptions leave the connection up: the device still publishes.
    await client.publishAsync('sensors/dev-d/temp', JSON.stringify(reading('dev-d-temp', 4)), {
      qos: 1,
    });
    expect(await storedValues('dev-d-temp')).toEqual([4]);
  });
});

describe('the CLI while Canopy runs', () => {
  const env = (): Record<string, string> => ({
    CANOPY_DATA_DIR: app.dataDir,
    CANOPY_HTTP_PORT: String(app.httpPort),
  });

  it('goes through the API with an admin key, and says what to do without one', async () => {
    const without = await runCanopy(['keys', 'list'], env());
    expect(without.code).toBe(1);
    expect(without.stderr).toMatch(/CANOPY_META_UNAVAILABLE: .*give an admin API key/);

    const added = await runCanopy(
      ['users', 'add', 'cli-user', '--role', 'operator', '--password-stdin'],
      { ...env(), CANOPY_API_KEY: adminKey },
      'a password from stdin\n',
    );
    expect(added).toMatchObject({ code: 0, stdout: 'added operator cli-user\n' });
    const login = await call('POST', '/api/session', {
      body: { username: 'cli-user', password: 'a password from stdin' },
    });
    expect(login.status).toBe(200);

    const listed = await runCanopy(['keys', 'list', '--json'], {
      ...env(),
      CANOPY_API_KEY: adminKey,
    });
    expect(listed.code).toBe(0);
    const keys = JSON.parse(listed.stdout) as { name: string; state: string }[];
    expect(keys.find((k) => k.name === 'bootstrap')?.state).toBe('active');

    const readKey = await createKey(['read']);
    const refused = await runCanopy(['keys', 'list'], { ...env(), CANOPY_API_KEY: readKey.key });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^CANOPY_AUTH_FORBIDDEN: /);
  }, 120_000);
});

describe('the built-in simulator with authentication on', () => {
  it('gets credentials of its own, so `up --simulate` keeps flowing', async () => {
    const simulated = await startTestApp({
      workflows: { enabled: false },
      auth: { mode: 'required' },
      simulator: { enabled: true, ratePerSecond: 50, sensors: 5, plants: { enabled: false } },
    });
    try {
      const deadline = Date.now() + 30_000;
      let readings = 0;
      while (readings === 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        readings = (await simulated.store.queryReadings({ limit: 10 })).items.length;
      }
      expect(readings).toBeGreaterThan(0);
      // The fleet has credentials; callers without any are still refused.
      const forbidden = await simulated.api.inject({ method: 'GET', url: '/api/data' });
      expect(forbidden.statusCode).toBe(401);
    } finally {
      await simulated.dispose();
    }
  }, 60_000);
});
