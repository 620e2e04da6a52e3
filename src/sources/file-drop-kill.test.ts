/**
 * Kill -9 while landing files are ingested, then restart: every reading of
 * every file is stored exactly once. The child prints a line after each
 * committed chunk; the parent kills it after the n-th line, so kills land
 * between chunks, inside a commit and around the move to processed/.
 * Counted independently of the pipeline: plain SQL over the DuckDB file.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, describe, expect, it } from 'vitest';
import { FILE_CHUNK_RECORDS } from '../ingest/index.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-landing-kill-'));
const dbPath = path.join(dir, 'hot.duckdb');
const landingRoot = path.join(dir, 'landing');
const child = path.join(import.meta.dirname, 'fixtures', 'file-drop-child.fixture.ts');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const T0 = Date.UTC(2026, 10, 20, 0, 0);
const FILES = 3;
const PER_FILE = FILE_CHUNK_RECORDS * 2 + 700; // three chunks a file

/** Runs the child; SIGKILLs it after `afterChunks` committed chunks (never, if undefined). */
function runChild(afterChunks?: number): Promise<{ killed: boolean; done: boolean }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, dbPath, landingRoot], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let chunks = 0;
    let done = false;
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if (line === 'done') done = true;
      if (line.startsWith('committed ') && ++chunks === afterChunks) proc.kill('SIGKILL');
    });
    proc.once('error', reject);
    proc.once('exit', (_code, signal) => resolve({ killed: signal === 'SIGKILL', done }));
  });
}

async function storedCounts(): Promise<{ rows: number; distinct: number; deadLetters: number }> {
  const db = await DuckDBInstance.create(dbPath);
  const conn = await db.connect();
  try {
    const row = (
      await conn.runAndReadAll(
        `SELECT (SELECT count(*) FROM readings),
                (SELECT count(*) FROM (SELECT DISTINCT sensor_id, event_time FROM readings)),
                (SELECT count(*) FROM dead_letters)`,
      )
    ).getRows()[0]!;
    return { rows: Number(row[0]), distinct: Number(row[1]), deadLetters: Number(row[2]) };
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe('landing files under kill -9', () => {
  it('stores every reading exactly once across repeated kills and a final restart', async () => {
    mkdirSync(landingRoot, { recursive: true });
    for (let f = 0; f < FILES; f++) {
      const lines = Array.from(
        { length: PER_FILE },
        (_, i) =>
          `${JSON.stringify({ sensor_id: `f${f}-s${i % 7}`, timestamp: T0 + i * 1000, value: i })}\n`,
      );
      writeFileSync(path.join(landingRoot, `batch-${f}.ndjson`), lines.join(''));
    }

    const kills = [];
    for (const afterChunks of [1, 3, 4]) kills.push(await runChild(afterChunks));
    expect(kills.every((k) => k.killed && !k.done)).toBe(true);
    const final = await runChild();
    expect(final).toEqual({ killed: false, done: true });

    expect(await storedCounts()).toEqual({
      rows: FILES * PER_FILE,
      distinct: FILES * PER_FILE,
      deadLetters: 0,
    });
    expect(readdirSync(landingRoot).sort()).toEqual(['processed']);
    expect(readdirSync(path.join(landingRoot, 'processed')).sort()).toEqual([
      'batch-0.ndjson',
      'batch-1.ndjson',
      'batch-2.ndjson',
    ]);
  }, 180_000);
});
