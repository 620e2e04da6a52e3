/**
 * Options and result shapes of the ingest decoders and validator.
 */
import type { Candidate, Rejection } from '../core/ingest.js';
import type { Reading } from '../core/reading.js';

/** Bounds that keep one payload from exhausting memory or filling the store with junk. */
export interface IngestLimits {
  /** Bytes of the encoded payload (UTF-8). Default 10 MiB. */
  maxPayloadBytes: number;
  /** Readings one payload may carry, after multi-measure and wide rows are expanded. Default 100 000. */
  maxReadingsPerPayload: number;
  /** UTF-16 code units of sensor_id, sensor_type, unit and location. Default 256. */
  maxStringLength: number;
  /** How far an event time may lie ahead of the clock. Default 5 minutes. */
  maxFutureSkewMs: number;
}

export const DEFAULT_LIMITS: IngestLimits = Object.freeze({
  maxPayloadBytes: 10 * 1024 * 1024,
  maxReadingsPerPayload: 100_000,
  maxStringLength: 256,
  maxFutureSkewMs: 300_000,
});

/** How the date (and optional time) cells of a wide CSV are written. */
export type WideTimestampFormat = 'iso' | 'dmy' | 'mdy' | 'ymd' | 'epoch_s' | 'epoch_ms';

/**
 * Column mapping for wide CSV files (one row, many measures), such as the UCI
 * air-quality data set. Column names are matched exactly (after trimming)
 * against the header.
 */
export interface WideCsvMapping {
  /** Sensor ids become `${deviceId}.${column}`. */
  deviceId: string;
  location?: string;
  /** Field delimiter, default ','. */
  delimiter?: string;
  timestamp: {
    /** Column holding the date (or the whole timestamp). */
    column: string;
    /** Column holding the time of day (`h:mm[:ss[.fff]]`) when it is separate from the date. */
    timeColumn?: string;
    format: WideTimestampFormat;
    /**
     * Offset of the file's clock from UTC, in minutes (60 = UTC+1). Applies to
     * dmy/mdy/ymd and to ISO strings without a zone; epoch values are UTC already.
     */
    utcOffsetMinutes?: number;
  };
  /** Sentinel meaning "missing" (e.g. -200), compared numerically; such cells become null readings. */
  missingValue?: number;
  /**
   * Measure columns. Omitted: every column other than the timestamp ones.
   * Per column: sensorType (default: the column name lower-cased) and unit (default none).
   */
  columns?: Record<string, { sensorType?: string; unit?: string }>;
}

export interface DecodeOptions {
  limits: IngestLimits;
  /** Required when the format is 'csv-wide'. */
  wideCsv?: WideCsvMapping;
  /** Location given to plants-API readings; default 'conservatory'. */
  plantsLocation?: string;
}

export interface DecodeResult {
  candidates: Candidate[];
  rejections: Rejection[];
}

export interface ValidationResult {
  readings: Reading[];
  rejections: Rejection[];
}
