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
  rejected: Rejection[];
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
