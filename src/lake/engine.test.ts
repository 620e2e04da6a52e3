import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lakeEngineSettings, shareLakeEngine, withLakeEngine } from './engine.js';

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
});
