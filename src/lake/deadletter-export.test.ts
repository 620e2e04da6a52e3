import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeadLetter } from '../core/ingest.js';
import { silentLogger } from '../observability/logger.js';
import { DuckDbHotStore, LocalObjectStore } from '../storage/index.js';
import { DEAD_LETTER_PREFIX, runDeadLetterExport } from './deadletter-export.js';
import { withLakeEngine } from './engine.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-deadletters-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const letter = (receivedAt: number, raw: string): DeadLetter => ({
  receivedAt,
  source: 'mqtt',
  origin: 'iot/data',
  reason: 'INVALID_JSON',
  message: 'not JSON',
  raw,
});

describe('dead-letter export', () => {
  it('writes each dead letter once, as JSON lines partitioned by the day it was received', async () => {
    const store = new DuckDbHotStore({ path: path.join(dir, 'hot.duckdb') });
    await store.open();
    const lake = new LocalObjectStore({ root: path.join(dir, 'lake') });
    const day1 = Date.UTC(2026, 10, 20, 23, 59);
    await store.append(
      [],
      [letter(day1, '{"a": '), letter(day1 + 120_000, 'line\nbreak "quoted"')],
    );
    const first = await runDeadLetterExport({ store, lake, logger: silentLogger() });
    expect(first).toMatchObject({ rows: 2, watermark: 2n });
    expect(first.files.map((k) => k.split('/')[1])).toEqual(['date=2026-11-20', 'date=2026-11-21']);
    expect(await runDeadLetterExport({ store, lake, logger: silentLogger() })).toMatchObject({
      rows: 0,
      files: [],
    });

    await store.append([], [letter(day1 + 300_000, 'third')]);
    await runDeadLetterExport({ store, lake, logger: silentLogger(), maxRowsPerBatch: 1 });
    await store.close();

    // Oracle: the files read back with DuckDB's JSON reader, as the SQL view reads them.
    const glob = path.join(dir, 'lake', DEAD_LETTER_PREFIX, '**', '*.jsonl');
    const rows = await withLakeEngine(async (conn) =>
      (
        await conn.runAndReadAll(
          `SELECT id, raw, date FROM read_json('${glob}', format = 'newline_delimited', hive_partitioning = true) ORDER BY id`,
        )
      )
        .getRows()
        .map((r) => r.map(String)),
    );
    expect(rows).toEqual([
      ['1', '{"a": ', '2026-11-20'],
      ['2', 'line\nbreak "quoted"', '2026-11-21'],
      ['3', 'third', '2026-11-21'],
    ]);
  });
});
