/**
 * The metrics registry: one prom-client Registry per Canopy instance (not the
 * global default), so tests and several instances in one process never share
 * counters. Names follow Prometheus conventions: `canopy_` prefix, units in
 * names, `_total` for counters. Label sets stay bounded: no per-sensor labels;
 * `sensor_type` is bounded by the known types (others count as `other`).
 * docs/metrics.md is generated from this registry (`npm run docs`), and a test
 * fails when the two differ or a name breaks the conventions.
 *
 * `recording: false` builds the same registry with every recording call a
 * no-op: what the bench compares against to measure what metrics cost on the
 * ingest path (bench/scenarios/metrics-cost.ts).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BUILT_IN_SENSOR_TYPES } from '../core/sensor-types.js';

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (CPU, memory, event-loop lag, GC), prefixed `canopy_`. */
  defaultMetrics?: boolean;
  /**
   * false: every recording call of Canopy's own metrics does nothing (for
   * measuring what they cost); pair it with `defaultMetrics: false`.
   */
  recording?: boolean;
}

/** What the accepted-readings count needs of a committed row. */
export interface CountedReading {
  source: string;
  sensorType: string | null;
}

/**
 * The `sensor_type` label: a known type as itself, a reading without a type as
 * `none`, and any other type as `other`, so a device sending made-up types
 * cannot grow the label set.
 */
export class SensorTypeLabels {
  private readonly known: ReadonlySet<string>;

  /** `knownTypes`: the types in config; the built-in types are always known. */
  constructor(knownTypes: Iterable<string> = []) {
    this.known = new Set([...Object.keys(BUILT_IN_SENSOR_TYPES), ...knownTypes]);
  }

  label(sensorType: string | null): string {
    if (sensorType === null) return 'none';
    return this.known.has(sensorType) ? sensorType : 'other';
  }
}

const MUTED_METHODS = {
  inc() {},
  dec() {},
  set() {},
  observe() {},
  startTimer: () => () => 0,
};

export class Metrics {
  readonly registry = new Registry();
  readonly recording: boolean;

  readonly readingsAccepted = new Counter({
    name: 'canopy_readings_accepted_total',
    help: 'Readings validated and durably committed to the hot store, by source and sensor type (types not configured or built in count as `other`, readings without a type as `none`).',
    labelNames: ['source', 'sensor_type'] as const,
    registers: [this.registry],
  });

  readonly deadLetters = new Counter({
    name: 'canopy_dead_letters_total',
    help: 'Records or payloads sent to the dead-letter store, by source and reason code.',
    labelNames: ['source', 'reason'] as const,
    registers: [this.registry],
  });

  readonly anomalies = new Counter({
    name: 'canopy_stream_anomalies_total',
    help: 'Readings flagged by a stream check, by rule (range, zscore, device).',
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });

  readonly commitDuration = new Histogram({
    name: 'canopy_commit_duration_seconds',
    help: 'Time to durably commit one group of readings to the hot store.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly ingestLatency = new Histogram({
    name: 'canopy_ingest_latency_seconds',
    help: "Time from a message's receipt (its source's receive time, else its submit) to the durable commit of its readings and dead letters, once per committed message (duplicates and failed commits not counted).",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly commitBatchSize = new Histogram({
    name: 'canopy_commit_batch_readings',
    help: 'Readings written per group commit.',
    buckets: [1, 10, 100, 1000, 5000, 10000, 20000],
    registers: [this.registry],
  });

  readonly commitFailures = new Counter({
    name: 'canopy_commit_failures_total',
    help: 'Group commits that failed; their readings were not acknowledged.',
    registers: [this.registry],
  });

  readonly pendingReadings = new Gauge({
    name: 'canopy_ingest_pending_readings',
    help: 'Readings waiting for a commit (the ingest queue depth).',
    registers: [this.registry],
  });

  readonly overloadRejections = new Counter({
    name: 'canopy_ingest_overload_rejections_total',
    help: 'Messages turned away because the ingest queue was full, by source.',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly pollRequests = new Counter({
    name: 'canopy_poll_requests_total',
    help: 'Requests made by HTTP polling sources, by source and result (ok, http_error, failed).',
    labelNames: ['source', 'result'] as const,
    registers: [this.registry],
  });

  readonly hotStoreRows = new Gauge({
    name: 'canopy_hot_store_rows',
    help: 'Rows in the hot-store readings table, sampled at scrape time.',
    registers: [this.registry],
  });

  readonly duplicateMessages = new Counter({
    name: 'canopy_ingest_duplicates_total',
    help: 'Messages whose idempotency key was already committed (nothing stored again), by source.',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly landingFiles = new Counter({
    name: 'canopy_landing_files_total',
    help: 'Files taken from the landing area, by outcome (processed, failed).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly purgedRows = new Counter({
    name: 'canopy_hot_store_purged_rows_total',
    help: 'Rows removed from the hot store by the retention purge.',
    registers: [this.registry],
  });

  readonly bronzeExportedRows = new Counter({
    name: 'canopy_bronze_exported_rows_total',
    help: 'Hot-store rows exported to the bronze layer of the lake.',
    registers: [this.registry],
  });

  readonly bronzeCompactedFiles = new Counter({
    name: 'canopy_bronze_compacted_files_total',
    help: 'Small bronze files merged into one file per closed hour partition (and deleted).',
    registers: [this.registry],
  });

  readonly housekeepingFailures = new Counter({
    name: 'canopy_housekeeping_failures_total',
    help: 'Failed runs of the housekeeping pass, by step (export, compact, purge).',
    labelNames: ['step'] as const,
    registers: [this.registry],
  });

  readonly qualitySuiteSuccess = new Gauge({
    name: 'canopy_quality_suite_success',
    help: "1 when the suite's latest run passed, 0 when it failed, by suite; read from the lake's run history at scrape time.",
    labelNames: ['suite'] as const,
    registers: [this.registry],
  });

  readonly qualitySuiteFailedExpectations = new Gauge({
    name: 'canopy_quality_suite_failed_expectations',
    help: "Expectations that failed in the suite's latest run (warnings included), by suite.",
    labelNames: ['suite'] as const,
    registers: [this.registry],
  });

  readonly qualitySuiteLastRun = new Gauge({
    name: 'canopy_quality_suite_last_run_timestamp_seconds',
    help: "When the suite's latest run finished, Unix time.",
    labelNames: ['suite'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'canopy_http_request_duration_seconds',
    help: 'HTTP API request latency, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly liveClients = new Gauge({
    name: 'canopy_live_clients',
    help: 'Dashboard clients connected to the live event stream (`GET /api/live`).',
    registers: [this.registry],
  });

  readonly liveClientsDropped = new Counter({
    name: 'canopy_live_clients_dropped_total',
    help: 'Live-stream clients disconnected for falling more than 1 MiB behind (slow network or a stalled tab); they reconnect by themselves.',
    registers: [this.registry],
  });

  readonly authThrottled = new Counter({
    name: 'canopy_auth_throttled_total',
    help: 'Authentication attempts refused unchecked because their client address had too many failures (`auth.failureLimit`), by channel (http, mqtt).',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'canopy_auth_failures_total',
    help: 'Requests and connections refused by authentication, by credential (none, api_key, session, password, mqtt) and reason (missing, invalid, forbidden). A rising `invalid` count is someone guessing.',
    labelNames: ['credential', 'reason'] as const,
    registers: [this.registry],
  });

  readonly mqttPublishesRateLimited = new Counter({
    name: 'canopy_mqtt_publishes_rate_limited_total',
    help: 'MQTT publishes the embedded broker refused because their client id went over `mqtt.embedded.publishRateLimit` (the client is disconnected without PUBACK).',
    registers: [this.registry],
  });

  readonly httpRateLimited = new Counter({
    name: 'canopy_http_rate_limited_total',
    help: 'HTTP requests answered 429 because their API key, session or address went over `http.rateLimit`.',
    registers: [this.registry],
  });

  readonly lakeFiles = new Gauge({
    name: 'canopy_lake_files',
    help: 'Data files (Parquet, JSON lines) in the lake, by layer (bronze, silver, gold, anomalies, deadletter; any other top-level folder as `other`), from the lake catalogue; refreshed at most once a minute at scrape time.',
    labelNames: ['layer'] as const,
    registers: [this.registry],
  });

  readonly lakeBytes = new Gauge({
    name: 'canopy_lake_bytes',
    help: 'Bytes of the files in the lake, by layer, from the lake catalogue.',
    labelNames: ['layer'] as const,
    registers: [this.registry],
  });

  readonly lakeRows = new Gauge({
    name: 'canopy_lake_rows',
    help: 'Rows in the Parquet files of the lake (from their footers), by layer, from the lake catalogue.',
    labelNames: ['layer'] as const,
    registers: [this.registry],
  });

  readonly lakeCatalogLastSuccess = new Gauge({
    name: 'canopy_lake_catalog_last_success_timestamp_seconds',
    help: 'When the lake catalogue behind the canopy_lake_* gauges was last read successfully, Unix time.',
    registers: [this.registry],
  });

  readonly diskFreeBytes = new Gauge({
    name: 'canopy_disk_free_bytes',
    help: 'Bytes free for Canopy (available to unprivileged users) on the filesystem of a volume: `data` (the data folder, which also holds the cache of an S3 lake) and, for a local lake, `lake`; sampled at scrape time.',
    labelNames: ['volume'] as const,
    registers: [this.registry],
  });

  readonly diskSizeBytes = new Gauge({
    name: 'canopy_disk_size_bytes',
    help: 'Total size of the filesystem of a volume (`data`, `lake`), sampled at scrape time.',
    labelNames: ['volume'] as const,
    registers: [this.registry],
  });

  readonly alerts = new Gauge({
    name: 'canopy_alerts',
    help: 'Alerts not yet resolved, by state (open, escalated, acknowledged) and severity.',
    labelNames: ['state', 'severity'] as const,
    registers: [this.registry],
  });

  readonly alertEvents = new Counter({
    name: 'canopy_alert_events_total',
    help: 'Recorded alert events by kind (opened, escalated, resolved, reminder, …) and severity.',
    labelNames: ['kind', 'severity'] as const,
    registers: [this.registry],
  });

  readonly alertEvaluationDuration = new Histogram({
    name: 'canopy_alert_evaluation_duration_seconds',
    help: 'Time to evaluate the alert rules over one committed group of readings (or one tick) and store what changed.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  readonly alertApplyFailures = new Counter({
    name: 'canopy_alert_apply_failures_total',
    help: 'Alert changes the metadata store refused; they are kept in memory and retried on the next tick.',
    registers: [this.registry],
  });

  readonly notificationsSent = new Counter({
    name: 'canopy_notifications_sent_total',
    help: 'Notifications delivered, by notifier kind (webhook, slack, email, sns, log) and channel name.',
    labelNames: ['notifier', 'channel'] as const,
    registers: [this.registry],
  });

  readonly notificationsFailed = new Counter({
    name: 'canopy_notifications_failed_total',
    help: 'Failed delivery attempts by notifier kind and channel; `final` is `true` when the outbox gave up.',
    labelNames: ['notifier', 'channel', 'final'] as const,
    registers: [this.registry],
  });

  readonly notificationDuration = new Histogram({
    name: 'canopy_notification_duration_seconds',
    help: 'Time of one delivery attempt, by notifier kind.',
    labelNames: ['notifier'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly outboxPending = new Gauge({
    name: 'canopy_alert_outbox_pending',
    help: 'Notifications waiting in the outbox (not yet delivered, not given up); sampled at scrape time.',
    registers: [this.registry],
  });

  readonly outboxOldestPendingAge = new Gauge({
    name: 'canopy_alert_outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest pending notification (0 when none); sampled at scrape time.',
    registers: [this.registry],
  });

  readonly workflowRuns = new Counter({
    name: 'canopy_workflow_runs_total',
    help: 'Finished workflow runs by workflow and result (succeeded, failed, cancelled).',
    labelNames: ['workflow', 'result'] as const,
    registers: [this.registry],
  });

  readonly workflowRunDuration = new Histogram({
    name: 'canopy_workflow_run_duration_seconds',
    help: 'Time from a workflow run’s creation to its end, by workflow (callback waits included).',
    labelNames: ['workflow'] as const,
    buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600],
    registers: [this.registry],
  });

  readonly workflowTaskAttempts = new Counter({
    name: 'canopy_workflow_task_attempts_total',
    help: 'Task attempts by workflow and outcome (succeeded, failed, timed-out, interrupted).',
    labelNames: ['workflow', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly workflowDeadlineMisses = new Counter({
    name: 'canopy_workflow_deadline_misses_total',
    help: 'Workflow runs still unfinished at their deadline, by workflow.',
    labelNames: ['workflow'] as const,
    registers: [this.registry],
  });

  readonly imputationValues = new Counter({
    name: 'canopy_imputation_values_total',
    help: 'Missing values the imputation workflow handled, by result: filled (written back) or left_missing (gap longer than the maximum, or no model).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly imputationModelsTrained = new Counter({
    name: 'canopy_imputation_models_trained_total',
    help: 'Imputation models trained and stored in the lake, by kind (forest, or a baseline when history is too short).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly workflowRunsActive = new Gauge({
    name: 'canopy_workflow_runs_active',
    help: 'Unfinished workflow runs driven by this instance, by workflow and state (running, waiting).',
    labelNames: ['workflow', 'state'] as const,
    registers: [this.registry],
  });

  readonly workflowLastSuccess = new Gauge({
    name: 'canopy_workflow_last_success_timestamp_seconds',
    help: 'When a run of the workflow last succeeded, Unix time (set by the instance that ran it).',
    labelNames: ['workflow'] as const,
    registers: [this.registry],
  });

  readonly busPublished = new Counter({
    name: 'canopy_bus_published_total',
    help: 'Messages the bus durably accepted (publish acknowledged by the broker; for `in-process`, queued), by adapter (in-process, nats, kafka).',
    labelNames: ['adapter'] as const,
    registers: [this.registry],
  });

  readonly busPublishDuration = new Histogram({
    name: 'canopy_bus_publish_duration_seconds',
    help: 'Time from a publish call to the bus accepting all its messages (broker acknowledgement, or room in the in-process queue), by adapter.',
    labelNames: ['adapter'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  });

  readonly busDelivered = new Counter({
    name: 'canopy_bus_delivered_total',
    help: 'Messages handed to a bus consumer’s handler, each attempt counted, by adapter.',
    labelNames: ['adapter'] as const,
    registers: [this.registry],
  });

  readonly busRedelivered = new Counter({
    name: 'canopy_bus_redelivered_total',
    help: 'Deliveries that were not a message’s first (after a handler failure or a consumer crash), by adapter; included in canopy_bus_delivered_total.',
    labelNames: ['adapter'] as const,
    registers: [this.registry],
  });

  readonly busGivenUp = new Counter({
    name: 'canopy_bus_given_up_total',
    help: 'Messages acknowledged without being handled because their deliveries reached `bus.maxDeliver` (logged with their keys), by adapter.',
    labelNames: ['adapter'] as const,
    registers: [this.registry],
  });

  /** Samplers of the lag gauge, by adapter label; set by each open bus, read at scrape time. */
  private readonly busLagSamplers = new Map<string, () => Promise<number>>();

  readonly busLag = new Gauge({
    name: 'canopy_bus_lag_messages',
    help: 'Messages on the bus not yet acknowledged by the consumer group (waiting and in flight), by adapter; sampled at scrape time. Absent while the bus cannot be asked.',
    labelNames: ['adapter'] as const,
    registers: [this.registry],
    collect: async () => {
      await Promise.all(
        [...this.busLagSamplers].map(async ([adapter, sample]) => {
          try {
            this.busLag.set({ adapter }, await sample());
          } catch {
            // No stale figure for a bus that cannot answer; /readyz says why.
            this.busLag.remove({ adapter });
          }
        }),
      );
    },
  });

  constructor(options: MetricsOptions = {}) {
    this.recording = options.recording ?? true;
    if (!this.recording) {
      // Instance methods shadow the prototype's: the metrics stay registered
      // (same names, same exposition) but recording costs a call to an empty function.
      for (const metric of this.registry.getMetricsAsArray()) Object.assign(metric, MUTED_METHODS);
    }
    if (options.defaultMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'canopy_' });
  }

  /** Samples `canopy_bus_lag_messages{adapter}` from `sample` at each scrape; the returned function stops it. */
  sampleBusLag(adapter: string, sample: () => Promise<number>): () => void {
    this.busLagSamplers.set(adapter, sample);
    return () => {
      if (this.busLagSamplers.get(adapter) !== sample) return;
      this.busLagSamplers.delete(adapter);
      this.busLag.remove({ adapter });
    };
  }

  /**
   * Counts committed readings by source and sensor type: called once per
   * group commit, it tallies the group in plain maps and increments the
   * counter once per (source, type) pair, so the per-reading cost is two map
   * look-ups and no allocation.
   */
  countAccepted(readings: readonly CountedReading[], labels: SensorTypeLabels): void {
    if (!this.recording || readings.length === 0) return;
    const bySource = new Map<string, Map<string | null, number>>();
    let source: string | undefined;
    let byType: Map<string | null, number> | undefined;
    for (const reading of readings) {
      if (reading.source !== source || byType === undefined) {
        source = reading.source;
        byType = bySource.get(source);
        if (byType === undefined) bySource.set(source, (byType = new Map<string | null, number>()));
      }
      byType.set(reading.sensorType, (byType.get(reading.sensorType) ?? 0) + 1);
    }
    for (const [src, types] of bySource) {
      for (const [type, count] of types)
        this.readingsAccepted.inc({ source: src, sensor_type: labels.label(type) }, count);
    }
  }
}
