/**
 * Untimed check that the lake benchmark compares like with like: Canopy's
 * silver and gold tables must equal the peer's, row for row. Each table is
 * joined on its key (full outer join); a row counts as mismatched when it is
 * missing on one side, a text column differs, or a number differs by more
 * than 1e-9 relative (floating-point sums may be added in another order).
 * Per-column sums are compared too, with the same tolerance.
 */
import path from 'node:path';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { GOLD_COLUMNS } from '../../src/lake/index.js';

export interface TableCheck {
  table: string;
  canopyRows: number;
  peerRows: number;
  /** Rows missing on one side or differing in any column. */
  mismatchedRows: number;
  /** Numeric columns whose sums differ by more than 1e-9 relative. */
  sumMismatches: string[];
  ok: boolean;
}

interface TableSpec {
  table: string;
  /** Canopy's files, relative to the lake root. */
  canopyGlob: string;
  /** The peer's files, relative to its output folder (hive `date=` folders). */
  peerGlob: string;
  keys: string[];
  /** Compared exactly (cast to text). */
  exact: string[];
  /** Compared with a 1e-9 relative tolerance, and summed. */
  numeric: string[];
}

/** A gold table: every column of `GOLD_COLUMNS` that is neither a key nor exact is numeric. */
function goldSpec(
  table: keyof typeof GOLD_COLUMNS,
  canopyGlob: string,
  peerGlob: string,
  keys: string[],
  exact: string[],
): TableSpec {
  const numeric = GOLD_COLUMNS[table].filter((c) => !keys.includes(c) && !exact.includes(c));
  return { table, canopyGlob, peerGlob, keys, exact, numeric };
}

const TABLES: TableSpec[] = [
  {
    table: 'silver',
    canopyGlob: 'silver/readings/*/*.parquet',
    peerGlob: 'silver/*/*.parquet',
    keys: ['sensor_id', 'event_time'],
    exact: [
      'sensor_type',
      'location',
      'unit',
      'ingest_time',
      'batch_id',
      'is_anomaly',
      'anomaly_reasons',
      'source_file',
      'processing_time',
      'pipeline_version',
    ],
    numeric: ['value', 'anomaly_score', 'seq'],
  },
  {
    table: 'anomalies',
    canopyGlob: 'anomalies/readings/*/*.parquet',
    peerGlob: 'anomalies/*/*.parquet',
    keys: ['sensor_id', 'event_time'],
    exact: ['anomaly_reasons'],
    numeric: ['value'],
  },
  goldSpec(
    'sensor_5min',
    'gold/sensor_5min/*/*.parquet',
    'sensor_5min/*/*.parquet',
    ['sensor_id', 'window_start'],
    ['sensor_type', 'location'],
  ),
  goldSpec(
    'location_hourly',
    'gold/location_hourly/*/*.parquet',
    'location_hourly/*/*.parquet',
    ['location', 'hour_start', 'sensor_type'],
    [],
  ),
  goldSpec(
    'daily_summary',
    'gold/daily_summary/*/*.parquet',
    'daily_summary/*/*.parquet',
    ['sensor_id', 'date'],
    ['sensor_type', 'location'],
  ),
  goldSpec(
    'device_summary',
    'gold/device_summary/*.parquet',
    'device_summary.parquet',
    ['sensor_id'],
    ['sensor_type', 'location', 'first_event_time', 'last_event_time'],
  ),
];

function literal(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

async function one(conn: DuckDBConnection, sql: string): Promise<unknown[]> {
  return (await conn.runAndReadAll(sql)).getRowsJS()[0] ?? [];
}

const close = (a: string, b: string): string =>
  `(${a} IS NOT DISTINCT FROM ${b} OR abs(${a} - ${b}) <= 1e-9 * greatest(1, abs(${a})))`;

async function checkTable(
  conn: DuckDBConnection,
  spec: TableSpec,
  lakeRoot: string,
  peerDir: string,
): Promise<TableCheck> {
  const columns = [...spec.keys, ...spec.exact, ...spec.numeric].join(', ');
  const canopy = `(SELECT true AS present, ${columns} FROM read_parquet(${literal(path.join(lakeRoot, spec.canopyGlob))}, hive_partitioning = false))`;
  // The peer's `date` lives only in the folder name of daily_summary.
  const hive = spec.peerGlob.includes('/')
    ? "hive_partitioning = true, hive_types = {'date': 'DATE'}"
    : 'hive_partitioning = false';
  const peer = `(SELECT true AS present, ${columns} FROM read_parquet(${literal(path.join(peerDir, spec.peerGlob))}, ${hive}))`;
  const differs = [
    'a.present IS NULL OR b.present IS NULL',
    ...spec.exact.map((c) => `a.${c}::VARCHAR IS DISTINCT FROM b.${c}::VARCHAR`),
    ...spec.numeric.map((c) => `NOT ${close(`a.${c}::DOUBLE`, `b.${c}::DOUBLE`)}`),
  ].join(' OR ');
  const on = spec.keys.map((k) => `a.${k} IS NOT DISTINCT FROM b.${k}`).join(' AND ');
  const [canopyRows, peerRows, mismatched] = await one(
    conn,
    `SELECT (SELECT count(*) FROM ${canopy}), (SELECT count(*) FROM ${peer}),
            (SELECT count(*) FROM ${canopy} a FULL OUTER JOIN ${peer} b ON ${on} WHERE ${differs})`,
  );
  const sums = spec.numeric.map((c) => `sum(${c}::DOUBLE)`).join(', ');
  const canopySums = await one(conn, `SELECT ${sums} FROM ${canopy}`);
  const peerSums = await one(conn, `SELECT ${sums} FROM ${peer}`);
  const sumMismatches = spec.numeric.filter((_, i) => {
    const a = canopySums[i] as number | null;
    const b = peerSums[i] as number | null;
    if (a === null || b === null) return a !== b;
    return Math.abs(a - b) > 1e-9 * Math.max(1, Math.abs(a));
  });
  const result = {
    table: spec.table,
    canopyRows: Number(canopyRows),
    peerRows: Number(peerRows),
    mismatchedRows: Number(mismatched),
    sumMismatches,
  };
  return {
    ...result,
    ok:
      result.canopyRows === result.peerRows &&
      result.mismatchedRows === 0 &&
      sumMismatches.length === 0,
  };
}

/** Compares every silver and gold table of the lake with the peer's output folder. */
export async function verifyAgainstPeer(lakeRoot: string, peerDir: string): Promise<TableCheck[]> {
  const db = await DuckDBInstance.create(':memory:', {
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const conn = await db.connect();
  try {
    const checks: TableCheck[] = [];
    for (const spec of TABLES) checks.push(await checkTable(conn, spec, lakeRoot, peerDir));
    return checks;
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
