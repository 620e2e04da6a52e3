/**
 * Kill -9 during the silver and gold jobs, then restart: the lake ends up
 * exactly as after one uninterrupted run. The child writes each output
 * object whole and each manifest last; it is killed right after its n-th
 * write (mid-silver, between a silver date and the next, mid-gold), and a
 * final run finishes the work. Oracle: a copy of the same bronze processed
 * once without interruption, compared object by object, byte for byte.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import type { NewReading } from '../core/store.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { runBronzeExport } from './bronze-export.js';
import { newReading } from '../../test/helpers/readings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-lake-jobs-kill-'));
const child = path.join(import.meta.dirname, 'fixtures', 'lake-jobs-child.fixture.ts');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.UTC(2026, 10, 20);
const DAYS = 3;
const SENSORS = 8;

/** Runs the jobs in a child; kills it after `killAfterWrites` writes if given. Resolves with the writes seen and whether it finished. */
function runJobs(
  lakeRoot: string,
  killAfterWrites?: number,
): Promise<{ writes: number; finished: boolean }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, lakeRoot, dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let writes = 0;
    let finished = false;
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if (line === 'done') finished = true;
      if (line.startsWith('wrote ') && ++writes === killAfterWrites) proc.kill('SIGKILL');
    });
    proc.once('error', reject);
    proc.once('exit', (code, signal) => {
      if (killAfterWrites === undefined && code !== 0)
        reject(new Error(`lake jobs exited with ${code ?? signal}`));
      else resolve({ writes, finished });
    });
  });
}

/** Every silver, anomalies and gold object with a hash of its bytes. */
async function layerContents(lakeRoot: string): Promise<Record<string, string>> {
  const lake = new LocalObjectStore({ root: lakeRoot });
  const contents: Record<string, string> = {};
  for (const prefix of ['silver/', 'anomalies/', 'gold/']) {
    for (const { key } of await lake.list(prefix)) {
      contents[key] = createHash('sha256')
        .update(await lake.get(key))
        .digest('hex');
    }
  }
  return contents;
}

describe('silver and gold jobs under kill -9', () => {
  it('end byte-for-byte where an uninterrupted run ends, whatever write they are killed after', async () => {
    const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
    await store.open();
    const rows: NewReading[] = [];
    for (let t = T0; t < T0 + DAYS * 86_400_000; t += 600_000) {
      for (let s = 0; s < SENSORS; s++) {
        const i = rows.length;
        const value = i % 97 === 0 ? null : i % 89 === 0 ? 75 : 15 + s + Math.sin(t / 3.6e6);
        rows.push(
          newReading({ sensorId: `s-${s}`, location: `zone-${s % 3}`, eventTime: t, value }),
        );
      }
    }
    // A re-sent reading, so silver's dedup has work to do.
    rows.push({ ...rows[100]!, value: 21, ingestTime: rows[100]!.ingestTime + 1 });
    await store.append(rows, []);
    const lakeRoot = path.join(dir, 'lake');
    await runBronzeExport({
      store,
      lake: new LocalObjectStore({ root: lakeRoot }),
      workDir: dir,
      logger: silentLogger(),
    });
    await store.close();

    const referenceRoot = path.join(dir, 'reference');
    cpSync(lakeRoot, referenceRoot, { recursive: true });
    const reference = await runJobs(referenceRoot);
    expect(reference.finished).toBe(true);

    // Each run counts its own writes and redoes only what is dirty. Silver writes 3 objects a date
    // (anomalies, silver, manifest) and gold 4 (three tables, manifest): the first two kills land
    // mid-silver, the third mid-gold after the last silver date, the others deeper into gold.
    const killPoints = [2, 4, 9, 5, 3];
    for (const killAfterWrites of killPoints) {
      const killed = await runJobs(lakeRoot, killAfterWrites);
      expect(killed.finished).toBe(false);
    }
    const restart = await runJobs(lakeRoot);
    expect(restart.finished).toBe(true);

    const expected = await layerContents(referenceRoot);
    expect(Object.keys(expected).length).toBeGreaterThan(DAYS * 5);
    expect(await layerContents(lakeRoot)).toEqual(expected);
    // And nothing is left to do.
    expect((await runJobs(lakeRoot)).writes).toBe(0);
  }, 180_000);
});
