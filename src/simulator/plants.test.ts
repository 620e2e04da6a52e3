import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import {
  PLANT_FAULT_KINDS,
  defaultPlantFaults,
  startPlantsServer,
  type PlantsServer,
} from './plants.js';

// 10:01 UTC: an odd minute, so flaky ids answer normally.
const ODD_MINUTE = Date.UTC(2026, 10, 22, 10, 1, 30);
const EVEN_MINUTE = ODD_MINUTE + 60_000;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

async function get(
  url: string,
): Promise<{ status: number; text: string; body: Record<string, unknown> }> {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as Record<string, unknown> };
}

describe('plants server', () => {
  const servers: PlantsServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function start(seed = 1, clock = new ManualClock(ODD_MINUTE)) {
    const server = await startPlantsServer({ seed, clock });
    servers.push(server);
    return { server, clock };
  }

  it('declares one faulty id per kind, all distinct, within 1..50', async () => {
    const { server } = await start();
    const ids = PLANT_FAULT_KINDS.flatMap((k) => server.faultyIds[k]);
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(5);
    expect(ids.every((id) => id >= 1 && id <= 50)).toBe(true);
    expect(server.faultyIds).toEqual(defaultPlantFaults(50, 1));
    expect(defaultPlantFaults(50, 2)).not.toEqual(defaultPlantFaults(50, 1));
  });

  it('answers ids 1..50; the faulty ones misbehave as declared', async () => {
    const { server, clock } = await start();
    const f = server.faultyIds;
    const list = await get(`${server.url}/plants`);
    expect(list.body).toEqual({ plant_ids: Array.from({ length: 50 }, (_, i) => i + 1) });

    for (let id = 1; id <= 50; id++) {
      const { status, body } = await get(`${server.url}/plants/${id}`);
      if (f.notFound.includes(id)) {
        expect(status).toBe(404);
        expect(body).toEqual({ error: 'plant not found', plant_id: id });
        continue;
      }
      expect(status).toBe(200);
      expect(body.plant_id).toBe(id);
      expect(typeof body.name).toBe('string');
      expect(body.last_watered).toMatch(ISO);
      expect(Date.parse(body.last_watered as string)).toBeLessThanOrEqual(ODD_MINUTE);
      const botanist = body.botanist as Record<string, unknown>;
      expect(Object.keys(botanist).sort()).toEqual(['email', 'name', 'phone']);

      if (f.missingRecording.includes(id)) expect(body).not.toHaveProperty('recording_taken');
      else expect(body.recording_taken).toBe(new Date(ODD_MINUTE).toISOString());

      if (f.stringTemperature.includes(id)) {
        expect(typeof body.temperature).toBe('string');
        expect(Number.isFinite(Number(body.temperature))).toBe(false);
      } else {
        expect(body.temperature).toBeGreaterThan(10);
        expect(body.temperature).toBeLessThan(35);
      }

      if (f.negativeMoisture.includes(id)) expect(body.soil_moisture).toBeLessThan(0);
      else {
        expect(body.soil_moisture).toBeGreaterThan(0);
        expect(body.soil_moisture).toBeLessThanOrEqual(100);
      }
    }

    // Flaky ids fail during even minutes only.
    const flaky = f.flaky[0] as number;
    clock.set(EVEN_MINUTE);
    expect((await get(`${server.url}/plants/${flaky}`)).status).toBe(500);
    const healthy = [...Array(50).keys()]
      .map((i) => i + 1)
      .find((id) => PLANT_FAULT_KINDS.every((k) => !f[k].includes(id)));
    expect((await get(`${server.url}/plants/${healthy}`)).status).toBe(200);
  });

  it('is deterministic for a fixed clock and seed', async () => {
    const a = await start(1);
    const b = await start(1);
    const c = await start(2);
    const texts = async (url: string) =>
      Promise.all([3, 7, 20, 44].map(async (id) => (await get(`${url}/plants/${id}`)).text));
    const first = await texts(a.server.url);
    expect(await texts(a.server.url)).toEqual(first);
    expect(await texts(b.server.url)).toEqual(first);
    expect(await texts(c.server.url)).not.toEqual(first);
    // Time moves the readings, not the plant.
    const f = a.server.faultyIds;
    const healthy = [3, 4, 5, 6, 8, 9].find((id) =>
      PLANT_FAULT_KINDS.every((k) => !f[k].includes(id)),
    ) as number;
    const before = (await get(`${a.server.url}/plants/${healthy}`)).body;
    a.clock.advance(6 * 3_600_000);
    const later = (await get(`${a.server.url}/plants/${healthy}`)).body;
    expect(later.name).toBe(before.name);
    expect(later.botanist).toEqual(before.botanist);
    expect(later.recording_taken).toBe(new Date(ODD_MINUTE + 6 * 3_600_000).toISOString());
    expect([later.soil_moisture, later.temperature]).not.toEqual([
      before.soil_moisture,
      before.temperature,
    ]);
  });

  it('takes faulty ids from the options, and answers unknown routes and ids', async () => {
    const server = await startPlantsServer({
      count: 10,
      clock: new ManualClock(ODD_MINUTE),
      faultyIds: { notFound: [2], flaky: [] },
    });
    servers.push(server);
    expect(server.faultyIds.notFound).toEqual([2]);
    expect(server.faultyIds.flaky).toEqual([]);
    expect((await get(`${server.url}/plants/2`)).status).toBe(404);
    expect((await get(`${server.url}/plants/11`)).status).toBe(404);
    expect((await get(`${server.url}/plants/0`)).status).toBe(404);
    expect((await get(`${server.url}/nope`)).status).toBe(404);
    const post = await fetch(`${server.url}/plants/1`, { method: 'POST' });
    await post.text();
    expect(post.status).toBe(405);
  });
});
