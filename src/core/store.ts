/**
 * The hot-store contract. Every adapter (DuckDB now, PostgreSQL later) passes
 * the one conformance suite in `src/storage/hot-store.conformance.ts`.
 */
import type { RejectReason } from './errors.js';
import type { DeadLetter } from './ingest.js';
import type { AnomalyFlags, Reading, StoredReading } from './reading.js';

/** A reading ready to store: validated, flagged, stamped; the store adds `seq`. */
export interface NewReading extends Reading, AnomalyFlags {
  ingestTime: number;
  source: string;
  batchId: string;
  imputed: boolean;
}

export interface ReadingQuery {
  sensorId?: string;
  sensorType?: string;
  location?: string;
  /** Inclusive lower bound on event time, epoch ms. */
  from?: number;
  /** Exclusive upper bound on event time, epoch ms. */
  to?: number;
  /** 1..10 000. */
  limit: number;
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor?: string;
}

export interface Page<T> {
  items: T[];
  /** Present when there may be more rows; pass it back as `cursor`. */
  nextCursor: string | null;
}

export interface SensorRecord {
  sensorId: string;
  sensorType: string | null;
  unit: string | null;
  location: string | null;
  /** Where the sensor is known from: the config file, or first sight of a reading. */
  origin: 'config' | 'discovered';
  /** Expected interval between readings, ms (null = unknown). */
  intervalMs: number | null;
  firstSeen: number | null;
}

export interface SensorSummary extends SensorRecord {
  lastSeen: number | null;
  lastValue: number | null;
  /** Readings of this sensor in the hot store. */
  readingCount: number;
  anomalyCount: number;
}

export interface DeadLetterQuery {
  reason?: string;
  source?: string;
  limit: number;
  cursor?: string;
}

export interface StoredDeadLetter extends DeadLetter {
  id: bigint;
}

/** A rejection as a receipt keeps it: without the raw text (that is in the dead letter). */
export interface ReceiptRejection {
  reason: RejectReason;
  message: string;
  index?: number;
}

/**
 * The record that a message with an idempotency key was committed, written in
 * the same transaction as its readings and dead letters, so that it exists if
 * and only if they do.
 */
export interface IngestReceipt {
  key: string;
  batchId: string;
  /** Readings stored. */
  accepted: number;
  rejections: ReceiptRejection[];
  /** Epoch ms, by the pipeline's clock; receipts older than the retention are purged. */
  committedAt: number;
}

export interface PurgeOptions {
  /** Also delete receipts committed before this time (epoch ms). Receipts are kept when absent. */
  receiptsBefore?: number;
  /**
   * Also delete receipts of MQTT messages (keys `mqtt:…`, see
   * src/sources/mqtt-key.ts) committed before this time: they guard against
   * a broker's redelivery within a session only, and there are many.
   */
  mqttReceiptsBefore?: number;
}

export interface AppendResult {
  /** Seq of the first and last reading written; null when no reading was written. */
  firstSeq: bigint | null;
  lastSeq: bigint | null;
}

/** One partition file written by `exportReadings`. */
export interface ExportedPartition {
  /** Event date, `YYYY-MM-DD` (UTC). */
  date: string;
  /** Event hour, `00`–`23` (UTC). */
  hour: string;
  /** Local Parquet file holding the partition's rows of this export. */
  path: string;
}

/** A predicted value for a reading stored without one (imputation write-back). */
export interface ImputedValue {
  sensorId: string;
  /** Epoch ms. */
  eventTime: number;
  /** Finite. */
  value: number;
}

export interface ExportBatch {
  /** Rows exported: those with seq in (afterSeq, lastSeq]. */
  rows: number;
  lastSeq: bigint;
  partitions: ExportedPartition[];
}

export interface CommitPosition {
  seq: bigint;
  deadLetterId: bigint;
}

export interface HotStore {
  /** Creates tables if needed and recovers the seq counter. Idempotent. */
  open(): Promise<void>;
  /** Flushes and closes. Further calls throw CANOPY_STORE_CLOSED. */
  close(): Promise<void>;

  /**
   * Writes readings, dead letters and receipts in one transaction and resolves
   * only once it is durably committed. On rejection nothing of the call was
   * written. Seqs are assigned in array order and are strictly increasing
   * across calls. A receipt whose key is already stored (or repeated within
   * the call) fails the whole call with CANOPY_STORE_COMMIT_FAILED: the store
   * is the last guard against storing a message twice.
   */
  append(
    readings: readonly NewReading[],
    deadLetters: readonly DeadLetter[],
    receipts?: readonly IngestReceipt[],
  ): Promise<AppendResult>;
  /** The committed receipts among `keys` (absent keys are left out). At most 1 000 keys. */
  findReceipts(keys: readonly string[]): Promise<Map<string, IngestReceipt>>;

  /** Newest first: ordered by event time descending, then seq descending. */
  queryReadings(query: ReadingQuery): Promise<Page<StoredReading>>;
  /**
   * Committed readings with seq above `afterSeq`, lowest seq first, at most
   * `limit` (1..10 000): how a process without the pipeline (the jobs and api
   * roles) follows what others commit. Commits become visible in seq order,
   * so a reader that resumes after the last seq it saw misses none (purged
   * readings aside).
   */
  readingsAfter(afterSeq: bigint, limit: number): Promise<StoredReading[]>;
  /**
   * The highest seq and dead-letter id committed so far (0 before the
   * first): where a follower of `readingsAfter` and `deadLettersAfter` starts.
   */
  commitPosition(): Promise<CommitPosition>;
  /** The last `perSensor` non-null values of every sensor, oldest first (to warm stream checks). */
  recentValues(perSensor: number): Promise<Map<string, number[]>>;
  countReadings(): Promise<number>;

  /**
   * In one transaction: sets `value` and `imputed = true` on every stored
   * reading at each (sensor, event time) whose value is null and which is not
   * yet imputed. Readings with a value, or already imputed, are left alone,
   * so applying the same values again changes nothing. Returns the number of
   * readings changed. Throws CANOPY_API_BAD_REQUEST for a non-finite value.
   */
  applyImputations(values: readonly ImputedValue[]): Promise<number>;

  /** Inserts sensors not yet known; for known ones, fills fields that are null. Config sensors overwrite. */
  upsertSensors(sensors: readonly SensorRecord[]): Promise<void>;
  listSensors(): Promise<SensorSummary[]>;

  /** Newest first. */
  listDeadLetters(query: DeadLetterQuery): Promise<Page<StoredDeadLetter>>;
  countDeadLetters(): Promise<number>;

  /** Dead letters with id above `afterId`, lowest id first, at most `limit` (1..10 000). */
  deadLettersAfter(afterId: bigint, limit: number): Promise<StoredDeadLetter[]>;
  /** Highest dead-letter id exported to the lake; 0 before any export. */
  getDeadLetterWatermark(): Promise<bigint>;
  /** Throws CANOPY_API_BAD_REQUEST for a negative id or one beyond the last dead letter. */
  setDeadLetterWatermark(id: bigint): Promise<void>;

  /** Highest seq exported to the lake; 0 before any export. */
  getExportWatermark(): Promise<bigint>;
  setExportWatermark(seq: bigint): Promise<void>;

  /**
   * Writes the committed readings with seq above `afterSeq` — at most
   * `maxRows` of them, lowest seqs first — into `dir` as ZSTD Parquet, one
   * file per event date and hour (`dir/date=YYYY-MM-DD/hour=HH/*.parquet`,
   * partition columns not repeated inside the files). Returns null when no
   * row is above `afterSeq`. Writes nothing to the store: the caller
   * uploads the files and then advances the watermark.
   */
  exportReadings(afterSeq: bigint, maxRows: number, dir: string): Promise<ExportBatch | null>;

  /**
   * In one transaction: deletes readings whose event time is before `before`
   * and whose seq is at or below the export watermark, and dead letters
   * received before `before` whose id is at or below the dead-letter
   * watermark (nothing not yet exported to the lake is ever deleted), and,
   * with `receiptsBefore`, receipts committed before it. Ids and seqs are
   * never reused afterwards. Returns the number of readings deleted.
   */
  purge(before: number, options?: PurgeOptions): Promise<number>;
}
