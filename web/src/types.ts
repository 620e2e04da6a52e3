/**
 * The API's wire shapes, as the dashboard reads them (docs/api.md and
 * /work/notes' dashboard contract): snake_case, ISO 8601 times, numbers that
 * may be null.
 */

export type Health = 'ok' | 'late' | 'silent' | 'unknown';

export interface SeverityCounts {
  critical: number;
  warning: number;
  info: number;
}

export interface OverviewSensor {
  sensor_id: string;
  sensor_type: string | null;
  location: string | null;
  unit: string | null;
  last_value: number | null;
  last_seen: string | null;
  health: Health;
  anomalies: number;
}

export interface Overview {
  time: string;
  activeSensors: number;
  totalSensors: number;
  readingsPerSecond: number;
  sensors: OverviewSensor[];
  openAlerts: SeverityCounts;
  freshness: {
    lastReadingAt: string | null;
    lastExportAt: string | null;
    lastSilverAt: string | null;
  };
}

export interface LiveStats {
  time: string;
  readingsPerSecond: number;
  activeSensors: number;
  openAlerts: SeverityCounts;
}

export interface LiveReading {
  sensor_id: string;
  sensor_type: string | null;
  location: string | null;
  unit: string | null;
  timestamp: string;
  value: number | null;
  imputed: boolean;
  is_anomaly: boolean;
}

/** [bucket start epoch ms, mean, min, max, imputed readings in the bucket] */
export type SeriesPoint = [number, number | null, number | null, number | null, number];

export interface SeriesResponse {
  from: string;
  to: string;
  bucketMs: number;
  downsampled: boolean;
  series: {
    sensor_id: string;
    sensor_type: string | null;
    unit: string | null;
    points: SeriesPoint[];
  }[];
}

export interface Sensor {
  sensor_id: string;
  sensor_type: string | null;
  unit: string | null;
  location: string | null;
  last_seen: string | null;
  last_value: number | null;
  reading_count: number;
  anomaly_count: number;
}

export interface LocationCell {
  location: string;
  site: string | null;
  floor: string | null;
  zone: string | null;
  value: number | null;
  sensors: string[];
  last_seen: string | null;
}

export interface LocationsResponse {
  measure: string;
  unit: string | null;
  cells: LocationCell[];
}

export interface Anomaly {
  sensor_id: string;
  sensor_type: string | null;
  location: string | null;
  timestamp: string;
  value: number | null;
  reasons: string[];
}

export interface AnomaliesResponse {
  /** Oldest first; when more matched than the limit, the newest `limit` and `truncated`. */
  items: Anomaly[];
  reasons: string[];
  truncated?: boolean;
}

export type AlertState = 'open' | 'escalated' | 'acknowledged' | 'resolved';

export interface Alert {
  id: string;
  rule_id: string;
  subject: string;
  sensor_id: string | null;
  location: string | null;
  severity: string;
  state: AlertState;
  summary: string;
  value: number | null;
  threshold: number | null;
  opened_at: string;
  updated_at: string | null;
  escalated_at: string | null;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  resolved_at: string | null;
  snoozed_until: string | null;
  tier: number | null;
  last_notified_at: string | null;
  notified_channels: string[] | null;
}

export interface AlertEvent {
  id: string | number;
  at: string;
  kind: string;
  actor: string | null;
  from_state: string | null;
  to_state: string | null;
  severity: string | null;
  note: string | null;
  value: number | null;
}

export interface AlertNotification {
  id: string | number;
  event: string;
  channel: string;
  status: string;
  attempts: number;
  created_at: string;
  delivered_at: string | null;
  last_error: string | null;
}

export interface AlertDetail {
  alert: Alert;
  events: AlertEvent[];
  notifications: AlertNotification[];
}

export interface DeadLetter {
  id: string;
  received_at: string;
  source: string;
  origin: string | null;
  reason: string;
  message: string;
  raw: string | null;
}

export interface WorkflowRun {
  id: string;
  workflow: string;
  slot: string | null;
  trigger: string;
  state: string;
  created_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  deadline_missed: boolean;
  error: string | null;
}

export interface Pipeline {
  ingest: { readingsPerSecond: number; perMinute: [number, number][] };
  /** Dead letters exported to the lake since `since` (the last 24 h). */
  deadLetters: { since: string; byReason: { reason: string; count: number }[]; total: number };
  lake: {
    partitions: {
      layer: string;
      table: string;
      date: string | null;
      files: number;
      rows: number | null;
      bytes: number;
    }[];
  };
  workflows: { enabled: boolean; runs: WorkflowRun[]; deadlineMisses: number };
  quality: QualityResponse;
}

export interface SuiteSummary {
  suite: string;
  table: string;
  success: boolean;
  expectations: number;
  failed: number;
}

export interface QualityResponse {
  suites: (SuiteSummary & { run_id: string; finished_at: string })[];
  runs: {
    run_id: string;
    started_at: string;
    finished_at: string;
    success: boolean;
    suites: SuiteSummary[];
  }[];
}

export interface QueryResponse {
  columns: { name: string; type: string }[];
  rows: unknown[][];
  row_count: number;
  truncated: boolean;
  elapsed_ms: number;
}

export interface Plant {
  plant_id: string;
  /** `plant-<id>`; its readings are `<sensor_id>.soil_moisture` and `<sensor_id>.temperature`. */
  sensor_id: string;
  sensors: { soil_moisture: string; temperature: string };
  location: string | null;
  name: string | null;
  soil_moisture: number | null;
  temperature: number | null;
  last_watered: string | null;
  botanist: { name?: string; email?: string; phone?: string } | null;
  recorded_at: string | null;
}
