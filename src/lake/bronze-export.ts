/**
 * Bronze export: moves hot-store readings past the export watermark into
 * `bronze/readings/date=YYYY-MM-DD/hour=HH/` Parquet (ZSTD), partitioned by
 * **event** time, then advances the watermark.
 *
 * Crash safety without a distributed transaction: every file of a batch is
 * named after the batch's first seq (`part-<seq>-<n>.parquet`), and a batch
 * always starts right after the watermark. If the process dies after some
 * uploads but before the watermark moves, the next run starts from the same
 * seq, so it writes the same names — over a superset of the same rows,
 * because rows above the watermark are never purged — and deletes any file
 * of that batch it did not rewrite. Nothing is lost and nothing is counted
 * twice.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { Logger } from '../observability/logger.js';

export const BRONZE_READINGS_PREFIX = 'bronze/readings/';

export interface BronzeExportOptions {
  store: HotStore;
  lake: ObjectStore;
  /** Folder for the Parquet files before upload (a temp folder is made inside). */
  workDir: string;
  logger: Logger;
  /** Rows per batch; each batch is one COPY and one watermark step. */
  maxRowsPerBatch?: number;
}

export interface BronzeExportReport {
  batches: number;
  rows: number;
  /** Keys written, in order. */
  files: string[];
  /** `date=…/hour=…` partitions that received rows (sorted, unique). */
  partitions: string[];
  watermark: bigint;
}

/** Seqs are zero-padded so that keys sort in seq order. */
function batchTag(firstSeq: bigint): string {
  return firstSeq.toString().padStart(20, '0');
}

export async function runBronzeExport(options: BronzeExportOptions): Promise<BronzeExportReport> {
  const { store, lake, logger } = options;
  const maxRows = options.maxRowsPerBatch ?? 500_000;
  const report: BronzeExportReport = {
    batches: 0,
    rows: 0,
    files: [],
    partitions: [],
    watermark: 0n,
  };
  const touched = new Set<string>();
  mkdirSync(options.workDir, { recursive: true });
  for (;;) {
    const after = await store.getExportWatermark();
    report.watermark = after;
    const dir = mkdtempSync(path.join(options.workDir, 'bronze-export-'));
    try {
      const batch = await store.exportReadings(after, maxRows, dir);
      if (!batch) break;
      const tag = batchTag(after + 1n);
      const written = new Set<string>();
      const perPartition = new Map<string, number>();
      for (const p of batch.partitions) {
        const partition = `date=${p.date}/hour=${p.hour}`;
        const n = perPartition.get(partition) ?? 0;
        perPartition.set(partition, n + 1);
        const key = `${BRONZE_READINGS_PREFIX}${partition}/part-${tag}-${n}.parquet`;
        await lake.putFile(key, p.path);
        written.add(key);
        report.files.push(key);
        touched.add(partition);
      }
      // Files of this batch from an earlier, interrupted attempt that this
      // attempt did not overwrite would duplicate rows: remove them.
      for (const partition of perPartition.keys()) {
        const stale = (await lake.list(`${BRONZE_READINGS_PREFIX}${partition}/part-${tag}-`))
          .map((o) => o.key)
          .filter((key) => !written.has(key));
        if (stale.length > 0) await lake.delete(stale);
      }
      await store.setExportWatermark(batch.lastSeq);
      report.batches++;
      report.rows += batch.rows;
      report.watermark = batch.lastSeq;
      logger.debug(
        { rows: batch.rows, lastSeq: batch.lastSeq.toString(), files: written.size },
        'bronze batch exported',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  report.partitions = [...touched].sort();
  return report;
}
