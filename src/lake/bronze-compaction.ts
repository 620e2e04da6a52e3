/**
 * Bronze compaction: the export adds one small file per touched hour each
 * minute, so a closed hour partition is rewritten as one file. Fewer files
 * mean cheaper listings, silver reads and catalogue scans.
 *
 * Contracts:
 * - Only closed hours are compacted: those that ended `closedAfterMs` ago.
 *   Late rows still land in them as new files; the next pass merges those.
 * - The output holds every row of its inputs exactly once: rows are keyed by
 *   `seq`, which the hot store gives each reading once, and duplicates by seq
 *   are dropped. So a pass that dies after writing its output but before
 *   deleting its inputs leaves duplicates that the next pass of that
 *   partition removes, and the output it writes then has the same name and
 *   bytes.
 * - The output is named `compact-<first seq>-<last seq>.parquet`, never
 *   `part-…`, so the export's clean-up of an interrupted batch (which
 *   deletes `part-<batch>-*` files it did not rewrite) can never touch it;
 *   and a pass deletes only the files it listed and merged, so an export
 *   adding a file meanwhile loses nothing.
 * - Readers may see a partition's rows twice during the moment between the
 *   upload and the deletes; silver's dedup makes that invisible downstream.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';
import { BRONZE_READINGS_PREFIX } from './bronze-export.js';
import {
  DEFAULT_LAKE_ENGINE,
  localCopy,
  withLakeEngine,
  type LakeEngineSettings,
} from './engine.js';
import { sqlString } from './views.js';

const PARTITION = /^bronze\/readings\/date=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/[^/]+\.parquet$/;

export interface BronzeCompactionOptions {
  lake: ObjectStore;
  workDir: string;
  clock: Clock;
  logger: Logger;
  /** An hour partition is compacted once it ended this long ago. */
  closedAfterMs: number;
  /** Bounds the job's DuckDB; default DEFAULT_LAKE_ENGINE. */
  engine?: LakeEngineSettings;
}

export interface BronzeCompactionReport {
  /** `date=…/hour=…` partitions rewritten, sorted. */
  partitions: string[];
  /** Files merged away (inputs deleted). */
  filesMerged: number;
  /** Partitions left for a later pass because other lake jobs held the engine memory. */
  deferred: number;
}

function seqTag(seq: bigint): string {
  return seq.toString().padStart(20, '0');
}

export async function runBronzeCompaction(
  options: BronzeCompactionOptions,
): Promise<BronzeCompactionReport> {
  const { lake, logger } = options;
  const byPartition = new Map<string, ObjectInfo[]>();
  const cutoff = options.clock.now() - options.closedAfterMs;
  for (const object of await lake.list(BRONZE_READINGS_PREFIX)) {
    const match = PARTITION.exec(object.key);
    if (!match) continue;
    const [, date, hour] = match;
    if (Date.parse(`${date}T${hour}:00:00Z`) + 3_600_000 > cutoff) continue;
    const partition = `date=${date}/hour=${hour}`;
    byPartition.set(partition, [...(byPartition.get(partition) ?? []), object]);
  }
  const report: BronzeCompactionReport = { partitions: [], filesMerged: 0, deferred: 0 };
  const todo = [...byPartition].filter(([, files]) => files.length > 1).sort();
  if (todo.length === 0) return report;
  // Compaction runs every minute between exports, so it does not wait behind a silver job for
  // the memory: the next pass merges what this one leaves.
  const engine = options.engine ?? DEFAULT_LAKE_ENGINE;
  if (!engine.budget.fitsNow(engine.memoryLimitMB)) {
    logger.info({ partitions: todo.length }, 'bronze compaction deferred: lake engines busy');
    return { ...report, deferred: todo.length };
  }

  mkdirSync(options.workDir, { recursive: true });
  const work = mkdtempSync(path.join(options.workDir, 'bronze-compact-'));
  try {
    await withLakeEngine(async (conn) => {
      // One thread: the same rows always give the same bytes.
      await conn.run('SET threads = 1');
      for (const [partition, inputs] of todo) {
        const files: string[] = [];
        for (const o of inputs) files.push(await localCopy(lake, o.key, work));
        const merged = `SELECT DISTINCT ON (seq) * FROM read_parquet([${files.map(sqlString).join(', ')}], hive_partitioning = false, union_by_name = true) ORDER BY seq`;
        const range = (
          await conn.runAndReadAll(`SELECT min(seq), max(seq) FROM (${merged})`)
        ).getRows()[0]!;
        const key = `${BRONZE_READINGS_PREFIX}${partition}/compact-${seqTag(BigInt(range[0] as bigint))}-${seqTag(BigInt(range[1] as bigint))}.parquet`;
        const out = path.join(work, `${partition.replace('/', '_')}.parquet`);
        await conn.run(`COPY (${merged}) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION zstd)`);
        await lake.putFile(key, out);
        const merges = inputs.map((o) => o.key).filter((k) => k !== key);
        await lake.delete(merges);
        report.partitions.push(partition);
        report.filesMerged += merges.length;
        logger.debug({ partition, files: merges.length, key }, 'bronze partition compacted');
      }
    }, engine);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (report.partitions.length > 0)
    logger.info(
      { partitions: report.partitions.length, files: report.filesMerged },
      'bronze compacted',
    );
  return report;
}
