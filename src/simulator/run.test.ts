import { watch, type FSWatcher } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server as NetServer,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Aedes } from 'aedes';
import { connectAsync } from 'mqtt';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import { createFleet } from './fleet.js';
import { runSimulator } from './run.js';
import { sleep } from './util.js';
import { LONG_CSV_HEADER, splitCsvLine, type SimReading } from './wire.js';

const T0 = Date.UTC(2026, 10, 22, 9, 0, 0);
const logger = pino({ level: 'silent' });
const FIXTURE = fileURLToPath(new URL('./testdata/replay.csv', import.meta.url));

function fleetReadings(count: number, from = T0): SimReading[] {
  return [...createFleet({ seed: 1 }).readings({ from, count })].map((g) => g.reading);
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (condition()) return;
    await sleep(10);
  }
  throw new Error(`gave up waiting for ${what}`);
}

interface Answer {
  status: number;
  headers?: Record<string, string>;
}

/** An HTTP server that records POST bodies; `answer(n)` may override the reply to request n (0-based). */
async function recorder(answer: (n: number) => Answer | undefined = () => undefined) {
  const accepted: { contentType: string; body: string }[] = [];
  let requests = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const custom = answer(requests++);
      if (custom !== undefined) {
        res.writeHead(custom.status, custom.headers).end('{"error":"nope"}');
        return;
      }
      accepted.push({ contentType: req.headers['content-type'] ?? '', body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/api/data`,
    accepted,
    requests: () => requests,
    readings: (): SimReading[] =>
      accepted.flatMap((a) =>
        a.contentType.startsWith('application/x-ndjson')
          ? a.body
              .split('\n')
              .filter((l) => l !== '')
              .map((l) => JSON.parse(l) as SimReading)
          : (JSON.parse(a.body) as SimReading[]),
      ),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe('mqtt target', () => {
  let broker: Aedes;
  let server: NetServer;
  let url = '';

  beforeAll(async () => {
    const { Aedes } = await import('aedes');
    broker = await Aedes.createBroker();
    server = createNetServer(broker.handle as (socket: unknown) => void);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => broker.close(() => resolve()));
  });

  it.each([1, 10])(
    'delivers all 500 readings of a batch, %i per message, in order',
    async (per) => {
      const topic = `iot/data/test-${per}`;
      const sub = await connectAsync(url, { clientId: `test-sub-${per}` });
      const got: SimReading[] = [];
      const shapes: boolean[] = [];
      sub.on('message', (_topic, payload) => {
        const parsed = JSON.parse(payload.toString()) as SimReading | SimReading[];
        shapes.push(Array.isArray(parsed));
        got.push(...(Array.isArray(parsed) ? parsed : [parsed]));
      });
      await sub.subscribeAsync(topic, { qos: 1 });

      const run = runSimulator(
        {
          mode: 'batch',
          count: 500,
          start: T0,
          target: { kind: 'mqtt', url, topic, readingsPerMessage: per },
        },
        { clock: new ManualClock(T0 + 3_600_000), logger },
      );
      await run.done;
      expect(run.stats()).toEqual({ sent: 500, failed: 0, batches: 500 / per, error: null });
      await until(() => got.length >= 500, '500 readings at the subscriber');
      expect(got).toEqual(fleetReadings(500));
      expect(shapes).toHaveLength(500 / per);
      expect(shapes.every((isArray) => isArray === per > 1)).toBe(true);
      await sub.endAsync();
    },
  );

  it('gives up on an unreachable broker when stopped, counting the readings failed', async () => {
    const probe = createNetServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const run = runSimulator(
      {
        mode: 'batch',
        count: 50,
        stopTimeoutMs: 100,
        target: { kind: 'mqtt', url: `mqtt://127.0.0.1:${port}` },
      },
      { clock: new ManualClock(T0), logger },
    );
    await sleep(200);
    await run.stop();
    expect(run.stats()).toMatchObject({ sent: 0, failed: 50, batches: 0 });
  });
});

describe('http target', () => {
  const servers: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('posts JSON batches and retries a 503 after Retry-After', async () => {
    const server = await recorder((n) =>
      n === 0 ? { status: 503, headers: { 'retry-after': '1' } } : undefined,
    );
    servers.push(server);
    const run = runSimulator(
      {
        mode: 'batch',
        count: 300,
        start: T0,
        target: { kind: 'http', url: server.url, batchSize: 100, maxInFlight: 1 },
      },
      { clock: new ManualClock(T0 + 3_600_000), logger },
    );
    await run.done;
    expect(run.stats()).toEqual({ sent: 300, failed: 0, batches: 3, error: null });
    expect(server.requests()).toBe(4); // the first batch twice
    expect(server.accepted.every((a) => a.contentType === 'application/json')).toBe(true);
    expect(server.readings()).toEqual(fleetReadings(300));
  });

  it('posts NDJSON when asked', async () => {
    const server = await recorder();
    servers.push(server);
    const run = runSimulator(
      {
        mode: 'batch',
        count: 250,
        start: T0,
        target: { kind: 'http', url: server.url, format: 'ndjson' },
      },
      { clock: new ManualClock(T0 + 3_600_000), logger },
    );
    await run.done;
    expect(run.stats()).toMatchObject({ sent: 250, failed: 0, batches: 3 });
    expect(server.accepted.every((a) => a.contentType === 'application/x-ndjson')).toBe(true);
    expect(server.readings()).toHaveLength(250);
    expect(new Set(server.readings().map((r) => `${r.sensor_id}@${r.timestamp}`)).size).toBe(250);
  });

  it('counts non-2xx answers as failed and carries on', async () => {
    const server = await recorder((n) =>
      n % 2 === 0 ? { status: 400 } : { status: 503, headers: { 'retry-after': '0' } },
    );
    servers.push(server);
    const run = runSimulator(
      {
        mode: 'batch',
        count: 300,
        target: { kind: 'http', url: server.url, batchSize: 100, maxRetries: 1 },
      },
      { clock: new ManualClock(T0), logger },
    );
    await run.done;
    expect(run.stats()).toEqual({ sent: 0, failed: 300, batches: 0, error: null });
  });

  it('counts an unreachable endpoint as failed after its retries', async () => {
    const server = await recorder();
    const url = server.url;
    await server.close();
    const run = runSimulator(
      { mode: 'batch', count: 10, target: { kind: 'http', url, batchSize: 5, maxRetries: 1 } },
      { clock: new ManualClock(T0), logger },
    );
    await run.done;
    expect(run.stats()).toMatchObject({ sent: 0, failed: 10, batches: 0 });
  });
});

describe('file target', () => {
  let dir = '';
  let watcher: FSWatcher | null = null;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'canopy-sim-'));
  });
  afterEach(() => {
    watcher?.close();
    watcher = null;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each(['ndjson', 'csv'] as const)(
    'writes %s files atomically, with every reading',
    async (format) => {
      const out = join(dir, format);
      await mkdir(out);
      // A watcher reads every file the moment its final name appears: it must be whole.
      const seen: string[] = [];
      const torn: string[] = [];
      watcher = watch(out, (_event, name) => {
        if (name === null || name.startsWith('.')) return;
        readFile(join(out, name), 'utf8').then(
          (text) => {
            seen.push(name);
            const complete =
              text.endsWith('\n') &&
              (format === 'ndjson' || text.startsWith(LONG_CSV_HEADER + '\n'));
            if (!complete) torn.push(name);
          },
          () => undefined,
        );
      });
      const run = runSimulator(
        {
          mode: 'batch',
          count: 250,
          start: T0,
          target: { kind: 'file', dir: out, format, readingsPerFile: 100 },
        },
        { clock: new ManualClock(T0 + 3_600_000), logger },
      );
      await run.done;
      expect(run.stats()).toEqual({ sent: 250, failed: 0, batches: 3, error: null });
      await until(() => seen.length > 0, 'the watcher to see a file');
      expect(torn).toEqual([]);

      const names = (await readdir(out)).sort();
      expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
      expect(names).toHaveLength(3);
      expect(names.every((n) => new RegExp(`^sim-[0-9a-z]+-00000[1-3]\\.${format}$`).test(n))).toBe(
        true,
      );

      const back: { timestamp: string; sensor_id: string; value: number | null }[] = [];
      const perFile: number[] = [];
      for (const name of names) {
        const lines = (await readFile(join(out, name), 'utf8')).split('\n').filter((l) => l !== '');
        if (format === 'csv') {
          expect(lines[0]).toBe(LONG_CSV_HEADER);
          lines.shift();
          for (const line of lines) {
            const [timestamp, sensorId, value] = splitCsvLine(line) ?? [];
            back.push({
              timestamp: timestamp ?? '',
              sensor_id: sensorId ?? '',
              value: value === '' || value === undefined ? null : Number(value),
            });
          }
        } else {
          for (const line of lines) back.push(JSON.parse(line) as SimReading);
        }
        perFile.push(lines.length);
      }
      expect(perFile).toEqual([100, 100, 50]);
      const expected = fleetReadings(250);
      expect(back.map((r) => [r.timestamp, r.sensor_id, r.value])).toEqual(
        expected.map((r) => [r.timestamp, r.sensor_id, r.value]),
      );
      if (format === 'ndjson') expect(back).toEqual(expected);
    },
  );
});

describe('replay', () => {
  const servers: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  const expectedRows: SimReading[] = [
    {
      sensor_id: 'dev-1',
      value: 21.5,
      unit: 'C',
      timestamp: '2026-11-22T10:00:00.000Z',
      anomaly_score: 0.1,
    },
    {
      sensor_id: 'dev-2',
      value: 55,
      unit: '%',
      timestamp: '2026-11-22T10:00:01.000Z',
      anomaly_score: 0.05,
    },
    {
      sensor_id: 'dev-1',
      value: null,
      unit: 'C',
      timestamp: '2026-11-22T10:00:02.000Z',
      anomaly_score: 0.9,
    },
    { sensor_id: 'dev-3', value: 1013.2, unit: 'hPa', timestamp: '2026-11-22T10:00:03.000Z' },
    {
      sensor_id: 'dev-2',
      value: 56.5,
      unit: '%',
      timestamp: '2026-11-22T10:00:04.000Z',
      anomaly_score: 0.2,
    },
    {
      sensor_id: 'dev-1',
      value: 99.9,
      unit: 'C',
      timestamp: '2026-11-22T10:00:05.000Z',
      anomaly_score: 0.95,
    },
  ];

  it('replays every readable row in order and counts the unreadable one', async () => {
    const server = await recorder();
    servers.push(server);
    const run = runSimulator(
      {
        mode: 'replay',
        file: FIXTURE,
        target: { kind: 'http', url: server.url, batchSize: 2, maxInFlight: 1 },
      },
      { clock: new ManualClock(T0), logger },
    );
    await run.done;
    expect(run.stats()).toEqual({ sent: 6, failed: 1, batches: 3, error: null });
    expect(server.readings()).toEqual(expectedRows);
  });

  it('shifts timestamps so the latest row is now', async () => {
    const server = await recorder();
    servers.push(server);
    const now = Date.UTC(2027, 0, 1, 12, 0, 0);
    const run = runSimulator(
      {
        mode: 'replay',
        file: FIXTURE,
        shiftToNow: true,
        target: { kind: 'http', url: server.url },
      },
      { clock: new ManualClock(now), logger },
    );
    await run.done;
    const times = server.readings().map((r) => Date.parse(r.timestamp));
    expect(times).toEqual([-5000, -4000, -3000, -2000, -1000, 0].map((d) => now + d));
  });

  it('paces rows at speed× the original pace, stamped with the time they are due', async () => {
    const server = await recorder();
    servers.push(server);
    const before = Date.now();
    const run = runSimulator(
      {
        mode: 'replay',
        file: FIXTURE,
        speed: 100,
        shiftToNow: true,
        target: { kind: 'http', url: server.url, maxInFlight: 1 },
      },
      { clock: systemClock, logger },
    );
    await run.done;
    const got = server.readings();
    expect(got.map((r) => r.sensor_id)).toEqual(expectedRows.map((r) => r.sensor_id));
    const times = got.map((r) => Date.parse(r.timestamp));
    expect(times[0]).toBeGreaterThanOrEqual(before);
    // 1 s apart in the file, so 10 ms apart at speed 100.
    expect(times.slice(1).map((t, i) => t - (times[i] as number))).toEqual([10, 10, 10, 10, 10]);
  });

  it('refuses a file it cannot read, before starting', () => {
    let caught: unknown;
    try {
      runSimulator(
        {
          mode: 'replay',
          file: join(tmpdir(), 'no-such-file.csv'),
          target: { kind: 'http', url: 'http://127.0.0.1:9/' },
        },
        { clock: systemClock, logger },
      );
    } catch (err) {
      caught = err;
    }
    expect(isCanopyError(caught, 'CANOPY_SOURCE_FILE_UNREADABLE')).toBe(true);
  });
});

describe('continuous mode', () => {
  const servers: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  it('sends the slots between start and now, at ratePerSecond over the fleet', async () => {
    const server = await recorder();
    servers.push(server);
    const clock = new ManualClock(T0);
    const run = runSimulator(
      {
        mode: 'continuous',
        ratePerSecond: 100,
        count: 120,
        tickMs: 5,
        target: { kind: 'http', url: server.url },
      },
      { clock, logger },
    );
    expect(run.fleet?.intervalMs).toBe(500); // 50 sensors at 2 Hz
    clock.advance(5000);
    await run.done;
    expect(run.stats()).toMatchObject({ sent: 120, failed: 0, error: null });
    const readings = server.readings();
    expect(readings).toHaveLength(120);
    const times = readings.map((r) => Date.parse(r.timestamp));
    expect(times.every((t) => t > T0 && t <= T0 + 5000 && (t - T0) % 500 === 0)).toBe(true);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('stops cleanly on stop(), having sent everything it generated', async () => {
    const server = await recorder();
    servers.push(server);
    const clock = new ManualClock(T0);
    const run = runSimulator(
      { mode: 'continuous', tickMs: 5, target: { kind: 'http', url: server.url } },
      { clock, logger },
    );
    clock.advance(3000);
    await until(() => server.readings().length > 0, 'a first request');
    await run.stop();
    await run.stop(); // idempotent
    const stats = run.stats();
    expect(stats.failed).toBe(0);
    expect(stats.sent).toBe(server.readings().length);
    expect(stats.sent).toBeGreaterThanOrEqual(140); // 3 slots of 50 sensors, less any dropout
  });
});

describe('options', () => {
  it('lists every problem at once', () => {
    let caught: unknown;
    try {
      runSimulator(
        { mode: 'batch', sensors: 0, target: { kind: 'http', url: 'ftp://x', batchSize: -1 } },
        { clock: systemClock, logger },
      );
    } catch (err) {
      caught = err;
    }
    expect(isCanopyError(caught, 'CANOPY_CONFIG_INVALID')).toBe(true);
    const details = (caught as { details: string[] }).details;
    expect(details).toHaveLength(4);
    expect(details.join('\n')).toMatch(/count/);
    expect(details.join('\n')).toMatch(/sensors/);
    expect(details.join('\n')).toMatch(/protocol/);
    expect(details.join('\n')).toMatch(/batchSize/);
  });
});
