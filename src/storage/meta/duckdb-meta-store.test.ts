import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlertStore } from '../../core/alerts.js';
import { isCanopyError } from '../../core/errors.js';
import { describeAuthStoreConformance } from './auth-store.conformance.js';
import {
  FIXTURE_T0,
  alertFixture,
  changesOf,
  describeAlertStoreConformance,
  outboxFixture,
} from './alert-store.conformance.js';
import { DuckDbMetaStore } from './duckdb-meta-store.js';
import { openMetaStore } from './index.js';
import {
  describeWorkflowStoreConformance,
  runFixture,
  taskFixture,
} from './workflow-store.conformance.js';

describeAlertStoreConformance('DuckDB file', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'canopy-meta-'));
  const made: AlertStore[] = [];
  return {
    make: (options) => {
      const store = new DuckDbMetaStore({ path: path.join(dir, 'meta.duckdb'), ...options });
      made.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of made) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeWorkflowStoreConformance('DuckDB file', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'canopy-meta-'));
  const made: DuckDbMetaStore[] = [];
  return {
    // One process per file: concurrency is that of one store's callers.
    sharedStorage: false,
    make: (options) => {
      const store = new DuckDbMetaStore({ path: path.join(dir, 'meta.duckdb'), ...options });
      made.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of made) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describeAuthStoreConformance('DuckDB file', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'canopy-meta-'));
  const made: DuckDbMetaStore[] = [];
  return {
    sharedStorage: false,
    make: (options) => {
      const store = new DuckDbMetaStore({ path: path.join(dir, 'meta.duckdb'), ...options });
      made.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of made) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('DuckDbMetaStore', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), 'canopy-meta-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  function track<T extends AlertStore>(store: T): T {
    cleanups.push(() => store.close());
    return store;
  }

  it('works in memory', async () => {
    const store = track(new DuckDbMetaStore({ path: ':memory:' }));
    await store.open();
    const alert = alertFixture();
    await store.apply(changesOf({ alerts: [alert] }));
    expect(await store.activeAlerts()).toEqual([alert]);
  });

  it('statements first used on other data answer for the data of their next use', async () => {
    // The hot-path statements are prepared once and cached: each shape is
    // used here first while the outbox is empty, then while it holds only
    // finished entries, and must still see what was written since.
    const store = track(new DuckDbMetaStore({ path: ':memory:' }));
    await store.open();
    const alert = alertFixture();
    const entry = (n: number) =>
      outboxFixture({ alertId: alert.id, createdAt: FIXTURE_T0 + n, nextAttemptAt: FIXTURE_T0 });
    const [a, b, c] = [entry(0), entry(1), entry(2)];
    expect(await store.dueNotifications(FIXTURE_T0, 10)).toEqual([]);
    expect(await store.nextDueAt()).toBeNull();
    await store.recordDelivery(a.id, { ok: true, at: FIXTURE_T0 });
    await store.apply(changesOf({ alerts: [alert], outbox: [a] }));
    await store.recordDelivery(a.id, { ok: true, at: FIXTURE_T0 + 1 });
    expect(await store.dueNotifications(FIXTURE_T0, 10)).toEqual([]);
    expect(await store.nextDueAt()).toBeNull();

    await store.apply(changesOf({ outbox: [a, b, c] }));
    expect(await store.dueNotifications(FIXTURE_T0, 10)).toEqual([b, c]);
    expect(await store.nextDueAt()).toBe(FIXTURE_T0);
    await store.recordDelivery(b.id, { ok: true, at: FIXTURE_T0 + 2 });
    expect(await store.dueNotifications(FIXTURE_T0, 10)).toEqual([c]);
    expect((await store.alertNotifications(alert.id)).map((e) => e.status)).toEqual([
      'delivered',
      'delivered',
      'pending',
    ]);
  });

  it('keeps workflow runs in memory too', async () => {
    const store = track(new DuckDbMetaStore({ path: ':memory:' }));
    await store.open();
    const run = runFixture();
    expect(await store.createRun(run, [taskFixture(run.id, 'a')])).toBe(true);
    expect(await store.getRun(run.id)).toEqual({
      run,
      tasks: [taskFixture(run.id, 'a')],
      attempts: [],
    });
  });

  it('refuses a second store on the same file in this process', async () => {
    const file = path.join(await tempDir(), 'meta.duckdb');
    const first = track(new DuckDbMetaStore({ path: file }));
    await first.open();
    const second = track(new DuckDbMetaStore({ path: file }));
    const err = await second.open().catch((e: unknown) => e);
    expect(isCanopyError(err, 'CANOPY_META_UNAVAILABLE')).toBe(true);
    expect(String(err)).toMatch(/already open in this process/);

    // Once the first lets go, the file opens again.
    await first.close();
    await second.open();
    expect(await second.activeAlerts()).toEqual([]);
  });

  it('reports a file locked by another process as CANOPY_META_UNAVAILABLE with the cause', async () => {
    const file = path.join(await tempDir(), 'meta.duckdb');
    const holder = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { DuckDBInstance } from '@duckdb/node-api';
         const db = await DuckDBInstance.create(process.argv[1]);
         await (await db.connect()).run('CREATE TABLE held (x INTEGER)');
         process.stdout.write('ready\\n');
         setInterval(() => {}, 1000);`,
        file,
      ],
      { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(async () => {
      holder.kill();
      await new Promise((resolve) => holder.once('exit', resolve));
    });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) resolve();
      });
      holder.once('exit', (code) => reject(new Error(`lock holder exited with ${code}`)));
    });

    const store = track(new DuckDbMetaStore({ path: file }));
    const err = await store.open().catch((e: unknown) => e);
    expect(isCanopyError(err, 'CANOPY_META_UNAVAILABLE')).toBe(true);
    expect(String(err)).toMatch(/locked by another process/);
    expect((err as Error).cause).toBeInstanceOf(Error);
  });

  it('openMetaStore defaults to <dataDir>/meta.duckdb', async () => {
    const dir = await tempDir();
    const store = track(openMetaStore({ kind: 'duckdb', postgres: pgDefaults }, dir, silent));
    await store.open();
    const alert = alertFixture();
    await store.apply(changesOf({ alerts: [alert] }));
    await store.close();

    const again = track(new DuckDbMetaStore({ path: path.join(dir, 'meta.duckdb') }));
    await again.open();
    expect(await again.getAlert(alert.id)).toEqual(alert);
  });

  it('openMetaStore honours an explicit path', async () => {
    const file = path.join(await tempDir(), 'nested', 'alerts.duckdb');
    const store = track(
      openMetaStore({ kind: 'duckdb', path: file, postgres: pgDefaults }, '/nonexistent', silent),
    );
    await store.open();
    await store.close();
    const again = track(new DuckDbMetaStore({ path: file }));
    await again.open();
    expect(await again.activeAlerts()).toEqual([]);
  });
});

const silent = pino({ level: 'silent' });
const pgDefaults = {
  host: '127.0.0.1',
  port: 5432,
  user: 'postgres',
  database: 'postgres',
  schema: 'canopy_meta',
};
