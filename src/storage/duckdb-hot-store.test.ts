import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterEach, describe, expect, it } from 'vitest';
import type { NewReading } from '../core/store.js';
import { DuckDbHotStore } from './duckdb-hot-store.js';
import { describeHotStoreConformance, type HotStoreHarness } from './hot-store.conformance.js';

/** A file database in a fresh temp folder; `reopen` opens the same file again. */
async function fileHarness(): Promise<HotStoreHarness & { file: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'canopy-hot-store-'));
  const file = path.join(dir, 'hot.duckdb');
  const made: DuckDbHotStore[] = [];
  const make = (): DuckDbHotStore => {
    const store = new DuckDbHotStore({ path: file });
    made.push(store);
    return store;
  };
  return {
    file,
    store: make(),
    reopen: () => Promise.resolve(make()),
    cleanup: async () => {
      for (const store of made) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describeHotStoreConformance('duckdb file', fileHarness);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('./fixtures/hot-store-child.fixture.ts', import.meta.url));

/** Starts the fixture child; `lines` fills with its stdout lines as they come. */
function startChild(
  mode: 'append' | 'hold',
  file: string,
): { child: ChildProcess; lines: string[]; exited: Promise<void> } {
  // cwd = the project root, so `--import tsx` resolves from its node_modules.
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, file], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (text: string) => {
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGKILL') lines.push(`exited ${code} ${signal}: ${stderr}`);
  });
  return { child, lines, exited };
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function reading(value: number, eventTime = Date.UTC(2026, 10, 22)): NewReading {
  return {
    sensorId: 's',
    sensorType: null,
    location: null,
    eventTime,
    value,
    unit: null,
    anomalyScore: null,
    ingestTime: eventTime,
    source: 'test',
    batchId: 'b',
    isAnomaly: false,
    anomalyReasons: [],
    imputed: false,
  };
}

describe('DuckDbHotStore (DuckDB specifics)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function harness(): Promise<HotStoreHarness & { file: string }> {
    const h = await fileHarness();
    cleanups.push(h.cleanup);
    return h;
  }

  it('keeps every acknowledged reading after kill -9 mid-load', async () => {
    const { file, reopen } = await harness();
    const { child, lines, exited } = startChild('append', file);
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    await waitFor(() => lines.length >= 40, '40 acknowledged batches');
    child.kill('SIGKILL');
    await exited;

    const acked = lines.map((l) => {
      expect(l).toMatch(/^\d+$/);
      return BigInt(l);
    });
    const lastAcked = acked[acked.length - 1] as bigint;
    const store = await (reopen as () => Promise<DuckDbHotStore>)();
    await store.open();
    const seqs = new Set<bigint>();
    for (let cursor: string | null | undefined; ;) {
      const page = await store.queryReadings({ limit: 10_000, ...(cursor ? { cursor } : {}) });
      for (const r of page.items) seqs.add(r.seq);
      cursor = page.nextCursor;
      if (cursor === null) break;
    }
    for (let seq = 1n; seq <= lastAcked; seq++) {
      if (!seqs.has(seq)) expect.fail(`acknowledged seq ${seq} is missing after kill -9`);
    }
    // A batch in flight at the kill is either wholly there or wholly absent.
    expect(seqs.size % 100).toBe(0);
    expect(await store.countDeadLetters()).toBe(seqs.size / 100);
    // And the counter carries on above everything in the file.
    const next = await store.append([reading(1)], []);
    expect(next.firstSeq).toBe(BigInt(seqs.size) + 1n);
  });

  it('gives back the seqs of a failed append: the next call continues without a gap', async () => {
    const { store } = await harness();
    await store.open();
    const ok = await store.append([reading(1)], []);
    await expect(
      store.append([reading(2), { ...reading(3), sensorId: null as unknown as string }], []),
    ).rejects.toMatchObject({ code: 'CANOPY_STORE_COMMIT_FAILED' });
    const next = await store.append([reading(4)], []);
    expect(next.firstSeq).toBe((ok.lastSeq as bigint) + 1n);
  });

  it('refuses a file locked by another process, naming the file', async () => {
    const { file, store } = await harness();
    const { child, lines, exited } = startChild('hold', file);
    cleanups.push(async () => {
      child.kill('SIGKILL');
      await exited;
    });
    await waitFor(() => lines.includes('ready'), 'the child to hold the file');
    const err: unknown = await store.open().catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'CanopyError', code: 'CANOPY_STORE_OPEN_FAILED' });
    expect((err as Error).message).toContain(file);
    expect((err as Error).message).toMatch(/another Canopy may be running/);
    child.kill('SIGKILL');
    await exited;
    await store.open(); // a failed open may be retried once the file is free
    expect(await store.countReadings()).toBe(0);
  });

  it('refuses to open one file twice in the same process', async () => {
    const { file, store, reopen } = await harness();
    await store.open();
    const second = await (reopen as () => Promise<DuckDbHotStore>)();
    await expect(second.open()).rejects.toMatchObject({ code: 'CANOPY_STORE_OPEN_FAILED' });
    await expect(second.open()).rejects.toThrow(file);
    await store.close();
    await second.open();
    expect(await second.countReadings()).toBe(0);
  });

  it('creates the documented schema', async () => {
    const { file, store } = await harness();
    await store.open();
    await store.close();
    const instance = await DuckDBInstance.create(file);
    const conn = await instance.connect();
    try {
      const columns = (
        await conn.runAndReadAll(
          `SELECT table_name, column_name, data_type FROM information_schema.columns
           WHERE table_name IN ('readings', 'dead_letters', 'sensors', 'canopy_meta')
           ORDER BY table_name, ordinal_position`,
        )
      ).getRows();
      const byTable: Record<string, string[]> = {};
      for (const [table, column, type] of columns)
        (byTable[String(table)] ??= []).push(`${String(column)} ${String(type)}`);
      expect(byTable.readings).toEqual([
        'sensor_id VARCHAR',
        'sensor_type VARCHAR',
        'location VARCHAR',
        'event_time TIMESTAMP',
        'value DOUBLE',
        'unit VARCHAR',
        'anomaly_score DOUBLE',
        'ingest_time TIMESTAMP',
        'source VARCHAR',
        'batch_id VARCHAR',
        'seq BIGINT',
        'is_anomaly BOOLEAN',
        'anomaly_reasons VARCHAR[]',
        'imputed BOOLEAN',
      ]);
      expect(byTable.dead_letters).toEqual([
        'id BIGINT',
        'received_at TIMESTAMP',
        'source VARCHAR',
        'origin VARCHAR',
        'reason VARCHAR',
        'message VARCHAR',
        'raw VARCHAR',
      ]);
      expect(byTable.canopy_meta).toEqual(['key VARCHAR', 'value VARCHAR']);
      expect(byTable.sensors?.map((c) => c.split(' ')[0])).toEqual([
        'sensor_id',
        'sensor_type',
        'unit',
        'location',
        'origin',
        'interval_ms',
        'first_seen',
      ]);
      const version = (
        await conn.runAndReadAll(`SELECT value FROM canopy_meta WHERE key = 'schema_version'`)
      ).getRows();
      expect(version).toEqual([['1']]);
    } finally {
      conn.closeSync();
      instance.closeSync();
    }
  });

  it('refuses a file written by a newer schema version', async () => {
    const { file, store, reopen } = await harness();
    await store.open();
    await store.close();
    const instance = await DuckDBInstance.create(file);
    const conn = await instance.connect();
    await conn.run(`UPDATE canopy_meta SET value = '99' WHERE key = 'schema_version'`);
    conn.closeSync();
    instance.closeSync();
    const next = await (reopen as () => Promise<DuckDbHotStore>)();
    await expect(next.open()).rejects.toMatchObject({ code: 'CANOPY_STORE_OPEN_FAILED' });
    await expect(next.open()).rejects.toThrow(/newer Canopy/);
  });

  it('stores event times at millisecond precision in UTC', async () => {
    const { file, store } = await harness();
    await store.open();
    await store.append(
      [
        {
          ...reading(1, Date.UTC(2026, 10, 22, 10, 0, 0, 123)),
          ingestTime: Date.UTC(2026, 10, 22, 10, 0, 1, 7),
        },
      ],
      [],
    );
    await store.close();
    const instance = await DuckDBInstance.create(file);
    const conn = await instance.connect();
    const rows = (
      await conn.runAndReadAll(
        `SELECT strftime(event_time, '%Y-%m-%dT%H:%M:%S.%g'), epoch_ms(ingest_time) FROM readings`,
      )
    ).getRows();
    conn.closeSync();
    instance.closeSync();
    expect(rows).toEqual([
      ['2026-11-22T10:00:00.123', BigInt(Date.UTC(2026, 10, 22, 10, 0, 1, 7))],
    ]);
  });
});
