import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CanopyError } from '../core/errors.js';
import type { IngestSink } from '../core/ingest.js';
import { createLogger, silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { DuckDbHotStore } from '../storage/index.js';
import { buildApi } from './server.js';
import { newReading } from '../../test/helpers/readings.js';
import { captureLines } from '../../test/helpers/logs.js';

const store = new DuckDbHotStore({ path: ':memory:' });
let failWith: CanopyError | undefined;
const sink: IngestSink = {
  submit: () =>
    failWith
      ? Promise.reject(failWith)
      : Promise.resolve({ batchId: 'b', accepted: 1, rejected: [] }),
  submitDeadLetter: () => Promise.resolve(),
};
const deps = {
  sink,
  store,
  queries: {
    run: () => Promise.reject(new CanopyError('CANOPY_LAKE_IO_FAILED', 'the lake is unreachable')),
    close: () => Promise.resolve(),
  },
  catalog: () => Promise.resolve([]),
  quality: {
    list: () => Promise.resolve([]),
    get: () => Promise.resolve(null),
    latestBySuite: () => Promise.resolve([]),
  },
  metrics: new Metrics({ defaultMetrics: false }),
  logger: silentLogger(),
  maxPayloadBytes: 1024,
  retryAfterSeconds: 2,
};
const app = buildApi(deps);

beforeAll(() => store.open());
afterAll(async () => {
  await app.close();
  await store.close();
});

const errorOf = (res: { json<T>(): T }) =>
  res.json<{ error: { code: string; message: string } }>().error;
const post = (headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  app.inject({ method: 'POST', url: '/api/data', payload: '{}', headers });

describe('API errors', () => {
  it('answers 503 with Retry-After when ingest is overloaded, and 503 when the commit failed', async () => {
    failWith = new CanopyError('CANOPY_INGEST_OVERLOADED', 'queue full');
    const overloaded = await post();
    expect(overloaded.statusCode).toBe(503);
    expect(overloaded.headers['retry-after']).toBe('2');
    expect(errorOf(overloaded).code).toBe('CANOPY_INGEST_OVERLOADED');

    failWith = new CanopyError('CANOPY_STORE_COMMIT_FAILED', 'disk full');
    const failed = await post();
    expect(failed.statusCode).toBe(503);
    expect(errorOf(failed)).toEqual({ code: 'CANOPY_STORE_COMMIT_FAILED', message: 'disk full' });
    failWith = undefined;
    expect((await post()).statusCode).toBe(200);
  });

  it('needs a content type, and hides internal failures behind CANOPY_API_INTERNAL', async () => {
    const none = await post({});
    expect(none.statusCode).toBe(415);
    failWith = new Error('boom') as CanopyError;
    const internal = await post();
    failWith = undefined;
    expect(internal.statusCode).toBe(500);
    expect(errorOf(internal)).toEqual({
      code: 'CANOPY_API_INTERNAL',
      message: 'internal error; see the server log',
    });
  });

  it.each([
    ['/api/data?limit=0', /limit must be an integer from 1 to 10000/],
    ['/api/data?limit=abc', /limit must be an integer/],
    ['/api/data?from=yesterday', /from must be an ISO 8601 time/],
    ['/api/data?cursor=not-a-cursor', /cursor/],
    ['/api/data?sensor_id=a&sensor_id=b', /sensor_id must be given once/],
    ['/api/deadletters?limit=5000', /limit must be an integer from 1 to 1000/],
  ])('GET %s answers 400 naming the parameter', async (url, message) => {
    const res = await app.inject({ method: 'GET', url });
    expect(res.statusCode).toBe(400);
    expect(errorOf(res).code).toBe('CANOPY_API_BAD_REQUEST');
    expect(errorOf(res).message).toMatch(message);
  });

  it('POST /api/query needs {"sql": "…"} and passes query errors through with their status', async () => {
    for (const payload of ['not json', '{"query": "SELECT 1"}', '{"sql": ""}']) {
      const res = await app.inject({
        method: 'POST',
        url: '/api/query',
        payload,
        headers: { 'content-type': 'application/json' },
      });
      expect(res.statusCode).toBe(400);
      expect(errorOf(res).message).toMatch(/the body must be JSON: \{"sql"/);
    }
    const unavailable = await app.inject({
      method: 'POST',
      url: '/api/query',
      payload: { sql: 'SELECT 1' },
    });
    expect(unavailable.statusCode).toBe(503);
    expect(errorOf(unavailable).code).toBe('CANOPY_LAKE_IO_FAILED');
  });

  it('answers unknown routes with CANOPY_API_NOT_FOUND', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/nope' });
    expect(res.statusCode).toBe(404);
    expect(errorOf(res).code).toBe('CANOPY_API_NOT_FOUND');
  });

  it('reads from/to as ISO, epoch seconds or epoch milliseconds alike (from inclusive, to exclusive)', async () => {
    const t0 = Date.UTC(2026, 10, 22, 10);
    const row = (i: number) =>
      newReading({ sensorId: 'api-t', eventTime: t0 + i * 1000, value: i, ingestTime: t0 });
    await store.append([0, 1, 2, 3, 4].map(row), []);
    const values = async (query: string) =>
      (await app.inject({ method: 'GET', url: `/api/data?sensor_id=api-t&${query}` }))
        .json<{ data: { value: number }[] }>()
        .data.map((r) => r.value);
    const from = t0 + 1000;
    const to = t0 + 4000;
    const expected = [3, 2, 1];
    expect(
      await values(`from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`),
    ).toEqual(expected);
    expect(await values(`from=${from / 1000}&to=${to / 1000}`)).toEqual(expected);
    expect(await values(`from=${from}&to=${to}`)).toEqual(expected);
  });
});

describe('health, readiness and request ids', () => {
  it('GET /readyz answers 200 when every check passes, 503 with the failing reasons otherwise', async () => {
    let lakeDown = false;
    const api = buildApi({
      ...deps,
      readiness: [
        { name: 'hot-store', probe: () => store.countReadings().then(() => undefined) },
        {
          name: 'lake',
          probe: () =>
            lakeDown ? Promise.reject(new Error('connect ECONNREFUSED')) : Promise.resolve(),
        },
      ],
    });
    try {
      const ready = await api.inject({ method: 'GET', url: '/readyz' });
      expect(ready.statusCode).toBe(200);
      expect(ready.json()).toEqual({
        status: 'ready',
        checks: [
          { name: 'hot-store', ok: true },
          { name: 'lake', ok: true },
        ],
      });
      lakeDown = true;
      const notReady = await api.inject({ method: 'GET', url: '/readyz' });
      expect(notReady.statusCode).toBe(503);
      expect(notReady.json()).toEqual({
        status: 'not_ready',
        checks: [
          { name: 'hot-store', ok: true },
          { name: 'lake', ok: false, reason: 'connect ECONNREFUSED' },
        ],
      });
      // Liveness does not depend on the lake.
      expect((await api.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await api.close();
    }
  });

  it('echoes a sane X-Request-Id, replaces an unsafe one, and logs the request with it', async () => {
    const { stream, lines } = captureLines();
    const api = buildApi({ ...deps, logger: createLogger('info', false, { destination: stream }) });
    try {
      const given = await api.inject({
        method: 'GET',
        url: '/healthz',
        headers: { 'x-request-id': 'trace-42.a:b' },
      });
      expect(given.headers['x-request-id']).toBe('trace-42.a:b');
      for (const unsafe of ['has space', 'x'.repeat(129), 'semi;colon', '<script>', '']) {
        const res = await api.inject({
          method: 'GET',
          url: '/healthz',
          headers: { 'x-request-id': unsafe },
        });
        expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      }
      const first = await api.inject({ method: 'GET', url: '/healthz' });
      const second = await api.inject({ method: 'GET', url: '/healthz' });
      expect(first.headers['x-request-id']).not.toBe(second.headers['x-request-id']);

      // An internal error is logged by the request's logger: the line carries its id.
      failWith = new Error('boom') as CanopyError;
      const failed = await api.inject({
        method: 'POST',
        url: '/api/data',
        payload: '{}',
        headers: { 'content-type': 'application/json', 'x-request-id': 'req-7' },
      });
      failWith = undefined;
      expect(failed.statusCode).toBe(500);
      expect(failed.headers['x-request-id']).toBe('req-7');
      const logged = lines.filter((l) => l.msg === 'unhandled API error');
      expect(logged).toHaveLength(1);
      expect(logged[0]).toMatchObject({ component: 'api', requestId: 'req-7', level: 50 });
    } finally {
      await api.close();
    }
  });
});
