/**
 * The `canopy_disk_free_bytes` and `canopy_disk_size_bytes` gauges: free and
 * total bytes of the filesystem under each local folder Canopy writes to,
 * sampled with statfs(2) at scrape time (a system call per volume, cheap
 * enough for every scrape). Free is what an unprivileged process may still
 * use (`bavail`, not `bfree`): the blocks reserved for root do not help a
 * Canopy that runs as a service user.
 *
 * Volumes are named, not labelled by path, so the label set stays bounded and
 * alerts read the same on every host: `data` is the data folder (hot store,
 * landing, the Parquet cache of an S3 lake) and `lake` a local lake's folder.
 * An S3 lake has no local disk and no `lake` volume. Two volumes on the same
 * filesystem report the same numbers; that is what the disk really has.
 *
 * A folder not created yet (a local lake before its first export) is measured
 * at its nearest existing parent: the filesystem it will be created on. A
 * volume whose statfs fails otherwise (permissions, an I/O error) is logged
 * and its series removed, so no stale number stands in for a disk that cannot
 * be read; the scrape goes on with the others.
 */
import { statfs as fsStatfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export type DiskVolumeName = 'data' | 'lake';

/** A folder whose filesystem is watched, under a bounded name. */
export interface DiskVolume {
  volume: DiskVolumeName;
  path: string;
}

/** What the gauges need of statfs(2) (Node's `fs.promises.statfs`). */
export interface FilesystemStats {
  /** Block size, bytes. */
  bsize: number;
  /** Blocks in the filesystem. */
  blocks: number;
  /** Free blocks available to unprivileged users. */
  bavail: number;
}

export interface DiskGaugeOptions {
  volumes: readonly DiskVolume[];
  metrics: Metrics;
  logger: Logger;
  /** Replaced in tests; defaults to `fs.promises.statfs`. */
  statfs?: (path: string) => Promise<FilesystemStats>;
}

export class DiskGauges {
  private readonly statfs: (path: string) => Promise<FilesystemStats>;

  constructor(private readonly o: DiskGaugeOptions) {
    this.statfs = o.statfs ?? fsStatfs;
  }

  /** Called by each scrape; never rejects. */
  async sample(): Promise<void> {
    const { metrics } = this.o;
    await Promise.all(
      this.o.volumes.map(async ({ volume, path }) => {
        try {
          const stats = await this.statfsOfNearest(path);
          metrics.diskFreeBytes.set({ volume }, stats.bavail * stats.bsize);
          metrics.diskSizeBytes.set({ volume }, stats.blocks * stats.bsize);
        } catch (err) {
          metrics.diskFreeBytes.remove({ volume });
          metrics.diskSizeBytes.remove({ volume });
          this.o.logger.warn({ err, volume, path }, 'could not read free disk space for /metrics');
        }
      }),
    );
  }

  /** statfs of `path`, or of its nearest existing parent while it does not exist. */
  private async statfsOfNearest(path: string): Promise<FilesystemStats> {
    for (let at = path; ;) {
      try {
        return await this.statfs(at);
      } catch (err) {
        const parent = dirname(at);
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === at) throw err;
        at = parent;
      }
    }
  }
}
