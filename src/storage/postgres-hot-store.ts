/**
 * The PostgreSQL hot store (`store.kind: postgres`): the tables of the DuckDB
 * store in a schema of their own (default `canopy_hot`), so that several
 * Canopy processes can write and read one hot window.
 *
 * Durability: `append` resolves after PostgreSQL's COMMIT returned, which with
 * the default `synchronous_commit = on` means the WAL was flushed.
 *
 * Seqs and dead-letter ids come from one counter row (`hot_state`), moved by
 * an UPDATE inside the append transaction. A rolled-back append therefore
 * leaves no gap, a purge never lowers the counter, and — the reason it is not
 * a SEQUENCE — the row lock serializes appenders across processes, so
 * transactions commit in seq order. Any snapshot then sees a prefix of the
 * seqs, which the export relies on: with a sequence, seq 10 could commit
 * after an export had already moved the watermark past 11, and never be
 * exported.
 *
 * `readings` is partitioned by UTC day of event time (`readings_pYYYYMMDD`,
 * no default partition). The append transaction creates the partitions its
 * batch needs; `open` and `purge` create today's and tomorrow's ahead, so the
 * ingest path rarely takes the parent's exclusive lock that creating one
 * needs. Every partition CREATE and DROP happens while holding the counter
 * row's lock, so two processes never race on one, and a purge never drops a
 * partition that an append is writing into. The purge drops a day partition
 * whole when every row in it may be purged, and deletes row by row otherwise.
 *
 * Readings are written with COPY (text format, via pg-copy-streams); dead
 * letters and receipts, which are few, with one INSERT over unnested arrays.
 * Schema migrations are versioned in `hot_schema_version` and applied at
 * `open` under an advisory lock.
 */
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { DuckDBInstance } from '@duckdb/node-api';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino, type Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.js';
import { CanopyError, type RejectReason } from '../core/errors.js';
import type { DeadLetter } from '../core/ingest.js';
import type { StoredReading } from '../core/reading.js';
import { SerialQueue } from '../core/serial-queue.js';
import type {
  AppendResult,
  CommitPosition,
  DeadLetterQuery,
  ExportBatch,
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
import { offlineDuckDbOptions } from './duckdb-file.js';
import { copyReadingsToParquet, DUCKDB_HOT_STORE_DDL, stageReadings } from './duckdb-hot-store.js';
import {
  describePostgresTarget,
  inPostgresTransaction,
  openPostgresPool,
  postgresPoolConfig,
  type PostgresConnectionOptions,
} from './postgres.js';
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

export interface PostgresHotStoreOptions extends PostgresConnectionOptions {
  logger?: Logger;
  /** Decides which day partitions `open` and `purge` create ahead (today's and tomorrow's). */
  clock?: Clock;
  /** The schema's migrations; tests pass a longer list to stand in for a newer Canopy. */
  migrations?: readonly HotStoreMigration[];
}

export interface HotStoreMigration {
  /** 1, 2, 3, …: contiguous and increasing. */
  readonly version: number;
  readonly description: string;
  /** Statements to run, given a function that schema-qualifies a table name. */
  statements(t: (name: string) => string): string[];
}

/** Records the applied migrations; the schema version is its highest `version`. */
export const HOT_SCHEMA_VERSION_TABLE = 'hot_schema_version';

/**
 * `sensor_id` is compared and ordered bytewise (COLLATE "C"), as DuckDB does,
 * so `listSensors` has one order whatever the database's locale. `raw` is
 * bytea: a rejected payload may hold NUL characters, which `text` cannot.
 * Indexes on the partitioned `readings` are created on every partition:
 * (event_time, seq) for the newest-first pages, (sensor_id, event_time, seq)
 * for per-sensor pages, imputation and the sensor summaries, and seq for the
 * export (rows in seq order) and the purge (a partition's max(seq)); seqs
 * only grow, so that index is appended to at its right edge.
 */
export const POSTGRES_HOT_STORE_MIGRATIONS: readonly HotStoreMigration[] = [
  {
    version: 1,
    description: 'readings partitioned by day, dead letters, sensors, receipts, counters',
    statements: (t) => [
      `CREATE TABLE ${t('readings')} (
        sensor_id       text COLLATE "C" NOT NULL,
        sensor_type     text,
        location        text,
        event_time      timestamptz NOT NULL,
        value           double precision,
        unit            text,
        anomaly_score   double precision,
        ingest_time     timestamptz NOT NULL,
        source          text NOT NULL,
        batch_id        text NOT NULL,
        seq             bigint NOT NULL,
        is_anomaly      boolean NOT NULL,
        anomaly_reasons text[] NOT NULL,
        imputed         boolean NOT NULL
      ) PARTITION BY RANGE (event_time)`,
      `CREATE INDEX readings_time_seq ON ${t('readings')} (event_time, seq)`,
      `CREATE INDEX readings_sensor_time_seq ON ${t('readings')} (sensor_id, event_time, seq)`,
      `CREATE INDEX readings_seq ON ${t('readings')} (seq)`,
      `CREATE TABLE ${t('dead_letters')} (
        id          bigint PRIMARY KEY,
        received_at timestamptz NOT NULL,
        source      text NOT NULL,
        origin      text,
        reason      text NOT NULL,
        message     text NOT NULL,
        raw         bytea NOT NULL
      )`,
      `CREATE INDEX dead_letters_received_at ON ${t('dead_letters')} (received_at)`,
      `CREATE TABLE ${t('sensors')} (
        sensor_id   text COLLATE "C" PRIMARY KEY,
        sensor_type text,
        unit        text,
        location    text,
        origin      text NOT NULL CHECK (origin IN ('config', 'discovered')),
        interval_ms bigint,
        first_seen  timestamptz
      )`,
      `CREATE TABLE ${t('ingest_receipts')} (
        idempotency_key text PRIMARY KEY,
        batch_id        text NOT NULL,
        accepted        bigint NOT NULL,
        rejected        bigint NOT NULL,
        rejections      text NOT NULL,
        committed_at    timestamptz NOT NULL
      )`,
      `CREATE INDEX ingest_receipts_committed_at ON ${t('ingest_receipts')} (committed_at)`,
      `CREATE TABLE ${t('hot_state')} (
        id                    smallint PRIMARY KEY CHECK (id = 1),
        last_seq              bigint NOT NULL,
        last_dead_letter_id   bigint NOT NULL,
        export_watermark      bigint NOT NULL,
        dead_letter_watermark bigint NOT NULL
      )`,
      `INSERT INTO ${t('hot_state')} VALUES (1, 0, 0, 0, 0)`,
    ],
  },
];

const DAY_MS = 86_400_000;
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: what an ISO text (and a partition name) holds. */
const MIN_TIME_MS = -62_135_596_800_000;
const MAX_TIME_MS = 253_402_300_799_999;
const MAX_RECEIPT_KEYS = 1_000;
/** Rows encoded per COPY chunk, with a yield to the event loop between chunks. */
const COPY_CHUNK_ROWS = 2_048;
/** Rows fetched per round trip while staging an export. */
const EXPORT_FETCH_ROWS = 10_000;
/** Imputed values per UPDATE. */
const IMPUTATION_CHUNK = 5_000;
/**
 * How long a purge waits for a lock. Dropping or creating a partition locks
 * the parent exclusively, which waits for running readers, while appends
 * wait for the purge (it holds the counter lock); past this, a drop falls
 * back to deleting the rows and a creation is left to the append that needs
 * the partition.
 */
const PURGE_LOCK_TIMEOUT = '2s';
/** Pool size: one writer at a time (the write queue) plus concurrent readers. */
const POOL_SIZE = 5;

/** Epoch ms as SQL, exact: extract(epoch) is numeric. */
const ms = (column: string): string => `(extract(epoch FROM ${column}) * 1000)::float8`;

/** COPY column order: seq first, so a row encoded before the seqs are known needs only a prefix. */
const COPY_COLUMNS =
  'seq, sensor_id, sensor_type, location, event_time, value, unit, anomaly_score, ingest_time, source, batch_id, is_anomaly, anomaly_reasons, imputed';
const READING_SELECT = `sensor_id, sensor_type, location, ${ms('event_time')}, value, unit, anomaly_score, ${ms('ingest_time')}, source, batch_id, seq, is_anomaly, anomaly_reasons, imputed`;
const DEAD_LETTER_SELECT = `id, ${ms('received_at')}, source, origin, reason, message, raw`;
const RECEIPT_SELECT = `idempotency_key, batch_id, accepted, rejected, rejections, ${ms('committed_at')}`;

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

/** A batch of readings encoded as COPY text, ready for its seqs. */
interface EncodedReadings {
  /** Per chunk, the rows' text after the seq column (each starting with a tab, ending with a newline). */
  chunks: string[][];
  /** UTC days (epoch ms of midnight) the batch's event times fall on. */
  days: Set<number>;
}

export class PostgresHotStore implements HotStore {
  private readonly schema: string;
  private readonly where: string;
  private readonly poolConfig: pg.PoolConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly migrations: readonly HotStoreMigration[];
  private readonly t: (name: string) => string;
  private state: State = 'new';
  private opening: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private pool: pg.Pool | undefined;
  /** Appends, purges and other writes of this process, one at a time in call order. */
  private readonly writes = new SerialQueue();
  /** Reads in flight, which `close` waits for. */
  private readonly reads = new Set<Promise<unknown>>();

  /** Throws CANOPY_CONFIG_INVALID for a schema name that is not a plain identifier. */
  constructor(options: PostgresHotStoreOptions) {
    this.poolConfig = postgresPoolConfig('store', options, POOL_SIZE);
    this.schema = options.schema;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ adapter: 'postgres' });
    this.clock = options.clock ?? systemClock;
    this.migrations = options.migrations ?? POSTGRES_HOT_STORE_MIGRATIONS;
    this.migrations.forEach((m, i) => {
      if (m.version !== i + 1) {
        throw new Error(
          `hot-store migrations must be numbered 1, 2, 3, …; #${i + 1} is ${m.version}`,
        );
      }
    });
    this.where = `${describePostgresTarget(options)} (schema ${options.schema})`;
    this.t = (name) => `"${this.schema}"."${name}"`;
  }

  /**
   * Connects, creates the schema if missing, migrates it and creates today's
   * and tomorrow's partitions. Idempotent; concurrent calls share one
   * attempt, and a failed attempt may be retried. Throws
   * CANOPY_STORE_OPEN_FAILED (server unreachable, schema newer than this
   * code; never with the password) or CANOPY_STORE_CLOSED once `close` was
   * called.
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
    // An append encodes its rows between BEGIN and COPY: a server that goes
    // away then must fail the commit, not the process (see openPostgresPool).
    const pool = openPostgresPool(this.poolConfig, (err, when) =>
      this.log.warn({ err, when }, 'PostgreSQL connection lost'),
    );
    try {
      await inPostgresTransaction(pool, (client) => this.migrate(client));
      await inPostgresTransaction(pool, async (client) => {
        await this.lockCounters(client);
        await this.ensurePartitions(client, this.daysAhead());
      });
    } catch (cause) {
      await pool.end().catch(() => undefined);
      if (cause instanceof CanopyError) throw cause;
      throw new CanopyError(
        'CANOPY_STORE_OPEN_FAILED',
        `Cannot open the PostgreSQL hot store ${this.where}: ${errorMessage(cause)}`,
        { cause },
      );
    }
    this.pool = pool;
    this.state = 'open';
    this.log.info({ target: this.where }, 'hot store opened');
  }

  private async migrate(client: pg.PoolClient): Promise<void> {
    // Two processes starting together migrate one after the other.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`canopy-hot:${this.schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`);
    const versions = this.t(HOT_SCHEMA_VERSION_TABLE);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${versions} (version integer NOT NULL PRIMARY KEY, description text NOT NULL)`,
    );
    const { rows } = await client.query<{ v: number }>(
      `SELECT coalesce(max(version), 0)::integer AS v FROM ${versions}`,
    );
    const current = rows[0]?.v ?? 0;
    if (current > this.migrations.length) {
      throw new CanopyError(
        'CANOPY_STORE_OPEN_FAILED',
        `The PostgreSQL hot store ${this.where} has schema version ${current}, written by a newer Canopy; this one knows version ${this.migrations.length}.`,
      );
    }
    for (const m of this.migrations.filter((x) => x.version > current)) {
      for (const statement of m.statements(this.t)) await client.query(statement);
      await client.query(`INSERT INTO ${versions} VALUES ($1, $2)`, [m.version, m.description]);
      this.log.info({ version: m.version }, `hot-store schema migrated: ${m.description}`);
    }
  }

  /** Today and tomorrow (UTC) by the clock: the days new readings will most likely fall on. */
  private daysAhead(): number[] {
    const today = Math.floor(this.clock.now() / DAY_MS) * DAY_MS;
    return [today, today + DAY_MS];
  }

  /**
   * Waits for queued writes and reads in flight, then closes the pool.
   * Idempotent. Every later call throws CANOPY_STORE_CLOSED.
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
    await Promise.allSettled([...this.reads]);
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
    this.state = 'closed';
    if (wasOpen) this.log.info({ target: this.where }, 'hot store closed');
  }

  /** Queues `task` behind this process's other writes; rejects with CANOPY_STORE_CLOSED unless open. */
  private write<T>(task: (pool: pg.Pool) => Promise<T>): Promise<T> {
    const pool = this.pool;
    if (this.state !== 'open' || !pool) return Promise.reject(closedError());
    return this.writes.run(() => task(pool));
  }

  /** Runs `task` now on the pool (reads run concurrently); rejects with CANOPY_STORE_CLOSED unless open. */
  private read<T>(task: (pool: pg.Pool) => Promise<T>): Promise<T> {
    const pool = this.pool;
    if (this.state !== 'open' || !pool) return Promise.reject(closedError());
    const running = task(pool);
    const tracked = running.finally(() => this.reads.delete(tracked));
    this.reads.add(tracked);
    tracked.catch(() => undefined);
    return running;
  }

  /** Rows as arrays, in the order of the SELECT list. */
  private async rows(
    pool: pg.Pool | pg.PoolClient,
    text: string,
    values: unknown[] = [],
  ): Promise<unknown[][]> {
    return (await pool.query<unknown[]>({ text, values, rowMode: 'array' })).rows;
  }

  /**
   * One transaction; on any failure it is rolled back and this throws
   * CANOPY_STORE_COMMIT_FAILED (or the CanopyError `body` threw) with the
   * cause: nothing of the call is stored.
   */
  private async transaction<T>(
    pool: pg.Pool,
    what: string,
    body: (client: pg.PoolClient) => Promise<T>,
  ): Promise<T> {
    try {
      return await inPostgresTransaction(pool, body);
    } catch (cause) {
      if (cause instanceof CanopyError) throw cause;
      throw new CanopyError(
        'CANOPY_STORE_COMMIT_FAILED',
        `The hot store could not commit ${what}: ${errorMessage(cause)}`,
        { cause },
      );
    }
  }

  /**
   * Takes the counter row's lock until the transaction ends: appends, purges
   * and partition changes of every process then run one at a time.
   */
  private async lockCounters(client: pg.PoolClient): Promise<void> {
    await client.query(`SELECT 1 FROM ${this.t('hot_state')} WHERE id = 1 FOR UPDATE`);
  }

  /** Creates the missing day partitions among `days`. The caller holds the counter lock. */
  private async ensurePartitions(client: pg.PoolClient, days: Iterable<number>): Promise<void> {
    const names = new Map([...days].map((day) => [partitionName(day), day]));
    const missing = await this.rows(
      client,
      `SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(format('%I.%I', $2::text, name)) IS NULL`,
      [[...names.keys()], this.schema],
    );
    for (const [name] of missing) {
      const day = names.get(str(name)) as number;
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.t(str(name))} PARTITION OF ${this.t('readings')}
           FOR VALUES FROM ('${isoTime(day)}') TO ('${isoTime(day + DAY_MS)}')`,
      );
      this.log.info({ partition: name }, 'hot-store day partition created');
    }
  }

  /**
   * Readings, dead letters and receipts in one transaction; resolves after
   * COMMIT. Calls from this process run one at a time in call order; calls
   * from other processes wait for the counter lock. On failure (a value no
   * column can hold, a receipt key already stored, a lost connection)
   * nothing of the call is stored and it throws CANOPY_STORE_COMMIT_FAILED
   * with the cause; the caller may retry. If the connection is lost while
   * COMMIT is in flight the outcome is unknown, as with any database: a
   * retry may store the batch twice (receipts catch keyed messages, the lake
   * deduplicates the rest).
   */
  append(
    readings: readonly NewReading[],
    deadLetters: readonly DeadLetter[],
    receipts: readonly IngestReceipt[] = [],
  ): Promise<AppendResult> {
    return this.write(async (pool) => {
      if (readings.length === 0 && deadLetters.length === 0 && receipts.length === 0)
        return { firstSeq: null, lastSeq: null };
      return await this.transaction(pool, 'a batch of readings', async (client) => {
        // Encoded before the counter is locked: a value no column can hold fails early.
        const encoded = await encodeReadings(readings);
        const letters = deadLetterColumns(deadLetters);
        const [counters] = await this.rows(
          client,
          `UPDATE ${this.t('hot_state')}
              SET last_seq = last_seq + $1, last_dead_letter_id = last_dead_letter_id + $2
            WHERE id = 1 RETURNING last_seq, last_dead_letter_id`,
          [readings.length, deadLetters.length],
        );
        const lastSeq = BigInt(str(counters?.[0]));
        const firstSeq = lastSeq - BigInt(readings.length) + 1n;
        const firstId = BigInt(str(counters?.[1])) - BigInt(deadLetters.length) + 1n;
        if (readings.length > 0) {
          await this.ensurePartitions(client, encoded.days);
          await this.copyReadings(client, encoded, firstSeq);
        }
        if (deadLetters.length > 0) {
          await client.query(
            `INSERT INTO ${this.t('dead_letters')} (id, received_at, source, origin, reason, message, raw)
             SELECT $1::bigint + n - 1, received_at, source, origin, reason, message, raw
               FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[])
                    WITH ORDINALITY AS d(received_at, source, origin, reason, message, raw, n)`,
            [firstId.toString(), ...letters],
          );
        }
        if (receipts.length > 0) {
          await client.query(
            `INSERT INTO ${this.t('ingest_receipts')} (idempotency_key, batch_id, accepted, rejected, rejections, committed_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::timestamptz[])`,
            receiptColumns(receipts),
          );
        }
        return readings.length === 0 ? { firstSeq: null, lastSeq: null } : { firstSeq, lastSeq };
      });
    });
  }

  private async copyReadings(
    client: pg.PoolClient,
    encoded: EncodedReadings,
    firstSeq: bigint,
  ): Promise<void> {
    let seq = firstSeq;
    // Seqs only here: the rows were encoded before the counter was read.
    const lines = function* (): Generator<string> {
      for (const chunk of encoded.chunks) {
        let text = '';
        for (const row of chunk) text += (seq++).toString() + row;
        yield text;
      }
    };
    const copy = client.query(
      copyFrom(`COPY ${this.t('readings')} (${COPY_COLUMNS}) FROM STDIN (FORMAT text)`),
    );
    await pipeline(Readable.from(lines(), { objectMode: false }), copy);
  }

  /** Throws CANOPY_API_BAD_REQUEST for more than 1 000 keys or a key that is not a string. */
  async findReceipts(keys: readonly string[]): Promise<Map<string, IngestReceipt>> {
    if (keys.length > MAX_RECEIPT_KEYS || keys.some((k) => typeof k !== 'string')) {
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `findReceipts takes at most ${MAX_RECEIPT_KEYS} string keys`,
      );
    }
    return await this.read(async (pool) => {
      const found = new Map<string, IngestReceipt>();
      if (keys.length === 0) return found;
      const rows = await this.rows(
        pool,
        `SELECT ${RECEIPT_SELECT} FROM ${this.t('ingest_receipts')} WHERE idempotency_key = ANY($1::text[])`,
        [[...new Set(keys)]],
      );
      const byKey = new Map(rows.map((row) => [str(row[0]), toReceipt(row)]));
      // In the order asked, as the DuckDB store answers.
      for (const key of keys) {
        const receipt = byKey.get(key);
        if (receipt) found.set(key, receipt);
      }
      return found;
    });
  }

  async readingsAfter(afterSeq: bigint, limit: number): Promise<StoredReading[]> {
    const max = checkLimit(limit);
    return await this.read(async (pool) =>
      (
        await this.rows(
          pool,
          `SELECT ${READING_SELECT} FROM ${this.t('readings')} WHERE seq > $1::bigint ORDER BY seq LIMIT $2`,
          [afterSeq.toString(), max],
        )
      ).map(toStoredReading),
    );
  }

  /**
   * The counter row's committed values: an append moves them in the
   * transaction that writes those seqs and ids, so all at or below are committed.
   */
  commitPosition(): Promise<CommitPosition> {
    return this.read(async (pool) => {
      const [row] = await this.rows(
        pool,
        `SELECT last_seq, last_dead_letter_id FROM ${this.t('hot_state')}`,
      );
      return { seq: BigInt(str(row?.[0])), deadLetterId: BigInt(str(row?.[1])) };
    });
  }

  /** Throws CANOPY_API_BAD_REQUEST for a bad limit, bound or cursor. */
  async queryReadings(query: ReadingQuery): Promise<Page<StoredReading>> {
    const limit = checkLimit(query.limit);
    const from = checkOptionalTime('from', query.from);
    const to = checkOptionalTime('to', query.to);
    const after = query.cursor === undefined ? undefined : decodeReadingCursor(query.cursor);
    const sql = new ParamSql();
    if (query.sensorId !== undefined) sql.where(`sensor_id = ${sql.param(query.sensorId)}`);
    if (query.sensorType !== undefined) sql.where(`sensor_type = ${sql.param(query.sensorType)}`);
    if (query.location !== undefined) sql.where(`location = ${sql.param(query.location)}`);
    if (from !== undefined) sql.where(`event_time >= ${sql.param(boundTime(from))}::timestamptz`);
    if (to !== undefined) sql.where(`event_time < ${sql.param(boundTime(to))}::timestamptz`);
    if (after) {
      // A row comparison: served by the (event_time, seq) index in order.
      sql.where(
        `(event_time, seq) < (${sql.param(boundTime(after.eventTime))}::timestamptz, ${sql.param(after.seq.toString())}::bigint)`,
      );
    }
    const text = `SELECT ${READING_SELECT} FROM ${this.t('readings')}${sql.whereClause()}
      ORDER BY event_time DESC, seq DESC LIMIT ${sql.param(limit + 1)}`;
    return await this.read(async (pool) => {
      const rows = await this.rows(pool, text, sql.values);
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
    return await this.read(async (pool) => {
      const result = new Map<string, number[]>();
      if (perSensor === 0) return result;
      const r = this.t('readings');
      // A window over the whole table would sort every row. Instead, walk
      // the distinct sensor ids through the (sensor_id, …) index (a loose
      // index scan), then take each sensor's newest N from the same index.
      const rows = await this.rows(
        pool,
        `WITH RECURSIVE ids AS (
           SELECT min(sensor_id) AS id FROM ${r}
           UNION ALL
           SELECT (SELECT min(sensor_id) FROM ${r} WHERE sensor_id > ids.id) FROM ids WHERE ids.id IS NOT NULL)
         SELECT ids.id, v.value
           FROM ids CROSS JOIN LATERAL (
             SELECT value, event_time, seq FROM ${r}
              WHERE sensor_id = ids.id AND value IS NOT NULL
              ORDER BY event_time DESC, seq DESC LIMIT $1) v
          ORDER BY ids.id, v.event_time, v.seq`,
        [perSensor],
      );
      for (const row of rows) {
        const id = str(row[0]);
        let values = result.get(id);
        if (!values) result.set(id, (values = []));
        values.push(num(row[1]));
      }
      return result;
    });
  }

  countReadings(): Promise<number> {
    return this.read(async (pool) => {
      const [row] = await this.rows(pool, `SELECT count(*) FROM ${this.t('readings')}`);
      return Number(str(row?.[0]));
    });
  }

  /**
   * Applies the records as if one by one in order, in one transaction: a
   * config record overwrites the fields it knows (its nulls keep the stored
   * value) and makes the sensor `config`; a discovered record only fills
   * null fields and never demotes a config sensor; `firstSeen` keeps the
   * earliest time (`least` ignores nulls). Throws CANOPY_API_BAD_REQUEST for
   * a record without id or with an unknown origin.
   *
   * Cost: at most two statements whatever the number of records. The
   * records of one sensor fold into one config part (its fields: the last
   * non-null value of any config record) applied first, then one discovered
   * part (the first non-null value of any discovered record): for every
   * field, applying records in order gives `last config ?? stored ?? first
   * discovered`, which is what the two parts give. Each statement is one
   * INSERT … ON CONFLICT over unnested arrays, rows in sensor-id order, so two
   * processes registering the same sensors lock them in the same order.
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
    const merge = (column: string): string =>
      `${column} = CASE WHEN excluded.origin = 'config' THEN coalesce(excluded.${column}, s.${column})
                        ELSE coalesce(s.${column}, excluded.${column}) END`;
    const upsert = `INSERT INTO ${this.t('sensors')} AS s
        (sensor_id, sensor_type, unit, location, origin, interval_ms, first_seen)
      SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::bigint[], $7::timestamptz[])
       ORDER BY 1
      ON CONFLICT (sensor_id) DO UPDATE SET
        ${['sensor_type', 'unit', 'location', 'interval_ms'].map(merge).join(',\n        ')},
        origin = CASE WHEN excluded.origin = 'config' THEN 'config' ELSE s.origin END,
        first_seen = least(s.first_seen, excluded.first_seen)`;
    const { config, discovered } = foldSensors(sensors);
    return await this.write(async (pool) => {
      if (sensors.length === 0) return;
      await this.transaction(pool, 'the sensor registry', async (client) => {
        for (const part of [config, discovered]) {
          if (part.length === 0) continue;
          await client.query(upsert, [
            part.map((s) => s.sensorId),
            part.map((s) => s.sensorType),
            part.map((s) => s.unit),
            part.map((s) => s.location),
            part.map((s) => s.origin),
            part.map((s) => (s.intervalMs === null ? null : Math.round(s.intervalMs))),
            part.map((s) => (s.firstSeen === null ? null : isoTime(s.firstSeen))),
          ]);
        }
      });
    });
  }

  listSensors(): Promise<SensorSummary[]> {
    const r = this.t('readings');
    return this.read(async (pool) => {
      const rows = await this.rows(
        pool,
        `SELECT s.sensor_id, s.sensor_type, s.unit, s.location, s.origin, s.interval_ms, ${ms('s.first_seen')},
                ${ms('agg.last_seen')}, newest.value, agg.reading_count, agg.anomaly_count
           FROM ${this.t('sensors')} s
           CROSS JOIN LATERAL (
             SELECT max(event_time) AS last_seen, count(*) AS reading_count,
                    count(*) FILTER (WHERE is_anomaly) AS anomaly_count
               FROM ${r} WHERE sensor_id = s.sensor_id) agg
           LEFT JOIN LATERAL (
             SELECT value FROM ${r} WHERE sensor_id = s.sensor_id
              ORDER BY event_time DESC, seq DESC LIMIT 1) newest ON true
          ORDER BY s.sensor_id`,
      );
      return rows.map((row) => ({
        ...toSensorRecord(row),
        lastSeen: nullable(row[7], num),
        lastValue: nullable(row[8], num),
        readingCount: Number(str(row[9])),
        anomalyCount: Number(str(row[10])),
      }));
    });
  }

  /** Newest first, by id. Throws CANOPY_API_BAD_REQUEST for a bad limit or cursor. */
  async listDeadLetters(query: DeadLetterQuery): Promise<Page<StoredDeadLetter>> {
    const limit = checkLimit(query.limit);
    const before = query.cursor === undefined ? undefined : decodeDeadLetterCursor(query.cursor);
    const sql = new ParamSql();
    if (query.reason !== undefined) sql.where(`reason = ${sql.param(query.reason)}`);
    if (query.source !== undefined) sql.where(`source = ${sql.param(query.source)}`);
    if (before !== undefined) sql.where(`id < ${sql.param(before.toString())}::bigint`);
    const text = `SELECT ${DEAD_LETTER_SELECT} FROM ${this.t('dead_letters')}${sql.whereClause()}
      ORDER BY id DESC LIMIT ${sql.param(limit + 1)}`;
    return await this.read(async (pool) => {
      const rows = await this.rows(pool, text, sql.values);
      const items = rows.slice(0, limit).map(toStoredDeadLetter);
      const last = items[items.length - 1];
      return {
        items,
        nextCursor: rows.length > limit && last ? encodeDeadLetterCursor(last.id) : null,
      };
    });
  }

  countDeadLetters(): Promise<number> {
    return this.read(async (pool) => {
      const [row] = await this.rows(pool, `SELECT count(*) FROM ${this.t('dead_letters')}`);
      return Number(str(row?.[0]));
    });
  }

  async deadLettersAfter(afterId: bigint, limit: number): Promise<StoredDeadLetter[]> {
    const max = checkLimit(limit);
    return await this.read(async (pool) =>
      (
        await this.rows(
          pool,
          `SELECT ${DEAD_LETTER_SELECT} FROM ${this.t('dead_letters')} WHERE id > $1::bigint ORDER BY id LIMIT $2`,
          [afterId.toString(), max],
        )
      ).map(toStoredDeadLetter),
    );
  }

  getDeadLetterWatermark(): Promise<bigint> {
    return this.readState('dead_letter_watermark');
  }

  getExportWatermark(): Promise<bigint> {
    return this.readState('export_watermark');
  }

  private readState(column: 'export_watermark' | 'dead_letter_watermark'): Promise<bigint> {
    return this.read(async (pool) => {
      const [row] = await this.rows(pool, `SELECT ${column} FROM ${this.t('hot_state')}`);
      return BigInt(str(row?.[0]));
    });
  }

  /** Throws CANOPY_API_BAD_REQUEST for a negative id or one beyond the last dead letter. */
  setDeadLetterWatermark(id: bigint): Promise<void> {
    return this.setWatermark('dead_letter_watermark', 'last_dead_letter_id', id, 'dead-letter');
  }

  /**
   * Records the highest seq exported to the lake. It may move back (a
   * re-export), but never beyond the last committed seq: a watermark ahead of
   * the data would let `purge` delete rows that were never exported.
   * Throws CANOPY_API_BAD_REQUEST for a negative or too-high value.
   */
  setExportWatermark(seq: bigint): Promise<void> {
    return this.setWatermark('export_watermark', 'last_seq', seq, 'export');
  }

  private async setWatermark(
    column: 'export_watermark' | 'dead_letter_watermark',
    limitColumn: 'last_seq' | 'last_dead_letter_id',
    value: bigint,
    what: string,
  ): Promise<void> {
    if (typeof value !== 'bigint' || value < 0n) {
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `${what} watermark must be a non-negative bigint, got ${String(value)}`,
      );
    }
    return await this.write(async (pool) => {
      // Checked against the committed counter in the same statement.
      const [row] = await this.transaction(pool, `the ${what} watermark`, (client) =>
        this.rows(
          client,
          `UPDATE ${this.t('hot_state')} SET ${column} = CASE WHEN $1::bigint <= ${limitColumn} THEN $1::bigint ELSE ${column} END
            WHERE id = 1 RETURNING ${limitColumn}`,
          [value.toString()],
        ),
      );
      const limit = BigInt(str(row?.[0]));
      if (value > limit) {
        throw new CanopyError(
          'CANOPY_API_BAD_REQUEST',
          `${what} watermark ${value} is beyond the last committed ${what === 'export' ? 'seq' : 'dead letter'} ${limit}`,
        );
      }
    });
  }

  /**
   * Stages the rows in an in-memory DuckDB table of the DuckDB store's schema
   * and writes them with its COPY (`copyReadingsToParquet`), so the lake gets
   * the same files whichever store is configured. The bound and the rows are
   * read in one REPEATABLE READ snapshot, the rows page by page through a
   * server-side cursor.
   */
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
    if (typeof afterSeq !== 'bigint') {
      throw new CanopyError('CANOPY_API_BAD_REQUEST', 'afterSeq must be a bigint');
    }
    return await this.read(async (pool) => {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const [bound] = await this.rows(
          client,
          `SELECT max(seq), count(*) FROM (
             SELECT seq FROM ${this.t('readings')} WHERE seq > $1::bigint ORDER BY seq LIMIT $2) b`,
          [afterSeq.toString(), maxRows],
        );
        if (bound?.[0] === null || bound?.[0] === undefined) return null;
        const lastSeq = BigInt(str(bound[0]));
        const rows = Number(str(bound[1]));
        // Both bounds are bigints, so inlining them is safe (DECLARE takes no parameters).
        await client.query(
          `DECLARE export_rows NO SCROLL CURSOR FOR
             SELECT ${READING_SELECT} FROM ${this.t('readings')}
              WHERE seq > ${afterSeq.toString()} AND seq <= ${lastSeq.toString()}`,
        );
        const duck = await DuckDBInstance.create(
          ':memory:',
          offlineDuckDbOptions(path.join(tmpdir(), 'canopy-duckdb-extensions')),
        );
        const conn = await duck.connect();
        try {
          await conn.run(readingsDdl());
          for (;;) {
            const page = await this.rows(
              client,
              `FETCH FORWARD ${EXPORT_FETCH_ROWS} FROM export_rows`,
            );
            if (page.length > 0) await stageReadings(conn, page.map(toStoredReading));
            if (page.length < EXPORT_FETCH_ROWS) break;
          }
          const partitions = await copyReadingsToParquet(conn, afterSeq, lastSeq, dir);
          return { rows, lastSeq, partitions };
        } finally {
          conn.closeSync();
          duck.closeSync();
        }
      } finally {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        client.release(broken);
      }
    });
  }

  async applyImputations(values: readonly ImputedValue[]): Promise<number> {
    checkImputedValues(values);
    if (values.length === 0) return 0;
    return await this.write((pool) =>
      this.transaction(pool, 'imputed values', async (client) => {
        let changed = 0;
        for (let start = 0; start < values.length; start += IMPUTATION_CHUNK) {
          const chunk = values.slice(start, start + IMPUTATION_CHUNK);
          const result = await client.query(
            `UPDATE ${this.t('readings')} AS r SET value = v.value, imputed = true
               FROM unnest($1::text[], $2::timestamptz[], $3::float8[]) AS v(sensor_id, event_time, value)
              WHERE r.sensor_id = v.sensor_id AND r.event_time = v.event_time
                AND r.value IS NULL AND NOT r.imputed`,
            [
              chunk.map((v) => v.sensorId),
              chunk.map((v) => boundTime(v.eventTime)),
              chunk.map((v) => v.value),
            ],
          );
          changed += result.rowCount ?? 0;
        }
        return changed;
      }),
    );
  }

  /**
   * In one transaction, holding the counter lock (no append runs meanwhile,
   * in any process): drops each day partition whose rows may all be purged
   * (event time before `before`, seq at or below the export watermark) —
   * unless running readers hold it past PURGE_LOCK_TIMEOUT, when its rows
   * are left to the DELETE —, deletes the other purgeable readings,
   * deletes exported dead letters received before `before` and, with
   * `receiptsBefore`, old receipts; then creates today's and tomorrow's
   * partitions if missing. Returns the number of readings removed. Throws
   * CANOPY_API_BAD_REQUEST for a non-finite bound, CANOPY_STORE_COMMIT_FAILED
   * if the purge fails (nothing is then removed).
   */
  async purge(before: number, options: PurgeOptions = {}): Promise<number> {
    checkPurgeBounds(before, options);
    const receiptsBefore = options.receiptsBefore;
    const beforeTime = boundTime(before);
    return await this.write((pool) =>
      this.transaction(pool, 'a purge', async (client) => {
        await this.lockCounters(client);
        await client.query(`SET LOCAL lock_timeout = '${PURGE_LOCK_TIMEOUT}'`);
        const [marks] = await this.rows(
          client,
          `SELECT export_watermark, dead_letter_watermark FROM ${this.t('hot_state')}`,
        );
        const watermark = BigInt(str(marks?.[0]));
        let removed = 0;
        for (const [name, day] of await this.listPartitions(client)) {
          if (day >= before) continue;
          // Both maxima come from the ends of the partition's indexes.
          const [stats] = await this.rows(
            client,
            `SELECT max(seq), ${ms('max(event_time)')} FROM ${this.t(name)}`,
          );
          const maxSeq = nullable(stats?.[0], str);
          const droppable =
            maxSeq === null
              ? day + DAY_MS <= before // empty: only once its whole day is past
              : BigInt(maxSeq) <= watermark && num(stats?.[1]) < before;
          if (!droppable) continue;
          const [count] = await this.rows(client, `SELECT count(*) FROM ${this.t(name)}`);
          const dropped = await this.unlessLockTimesOut(client, async () => {
            await client.query(`DROP TABLE ${this.t(name)}`);
            this.log.info({ partition: name }, 'hot-store day partition dropped');
          });
          if (dropped) removed += Number(str(count?.[0]));
          else this.log.warn({ partition: name }, 'partition busy: its rows are deleted instead');
        }
        const deleted = await client.query(
          `DELETE FROM ${this.t('readings')} WHERE event_time < $1::timestamptz AND seq <= $2::bigint`,
          [beforeTime, watermark.toString()],
        );
        removed += deleted.rowCount ?? 0;
        await client.query(
          `DELETE FROM ${this.t('dead_letters')} WHERE received_at < $1::timestamptz AND id <= $2::bigint`,
          [beforeTime, str(marks?.[1])],
        );
        if (receiptsBefore !== undefined) {
          await client.query(
            `DELETE FROM ${this.t('ingest_receipts')} WHERE committed_at < $1::timestamptz`,
            [boundTime(receiptsBefore)],
          );
        }
        if (options.mqttReceiptsBefore !== undefined) {
          await client.query(
            `DELETE FROM ${this.t('ingest_receipts')} WHERE committed_at < $1::timestamptz AND idempotency_key LIKE 'mqtt:%'`,
            [boundTime(options.mqttReceiptsBefore)],
          );
        }
        await this.unlessLockTimesOut(client, () =>
          this.ensurePartitions(client, this.daysAhead()),
        );
        return removed;
      }),
    );
  }

  /** This store's day partitions of `readings`, by name, with the epoch ms of their day. */
  private async listPartitions(client: pg.PoolClient): Promise<Array<[string, number]>> {
    const rows = await this.rows(
      client,
      `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
      [this.t('readings')],
    );
    const out: Array<[string, number]> = [];
    for (const [relname] of rows) {
      const day = partitionDay(str(relname));
      if (day !== null) out.push([str(relname), day]);
    }
    return out;
  }

  /**
   * Runs `work` inside a savepoint; if a lock wait in it reached
   * `lock_timeout`, rolls back to the savepoint and returns false, leaving
   * the transaction usable. Other errors propagate.
   */
  private async unlessLockTimesOut(
    client: pg.PoolClient,
    work: () => Promise<void>,
  ): Promise<boolean> {
    await client.query('SAVEPOINT unless_lock_times_out');
    try {
      await work();
      await client.query('RELEASE SAVEPOINT unless_lock_times_out');
      return true;
    } catch (err) {
      if ((err as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) throw err;
      await client.query('ROLLBACK TO SAVEPOINT unless_lock_times_out');
      return false;
    }
  }
}

/** SQLSTATE of a lock wait that reached `lock_timeout`. */
const LOCK_NOT_AVAILABLE = '55P03';

/** `readings_pYYYYMMDD` of the UTC day starting at `day` (epoch ms). */
function partitionName(day: number): string {
  return `readings_p${isoTime(day).slice(0, 10).replaceAll('-', '')}`;
}

/** The epoch ms of a partition's day, or null for a table that is not one of ours. */
function partitionDay(name: string): number | null {
  const m = /^readings_p(\d{4})(\d{2})(\d{2})$/.exec(name);
  if (!m) return null;
  const day = Date.parse(`${m[1]}-${m[2]}-${m[3]}T00:00:00Z`);
  return Number.isNaN(day) ? null : day;
}

/** The DuckDB store's `readings` table, in which an export stages its rows. */
function readingsDdl(): string {
  const ddl = DUCKDB_HOT_STORE_DDL.find((s) => /^CREATE TABLE IF NOT EXISTS readings\b/.test(s));
  if (!ddl) throw new Error('hot store: the DuckDB schema has no readings table');
  return ddl;
}

/**
 * ISO 8601 text (UTC, milliseconds), which PostgreSQL reads exactly. Throws a
 * RangeError for a time outside years 1–9999 (or not a number), which fails
 * the append it is part of.
 */
function isoTime(epochMs: number): string {
  if (!(epochMs >= MIN_TIME_MS && epochMs <= MAX_TIME_MS)) {
    throw new RangeError(
      `time ${String(epochMs)} is outside what the PostgreSQL hot store holds (years 1 to 9999)`,
    );
  }
  return new Date(epochMs).toISOString();
}

/** A query bound: times beyond what is stored compare as ±infinity. */
function boundTime(epochMs: number): string {
  if (epochMs < MIN_TIME_MS) return '-infinity';
  if (epochMs > MAX_TIME_MS) return 'infinity';
  return new Date(epochMs).toISOString();
}

/**
 * Folds the records of each sensor into at most one config record and one
 * discovered record (see `upsertSensors`), each list sorted by sensor id.
 * Both parts carry the earliest `firstSeen` of all the sensor's records.
 */
function foldSensors(sensors: readonly SensorRecord[]): {
  config: SensorRecord[];
  discovered: SensorRecord[];
} {
  const config = new Map<string, SensorRecord>();
  const discovered = new Map<string, SensorRecord>();
  const firstSeen = new Map<string, number | null>();
  for (const r of sensors) {
    const seen = firstSeen.get(r.sensorId) ?? null;
    firstSeen.set(
      r.sensorId,
      seen === null ? r.firstSeen : r.firstSeen === null ? seen : Math.min(seen, r.firstSeen),
    );
    const parts = r.origin === 'config' ? config : discovered;
    const prev = parts.get(r.sensorId);
    // Config: a later non-null value wins. Discovered: the first non-null value stays.
    const pick = <T>(a: T | null, b: T | null): T | null =>
      r.origin === 'config' ? (b ?? a) : (a ?? b);
    parts.set(
      r.sensorId,
      prev === undefined
        ? { ...r }
        : {
            ...prev,
            sensorType: pick(prev.sensorType, r.sensorType),
            unit: pick(prev.unit, r.unit),
            location: pick(prev.location, r.location),
            intervalMs: pick(prev.intervalMs, r.intervalMs),
          },
    );
  }
  const finish = (parts: Map<string, SensorRecord>): SensorRecord[] =>
    [...parts.values()]
      .map((s) => ({ ...s, firstSeen: firstSeen.get(s.sensorId) ?? null }))
      .sort((a, b) => (a.sensorId < b.sensorId ? -1 : a.sensorId > b.sensorId ? 1 : 0));
  return { config: finish(config), discovered: finish(discovered) };
}

// COPY text format: backslash, tab, newline and carriage return are escaped; \N is NULL.
const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
};

function copyText(s: string): string {
  return COPY_SPECIAL.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c] as string) : s;
}

/** A non-null text field: a null here fails the COPY, as a NOT NULL column must. */
function copyField(s: string | null): string {
  return s === null || s === undefined ? '\\N' : copyText(s);
}

/** `String(-0)` is `0`; PostgreSQL keeps the sign, as DuckDB does. */
function copyNumber(n: number | null): string {
  if (n === null || n === undefined) return '\\N';
  return Object.is(n, -0) ? '-0' : String(n);
}

/** A text[] literal, every element quoted, then escaped for COPY. */
function copyArray(items: readonly string[]): string {
  if (items.length === 0) return '{}';
  return copyText(`{${items.map((s) => `"${s.replace(/["\\]/g, '\\$&')}"`).join(',')}}`);
}

/**
 * Encodes each reading as COPY text after its seq (see COPY_COLUMNS), in
 * chunks, yielding to the event loop between them so a 10 000-row batch does
 * not stall other work. Throws (failing the append) for a time no
 * `timestamptz` holds.
 */
async function encodeReadings(readings: readonly NewReading[]): Promise<EncodedReadings> {
  const chunks: string[][] = [];
  const days = new Set<number>();
  let lastIngestMs = Number.NaN;
  let lastIngestText = '';
  for (let offset = 0; offset < readings.length; offset += COPY_CHUNK_ROWS) {
    if (offset > 0) await yieldToEventLoop();
    const end = Math.min(readings.length, offset + COPY_CHUNK_ROWS);
    const chunk: string[] = [];
    for (let i = offset; i < end; i++) {
      const r = readings[i] as NewReading;
      // A group commit usually shares one ingest time.
      if (r.ingestTime !== lastIngestMs) {
        lastIngestText = isoTime(r.ingestTime);
        lastIngestMs = r.ingestTime;
      }
      days.add(Math.floor(r.eventTime / DAY_MS) * DAY_MS);
      chunk.push(
        `\t${copyField(r.sensorId)}\t${copyField(r.sensorType)}\t${copyField(r.location)}\t${isoTime(r.eventTime)}\t${copyNumber(r.value)}\t${copyField(r.unit)}\t${copyNumber(r.anomalyScore)}\t${lastIngestText}\t${copyField(r.source)}\t${copyField(r.batchId)}\t${r.isAnomaly ? 't' : 'f'}\t${copyArray(r.anomalyReasons)}\t${r.imputed ? 't' : 'f'}\n`,
      );
    }
    chunks.push(chunk);
  }
  return { chunks, days };
}

/**
 * PostgreSQL text cannot hold NUL, and a dead letter's message may quote a
 * payload that has one: it is replaced (U+FFFD) in the text columns. The raw
 * payload is stored as bytes and comes back exactly.
 */
function storableText(s: string | null): string | null {
  return typeof s === 'string' && s.includes('\0') ? s.replaceAll('\0', '\uFFFD') : s;
}

/** The unnest arrays of the dead-letter INSERT ($2…$7). */
function deadLetterColumns(letters: readonly DeadLetter[]): unknown[][] {
  return [
    letters.map((d) => isoTime(d.receivedAt)),
    letters.map((d) => storableText(d.source)),
    letters.map((d) => storableText(d.origin)),
    letters.map((d) => storableText(d.reason)),
    letters.map((d) => storableText(d.message)),
    letters.map((d) => (typeof d.raw === 'string' ? Buffer.from(d.raw, 'utf8') : d.raw)),
  ];
}

/** The unnest arrays of the receipt INSERT; rejections as JSON text without their raw text. */
function receiptColumns(receipts: readonly IngestReceipt[]): unknown[][] {
  return [
    receipts.map((r) => r.key),
    receipts.map((r) => r.batchId),
    receipts.map((r) => r.accepted),
    receipts.map((r) => r.rejections.length),
    receipts.map((r) =>
      JSON.stringify(
        r.rejections.map((x) =>
          x.index === undefined
            ? { reason: x.reason, message: x.message }
            : { reason: x.reason, message: x.message, index: x.index },
        ),
      ),
    ),
    receipts.map((r) => isoTime(r.committedAt)),
  ];
}

/** Parameters numbered as they are added; values never enter the SQL text. */
class ParamSql {
  readonly values: unknown[] = [];
  private readonly conditions: string[] = [];

  param(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }

  where(condition: string): void {
    this.conditions.push(condition);
  }

  whereClause(): string {
    return this.conditions.length === 0 ? '' : ` WHERE ${this.conditions.join(' AND ')}`;
  }
}

function toStoredReading(row: unknown[]): StoredReading {
  return {
    sensorId: str(row[0]),
    sensorType: nullable(row[1], str),
    location: nullable(row[2], str),
    eventTime: num(row[3]),
    value: nullable(row[4], num),
    unit: nullable(row[5], str),
    anomalyScore: nullable(row[6], num),
    ingestTime: num(row[7]),
    source: str(row[8]),
    batchId: str(row[9]),
    seq: BigInt(str(row[10])),
    isAnomaly: bool(row[11]),
    anomalyReasons: strings(row[12]),
    imputed: bool(row[13]),
  };
}

function toStoredDeadLetter(row: unknown[]): StoredDeadLetter {
  const raw = row[6];
  if (!Buffer.isBuffer(raw)) throw typeMismatch('bytes', raw);
  return {
    id: BigInt(str(row[0])),
    receivedAt: num(row[1]),
    source: str(row[2]),
    origin: nullable(row[3], str),
    reason: str(row[4]) as RejectReason,
    message: str(row[5]),
    raw: raw.toString('utf8'),
  };
}

function toReceipt(row: unknown[]): IngestReceipt {
  return {
    key: str(row[0]),
    batchId: str(row[1]),
    accepted: Number(str(row[2])),
    rejections: JSON.parse(str(row[4])) as ReceiptRejection[],
    committedAt: num(row[5]),
  };
}

function toSensorRecord(row: unknown[]): SensorRecord {
  return {
    sensorId: str(row[0]),
    sensorType: nullable(row[1], str),
    unit: nullable(row[2], str),
    location: nullable(row[3], str),
    origin: str(row[4]) === 'config' ? 'config' : 'discovered',
    intervalMs: nullable(row[5], (v) => Number(str(v))),
    firstSeen: nullable(row[6], num),
  };
}

function closedError(): CanopyError {
  return new CanopyError('CANOPY_STORE_CLOSED', 'The hot store is closed or was not opened.');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Narrowing helpers for result cells (pg returns int8 as text, float8 as
// number, text[] as an array). A mismatch means the schema and this file
// disagree, which is a bug, not a condition callers can handle.
function typeMismatch(expected: string, value: unknown): Error {
  return new Error(`hot store: expected ${expected}, got ${typeof value} ${String(value)}`);
}

function str(v: unknown): string {
  if (typeof v !== 'string') throw typeMismatch('a string', v);
  return v;
}

function num(v: unknown): number {
  if (typeof v !== 'number') throw typeMismatch('a number', v);
  return v;
}

function bool(v: unknown): boolean {
  if (typeof v !== 'boolean') throw typeMismatch('a boolean', v);
  return v;
}

function strings(v: unknown): string[] {
  if (!Array.isArray(v)) throw typeMismatch('a text array', v);
  return v.map(str);
}

function nullable<T>(v: unknown, read: (v: unknown) => T): T | null {
  return v === null ? null : read(v);
}
