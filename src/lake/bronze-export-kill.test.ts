/**
 * Kill -9 during a bronze export, then restart: no row lost or duplicated.
 * The child exports in batches of 500 rows (3–4 partition files each) and is
 * killed right after its n-th upload, so the kill lands between uploads of a
 * batch and before its watermark step; after the kills a new export
 * finishes the job.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import type { NewReading } from '../core/store.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { runBronzeExport } from './bronze-export.js';
import { newReading } from '../../test/helpers/readings.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-bronze-kill-'));
const dbPath = path.join(dir, 'hot.duckdb');
const lakeRoot = path.join(dir, 'lake');
const child = path.join(import.meta.dirname, 'fixtures', 'bronze-export-child.fixture.ts');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.UTC(2026, 10, 21, 0, 0);
const TOTAL = 12_000;

/** Runs the child and SIGKILLs it once it has uploaded `afterUploads` files. */
function exportAndKill(afterUploads: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, dbPath, lakeRoot, dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let uploads = 0;
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if (line.startsWith('uploaded ') && ++uploads === afterUploads) proc.kill('SIGKILL');
    });
    proc.once('error', reject);
    proc.once('exit', () => resolve());
  });
}

/** Oracle: bronze rows counted in plain SQL over the lake folder. */
async function bronzeCounts(): Promise<{
  rows: number;
  distinctSeqs: number;
  minSeq: number;
  maxSeq: number;
}> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(lakeRoot, 'bronze/readings/**/*.parquet');
    const row = (
      await conn.runAndReadAll(
        `SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM read_parquet('${glob}')`,
      )
    ).getRows()[0]!;
    return {
      rows: Number(row[0]),
      distinctSeqs: Number(row[1]),
      minSeq: Number(row[2]),
      maxSeq: Number(row[3]),
    };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe('bronze export under kill -9', () => {
  it('loses and duplicates no row across repeated kills and a final restart', async () => {
    const store = new DuckDbHotStore({ path: dbPath });
    await store.open();
    const rows: NewReading[] = Array.from({ length: TOTAL }, (_, i) =>
      newReading({ sensorId: `s-${i % 20}`, eventTime: T0 + i * 20_000, value: i, ingestTime: T0 }),
    );
    await store.append(rows, []);
    await store.close();

    for (const afterUploads of [2, 6, 9]) await exportAndKill(afterUploads);

    const restarted = new DuckDbHotStore({ path: dbPath });
    await restarted.open();
    try {
      expect(await restarted.getExportWatermark()).toBeLessThan(BigInt(TOTAL)); // the kills did interrupt it
      await runBronzeExport({
        store: restarted,
        lake: new LocalObjectStore({ root: lakeRoot }),
        workDir: dir,
        logger: silentLogger(),
        maxRowsPerBatch: 500,
      });
      expect(await restarted.getExportWatermark()).toBe(BigInt(TOTAL));
    } finally {
      await restarted.close();
    }
    expect(await bronzeCounts()).toEqual({
      rows: TOTAL,
      distinctSeqs: TOTAL,
      minSeq: 1,
      maxSeq: TOTAL,
    });
  }, 120_000);
});
