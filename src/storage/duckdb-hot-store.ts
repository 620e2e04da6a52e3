/**
 * The default hot store: one DuckDB file, written by this process only.
 *
 * Durability: `append` resolves only after DuckDB's COMMIT returned, and a
 * DuckDB commit writes and fsyncs the write-ahead log before it returns. An
 * acknowledged reading therefore survives `kill -9`; the next `open` replays
 * the WAL.
 *
 * Concurrency: all writes go through one connection and one promise chain,
 * so transactions never interleave and the seq counter needs no lock. Reads
 * use a second connection (also serialized) and, by DuckDB's MVCC, see only
 * committed rows: a reader never sees a batch that may still roll back.
 *
 * Seq: assigned here, in array order, from a counter recovered at open as
 * the highest of max(seq), the purge floor and the export watermark (see
 * `recoverCounters`). The counter only moves after a successful COMMIT, so a
 * failed append leaves no gap and no reuse.
 */
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import {
  BIGINT,
  BOOLEAN,
  DOUBLE,
  DuckDBDataChunk,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBTimestampValue,
  LIST,
  TIMESTAMP,
  VARCHAR,
  listValue,
  timestampValue,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { pino, type Logger } from 'pino';
import { CanopyError, type RejectReason } from '../core/errors.js';
import { SerialQueue } from '../core/serial-queue.js';
import type { DeadLetter } from '../core/ingest.js';
import type { StoredReading } from '../core/reading.js';
import type {
  AppendResult,
  CommitPosition,
  DeadLetterQuery,
  ExportBatch,
  ExportedPartition,
  HotStore,
  ImputedValue,
  IngestReceipt,
  NewReading,
  Page,
  PurgeOptions,
  ReadingQuery,
  ReceiptRejection,
  SensorRecord,
  SensorSummary,
  StoredDeadLetter,
} from '../core/store.js';
import {
  checkImputedValues,
  checkLimit,
  checkPurgeBounds,
  checkOptionalTime,
  decodeDeadLetterCursor,
  decodeReadingCursor,
  encodeDeadLetterCursor,
  encodeReadingCursor,
} from './query-args.js';
import { claimDuckDbFile, offlineDuckDbOptions, type DuckDbFileClaim } from './duckdb-file.js';

export interface DuckDbHotStoreOptions {
  /** Database file (its folder is created if missing), or `:memory:`. */
  path: string;
  logger?: Logger;
  /**
   * DuckDB `memory_limit` (e.g. `'512MB'`); DuckDB's default is 80 % of RAM.
   * Bounds the buffer pool for deployments with an RSS budget; queries then
   * spill to disk rather than grow the process.
   */
  memoryLimit?: string;
}

/** Written to `canopy_meta.schema_version`; a file from a newer Canopy is refused. */
export const DUCKDB_SCHEMA_VERSION = 1;

const META_SCHEMA_VERSION = 'schema_version';
const META_EXPORT_WATERMARK = 'export_watermark';
const META_DEAD_LETTER_WATERMARK = 'deadletter_export_watermark';
/** Highest seq ever deleted by `purge`, so that seqs are not reused once the table is empty. */
const META_SEQ_FLOOR = 'seq_floor';
/** Highest dead-letter id ever deleted by `purge`, for the same reason. */
const META_DEAD_LETTER_FLOOR = 'deadletter_id_floor';
/** Most keys one `findReceipts` call may ask for. */
const MAX_RECEIPT_KEYS = 1_000;
/** Imputed values per UPDATE statement (three parameters each). */
const IMPUTATION_CHUNK = 500;

/**
 * The schema. Column order of `readings` and `dead_letters` is the order the
 * appenders write in (`READING_TYPES`, `DEAD_LETTER_TYPES`).
 *
 * `readings.seq` and `dead_letters.id` are unique by construction (one
 * writer per file, a counter that only moves after COMMIT) and deliberately
 * carry no PRIMARY KEY. Measured with DuckDB 1.5 on a readings-like table: the
 * ART index made bulk inserts 2–3× slower, and the checkpoint after a small
 * append grew with the table (42 ms at 1M rows, 156 ms at 8M, a 24 h window
 * at 100 readings/s) where it stays near 50 ms without it; an automatic
 * checkpoint runs inside some append's COMMIT, so that is ack latency. The
 * conformance suite checks the uniqueness instead.
 *
 * `ingest_receipts` does carry a PRIMARY KEY: it is written only for messages
 * with an idempotency key (few, small rows), its point lookups use the index,
 * and a duplicate key must fail the transaction that would store a message
 * twice. `rejections` is the JSON of the rejections without their raw text.
 */
export const DUCKDB_HOT_STORE_DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS readings (
    sensor_id       VARCHAR   NOT NULL,
    sensor_type     VARCHAR,
    location        VARCHAR,
    event_time      TIMESTAMP NOT NULL,
    value           DOUBLE,
    unit            VARCHAR,
    anomaly_score   DOUBLE,
    ingest_time     TIMESTAMP NOT NULL,
    source          VARCHAR   NOT NULL,
    batch_id        VARCHAR   NOT NULL,
    seq             BIGINT    NOT NULL,
    is_anomaly      BOOLEAN   NOT NULL,
    anomaly_reasons VARCHAR[] NOT NULL,
    imputed         BOOLEAN   NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGINT    NOT NULL,
    received_at TIMESTAMP NOT NULL,
    source      VARCHAR   NOT NULL,
    origin      VARCHAR,
    reason      VARCHAR   NOT NULL,
    message     VARCHAR   NOT NULL,
    raw         VARCHAR   NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS sensors (
    sensor_id   VARCHAR NOT NULL PRIMARY KEY,
    sensor_type VARCHAR,
    unit        VARCHAR,
    location    VARCHAR,
    origin      VARCHAR NOT NULL CHECK (origin IN ('config', 'discovered')),
    interval_ms BIGINT,
    first_seen  TIMESTAMP
  )`,
  `CREATE TABLE IF NOT EXISTS ingest_receipts (
    idempotency_key VARCHAR   NOT NULL PRIMARY KEY,
    batch_id        VARCHAR   NOT NULL,
    accepted        BIGINT    NOT NULL,
    rejected        BIGINT    NOT NULL,
    rejections      VARCHAR   NOT NULL,
    committed_at    TIMESTAMP NOT NULL
  )`,
  `CREATE TABLE IF NOT EXISTS canopy_meta (
    key   VARCHAR NOT NULL PRIMARY KEY,
    value VARCHAR NOT NULL
  )`,
];

const READING_TYPES: readonly DuckDBType[] = [
  VARCHAR, // sensor_id
  VARCHAR, // sensor_type
  VARCHAR, // location
  TIMESTAMP, // event_time
  DOUBLE, // value
  VARCHAR, // unit
  DOUBLE, // anomaly_score
  TIMESTAMP, // ingest_time
  VARCHAR, // source
  VARCHAR, // batch_id
  BIGINT, // seq
  BOOLEAN, // is_anomaly
  LIST(VARCHAR), // anomaly_reasons
  BOOLEAN, // imputed
];

const DEAD_LETTER_TYPES: readonly DuckDBType[] = [
  BIGINT, // id
  TIMESTAMP, // received_at
  VARCHAR, // source
  VARCHAR, // origin
  VARCHAR, // reason
  VARCHAR, // message
  VARCHAR, // raw
];

const RECEIPT_TYPES: readonly DuckDBType[] = [
  VARCHAR, // idempotency_key
  VARCHAR, // batch_id
  BIGINT, // accepted
  BIGINT, // rejected
  VARCHAR, // rejections
  TIMESTAMP, // committed_at
];

const RECEIPT_COLUMNS = 'idempotency_key, batch_id, accepted, rejected, rejections, committed_at';
const READING_COLUMNS =
  'sensor_id, sensor_type, location, event_time, value, unit, anomaly_score, ingest_time, source, batch_id, seq, is_anomaly, anomaly_reasons, imputed';
const DEAD_LETTER_COLUMNS = 'id, received_at, source, origin, reason, message, raw';
const SENSOR_COLUMNS = 'sensor_id, sensor_type, unit, location, origin, interval_ms, first_seen';

/** DuckDB's vector size: the most rows one data chunk holds. */
const CHUNK_ROWS = 2048;

const EMPTY_REASONS = listValue([]);

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

export class DuckDbHotStore implements HotStore {
  private readonly dbPath: string;
  private readonly log: Logger;
  private readonly memoryLimit: string | undefined;
  private state: State = 'new';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private instance: DuckDBInstance | undefined;
  private writer: DuckDBConnection | undefined;
  private reader: DuckDBConnection | undefined;
  /** This process's claim on the database file, while the store holds it. */
  private file: DuckDbFileClaim | undefined;
  private readonly writes = new SerialQueue();
  private readonly reads = new SerialQueue();
  /** Last seq committed (or never to be reused). Only moves after a COMMIT. */
  private lastSeq = 0n;
  private lastDeadLetterId = 0n;

  constructor(options: DuckDbHotStoreOptions) {
    this.dbPath = options.path === ':memory:' ? ':memory:' : path.resolve(options.path);
    this.memoryLimit = options.memoryLimit;
    // The caller names the component; this only tells adapters apart.
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ adapter: 'duckdb' });
  }

  /**
   * Opens the file, creates the tables and recovers the counters. Idempotent;
   * concurrent calls share one attempt, and a failed attempt may be retried.
   * Throws CANOPY_STORE_OPEN_FAILED (locked by another process, bad path,
   * newer schema) or CANOPY_STORE_CLOSED once `close` was called.
   */
  open(): Promise<void> {
    if (this.state === 'open') return Promise.resolve();
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(closedError());
    this.opening ??= this.openNow().catch((err: unknown) => {
      this.opening = undefined;
      this.state = 'new';
      throw err;
    });
    return this.opening;
  }

  private async openNow(): Promise<void> {
    this.state = 'opening';
    this.file = claimDuckDbFile(this.dbPath, (problem, cause) =>
      problem === 'folder'
        ? new CanopyError(
            'CANOPY_STORE_OPEN_FAILED',
            `Cannot create the folder of the hot-store database ${this.dbPath}: ${errorMessage(cause)}`,
            { cause },
          )
        : new CanopyError(
            'CANOPY_STORE_OPEN_FAILED',
            `The hot-store database ${this.dbPath} is already open in this process; open it once and share the store.`,
          ),
    );

    try {
      this.instance = await DuckDBInstance.create(this.dbPath, {
        ...offlineDuckDbOptions(this.file.extensionDir),
        ...(this.memoryLimit === undefined ? {} : { memory_limit: this.memoryLimit }),
      });
    } catch (cause) {
      this.releaseFile();
      const msg = errorMessage(cause);
      const locked = /could not set lock/i.test(msg);
      throw new CanopyError(
        'CANOPY_STORE_OPEN_FAILED',
        locked
          ? `The hot-store database ${this.dbPath} is locked by another process: another Canopy may be running with the same data folder. (${msg})`
          : `Cannot open the hot-store database ${this.dbPath}: ${msg}`,
        { cause },
      );
    }

    try {
      this.writer = await this.instance.connect();
      this.reader = await this.instance.connect();
      await this.createSchema(this.writer);
      await this.recoverCounters(this.writer);
    } catch (cause) {
      this.shutDownEngine();
      if (cause instanceof CanopyError) throw cause;
      throw new CanopyError(
        'CANOPY_STORE_OPEN_FAILED',
        `Cannot prepare the hot-store database ${this.dbPath}: ${errorMessage(cause)}`,
        { cause },
      );
    }
    this.state = 'open';
    this.log.info({ path: this.dbPath, lastSeq: this.lastSeq.toString() }, 'hot store opened');
  }

  private async createSchema(conn: DuckDBConnection): Promise<void> {
    await conn.run('BEGIN TRANSACTION');
    try {
      for (const ddl of DUCKDB_HOT_STORE_DDL) await conn.run(ddl);
      await conn.run('INSERT INTO canopy_meta VALUES ($1, $2) ON CONFLICT DO NOTHING', [
        META_SCHEMA_VERSION,
        String(DUCKDB_SCHEMA_VERSION),
      ]);
      await conn.run('COMMIT');
    } catch (err) {
      await rollbackQuietly(conn);
      throw err;
    }
    const version = Number(await readMeta(conn, META_SCHEMA_VERSION));
    if (version > DUCKDB_SCHEMA_VERSION) {
      throw new CanopyError(
        'CANOPY_STORE_OPEN_FAILED',
        `The hot-store database ${this.dbPath} has schema version ${version}, written by a newer Canopy; this one knows version ${DUCKDB_SCHEMA_VERSION}.`,
      );
    }
  }

  /**
   * The next seq must exceed every seq ever handed out. Rows may be gone (a
   * purge deletes exported rows), so max(seq) alone is not enough: the purge
   * floor remembers the highest deleted seq, and the watermark never exceeds
   * an assigned seq.
   */
  private async recoverCounters(conn: DuckDBConnection): Promise<void> {
    const rows = (
      await conn.runAndReadAll(
        `SELECT (SELECT max(seq) FROM readings), (SELECT max(id) FROM dead_letters)`,
      )
    ).getRows();
    const row = rows[0] ?? [];
    const maxSeq = asNullableBigInt(row[0]) ?? 0n;
    const floor = BigInt((await readMeta(conn, META_SEQ_FLOOR)) ?? '0');
    const watermark = BigInt((await readMeta(conn, META_EXPORT_WATERMARK)) ?? '0');
    this.lastSeq = maxBigInt(maxSeq, floor, watermark);
    const idFloor = BigInt((await readMeta(conn, META_DEAD_LETTER_FLOOR)) ?? '0');
    const idWatermark = BigInt((await readMeta(conn, META_DEAD_LETTER_WATERMARK)) ?? '0');
    this.lastDeadLetterId = maxBigInt(asNullableBigInt(row[1]) ?? 0n, idFloor, idWatermark);
  }

  /**
   * Waits for queued work, checkpoints (so the next open need not replay the
   * WAL) and releases the file. Idempotent. Every later call throws
   * CANOPY_STORE_CLOSED.
   */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.closing ??= this.closeNow();
    return this.closing;
  }

  private async closeNow(): Promise<void> {
    if (this.opening) await this.opening.catch(() => undefined);
    const wasOpen = this.state === 'open';
    this.state = 'closing';
    await this.writes.drain();
    await this.reads.drain();
    if (wasOpen && this.writer) {
      try {
        await this.writer.run('CHECKPOINT');
      } catch (err) {
        // Not fatal: the WAL holds every committed row and is replayed at open.
        this.log.warn({ err }, 'checkpoint at close failed');
      }
    }
    this.shutDownEngine();
    this.state = 'closed';
    if (wasOpen) this.log.info({ path: this.dbPath }, 'hot store closed');
  }

  private shutDownEngine(): void {
    // Connections first: the database is only released (and its file lock
    // dropped) once nothing refers to it.
    for (const conn of [this.reader, this.writer]) {
      try {
        conn?.closeSync();
      } catch (err) {
        this.log.warn({ err }, 'closing a DuckDB connection failed');
      }
    }
    try {
      this.instance?.closeSync();
    } catch (err) {
      this.log.warn({ err }, 'closing the DuckDB instance failed');
    }
    this.reader = undefined;
    this.writer = undefined;
    this.instance = undefined;
    this.releaseFile();
  }

  private releaseFile(): void {
    this.file?.release();
    this.file = undefined;
  }

  /** Queues `task` on the write connection; rejects with CANOPY_STORE_CLOSED unless open. */
  private write<T>(task: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    const conn = this.writer;
    if (this.state !== 'open' || !conn) return Promise.reject(closedError());
    return this.writes.run(() => task(conn));
  }

  /** Queues `task` on the read connection; rejects with CANOPY_STORE_CLOSED unless open. */
  private read<T>(task: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    const conn = this.reader;
    if (this.state !== 'open' || !conn) return Promise.reject(closedError());
    return this.reads.run(() => task(conn));
  }

  /**
   * Runs `body` in one transaction on the write connection. On any failure it
   * rolls back and throws CANOPY_STORE_COMMIT_FAILED with the cause; nothing
   * of the call is then stored.
   */
  private async inTransaction<T>(
    conn: DuckDBConnection,
    what: string,
    body: () => Promise<T>,
  ): Promise<T> {
    try {
      await conn.run('BEGIN TRANSACTION');
      const result = await body();
      await conn.run('COMMIT');
      return result;
    } catch (cause) {
      await rollbackQuietly(conn, this.log);
      throw new CanopyError(
        'CANOPY_STORE_COMMIT_FAILED',
        `The hot store could not commit ${what}: ${errorMessage(cause)}`,
        { cause },
      );
    }
  }

  /**
   * One transaction for the readings, the dead letters and the receipts;
   * resolves after COMMIT (durable, see the file comment). Calls run one at a
   * time in call order. On failure (including a receipt key already stored)
   * nothing of the call is stored, the counters are as before, and it throws
   * CANOPY_STORE_COMMIT_FAILED with the cause; the caller may retry.
   */
  append(
    readings: readonly NewReading[],
    deadLetters: readonly DeadLetter[],
    receipts: readonly IngestReceipt[] = [],
  ): Promise<AppendResult> {
    return this.write(async (conn) => {
      if (readings.length === 0 && deadLetters.length === 0 && receipts.length === 0)
        return { firstSeq: null, lastSeq: null };
      const firstSeq = this.lastSeq + 1n;
      const firstId = this.lastDeadLetterId + 1n;
      try {
        await this.inTransaction(conn, 'a batch of readings', async () => {
          // Appenders inside an explicit transaction only stage rows; the
          // WAL write and fsync happen in the asynchronous COMMIT, off the
          // event loop.
          if (readings.length > 0) {
            const ingestTimes = new TimestampCache();
            await appendRows(conn, 'readings', READING_TYPES, readings, (cols, i, r, index) =>
              fillReading(cols, i, r, firstSeq + BigInt(index), ingestTimes),
            );
          }
          if (deadLetters.length > 0) {
            await appendRows(
              conn,
              'dead_letters',
              DEAD_LETTER_TYPES,
              deadLetters,
              (cols, i, d, index) => fillDeadLetter(cols, i, d, firstId + BigInt(index)),
            );
          }
          if (receipts.length > 0) {
            await appendRows(conn, 'ingest_receipts', RECEIPT_TYPES, receipts, fillReceipt);
          }
        });
      } catch (err) {
        await this.resyncCountersAfterFailure(conn);
        throw err;
      }
      this.lastSeq += BigInt(readings.length);
      this.lastDeadLetterId += BigInt(deadLetters.length);
      return readings.length === 0
        ? { firstSeq: null, lastSeq: null }
        : { firstSeq, lastSeq: this.lastSeq };
    });
  }

  /**
   * The counters were not advanced, which is right when nothing was written.
   * A COMMIT that failed after reaching the WAL could still have stored the
   * rows, though; taking the table's maximum keeps us from reusing their
   * seqs. Best effort: if the engine is broken this query fails too.
   */
  private async resyncCountersAfterFailure(conn: DuckDBConnection): Promise<void> {
    try {
      const row =
        (
          await conn.runAndReadAll(
            `SELECT (SELECT max(seq) FROM readings), (SELECT max(id) FROM dead_letters)`,
          )
        ).getRows()[0] ?? [];
      this.lastSeq = maxBigInt(this.lastSeq, asNullableBigInt(row[0]) ?? 0n);
      this.lastDeadLetterId = maxBigInt(this.lastDeadLetterId, asNullableBigInt(row[1]) ?? 0n);
    } catch (err) {
      this.log.error({ err }, 'could not re-read the seq counters after a failed append');
    }
  }

  /** Throws CANOPY_API_BAD_REQUEST for more than 1 000 keys or a key that is not a string. */
  async findReceipts(keys: readonly string[]): Promise<Map<string, IngestReceipt>> {
    if (keys.length > MAX_RECEIPT_KEYS || keys.some((k) => typeof k !== 'string')) {
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `findReceipts takes at most ${MAX_RECEIPT_KEYS} string keys`,
      );
    }
    return await this.read(async (conn) => {
      const found = new Map<string, IngestReceipt>();
      // Point lookups, each served by the primary-key index.
      for (const key of new Set(keys)) {
        const row = (
          await conn.runAndReadAll(
            `SELECT ${RECEIPT_COLUMNS} FROM ingest_receipts WHERE idempotency_key = $1`,
            [key],
            [VARCHAR],
          )
        ).getRows()[0];
        if (row) found.set(key, toReceipt(row));
      }
      return found;
    });
  }

  async readingsAfter(afterSeq: bigint, limit: number): Promise<StoredReading[]> {
    const max = checkLimit(limit);
    return await this.read(async (conn) =>
      (
        await conn.runAndReadAll(
          `SELECT ${READING_COLUMNS} FROM readings WHERE seq > $1 ORDER BY seq LIMIT $2`,
          [afterSeq, BigInt(max)],
          [BIGINT, BIGINT],
        )
      )
        .getRows()
        .map(toStoredReading),
    );
  }

  /** Bytes DuckDB holds in memory (buffer pool and the rest), for the soak's RSS account. */
  memoryBytes(): Promise<number> {
    return this.read(async (conn) => {
      const [row] = (
        await conn.runAndReadAll('SELECT sum(memory_usage_bytes) FROM duckdb_memory()')
      ).getRows();
      return Number(row?.[0] ?? 0);
    });
  }

  /** Kept in memory: every append of this store goes through this process. */
  commitPosition(): Promise<CommitPosition> {
    return this.read(() =>
      Promise.resolve({ seq: this.lastSeq, deadLetterId: this.lastDeadLetterId }),
    );
  }

  /** Throws CANOPY_API_BAD_REQUEST for a bad limit, bound or cursor. */
  async queryReadings(query: ReadingQuery): Promise<Page<StoredReading>> {
    const limit = checkLimit(query.limit);
    const from = checkOptionalTime('from', query.from);
    const to = checkOptionalTime('to', query.to);
    const after = query.cursor === undefined ? undefined : decodeReadingCursor(query.cursor);
    const sql = new ParamSql();
    if (query.sensorId !== undefined) sql.where('sensor_id = ?', query.sensorId, VARCHAR);
    if (query.sensorType !== undefined) sql.where('sensor_type = ?', query.sensorType, VARCHAR);
    if (query.location !== undefined) sql.where('location = ?', query.location, VARCHAR);
    if (from !== undefined) sql.where('event_time >= ?', toTimestamp(from), TIMESTAMP);
    if (to !== undefined) sql.where('event_time < ?', toTimestamp(to), TIMESTAMP);
    if (after) {
      const t = sql.param(toTimestamp(after.eventTime), TIMESTAMP);
      const s = sql.param(after.seq, BIGINT);
      // The first conjunct alone can prune row groups by their min/max.
      sql.whereRaw(`event_time <= ${t} AND (event_time < ${t} OR seq < ${s})`);
    }
    const lim = sql.param(BigInt(limit + 1), BIGINT);
    const text = `SELECT ${READING_COLUMNS} FROM readings${sql.whereClause()} ORDER BY event_time DESC, seq DESC LIMIT ${lim}`;
    return await this.read(async (conn) => {
      const rows = (await conn.runAndReadAll(text, sql.values, sql.types)).getRows();
      const items = rows.slice(0, limit).map(toStoredReading);
      const last = items[items.length - 1];
      return {
        items,
        nextCursor:
          rows.length > limit && last
            ? encodeReadingCursor({ eventTime: last.eventTime, seq: last.seq })
            : null,
      };
    });
  }

  /** Throws CANOPY_API_BAD_REQUEST unless perSensor is a non-negative integer. */
  async recentValues(perSensor: number): Promise<Map<string, number[]>> {
    if (!Number.isInteger(perSensor) || perSensor < 0) {
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `perSensor must be a non-negative integer, got ${String(perSensor)}`,
      );
    }
    return await this.read(async (conn) => {
      const result = new Map<string, number[]>();
      if (perSensor === 0) return result;
      const rows = (
        await conn.runAndReadAll(
          // A window over the whole table sorts every row (≈2.5 s for
          // 4.3M rows). First find, per sensor, the event time of its N-th
          // newest value (a top-N aggregate, no sort); only rows at or after
          // it can be among the last N, so the window then sorts just those,
          // with seq breaking event-time ties as everywhere else (≈200 ms).
          `WITH cut AS (
             SELECT sensor_id, list_min(max(event_time, $1)) AS since
             FROM readings WHERE value IS NOT NULL
             GROUP BY sensor_id)
           SELECT r.sensor_id, r.value
           FROM readings r JOIN cut ON r.sensor_id = cut.sensor_id AND r.event_time >= cut.since
           WHERE r.value IS NOT NULL
           QUALIFY row_number() OVER (PARTITION BY r.sensor_id ORDER BY r.event_time DESC, r.seq DESC) <= $1
           ORDER BY r.sensor_id, r.event_time, r.seq`,
          [BigInt(perSensor)],
          [BIGINT],
        )
      ).getRows();
      for (const row of rows) {
        const id = asString(row[0]);
        let values = result.get(id);
        if (!values) result.set(id, (values = []));
        values.push(asNumber(row[1]));
      }
      return result;
    });
  }

  countReadings(): Promise<number> {
    return this.read((conn) => countRows(conn, 'readings'));
  }

  /**
   * Applies the records in order, in one transaction: a config record
   * overwrites the fields it knows (its nulls keep the stored value) and makes
   * the sensor `config`; a discovered record only fills null fields and never
   * demotes a config sensor; `firstSeen` keeps the earliest time. Throws
   * CANOPY_API_BAD_REQUEST for a record without id or with an unknown origin.
   */
  async upsertSensors(sensors: readonly SensorRecord[]): Promise<void> {
    for (const s of sensors) {
      if (typeof s.sensorId !== 'string' || s.sensorId === '') {
        throw new CanopyError('CANOPY_API_BAD_REQUEST', 'every sensor needs a non-empty sensorId');
      }
      if (s.origin !== 'config' && s.origin !== 'discovered') {
        throw new CanopyError(
          'CANOPY_API_BAD_REQUEST',
          `sensor ${s.sensorId}: origin must be 'config' or 'discovered', got ${String(s.origin)}`,
        );
      }
    }
    return await this.write(async (conn) => {
      if (sensors.length === 0) return;
      await this.inTransaction(conn, 'the sensor registry', async () => {
        // Only the rows of the sensors in this call are read, and every
        // changed row is written by one statement over list parameters: a
        // fleet of 10 000 new sensors costs two statements, not 10 000.
        const ids = [...new Set(sensors.map((s) => s.sensorId))];
        const known = new Map<string, SensorRecord>();
        for (const row of (
          await conn.runAndReadAll(
            `SELECT ${SENSOR_COLUMNS} FROM sensors WHERE sensor_id IN (SELECT unnest($1))`,
            [listValue(ids)],
            [LIST(VARCHAR)],
          )
        ).getRows()) {
          const rec = toSensorRecord(row);
          known.set(rec.sensorId, rec);
        }
        const stored = new Map(known);
        for (const incoming of sensors) {
          const existing = known.get(incoming.sensorId);
          known.set(
            incoming.sensorId,
            existing ? mergeSensor(existing, incoming) : { ...incoming },
          );
        }
        // Rows the call leaves as they were are not rewritten.
        const changed = [...known.values()].filter((s) => {
          const before = stored.get(s.sensorId);
          return before === undefined || !sameSensor(before, s);
        });
        if (changed.length === 0) return;
        await conn.run(
          `INSERT OR REPLACE INTO sensors (${SENSOR_COLUMNS})
           SELECT unnest($1), unnest($2), unnest($3), unnest($4), unnest($5), unnest($6), unnest($7)`,
          [
            listValue(changed.map((s) => s.sensorId)),
            listValue(changed.map((s) => s.sensorType)),
            listValue(changed.map((s) => s.unit)),
            listValue(changed.map((s) => s.location)),
            listValue(changed.map((s) => s.origin)),
            listValue(
              changed.map((s) => (s.intervalMs === null ? null : BigInt(Math.round(s.intervalMs)))),
            ),
            listValue(changed.map((s) => (s.firstSeen === null ? null : toTimestamp(s.firstSeen)))),
          ],
          [
            LIST(VARCHAR),
            LIST(VARCHAR),
            LIST(VARCHAR),
            LIST(VARCHAR),
            LIST(VARCHAR),
            LIST(BIGINT),
            LIST(TIMESTAMP),
          ],
        );
      });
    });
  }

  listSensors(): Promise<SensorSummary[]> {
    return this.read(async (conn) => {
      const rows = (
        await conn.runAndReadAll(
          // Two passes rather than arg_max over an (event_time, seq) key:
          // the row-valued key made this query ten times slower (≈500 ms
          // against ≈50 ms over 4.3M rows, a day of 50 sensors at 1 Hz).
          `WITH agg AS (
             SELECT sensor_id,
                    max(event_time) AS last_seen,
                    count(*) AS reading_count,
                    count(*) FILTER (WHERE is_anomaly) AS anomaly_count
             FROM readings
             WHERE sensor_id IN (SELECT sensor_id FROM sensors)
             GROUP BY sensor_id),
           newest AS (
             SELECT r.sensor_id, arg_max_null(r.value, r.seq) AS last_value
             FROM readings r JOIN agg ON r.sensor_id = agg.sensor_id AND r.event_time = agg.last_seen
             GROUP BY r.sensor_id)
           SELECT s.sensor_id, s.sensor_type, s.unit, s.location, s.origin, s.interval_ms, s.first_seen,
                  agg.last_seen, newest.last_value,
                  coalesce(agg.reading_count, 0), coalesce(agg.anomaly_count, 0)
           FROM sensors s
             LEFT JOIN agg ON agg.sensor_id = s.sensor_id
             LEFT JOIN newest ON newest.sensor_id = s.sensor_id
           ORDER BY s.sensor_id`,
        )
      ).getRows();
      return rows.map((row) => ({
        ...toSensorRecord(row),
        lastSeen: asNullableTimestampMs(row[7]),
        lastValue: asNullableNumber(row[8]),
        readingCount: Number(asBigInt(row[9])),
        anomalyCount: Number(asBigInt(row[10])),
      }));
    });
  }

  /** Newest first, by id. Throws CANOPY_API_BAD_REQUEST for a bad limit or cursor. */
  async listDeadLetters(query: DeadLetterQuery): Promise<Page<StoredDeadLetter>> {
    const limit = checkLimit(query.limit);
    const before = query.cursor === undefined ? undefined : decodeDeadLetterCursor(query.cursor);
    const sql = new ParamSql();
    if (query.reason !== undefined) sql.where('reason = ?', query.reason, VARCHAR);
    if (query.source !== undefined) sql.where('source = ?', query.source, VARCHAR);
    if (before !== undefined) sql.where('id < ?', before, BIGINT);
    const lim = sql.param(BigInt(limit + 1), BIGINT);
    const text = `SELECT ${DEAD_LETTER_COLUMNS} FROM dead_letters${sql.whereClause()} ORDER BY id DESC LIMIT ${lim}`;
    return await this.read(async (conn) => {
      const rows = (await conn.runAndReadAll(text, sql.values, sql.types)).getRows();
      const items = rows.slice(0, limit).map(toStoredDeadLetter);
      const last = items[items.length - 1];
      return {
        items,
        nextCursor: rows.length > limit && last ? encodeDeadLetterCursor(last.id) : null,
      };
    });
  }

  countDeadLetters(): Promise<number> {
    return this.read((conn) => countRows(conn, 'dead_letters'));
  }

  async deadLettersAfter(afterId: bigint, limit: number): Promise<StoredDeadLetter[]> {
    const max = checkLimit(limit);
    return await this.read(async (conn) =>
      (
        await conn.runAndReadAll(
          `SELECT ${DEAD_LETTER_COLUMNS} FROM dead_letters WHERE id > $1 ORDER BY id LIMIT $2`,
          [afterId, BigInt(max)],
          [BIGINT, BIGINT],
        )
      )
        .getRows()
        .map(toStoredDeadLetter),
    );
  }

  getDeadLetterWatermark(): Promise<bigint> {
    return this.read(async (conn) =>
      BigInt((await readMeta(conn, META_DEAD_LETTER_WATERMARK)) ?? '0'),
    );
  }

  async setDeadLetterWatermark(id: bigint): Promise<void> {
    if (typeof id !== 'bigint' || id < 0n) {
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `dead-letter watermark must be a non-negative bigint, got ${String(id)}`,
      );
    }
    return await this.write(async (conn) => {
      if (id > this.lastDeadLetterId) {
        throw new CanopyError(
          'CANOPY_API_BAD_REQUEST',
          `dead-letter watermark ${id} is beyond the last dead letter ${this.lastDeadLetterId}`,
        );
      }
      await this.inTransaction(conn, 'the dead-letter watermark', () =>
        writeMeta(conn, META_DEAD_LETTER_WATERMARK, id.toString()),
      );
    });
  }

  getExportWatermark(): Promise<bigint> {
    return this.read(async (conn) => BigInt((await readMeta(conn, META_EXPORT_WATERMARK)) ?? '0'));
  }

  /**
   * Records the highest seq exported to the lake. It may move back (a
   * re-export), but never beyond the last committed seq: a watermark ahead of
   * the data would let `purge` delete rows that were never exported.
   * Throws CANOPY_API_BAD_REQUEST for a negative or too-high value.
   */
  async setExportWatermark(seq: bigint): Promise<void> {
    if (typeof seq !== 'bigint' || seq < 0n) {
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `export watermark must be a non-negative bigint, got ${String(seq)}`,
      );
    }
    return await this.write(async (conn) => {
      if (seq > this.lastSeq) {
        throw new CanopyError(
          'CANOPY_API_BAD_REQUEST',
          `export watermark ${seq} is beyond the last committed seq ${this.lastSeq}`,
        );
      }
      await this.inTransaction(conn, 'the export watermark', () =>
        writeMeta(conn, META_EXPORT_WATERMARK, seq.toString()),
      );
    });
  }

  async exportReadings(
    afterSeq: bigint,
    maxRows: number,
    dir: string,
  ): Promise<ExportBatch | null> {
    if (!Number.isInteger(maxRows) || maxRows < 1) {
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `maxRows must be a positive integer, got ${maxRows}`,
      );
    }
    return await this.read(async (conn) => {
      // One snapshot for the bound and the copy, so both see the same rows.
      await conn.run('BEGIN TRANSACTION');
      try {
        const bound = (
          await conn.runAndReadAll(
            'SELECT max(seq), count(*) FROM (SELECT seq FROM readings WHERE seq > $1 ORDER BY seq LIMIT $2)',
            [afterSeq, BigInt(maxRows)],
            [BIGINT, BIGINT],
          )
        ).getRows()[0];
        const lastSeq = asNullableBigInt(bound?.[0] ?? null);
        if (lastSeq === null) return null;
        const rows = Number(bound?.[1] ?? 0);
        const partitions = await copyReadingsToParquet(conn, afterSeq, lastSeq, dir);
        return { rows, lastSeq, partitions };
      } finally {
        await rollbackQuietly(conn, this.log);
      }
    });
  }

  async applyImputations(values: readonly ImputedValue[]): Promise<number> {
    checkImputedValues(values);
    if (values.length === 0) return 0;
    return await this.write((conn) =>
      this.inTransaction(conn, 'imputed values', async () => {
        let changed = 0;
        for (let start = 0; start < values.length; start += IMPUTATION_CHUNK) {
          const chunk = values.slice(start, start + IMPUTATION_CHUNK);
          const rows = chunk.map((_, i) => `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`);
          const result = await conn.run(
            `UPDATE readings SET value = v.value, imputed = true
               FROM (VALUES ${rows.join(', ')}) AS v(sensor_id, event_time, value)
              WHERE readings.sensor_id = v.sensor_id AND readings.event_time = v.event_time
                AND readings.value IS NULL AND NOT readings.imputed`,
            chunk.flatMap((v) => [v.sensorId, toTimestamp(v.eventTime), v.value]),
            chunk.flatMap(() => [VARCHAR, TIMESTAMP, DOUBLE]),
          );
          changed += Number(result.rowsChanged);
        }
        return changed;
      }),
    );
  }

  /**
   * Deletes exported readings (event time before `before`, seq at or below
   * the export watermark) and exported dead letters (received before
   * `before`, id at or below the dead-letter watermark), remembering the
   * highest deleted seq and id (see `recoverCounters`), and receipts
   * committed before `options.receiptsBefore`; all in one transaction.
   * Returns the number of readings deleted. Throws CANOPY_API_BAD_REQUEST for
   * a non-finite bound, CANOPY_STORE_COMMIT_FAILED if the delete fails
   * (nothing is then deleted).
   */
  async purge(before: number, options: PurgeOptions = {}): Promise<number> {
    checkPurgeBounds(before, options);
    const receiptsBefore = options.receiptsBefore;
    return await this.write((conn) =>
      this.inTransaction(conn, 'a purge', async () => {
        // Watermarks are read inside the transaction: writes are serialized,
        // so they cannot move between these reads and the DELETEs.
        const deleted = await deleteExported(conn, {
          table: 'readings',
          idColumn: 'seq',
          timeColumn: 'event_time',
          before,
          watermark: BigInt((await readMeta(conn, META_EXPORT_WATERMARK)) ?? '0'),
          floorKey: META_SEQ_FLOOR,
        });
        await deleteExported(conn, {
          table: 'dead_letters',
          idColumn: 'id',
          timeColumn: 'received_at',
          before,
          watermark: BigInt((await readMeta(conn, META_DEAD_LETTER_WATERMARK)) ?? '0'),
          floorKey: META_DEAD_LETTER_FLOOR,
        });
        if (receiptsBefore !== undefined) {
          await conn.run(
            'DELETE FROM ingest_receipts WHERE committed_at < $1',
            [toTimestamp(receiptsBefore)],
            [TIMESTAMP],
          );
        }
        if (options.mqttReceiptsBefore !== undefined) {
          await conn.run(
            "DELETE FROM ingest_receipts WHERE committed_at < $1 AND starts_with(idempotency_key, 'mqtt:')",
            [toTimestamp(options.mqttReceiptsBefore)],
            [TIMESTAMP],
          );
        }
        return deleted;
      }),
    );
  }
}

/**
 * The bronze Parquet layout of `exportReadings`: the rows of `readings` with
 * seq in (afterSeq, lastSeq], ordered by event time then seq, as ZSTD files
 * under `dir/date=YYYY-MM-DD/hour=HH/`. Shared with the PostgreSQL hot store,
 * which stages its rows in an in-memory DuckDB table of the same schema
 * (`stageReadings`), so both stores write byte-for-byte the same layout.
 */
export async function copyReadingsToParquet(
  conn: DuckDBConnection,
  afterSeq: bigint,
  lastSeq: bigint,
  dir: string,
): Promise<ExportedPartition[]> {
  mkdirSync(dir, { recursive: true });
  // Paths cannot be bound as parameters in COPY; `dir` comes from the
  // export job (a temp folder), never from a user.
  const target = dir.replaceAll("'", "''");
  await conn.run(
    `COPY (SELECT ${READING_COLUMNS}, strftime(event_time, '%Y-%m-%d') AS date, strftime(event_time, '%H') AS hour
           FROM readings WHERE seq > $1 AND seq <= $2 ORDER BY event_time, seq)
     TO '${target}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (date, hour), OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'part-{i}')`,
    [afterSeq, lastSeq],
    [BIGINT, BIGINT],
  );
  return listExportedPartitions(dir);
}

/**
 * Appends stored readings, seqs included, to a `readings` table created with
 * `DUCKDB_HOT_STORE_DDL` (for `copyReadingsToParquet` in another engine's
 * export).
 */
export async function stageReadings(
  conn: DuckDBConnection,
  rows: readonly StoredReading[],
): Promise<void> {
  const ingestTimes = new TimestampCache();
  await appendRows(conn, 'readings', READING_TYPES, rows, (cols, i, r) =>
    fillReading(cols, i, r, r.seq, ingestTimes),
  );
}

/**
 * Deletes the rows of `table` older than `before` whose id is at or below the
 * export watermark, and raises the table's id floor to the highest id deleted
 * (see `recoverCounters`). Must run inside the purge's transaction. Returns
 * the number of rows deleted.
 */
async function deleteExported(
  conn: DuckDBConnection,
  spec: {
    table: 'readings' | 'dead_letters';
    idColumn: 'seq' | 'id';
    timeColumn: 'event_time' | 'received_at';
    before: number;
    watermark: bigint;
    floorKey: string;
  },
): Promise<number> {
  const params = [toTimestamp(spec.before), spec.watermark];
  const types = [TIMESTAMP, BIGINT];
  const cond = `${spec.timeColumn} < $1 AND ${spec.idColumn} <= $2`;
  const maxDeleted = asNullableBigInt(
    (
      await conn.runAndReadAll(
        `SELECT max(${spec.idColumn}) FROM ${spec.table} WHERE ${cond}`,
        params,
        types,
      )
    ).getRows()[0]?.[0] ?? null,
  );
  if (maxDeleted === null) return 0;
  const deleted = await conn.run(`DELETE FROM ${spec.table} WHERE ${cond}`, params, types);
  const floor = BigInt((await readMeta(conn, spec.floorKey)) ?? '0');
  if (maxDeleted > floor) await writeMeta(conn, spec.floorKey, maxDeleted.toString());
  return deleted.rowsChanged;
}

function sameSensor(a: SensorRecord, b: SensorRecord): boolean {
  return (
    a.sensorType === b.sensorType &&
    a.unit === b.unit &&
    a.location === b.location &&
    a.origin === b.origin &&
    a.intervalMs === b.intervalMs &&
    a.firstSeen === b.firstSeen
  );
}

/** Config sensors overwrite with what they know; discovered ones only fill gaps. */
function mergeSensor(existing: SensorRecord, incoming: SensorRecord): SensorRecord {
  const pick = <T>(a: T | null, b: T | null): T | null =>
    incoming.origin === 'config' ? (b ?? a) : (a ?? b);
  const firstSeen =
    existing.firstSeen === null
      ? incoming.firstSeen
      : incoming.firstSeen === null
        ? existing.firstSeen
        : Math.min(existing.firstSeen, incoming.firstSeen);
  return {
    sensorId: existing.sensorId,
    sensorType: pick(existing.sensorType, incoming.sensorType),
    unit: pick(existing.unit, incoming.unit),
    location: pick(existing.location, incoming.location),
    origin: incoming.origin === 'config' ? 'config' : existing.origin,
    intervalMs: pick(existing.intervalMs, incoming.intervalMs),
    firstSeen,
  };
}

/**
 * Stages `rows` through an appender in chunks of DuckDB's vector size,
 * yielding to the event loop between chunks so a 10 000-row batch does not
 * stall other work. `fill` writes row `index` of `rows` at position `i` of
 * the column arrays. Must run inside a transaction: on failure the staged
 * rows are cleared so nothing is flushed outside it.
 */
async function appendRows<T>(
  conn: DuckDBConnection,
  table: string,
  types: readonly DuckDBType[],
  rows: readonly T[],
  fill: (cols: DuckDBValue[][], i: number, row: T, index: number) => void,
): Promise<void> {
  const appender: DuckDBAppender = await conn.createAppender(table);
  try {
    for (let offset = 0; offset < rows.length; offset += CHUNK_ROWS) {
      if (offset > 0) await yieldToEventLoop();
      const n = Math.min(CHUNK_ROWS, rows.length - offset);
      const cols: DuckDBValue[][] = types.map(() => new Array<DuckDBValue>(n));
      for (let i = 0; i < n; i++) fill(cols, i, rows[offset + i] as T, offset + i);
      const chunk = DuckDBDataChunk.create(types, n);
      chunk.setColumns(cols);
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } catch (err) {
    // Closing flushes, so staged rows must be dropped first. Errors here
    // only repeat the one being thrown; the caller rolls back regardless.
    try {
      appender.clear();
      appender.closeSync();
    } catch {
      /* see above */
    }
    throw err;
  }
  appender.closeSync();
}

/**
 * Remembers the last converted time. A group-committed batch usually shares
 * one ingest time, and each conversion allocates a BigInt and an object.
 */
class TimestampCache {
  private lastMs = Number.NaN;
  private lastValue: DuckDBTimestampValue | undefined;

  get(epochMs: number): DuckDBTimestampValue {
    if (epochMs !== this.lastMs || !this.lastValue) {
      this.lastValue = toTimestamp(epochMs);
      this.lastMs = epochMs;
    }
    return this.lastValue;
  }
}

function fillReading(
  cols: DuckDBValue[][],
  i: number,
  r: NewReading,
  seq: bigint,
  ingestTimes: TimestampCache,
): void {
  (cols[0] as DuckDBValue[])[i] = r.sensorId;
  (cols[1] as DuckDBValue[])[i] = r.sensorType;
  (cols[2] as DuckDBValue[])[i] = r.location;
  (cols[3] as DuckDBValue[])[i] = toTimestamp(r.eventTime);
  (cols[4] as DuckDBValue[])[i] = r.value;
  (cols[5] as DuckDBValue[])[i] = r.unit;
  (cols[6] as DuckDBValue[])[i] = r.anomalyScore;
  (cols[7] as DuckDBValue[])[i] = ingestTimes.get(r.ingestTime);
  (cols[8] as DuckDBValue[])[i] = r.source;
  (cols[9] as DuckDBValue[])[i] = r.batchId;
  (cols[10] as DuckDBValue[])[i] = seq;
  (cols[11] as DuckDBValue[])[i] = r.isAnomaly;
  (cols[12] as DuckDBValue[])[i] =
    r.anomalyReasons.length === 0 ? EMPTY_REASONS : listValue(r.anomalyReasons);
  (cols[13] as DuckDBValue[])[i] = r.imputed;
}

function fillDeadLetter(cols: DuckDBValue[][], i: number, d: DeadLetter, id: bigint): void {
  (cols[0] as DuckDBValue[])[i] = id;
  (cols[1] as DuckDBValue[])[i] = toTimestamp(d.receivedAt);
  (cols[2] as DuckDBValue[])[i] = d.source;
  (cols[3] as DuckDBValue[])[i] = d.origin;
  (cols[4] as DuckDBValue[])[i] = d.reason;
  (cols[5] as DuckDBValue[])[i] = d.message;
  (cols[6] as DuckDBValue[])[i] = d.raw;
}

function fillReceipt(cols: DuckDBValue[][], i: number, r: IngestReceipt): void {
  (cols[0] as DuckDBValue[])[i] = r.key;
  (cols[1] as DuckDBValue[])[i] = r.batchId;
  (cols[2] as DuckDBValue[])[i] = BigInt(r.accepted);
  (cols[3] as DuckDBValue[])[i] = BigInt(r.rejections.length);
  (cols[4] as DuckDBValue[])[i] = JSON.stringify(
    r.rejections.map((x) =>
      x.index === undefined
        ? { reason: x.reason, message: x.message }
        : { reason: x.reason, message: x.message, index: x.index },
    ),
  );
  (cols[5] as DuckDBValue[])[i] = toTimestamp(r.committedAt);
}

function toReceipt(row: DuckDBValue[]): IngestReceipt {
  return {
    key: asString(row[0]),
    batchId: asString(row[1]),
    accepted: Number(asBigInt(row[2])),
    rejections: JSON.parse(asString(row[4])) as ReceiptRejection[],
    committedAt: asTimestampMs(row[5]),
  };
}

function toStoredReading(row: DuckDBValue[]): StoredReading {
  return {
    sensorId: asString(row[0]),
    sensorType: asNullableString(row[1]),
    location: asNullableString(row[2]),
    eventTime: asTimestampMs(row[3]),
    value: asNullableNumber(row[4]),
    unit: asNullableString(row[5]),
    anomalyScore: asNullableNumber(row[6]),
    ingestTime: asTimestampMs(row[7]),
    source: asString(row[8]),
    batchId: asString(row[9]),
    seq: asBigInt(row[10]),
    isAnomaly: asBoolean(row[11]),
    anomalyReasons: asStringList(row[12]),
    imputed: asBoolean(row[13]),
  };
}

function toStoredDeadLetter(row: DuckDBValue[]): StoredDeadLetter {
  return {
    id: asBigInt(row[0]),
    receivedAt: asTimestampMs(row[1]),
    source: asString(row[2]),
    origin: asNullableString(row[3]),
    reason: asString(row[4]) as RejectReason,
    message: asString(row[5]),
    raw: asString(row[6]),
  };
}

function toSensorRecord(row: DuckDBValue[]): SensorRecord {
  const interval = asNullableBigInt(row[5]);
  return {
    sensorId: asString(row[0]),
    sensorType: asNullableString(row[1]),
    unit: asNullableString(row[2]),
    location: asNullableString(row[3]),
    origin: asString(row[4]) === 'config' ? 'config' : 'discovered',
    intervalMs: interval === null ? null : Number(interval),
    firstSeen: asNullableTimestampMs(row[6]),
  };
}

/**
 * Builds a WHERE clause from fixed SQL fragments and bound parameters; values
 * never enter the SQL text. `?` in a fragment is replaced by the next `$n`.
 */
class ParamSql {
  readonly values: DuckDBValue[] = [];
  readonly types: DuckDBType[] = [];
  private readonly conditions: string[] = [];

  param(value: DuckDBValue, type: DuckDBType): string {
    this.values.push(value);
    this.types.push(type);
    return `$${this.values.length}`;
  }

  where(fragment: string, value: DuckDBValue, type: DuckDBType): void {
    this.conditions.push(fragment.replace('?', this.param(value, type)));
  }

  whereRaw(fragment: string): void {
    this.conditions.push(fragment);
  }

  whereClause(): string {
    return this.conditions.length === 0 ? '' : ` WHERE ${this.conditions.join(' AND ')}`;
  }
}

async function countRows(
  conn: DuckDBConnection,
  table: 'readings' | 'dead_letters',
): Promise<number> {
  const row = (await conn.runAndReadAll(`SELECT count(*) FROM ${table}`)).getRows()[0];
  return Number(asBigInt(row?.[0] ?? null));
}

async function readMeta(conn: DuckDBConnection, key: string): Promise<string | null> {
  const rows = (
    await conn.runAndReadAll('SELECT value FROM canopy_meta WHERE key = $1', [key], [VARCHAR])
  ).getRows();
  return rows.length === 0 ? null : asString(rows[0]?.[0] ?? null);
}

async function writeMeta(conn: DuckDBConnection, key: string, value: string): Promise<void> {
  await conn.run(
    'INSERT OR REPLACE INTO canopy_meta VALUES ($1, $2)',
    [key, value],
    [VARCHAR, VARCHAR],
  );
}

async function rollbackQuietly(conn: DuckDBConnection, log?: Logger): Promise<void> {
  try {
    await conn.run('ROLLBACK');
  } catch (err) {
    // DuckDB may already have ended a failed transaction itself, in which
    // case there is nothing to roll back; anything else is worth a line.
    if (!/no transaction is active/i.test(errorMessage(err))) {
      log?.error({ err }, 'rollback failed');
    }
  }
}

/** The `date=…/hour=…/*.parquet` files that a partitioned COPY wrote under `dir`. */
function listExportedPartitions(dir: string): ExportedPartition[] {
  const partitions: ExportedPartition[] = [];
  for (const dateDir of readdirSync(dir).sort()) {
    const date = /^date=(\d{4}-\d{2}-\d{2})$/.exec(dateDir)?.[1];
    if (!date) continue;
    for (const hourDir of readdirSync(path.join(dir, dateDir)).sort()) {
      const hour = /^hour=(\d{2})$/.exec(hourDir)?.[1];
      if (!hour) continue;
      for (const file of readdirSync(path.join(dir, dateDir, hourDir)).sort()) {
        if (file.endsWith('.parquet')) {
          partitions.push({ date, hour, path: path.join(dir, dateDir, hourDir, file) });
        }
      }
    }
  }
  return partitions;
}

function closedError(): CanopyError {
  return new CanopyError('CANOPY_STORE_CLOSED', 'The hot store is closed or was not opened.');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function maxBigInt(...values: bigint[]): bigint {
  return values.reduce((a, b) => (b > a ? b : a));
}

// Stored at millisecond precision: TIMESTAMP holds microseconds, and every
// value Canopy writes is a whole number of milliseconds.
function toTimestamp(epochMs: number): DuckDBTimestampValue {
  return timestampValue(BigInt(Math.round(epochMs)) * 1000n);
}

// Narrowing helpers for result cells. A mismatch means the schema and this
// file disagree, which is a bug, not a condition callers can handle.
function typeMismatch(expected: string, value: DuckDBValue | undefined): Error {
  return new Error(`hot store: expected ${expected}, got ${String(value)}`);
}

function asString(v: DuckDBValue | undefined): string {
  if (typeof v !== 'string') throw typeMismatch('a string', v);
  return v;
}

function asNullableString(v: DuckDBValue | undefined): string | null {
  return v === null ? null : asString(v);
}

function asNumber(v: DuckDBValue | undefined): number {
  if (typeof v !== 'number') throw typeMismatch('a number', v);
  return v;
}

function asNullableNumber(v: DuckDBValue | undefined): number | null {
  return v === null ? null : asNumber(v);
}

function asBigInt(v: DuckDBValue | undefined): bigint {
  if (typeof v !== 'bigint') throw typeMismatch('a bigint', v);
  return v;
}

function asNullableBigInt(v: DuckDBValue | undefined): bigint | null {
  return v === null ? null : asBigInt(v);
}

function asBoolean(v: DuckDBValue | undefined): boolean {
  if (typeof v !== 'boolean') throw typeMismatch('a boolean', v);
  return v;
}

function asTimestampMs(v: DuckDBValue | undefined): number {
  if (!(v instanceof DuckDBTimestampValue)) throw typeMismatch('a timestamp', v);
  return Number(v.micros / 1000n);
}

function asNullableTimestampMs(v: DuckDBValue | undefined): number | null {
  return v === null ? null : asTimestampMs(v);
}

function asStringList(v: DuckDBValue | undefined): string[] {
  if (!(v instanceof DuckDBListValue)) throw typeMismatch('a list', v);
  return v.items.map((item) => asString(item));
}
