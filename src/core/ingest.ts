/**
 * The contracts between sources, the ingest pipeline and the stores.
 *
 * A source turns whatever its protocol delivers into `IngestMessage`s and
 * hands each to an `IngestSink`. The sink's promise settles only after the
 * readings (and any dead letters) are durably committed; the source
 * acknowledges to its peer (PUBACK, HTTP 2xx, bus ack) only then. If the
 * promise rejects, nothing was stored and the source must not acknowledge:
 * the peer retries.
 */
import type { RejectReason } from './errors.js';
import type { Reading } from './reading.js';

export type PayloadFormat = 'json' | 'ndjson' | 'csv' | 'csv-wide' | 'plants';

export interface IngestMessage {
  /** Source instance name, e.g. `mqtt`, `http`, `poll:plants`, `file`. */
  source: string;
  payload: Buffer | string;
  /** Explicit format; otherwise sniffed from contentType and content. */
  format?: PayloadFormat;
  contentType?: string;
  /** MQTT topic, URL, file name: kept with dead letters to trace them. */
  origin?: string;
  /** Receive time, epoch ms; defaults to the clock at submit. */
  receivedAt?: number;
  /**
   * For format `csv-wide`: the name of the column mapping (a key of
   * `ingest.wideCsv`, or a built-in such as `air-quality-uci`). Without it the
   * pipeline's default mapping applies, if it has one.
   */
  wideCsvMapping?: string;
  /**
   * Makes the submit idempotent. The sink commits a receipt under this key in
   * the same transaction as the message's readings and dead letters; a later
   * submit with a key already committed stores nothing and resolves with the
   * first result, marked `duplicate`. A submit while another with the same key
   * is in flight waits for it. Keys are kept for a retention period
   * (`store.receiptRetentionDays`); a key is trusted to name one payload.
   * Sources namespace their keys (`http:…`, `file:…`).
   */
  idempotencyKey?: string;
}

/** One record that was turned away, with where it was in the payload. */
export interface Rejection {
  reason: RejectReason;
  message: string;
  /** Index of the record in the payload (array index, line number - 1), if known. */
  index?: number;
  /** The raw record (or the whole payload when it could not be split). */
  raw: string;
}

export interface IngestResult {
  batchId: string;
  accepted: number;
  /**
   * For a duplicate, the rejections as first reported, but with `raw` empty:
   * receipts keep reason, message and index; the raw text is in the
   * dead-letter store.
   */
  rejected: Rejection[];
  /** True when the idempotency key was already committed: this call stored nothing. */
  duplicate?: boolean;
}

export interface IngestSink {
  submit(message: IngestMessage): Promise<IngestResult>;
  /**
   * Records a failure that produced no payload to decode (an endpoint that
   * answered 500, a timeout) as a dead letter; resolves after the commit.
   */
  submitDeadLetter(
    deadLetter: Omit<DeadLetter, 'receivedAt'> & { receivedAt?: number },
  ): Promise<void>;
}

/** A decoded but not yet validated record, with its position in the payload. */
export interface Candidate {
  record: unknown;
  index: number;
  raw: string;
}

export interface DeadLetter {
  receivedAt: number;
  source: string;
  origin: string | null;
  reason: RejectReason;
  message: string;
  raw: string;
}

export type { Reading };
