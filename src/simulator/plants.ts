/**
 * A stand-in for the plant conservatory's HTTP API (reference system 1), for
 * the poll source to fetch each minute.
 *
 * `GET /plants/:id` (ids 1..count) answers one plant's latest recording;
 * `GET /plants` lists the ids. Like the real API, a few ids misbehave, always
 * the same ones for a seed (see `PlantFaults`); `faultyIds` in the result
 * says which, so tests can assert on them.
 *
 * Answers are a pure function of (seed, id, clock time): for a fixed clock
 * and seed every request gets the same bytes back.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../core/clock.js';
import { Rng, hash32 } from './prng.js';

/** Which ids misbehave, and how. An id may appear under one kind only. */
export interface PlantFaults {
  /** Always 404 `{"error": "plant not found", "plant_id": id}`. */
  notFound: number[];
  /** 500 `{"error": "internal server error"}` during even clock minutes (floor(now / 60 000) even), fine otherwise. */
  flaky: number[];
  /** `soil_moisture` is negative: out of its 0..100 range. */
  negativeMoisture: number[];
  /** `temperature` is a non-numeric string, e.g. `"21.4°C"`. */
  stringTemperature: number[];
  /** `recording_taken` is missing. */
  missingRecording: number[];
}

export const PLANT_FAULT_KINDS = [
  'notFound',
  'flaky',
  'negativeMoisture',
  'stringTemperature',
  'missingRecording',
] as const satisfies readonly (keyof PlantFaults)[];

export interface Botanist {
  name: string;
  email: string;
  phone: string;
}

/** The body of a good `GET /plants/:id` answer. */
export interface PlantRecording {
  plant_id: number;
  name: string;
  soil_moisture: number;
  temperature: number;
  last_watered: string;
  recording_taken: string;
  botanist: Botanist;
}

export interface PlantsServerOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Plants, ids 1..count. Default 50. */
  count?: number;
  /** Default 1. */
  seed?: number;
  clock: Clock;
  /**
   * Overrides the seed's choice of faulty ids, kind by kind (a kind given
   * replaces that kind's list; `[]` turns it off).
   */
  faultyIds?: Partial<PlantFaults>;
}

export interface PlantsServer {
  /** e.g. `http://127.0.0.1:41234` (no trailing slash). */
  url: string;
  port: number;
  faultyIds: PlantFaults;
  close(): Promise<void>;
}

export interface PlantAnswer {
  status: number;
  body: unknown;
}

const PLANT_NAMES: readonly string[] = [
  'Venus flytrap',
  'Corpse flower',
  'Rafflesia arnoldii',
  'Black bat flower',
  'Pitcher plant',
  'Wollemi pine',
  'Bird of paradise',
  'Cape sundew',
  'Welwitschia',
  'Dragon tree',
  'Monkey puzzle',
  'Giant water lily',
  'Sensitive plant',
  'Ghost orchid',
  'Jade vine',
  'Swiss cheese plant',
  'Strangler fig',
  'Living stones',
  'Baobab',
  'Coco de mer',
  'Chocolate cosmos',
  'Moon orchid',
  "Elephant's foot",
  'Resurrection plant',
  "Dragon's blood tree",
  'Queen of the Andes',
  'Butterwort',
  'Bleeding heart',
  'String of pearls',
  'Peace lily',
  'Snake plant',
  'Kentia palm',
  'Staghorn fern',
  'Tree fern',
  "Bird's nest fern",
  'Maidenhair fern',
  'Sago palm',
  'Madagascar periwinkle',
  "Angel's trumpet",
  'Passion flower',
  'Bougainvillea',
  'Hibiscus',
  'Frangipani',
  'Banana plant',
  'Coffee plant',
  'Cacao tree',
  'Vanilla orchid',
  'Sacred lotus',
  'Papyrus',
  'Golden barrel cactus',
  'Saguaro',
  'Aloe vera',
  'Cobra lily',
  'Air plant',
  'Titan arum',
];

// Fictional people; phone numbers from Ofcom's range reserved for drama.
const BOTANISTS: readonly Botanist[] = [
  { name: 'Ada Moss', email: 'ada.moss@conservatory.example', phone: '+44 20 7946 0011' },
  { name: 'Tomas Verde', email: 'tomas.verde@conservatory.example', phone: '+44 20 7946 0022' },
  {
    name: 'Priya Sundaram',
    email: 'priya.sundaram@conservatory.example',
    phone: '+44 20 7946 0033',
  },
  { name: 'Olu Adeyemi', email: 'olu.adeyemi@conservatory.example', phone: '+44 20 7946 0044' },
];

const SALT_FAULTS = 11;
const SALT_PLANT = 12;
const SALT_NAMES = 13;
const SALT_NOISE = 14;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}

function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

/** The seed's faulty ids: a shuffle of 1..count, one id per kind, in `PLANT_FAULT_KINDS` order. */
export function defaultPlantFaults(count: number, seed: number): PlantFaults {
  const ids = Array.from({ length: count }, (_, i) => i + 1);
  const picked = new Rng(hash32(seed, SALT_FAULTS)).shuffle(ids);
  const faults: PlantFaults = {
    notFound: [],
    flaky: [],
    negativeMoisture: [],
    stringTemperature: [],
    missingRecording: [],
  };
  PLANT_FAULT_KINDS.forEach((kind, i) => {
    const id = picked[i];
    if (id !== undefined) faults[kind].push(id);
  });
  return faults;
}

/** Plant names for ids 1..count, shuffled by the seed; repeats get a number when count exceeds the list. */
function plantNames(count: number, seed: number): string[] {
  const shuffled = new Rng(hash32(seed, SALT_NAMES)).shuffle(PLANT_NAMES);
  return Array.from({ length: count }, (_, i) => {
    const base = shuffled[i % shuffled.length] as string;
    const round = Math.floor(i / shuffled.length);
    return round === 0 ? base : `${base} ${round + 1}`;
  });
}

export interface PlantModel {
  count: number;
  seed: number;
  faults: PlantFaults;
  names: string[];
}

export function createPlantModel(
  count: number,
  seed: number,
  overrides: Partial<PlantFaults> = {},
): PlantModel {
  return {
    count,
    seed,
    faults: { ...defaultPlantFaults(count, seed), ...overrides },
    names: plantNames(count, seed),
  };
}

/** The answer to `GET /plants/:id` at time `now`: pure, no I/O. */
export function plantAnswer(model: PlantModel, id: number, now: number): PlantAnswer {
  const f = model.faults;
  if (!Number.isInteger(id) || id < 1 || id > model.count || f.notFound.includes(id)) {
    return { status: 404, body: { error: 'plant not found', plant_id: id } };
  }
  if (f.flaky.includes(id) && Math.floor(now / 60_000) % 2 === 0) {
    return { status: 500, body: { error: 'internal server error' } };
  }
  const p = new Rng(hash32(model.seed, id, SALT_PLANT));
  const period = p.range(20, 40) * HOUR;
  const phase = p.range(0, period);
  const top = p.range(75, 90);
  const decayPerHour = p.range(0.8, 1.5);
  const tempOffset = p.range(-1.5, 1.5);
  const botanist = BOTANISTS[p.int(0, BOTANISTS.length - 1)] as Botanist;
  const noise = new Rng(hash32(model.seed, id, Math.floor(now / 60_000), SALT_NOISE));

  // Watered every `period`, on whole seconds; moisture falls linearly since.
  const lastWatered = Math.floor((now - mod(now - phase, period)) / 1000) * 1000;
  const hoursDry = (now - lastWatered) / HOUR;
  const moisture = round2(Math.max(12, top - decayPerHour * hoursDry) + 0.4 * noise.gaussian());
  const hour = mod(now, DAY) / HOUR;
  const temperature = round2(
    22 + tempOffset + 3 * Math.sin((2 * Math.PI * (hour - 9)) / 24) + 0.2 * noise.gaussian(),
  );

  const body: Record<string, unknown> = {
    plant_id: id,
    name: model.names[id - 1],
    soil_moisture: f.negativeMoisture.includes(id) ? -moisture : moisture,
    temperature: f.stringTemperature.includes(id) ? `${temperature}°C` : temperature,
    last_watered: new Date(lastWatered).toISOString(),
    recording_taken: new Date(now).toISOString(),
    botanist: { ...botanist },
  };
  if (f.missingRecording.includes(id)) delete body.recording_taken;
  return { status: 200, body };
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * Starts the server. Rejects if it cannot listen (port in use, bad host).
 * `close()` stops it and drops open keep-alive connections.
 */
export async function startPlantsServer(options: PlantsServerOptions): Promise<PlantsServer> {
  const host = options.host ?? '127.0.0.1';
  const count = options.count ?? 50;
  if (!Number.isInteger(count) || count < 1)
    throw new RangeError(`count must be a positive integer, got ${count}`);
  const model = createPlantModel(count, Math.trunc(options.seed ?? 1), options.faultyIds);
  const clock = options.clock;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://plants.invalid').pathname.replace(/\/+$/, '');
    if (req.method !== 'GET') {
      sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET' });
      return;
    }
    if (path === '/plants') {
      sendJson(res, 200, { plant_ids: Array.from({ length: count }, (_, i) => i + 1) });
      return;
    }
    const m = /^\/plants\/(\d{1,9})$/.exec(path);
    if (m === null) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    const answer = plantAnswer(model, Number(m[1]), clock.now());
    sendJson(res, answer.status, answer.body);
  };

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${hostInUrl}:${port}`,
    port,
    faultyIds: structuredClone(model.faults),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err === undefined ? resolve() : reject(err)));
        server.closeAllConnections();
      }),
  };
}
