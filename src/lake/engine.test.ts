import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LakeMemoryBudget, lakeEngineSettings, shareLakeEngine, withLakeEngine } from './engine.js';

describe('the lake engine', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'canopy-engine-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs under the configured memory limit, spilling into a folder of its own that it removes', async () => {
    const settings = lakeEngineSettings(64, dir);
    expect(settings.spillDir).toBe(path.join(dir, 'tmp', 'lake-engine'));
    const seen = await withLakeEngine(async (conn) => {
      const setting = async (name: string) =>
        (await conn.runAndReadAll(`SELECT current_setting('${name}')`)).getRows()[0]![0];
      // 3 M rows of 32-character strings sorted into Parquet, as the jobs write: well over
      // 64 MB, so the sort spills to finish.
      const out = path.join(dir, 'sorted.parquet');
      await conn.run(
        `COPY (SELECT md5(range::VARCHAR) AS s FROM range(3000000) ORDER BY s) TO '${out}' (FORMAT parquet)`,
      );
      const sorted = await conn.runAndReadAll(
        `SELECT count(*)::INTEGER,
                arg_min(s, file_row_number) = min(s) AND arg_max(s, file_row_number) = max(s)
         FROM read_parquet('${out}', file_row_number = true)`,
      );
      return {
        memoryLimit: await setting('memory_limit'),
        tempDirectory: String(await setting('temp_directory')),
        rows: sorted.getRows()[0],
      };
    }, settings);
    // DuckDB reports the limit in its own units (64 MB = 61.0 MiB).
    expect(seen.memoryLimit).toBe('61.0 MiB');
    expect(path.dirname(seen.tempDirectory)).toBe(settings.spillDir);
    expect(seen.rows).toEqual([3_000_000, true]);
    expect(existsSync(seen.tempDirectory)).toBe(false);
    expect(readdirSync(settings.spillDir)).toEqual([]);
  });

  it('removes its spill folder when the work fails', async () => {
    const settings = lakeEngineSettings(64, dir);
    await expect(
      withLakeEngine(async (conn) => {
        await conn.run('SELECT * FROM no_such_table');
      }, settings),
    ).rejects.toThrow(/no_such_table/);
    expect(readdirSync(settings.spillDir)).toEqual([]);
  });

  it('splits one budget among engines that run at once, never below 64 MB each', () => {
    const settings = lakeEngineSettings(1024, dir);
    expect(shareLakeEngine(settings, 2)).toEqual({ ...settings, memoryLimitMB: 512 });
    expect(shareLakeEngine(settings, 3).memoryLimitMB).toBe(341);
    expect(shareLakeEngine(lakeEngineSettings(100, dir), 4).memoryLimitMB).toBe(64);
  });

  it('runs engines that share a budget one after another when both limits do not fit', async () => {
    const settings = lakeEngineSettings(100, dir);
    const events: string[] = [];
    let releaseFirst!: () => void;
    const firstHolds = new Promise<void>((resolve) => (releaseFirst = resolve));
    const first = withLakeEngine(async () => {
      events.push('first in');
      await firstHolds;
      events.push('first out');
    }, settings);
    const second = withLakeEngine(() => {
      events.push('second in');
      return Promise.resolve();
    }, settings);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(events).toEqual(['first in']);
    releaseFirst();
    await Promise.all([first, second]);
    expect(events).toEqual(['first in', 'first out', 'second in']);

    // Halves fit side by side.
    const half = shareLakeEngine(lakeEngineSettings(200, dir), 2);
    let inside = 0;
    let most = 0;
    const meet = async () => {
      most = Math.max(most, ++inside);
      await new Promise((resolve) => setTimeout(resolve, 100));
      inside--;
    };
    await Promise.all([withLakeEngine(meet, half), withLakeEngine(meet, half)]);
    expect(most).toBe(2);
  });
});

describe('LakeMemoryBudget', () => {
  it('grants first come, first served, caps a request at the whole budget, and releases once', async () => {
    const budget = new LakeMemoryBudget(100);
    const granted: string[] = [];
    const take = (name: string, mb: number) =>
      budget.take(mb).then((release) => {
        granted.push(name);
        return release;
      });
    const a = await take('a', 60);
    const b = take('b', 60); // waits for a
    const c = take('c', 10); // fits, but waits behind b
    await new Promise((resolve) => setImmediate(resolve));
    expect(granted).toEqual(['a']);
    a();
    a(); // a second release gives nothing back twice
    const releaseB = await b;
    const releaseC = await c;
    expect(granted).toEqual(['a', 'b', 'c']);
    const d = take('d', 1000); // more than the budget: waits for all of it
    await new Promise((resolve) => setImmediate(resolve));
    expect(granted).toEqual(['a', 'b', 'c']);
    releaseB();
    await new Promise((resolve) => setImmediate(resolve));
    expect(granted).toEqual(['a', 'b', 'c']);
    releaseC();
    (await d)();
    expect(granted).toEqual(['a', 'b', 'c', 'd']);
  });
});
