/**
 * Test harnesses for the warehouse adapters: a DuckDB file in a temp folder,
 * or a PostgreSQL schema unique to the test (tests run in parallel workers)
 * that is dropped afterwards. `dump` reads a table back with the engine's own
 * SQL, independently of the adapter, normalised to `WarehouseRow` cells
 * (timestamps as epoch ms, dates as text, integers as numbers) and sorted, so
 * that dumps of both engines compare with `toEqual`.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import pg from 'pg';
import {
  WAREHOUSE_TABLES,
  type Warehouse,
  type WarehouseColumn,
  type WarehouseRow,
} from '../../core/warehouse.js';
import { DuckDbWarehouse } from './duckdb-warehouse.js';
import { PostgresWarehouse } from './postgres-warehouse.js';
import { quoteIdent } from './sql.js';

export interface WarehouseHarness {
  readonly name: 'duckdb' | 'postgres';
  /** A new, unopened warehouse on the harness's file or schema (may be called again: same target). */
  make(options?: { now?: () => number }): Warehouse;
  /** Every row of a table, normalised and sorted. Call with no warehouse of the harness open (DuckDB locks its file). */
  dump(table: string): Promise<WarehouseRow[]>;
  /** Runs one statement on the target outside the adapter (to break or inspect it). */
  exec(sql: string): Promise<void>;
  /** Qualified name of a table in the target. */
  table(name: string): string;
  cleanup(): Promise<void>;
}

export const PG_TEST_URL = 'postgres://postgres@127.0.0.1:5432/test';

function spec(table: string): readonly WarehouseColumn[] {
  const found = WAREHOUSE_TABLES.find((t) => t.name === table);
  if (!found) throw new Error(`no warehouse table ${table}`);
  return found.columns;
}

function sortRows(rows: WarehouseRow[]): WarehouseRow[] {
  const keyed = rows.map((r) => [JSON.stringify(r), r] as const);
  keyed.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return keyed.map(([, r]) => r);
}

function normalise(columns: readonly WarehouseColumn[], values: readonly unknown[]): WarehouseRow {
  const row: Record<string, string | number | null> = {};
  columns.forEach((c, i) => {
    const v = values[i];
    if (v === null || v === undefined) row[c.name] = null;
    else if (c.type === 'text' || c.type === 'date') {
      if (typeof v !== 'string') throw new Error(`${c.name}: expected text, got ${typeof v}`);
      row[c.name] = v;
    } else row[c.name] = Number(v);
  });
  return row;
}

export async function duckDbHarness(): Promise<WarehouseHarness> {
  const dir = await mkdtemp(path.join(tmpdir(), 'canopy-warehouse-'));
  const file = path.join(dir, 'warehouse.duckdb');
  const made: Warehouse[] = [];
  const withConn = async <T>(
    work: (conn: Awaited<ReturnType<DuckDBInstance['connect']>>) => Promise<T>,
  ): Promise<T> => {
    const db = await DuckDBInstance.create(file);
    const conn = await db.connect();
    try {
      return await work(conn);
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  };
  return {
    name: 'duckdb',
    make: (options) => {
      const w = new DuckDbWarehouse({ path: file, batchRows: 7, ...options });
      made.push(w);
      return w;
    },
    dump: (table) =>
      withConn(async (conn) => {
        const columns = spec(table);
        const select = columns.map((c) =>
          c.type === 'timestamp'
            ? `epoch_ms(${quoteIdent(c.name)})`
            : c.type === 'date'
              ? `CAST(${quoteIdent(c.name)} AS VARCHAR)`
              : quoteIdent(c.name),
        );
        const reader = await conn.runAndReadAll(
          `SELECT ${select.join(', ')} FROM ${quoteIdent(table)}`,
        );
        return sortRows(reader.getRows().map((r) => normalise(columns, r)));
      }),
    exec: (sql) =>
      withConn(async (conn) => {
        await conn.run(sql);
      }),
    table: (name) => quoteIdent(name),
    cleanup: async () => {
      for (const w of made) await w.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function postgresHarness(): Promise<WarehouseHarness> {
  const schema = `canopy_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const client = new pg.Client({ connectionString: PG_TEST_URL });
  await client.connect();
  const made: Warehouse[] = [];
  return {
    name: 'postgres',
    make: (options) => {
      // Small batches, so the tests cross batch boundaries.
      const w = new PostgresWarehouse({
        connectionString: PG_TEST_URL,
        schema,
        batchRows: 7,
        ...options,
      });
      made.push(w);
      return w;
    },
    dump: async (table) => {
      const columns = spec(table);
      const select = columns.map((c) =>
        c.type === 'timestamp'
          ? `(extract(epoch FROM ${quoteIdent(c.name)}) * 1000)::bigint`
          : c.type === 'date'
            ? `to_char(${quoteIdent(c.name)}, 'YYYY-MM-DD')`
            : quoteIdent(c.name),
      );
      const result = await client.query<unknown[]>({
        text: `SELECT ${select.join(', ')} FROM ${quoteIdent(schema)}.${quoteIdent(table)}`,
        rowMode: 'array',
      });
      return sortRows(result.rows.map((r) => normalise(columns, r)));
    },
    exec: async (sql) => {
      await client.query(sql);
    },
    table: (name) => `${quoteIdent(schema)}.${quoteIdent(name)}`,
    cleanup: async () => {
      for (const w of made) await w.close();
      await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
      await client.end();
    },
  };
}
