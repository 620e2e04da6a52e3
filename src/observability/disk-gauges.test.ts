import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DiskGauges, type FilesystemStats } from './disk-gauges.js';
import { createLogger, silentLogger } from './logger.js';
import { Metrics } from './metrics.js';

/** The value of one series in the exposition text, or undefined when absent. */
async function sample(metrics: Metrics, series: string): Promise<number | undefined> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'canopy-disk-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('disk gauges', () => {
  it('report the size df reports for the same folder, and a free space within it', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const gauges = new DiskGauges({
      volumes: [{ volume: 'data', path: dir }],
      metrics,
      logger: silentLogger(),
    });
    await gauges.sample();
    // Oracle: coreutils df, which reads the same statfs(2) fields on its own.
    const [size] = execFileSync('df', ['-B1', '--output=size', dir], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .slice(1)
      .map(Number);
    expect(await sample(metrics, 'canopy_disk_size_bytes{volume="data"}')).toBe(size);
    const free = await sample(metrics, 'canopy_disk_free_bytes{volume="data"}');
    expect(free).toBeGreaterThan(0);
    expect(free).toBeLessThanOrEqual(size!);
  });

  it('count free as blocks available to unprivileged users times the block size', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const byPath: Record<string, FilesystemStats> = {
      '/data': { bsize: 4096, blocks: 1000, bavail: 50 },
      '/lake': { bsize: 512, blocks: 10, bavail: 3 },
    };
    const gauges = new DiskGauges({
      volumes: [
        { volume: 'data', path: '/data' },
        { volume: 'lake', path: '/lake' },
      ],
      metrics,
      logger: silentLogger(),
      statfs: (p) => Promise.resolve(byPath[p]!),
    });
    await gauges.sample();
    expect(await sample(metrics, 'canopy_disk_free_bytes{volume="data"}')).toBe(50 * 4096);
    expect(await sample(metrics, 'canopy_disk_size_bytes{volume="data"}')).toBe(1000 * 4096);
    expect(await sample(metrics, 'canopy_disk_free_bytes{volume="lake"}')).toBe(3 * 512);
    expect(await sample(metrics, 'canopy_disk_size_bytes{volume="lake"}')).toBe(10 * 512);
  });

  it('measure a folder not created yet on its nearest existing parent', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const asked: string[] = [];
    const gauges = new DiskGauges({
      volumes: [{ volume: 'lake', path: '/srv/canopy/lake' }],
      metrics,
      logger: silentLogger(),
      statfs: (p) => {
        asked.push(p);
        if (p !== '/srv') return Promise.reject(Object.assign(new Error(p), { code: 'ENOENT' }));
        return Promise.resolve({ bsize: 1024, blocks: 100, bavail: 7 });
      },
    });
    await gauges.sample();
    expect(asked).toEqual(['/srv/canopy/lake', '/srv/canopy', '/srv']);
    expect(await sample(metrics, 'canopy_disk_free_bytes{volume="lake"}')).toBe(7 * 1024);
  });

  it('skip a volume whose statfs fails, with a warning, and keep the others', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const lines: { level: number; msg: string; volume?: string }[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
        done();
      },
    });
    const gauges = new DiskGauges({
      volumes: [
        { volume: 'data', path: '/data' },
        { volume: 'lake', path: '/lake' },
      ],
      metrics,
      logger: createLogger('info', false, { destination }),
      statfs: (p) =>
        p === '/lake'
          ? Promise.reject(Object.assign(new Error('permission denied'), { code: 'EACCES' }))
          : Promise.resolve({ bsize: 4096, blocks: 10, bavail: 5 }),
    });
    await expect(gauges.sample()).resolves.toBeUndefined();
    expect(await sample(metrics, 'canopy_disk_free_bytes{volume="data"}')).toBe(5 * 4096);
    expect(await sample(metrics, 'canopy_disk_free_bytes{volume="lake"}')).toBeUndefined();
    expect(lines).toMatchObject([
      { level: 40, msg: 'could not read free disk space for /metrics', volume: 'lake' },
    ]);

    // A volume that was readable and then fails loses its series rather than keeping a stale value.
    const flaky = new DiskGauges({
      volumes: [{ volume: 'data', path: '/data' }],
      metrics,
      logger: silentLogger(),
      statfs: () => Promise.reject(new Error('EIO')),
    });
    await flaky.sample();
    expect(await sample(metrics, 'canopy_disk_free_bytes{volume="data"}')).toBeUndefined();
    expect(await sample(metrics, 'canopy_disk_size_bytes{volume="data"}')).toBeUndefined();
  });
});
