/**
 * The README's first command: `canopy up --simulate` (what `npm start` runs)
 * shows simulated sensor readings and polled plant readings within seconds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCanopy } from './helpers/process.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-quickstart-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

interface Row {
  source: string;
  sensor_id: string;
}

describe('canopy up --simulate', () => {
  it('serves readings from the simulated fleet (MQTT) and the polled plants within seconds', async () => {
    const canopy = await spawnCanopy({ CANOPY_DATA_DIR: dataDir }, ['--simulate']);
    try {
      const deadline = Date.now() + 15_000;
      let sources = new Set<string>();
      while (Date.now() < deadline && !(sources.has('mqtt') && sources.has('poll:plants'))) {
        await new Promise((r) => setTimeout(r, 250));
        const page = (await (await fetch(`${canopy.httpUrl}/api/data?limit=10000`)).json()) as {
          data: Row[];
        };
        sources = new Set(page.data.map((r) => r.source));
      }
      expect([...sources].sort()).toEqual(['mqtt', 'poll:plants']);
      // The fleet's sensors report at their own intervals: within the same deadline, all 50 appear.
      let simulated: string[] = [];
      while (simulated.length < 50 && Date.now() < deadline) {
        const sensors = (await (await fetch(`${canopy.httpUrl}/api/sensors`)).json()) as {
          data: { sensor_id: string }[];
        };
        simulated = sensors.data.map((s) => s.sensor_id).filter((id) => id.startsWith('sim-'));
        if (simulated.length < 50) await new Promise((r) => setTimeout(r, 250));
      }
      expect(simulated).toHaveLength(50);
      const letters = (await (
        await fetch(`${canopy.httpUrl}/api/deadletters?source=poll:plants`)
      ).json()) as { data: unknown[] };
      expect(letters.data.length).toBeGreaterThan(0); // the faulty plants
    } finally {
      canopy.child.kill('SIGTERM');
      expect(await canopy.exited).toBe(0); // a clean shutdown on SIGTERM
    }
  }, 40_000);
});
