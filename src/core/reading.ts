/**
 * The reading: Canopy's unit of data, after decoding and validation.
 *
 * Field names are camelCase in TypeScript; the wire form (JSON), the stored
 * columns and the lake use the snake_case names of the data contract
 * (`sensor_id`, `event_time`, …). `toWire` / the stores do that mapping.
 */

/** A reading as accepted by validation, before the stream checks flag it. */
export interface Reading {
  sensorId: string;
  sensorType: string | null;
  location: string | null;
  /** Event time, epoch milliseconds (UTC). */
  eventTime: number;
  /** A finite number, or null for a known-missing value. */
  value: number | null;
  unit: string | null;
  /** The device's own anomaly score, if it sends one (0..1 by convention). */
  anomalyScore: number | null;
}

/** A reading as stored in the hot store: validated, flagged and stamped. */
export interface StoredReading extends Reading {
  /** When Canopy accepted it, epoch milliseconds. */
  ingestTime: number;
  /** Source instance name, e.g. `mqtt`, `http`, `poll:plants`. */
  source: string;
  /** Identifies the message or request the reading came in. */
  batchId: string;
  /** Monotonically increasing per store; assigned by the store on append. */
  seq: bigint;
  isAnomaly: boolean;
  /** Every anomaly rule that fired, e.g. `['range', 'zscore']`. */
  anomalyReasons: readonly string[];
  imputed: boolean;
}

/** What the stream checks add to a reading. */
export interface AnomalyFlags {
  isAnomaly: boolean;
  /** May be a shared frozen array: never mutate it. */
  anomalyReasons: readonly string[];
}

/** The wire form of a stored reading (snake_case JSON, ISO timestamps). */
export interface WireReading {
  sensor_id: string;
  sensor_type: string | null;
  location: string | null;
  timestamp: string;
  value: number | null;
  unit: string | null;
  anomaly_score: number | null;
  ingest_time: string;
  source: string;
  batch_id: string;
  seq: string;
  is_anomaly: boolean;
  anomaly_reasons: readonly string[];
  imputed: boolean;
}

export function toWire(r: StoredReading): WireReading {
  return {
    sensor_id: r.sensorId,
    sensor_type: r.sensorType,
    location: r.location,
    timestamp: new Date(r.eventTime).toISOString(),
    value: r.value,
    unit: r.unit,
    anomaly_score: r.anomalyScore,
    ingest_time: new Date(r.ingestTime).toISOString(),
    source: r.source,
    batch_id: r.batchId,
    seq: r.seq.toString(),
    is_anomaly: r.isAnomaly,
    anomaly_reasons: r.anomalyReasons,
    imputed: r.imputed,
  };
}
