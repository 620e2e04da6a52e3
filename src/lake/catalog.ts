/**
 * The lake catalogue, derived from what the lake holds: tables, partitions,
 * files, bytes, last modified, row counts and columns (read from Parquet
 * footers, through the local Parquet cache for an S3 lake, which the
 * catalogue therefore fills like a query over every layer would), and a
 * dirty flag per partition: set on
 * a bronze partition whose silver must be rebuilt (late rows arrived), and on
 * a silver partition whose gold must be rebuilt. Nothing is stored beside the
 * lake, so the catalogue can never disagree with it.
 */
import type { ObjectStore } from '../core/object-store.js';
import { openLakeMirror, type MirroredObject } from './cache.js';
import { withLakeEngine } from './engine.js';
import { parquetScan } from './views.js';
import { dirtyGoldDates } from './gold-job.js';
import { dirtySilverDates } from './silver-job.js';

export interface CatalogPartition {
  /** e.g. `date=2026-11-22/hour=10`, or `` for an unpartitioned table. */
  partition: string;
  files: number;
  bytes: number;
  /** Epoch ms of the newest file. */
  lastModified: number;
  /** Null when unknown (a partition holding a non-Parquet file). */
  rows: number | null;
  /** Its downstream layer is out of date and the next job run rebuilds it. */
  dirty: boolean;
}

export interface CatalogTable {
  /** `bronze/readings`, `gold/sensor_5min`, `deadletter`, … */
  table: string;
  layer: string;
  files: number;
  bytes: number;
  rows: number | null;
  lastModified: number;
  /** Column names and DuckDB types, from the newest file (null when it is not Parquet). */
  columns: { name: string; type: string }[] | null;
  partitions: CatalogPartition[];
}

function splitKey(key: string): { table: string; partition: string } {
  const parts = key.split('/');
  // Layers that are one table each: `deadletter/date=…`, `imputations/date=…`.
  const layerDepth = parts[0] === 'deadletter' || parts[0] === 'imputations' ? 1 : 2;
  return {
    table: parts.slice(0, layerDepth).join('/'),
    partition: parts.slice(layerDepth, -1).join('/'),
  };
}

const DATE_IN_PARTITION = /(?:^|\/)date=(\d{4}-\d{2}-\d{2})/;

/** `cacheDir`: the local Parquet cache of an S3 lake (required for one; unused for a local lake). */
export async function buildCatalog(
  lake: ObjectStore,
  options: { cacheDir?: string } = {},
): Promise<CatalogTable[]> {
  const mirror = await openLakeMirror(lake, { cacheDir: options.cacheDir });
  return mirror.read([''], async (objects) => {
    const silverDirty = new Set(await dirtySilverDates(lake));
    const goldDirty = new Set(await dirtyGoldDates(lake));
    return describeTables(objects, await parquetRows(objects), silverDirty, goldDirty);
  });
}

/** The catalogue of the data objects (the mirror's, so Parquet footers are local files). */
async function describeTables(
  objects: readonly MirroredObject[],
  rowsByKey: ReadonlyMap<string, number>,
  silverDirty: ReadonlySet<string>,
  goldDirty: ReadonlySet<string>,
): Promise<CatalogTable[]> {
  const tables = new Map<string, Map<string, MirroredObject[]>>();
  for (const o of objects) {
    const { table, partition } = splitKey(o.key);
    const partitions = tables.get(table) ?? new Map<string, MirroredObject[]>();
    partitions.set(partition, [...(partitions.get(partition) ?? []), o]);
    tables.set(table, partitions);
  }

  const catalog: CatalogTable[] = [];
  for (const [table, partitions] of [...tables].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const entries: CatalogPartition[] = [...partitions]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([partition, files]) => {
        const date = DATE_IN_PARTITION.exec(partition)?.[1];
        const rows = files.every((f) => rowsByKey.has(f.key))
          ? files.reduce((n, f) => n + rowsByKey.get(f.key)!, 0)
          : null;
        return {
          partition,
          files: files.length,
          bytes: files.reduce((n, f) => n + f.size, 0),
          lastModified: Math.max(...files.map((f) => f.lastModified)),
          rows,
          dirty:
            date !== undefined &&
            ((table === 'bronze/readings' && silverDirty.has(date)) ||
              (table === 'silver/readings' && goldDirty.has(date))),
        };
      });
    const newest = [...partitions.values()]
      .flat()
      .sort((a, b) => b.lastModified - a.lastModified)[0]!;
    catalog.push({
      table,
      layer: table.split('/')[0]!,
      files: entries.reduce((n, p) => n + p.files, 0),
      bytes: entries.reduce((n, p) => n + p.bytes, 0),
      rows: entries.every((p) => p.rows !== null) ? entries.reduce((n, p) => n + p.rows!, 0) : null,
      lastModified: Math.max(...entries.map((p) => p.lastModified)),
      columns: newest.key.endsWith('.parquet') ? await parquetColumns(newest.path, table) : null,
      partitions: entries,
    });
  }
  return catalog;
}

function sqlList(paths: readonly string[]): string {
  return `[${paths.map((p) => `'${p.replaceAll("'", "''")}'`).join(', ')}]`;
}

/** Row counts from the Parquet footers (no data is read). */
async function parquetRows(objects: readonly MirroredObject[]): Promise<Map<string, number>> {
  const parquet = objects.filter((o) => o.key.endsWith('.parquet'));
  const byPath = new Map(parquet.map((o) => [o.path, o.key]));
  const rows = new Map<string, number>();
  if (parquet.length === 0) return rows;
  await withLakeEngine(async (conn) => {
    const result = await conn.runAndReadAll(
      `SELECT file_name, num_rows FROM parquet_file_metadata(${sqlList([...byPath.keys()])})`,
    );
    for (const [file, count] of result.getRows()) {
      const key = byPath.get(String(file));
      if (key !== undefined) rows.set(key, Number(count));
    }
  });
  return rows;
}

/** The table's columns as SQL sees them: the file's, plus its folder's typed partition columns. */
async function parquetColumns(
  file: string,
  folder: string,
): Promise<{ name: string; type: string }[]> {
  return withLakeEngine(async (conn) => {
    const result = await conn.runAndReadAll(`DESCRIBE ${parquetScan(sqlList([file]), folder)}`);
    return result.getRows().map((r) => ({ name: String(r[0]), type: String(r[1]) }));
  });
}
