/**
 * A whole Canopy on the PostgreSQL hot store: readings in over POST /api/data,
 * back out over GET /api/data, to bronze through housekeeping, and out of the
 * hot window by dropping a day partition.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import type { WireReading } from '../src/core/reading.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { serviceForTests } from './helpers/services.js';

const PG_TEST_URL = 'postgres://postgres@127.0.0.1:5432/test';
const postgres = await serviceForTests('PostgreSQL', 5432);

async function sql<T extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
  const client = new pg.Client({ connectionString: PG_TEST_URL });
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Bronze as written: (sensor, event time, value, seq) of every row, in seq order. */
async function bronzeRows(lakeRoot: string): Promise<string[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const glob = path.join(lakeRoot, 'bronze/readings/**/*.parquet');
    const rows = await conn.runAndReadAll(
      `SELECT sensor_id, epoch_ms(event_time), value, seq, date, hour
         FROM read_parquet('${glob}', hive_partitioning = true, hive_types_autocast = false) ORDER BY seq`,
    );
    return rows.getRows().map((r) => r.map(String).join('|'));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe.runIf(postgres)('Canopy with the PostgreSQL hot store', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('stores readings from POST /api/data, serves them, exports them to bronze and purges by day partition', async () => {
    const schema = `canopy_hot_e2e_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
    cleanups.push(async () => {
      await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    });
    const now = Date.UTC(2026, 10, 22, 1, 30);
    const clock = new ManualClock(now);
    const app: TestApp = await startTestApp(
      {
        store: { kind: 'postgres', retentionHours: 1, postgres: { url: PG_TEST_URL, schema } },
        workflows: { enabled: false },
      },
      undefined,
      { clock },
    );
    cleanups.push(() => app.dispose());

    // 40 readings from 23:00 the day before to 01:10, and one bad record.
    const sent = Array.from({ length: 40 }, (_, i) => ({
      sensor_id: `pg-${i % 3}`,
      timestamp: new Date(now - 150 * 60_000 + i * 3 * 60_000).toISOString(),
      value: i % 9 === 0 ? null : Math.round(i * 1.7 * 100) / 100,
    }));
    const post = await app.api.inject({
      method: 'POST',
      url: '/api/data',
      payload: [...sent, { sensor_id: 'pg-x', value: 1 }],
    });
    expect(post.statusCode).toBe(400);
    expect(post.json()).toMatchObject({ accepted: 40, error: { code: 'CANOPY_INGEST_REJECTED' } });

    const page = async (query: string) => {
      const res = await app.api.inject({ method: 'GET', url: `/api/data?${query}` });
      expect(res.statusCode).toBe(200);
      return res.json<{ data: WireReading[]; next_cursor: string | null }>();
    };
    const stored = (await page('limit=1000')).data;
    const key = (r: { sensor_id: string; timestamp: string; value: number | null }) =>
      `${r.sensor_id}|${r.timestamp}|${r.value}`;
    // Newest first, every reading sent, nothing else.
    expect(stored.map(key)).toEqual(
      [...sent].sort((a, b) => b.timestamp.localeCompare(a.timestamp)).map(key),
    );
    // Walking pages of one sensor through the cursor gives the same rows.
    const walked: WireReading[] = [];
    for (let cursor: string | null = null; ;) {
      const p = await page(`sensor_id=pg-1&limit=4${cursor ? `&cursor=${cursor}` : ''}`);
      walked.push(...p.data);
      cursor = p.next_cursor;
      if (!cursor) break;
    }
    expect(walked).toEqual(stored.filter((r) => r.sensor_id === 'pg-1'));

    // Bronze gets exactly the stored rows, in their event-time partitions.
    await app.housekeeping.step('export');
    expect(await bronzeRows(path.join(app.dataDir, 'lake'))).toEqual(
      [...stored]
        .sort((a, b) => Number(BigInt(a.seq) - BigInt(b.seq)))
        .map((r) =>
          [
            r.sensor_id,
            Date.parse(r.timestamp),
            String(r.value),
            r.seq,
            r.timestamp.slice(0, 10),
            r.timestamp.slice(11, 13),
          ].join('|'),
        ),
    );
    expect(await app.store.getExportWatermark()).toBe(40n);

    // Retention 1 h: 23:00–00:30 goes; the 21 November partition goes whole.
    await app.housekeeping.step('purge');
    const kept = stored.filter((r) => Date.parse(r.timestamp) >= now - 3_600_000);
    expect((await page('limit=1000')).data).toEqual(kept);
    const partitions = await sql<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1::regclass ORDER BY 1`,
      [`"${schema}"."readings"`],
    );
    expect(partitions.map((p) => p.name)).toEqual(['readings_p20261122', 'readings_p20261123']);
  });
});
