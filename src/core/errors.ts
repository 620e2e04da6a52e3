/**
 * Every error Canopy returns to a caller, with a stable code.
 *
 * Codes follow `CANOPY_<AREA>_<WHAT>` and never change meaning once released:
 * users match on them. `docs/errors.md` is generated from `ERROR_CODES` and
 * `REJECT_REASONS`, and a test keeps the file and this module in step.
 */

interface ErrorSpec {
  /** HTTP status the API answers with, when the error reaches a client. */
  status: number;
  summary: string;
}

export const ERROR_CODES = {
  CANOPY_CONFIG_INVALID: {
    status: 500,
    summary: 'The configuration failed validation; the message lists every problem at once.',
  },
  CANOPY_CONFIG_UNREADABLE: {
    status: 500,
    summary: 'The configuration file could not be read or is not valid YAML.',
  },
  CANOPY_INGEST_REJECTED: {
    status: 400,
    summary:
      'Some records of a request failed decoding or validation. The good ones were stored; the body names each bad record and its reason, and each went to the dead-letter store.',
  },
  CANOPY_INGEST_PAYLOAD_TOO_LARGE: {
    status: 413,
    summary: 'The request body is larger than `ingest.maxPayloadBytes`; nothing was stored.',
  },
  CANOPY_INGEST_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    summary: 'The content type is not one of JSON, NDJSON or CSV.',
  },
  CANOPY_INGEST_OVERLOADED: {
    status: 503,
    summary:
      'Too many readings are waiting for a commit; nothing was stored. Retry after the `Retry-After` seconds.',
  },
  CANOPY_STORE_COMMIT_FAILED: {
    status: 503,
    summary:
      'The hot store could not commit a batch; nothing in it was acknowledged. Safe to retry.',
  },
  CANOPY_STORE_CLOSED: {
    status: 503,
    summary: 'The hot store is shutting down or was not opened.',
  },
  CANOPY_STORE_OPEN_FAILED: {
    status: 500,
    summary: 'The hot store could not be opened (file locked by another process, bad path, …).',
  },
  CANOPY_API_BAD_REQUEST: {
    status: 400,
    summary: 'A query parameter or body field is invalid; the message names it.',
  },
  CANOPY_API_NOT_FOUND: {
    status: 404,
    summary: 'No such route or resource.',
  },
  CANOPY_API_RATE_LIMITED: {
    status: 429,
    summary:
      'The API key, session or client address made more requests than `http.rateLimit` allows in its window; retry after the `Retry-After` seconds.',
  },
  CANOPY_API_SHUTTING_DOWN: {
    status: 503,
    summary:
      'Canopy is stopping and takes no new requests; retry after the `Retry-After` seconds, or on another instance.',
  },
  CANOPY_API_INTERNAL: {
    status: 500,
    summary: 'An unexpected failure inside Canopy; the log has the detail. Please report it.',
  },
  CANOPY_AUTH_REQUIRED: {
    status: 401,
    summary:
      'The request carries no credentials, or credentials Canopy does not accept: an unknown, revoked or expired API key (`Authorization: Bearer <key>` or `X-Api-Key`), an expired or ended session, or a wrong username or password at login.',
  },
  CANOPY_AUTH_THROTTLED: {
    status: 429,
    summary:
      'Too many refused credentials came from this client address within `auth.failureLimit.windowMs`; further attempts are refused unchecked until the window ends. Retry after the `Retry-After` seconds.',
  },
  CANOPY_AUTH_FORBIDDEN: {
    status: 403,
    summary:
      'The credentials are valid but lack the scope the route needs (`ingest`, `read`, `query`, `operate` or `admin`); the message names it.',
  },
  CANOPY_AUTH_CONFLICT: {
    status: 409,
    summary:
      'A user with that username, or an active device with that id, exists already (revoke a device before giving it new credentials).',
  },
  CANOPY_SHUTDOWN_TIMEOUT: {
    status: 500,
    summary:
      'Stopping took longer than `shutdownTimeoutMs`; `canopy up` exits anyway (status 1). Acknowledged readings were committed before they were acknowledged, so none is lost.',
  },
  CANOPY_SOURCE_START_FAILED: {
    status: 500,
    summary:
      'A source could not start (port in use, broker unreachable, …). Start-up is retried by the runtime where it can be.',
  },
  CANOPY_SOURCE_FILE_UNREADABLE: {
    status: 400,
    summary: 'A file given to `canopy ingest` or the simulator could not be read.',
  },
  CANOPY_LAKE_INVALID_KEY: {
    status: 400,
    summary:
      'An object key is not a relative path inside the lake (absolute, `..`, empty segment, backslash).',
  },
  CANOPY_LAKE_NOT_FOUND: {
    status: 404,
    summary: 'No object at that key in the lake.',
  },
  CANOPY_LAKE_IO_FAILED: {
    status: 503,
    summary:
      'The lake (folder or bucket) could not be read or written; the message has the cause. Safe to retry.',
  },
  CANOPY_LAKE_FULL: {
    status: 507,
    summary:
      'A write to the local lake would pass its quota (`lake.maxBytes`); nothing was written. Free space (retention, deleting files) or raise the quota: a failed export is retried on the next pass, and nothing is purged from the hot store until it succeeds.',
  },
  CANOPY_QUERY_REFUSED: {
    status: 400,
    summary:
      'The SQL sandbox refused the statement: only one read-only `SELECT` may run, and only over files inside the lake. The message names what was refused (a write, `COPY`, `ATTACH`, a settings change, several statements, a file outside the lake, …).',
  },
  CANOPY_QUERY_FAILED: {
    status: 400,
    summary:
      'DuckDB could not run an allowed `SELECT` (syntax error, unknown column or view, type error, out of memory, …); the message has DuckDB’s text.',
  },
  CANOPY_QUERY_TIMEOUT: {
    status: 503,
    summary:
      'The query was interrupted at the sandbox time limit (the wait in the queue counts). Narrow it (a time range, fewer rows); the sandbox stays usable.',
  },
  CANOPY_QUERY_CLOSED: {
    status: 503,
    summary: 'The SQL sandbox is shutting down or was closed.',
  },
  CANOPY_QUALITY_INVALID_SUITE: {
    status: 400,
    summary:
      'A quality suite failed validation (unknown expectation or key, missing field, unsafe identifier, bad YAML); `details` lists every problem at once.',
  },
  CANOPY_QUALITY_SUITE_UNREADABLE: {
    status: 500,
    summary: 'A quality suite file could not be read.',
  },
  CANOPY_WAREHOUSE_UNAVAILABLE: {
    status: 503,
    summary:
      'The warehouse could not be opened or reached (DuckDB file locked by another process, PostgreSQL down or refusing the login), or it holds a newer schema version than this Canopy knows.',
  },
  CANOPY_WAREHOUSE_LOAD_FAILED: {
    status: 503,
    summary:
      'Loading one window (an event date, the all-time tables or the sensor dimension) into the warehouse failed and was rolled back: the window keeps its previous rows. The message has the cause; safe to retry.',
  },
  CANOPY_JOB_BAD_DATE: {
    status: 400,
    summary:
      '`canopy jobs run … --date` got something that is not a calendar day as `YYYY-MM-DD`, a job that takes no date (bronze-export), or, for warehouse-load, a date the lake has no complete gold for.',
  },
  CANOPY_ALERT_RULES_INVALID: {
    status: 400,
    summary:
      'An alert rule set failed validation (unknown field, inverted bounds, missing threshold, unknown channel, duplicate id, bad YAML); `details` lists every problem at once, each naming the rule and the field.',
  },
  CANOPY_ALERT_RULES_UNREADABLE: {
    status: 500,
    summary: 'The alert rules file could not be read or written.',
  },
  CANOPY_ALERT_RULES_READ_ONLY: {
    status: 409,
    summary:
      'The alert rules are managed as files (`alerting.rulesReadOnly`); change the file and restart instead.',
  },
  CANOPY_ALERT_NOT_FOUND: {
    status: 404,
    summary: 'No alert has that id (or it was resolved and aged out).',
  },
  CANOPY_ALERT_INVALID_TRANSITION: {
    status: 409,
    summary:
      'The alert cannot take that action in its state (acknowledging or snoozing a resolved alert, snoozing into the past).',
  },
  CANOPY_META_UNAVAILABLE: {
    status: 503,
    summary:
      'The metadata store (alerts, outbox) could not be opened or reached: DuckDB file locked by another process, PostgreSQL down, or a newer schema than this Canopy knows.',
  },
  CANOPY_NOTIFY_FAILED: {
    status: 502,
    summary:
      'A notifier could not deliver (receiver down, non-2xx answer, timeout, SMTP or SNS error); the outbox retries it with backoff.',
  },
  CANOPY_API_UNREACHABLE: {
    status: 503,
    summary:
      'A CLI command that talks to the running Canopy (`canopy alerts list|ack|snooze|resolve`) found no API at the configured address or `--url`.',
  },
  CANOPY_WORKFLOW_NOT_FOUND: {
    status: 404,
    summary: 'No workflow has that name, or no run has that id.',
  },
  CANOPY_WORKFLOW_CALLBACK_UNKNOWN: {
    status: 404,
    summary:
      'No task waits on that callback token: it never existed, was already completed, or its run ended.',
  },
  CANOPY_WORKFLOW_INVALID: {
    status: 500,
    summary:
      'A workflow definition is wrong (unknown or cyclic dependency, duplicate task id, choice branch naming a task that does not depend on it, bad cron expression or time zone).',
  },
  CANOPY_WORKFLOW_BAD_REQUEST: {
    status: 400,
    summary:
      'A workflow request is wrong: a backfill range that is empty, reversed or too long, a slot that is not one of the schedule’s, a run of a paused workflow.',
  },
  CANOPY_WORKFLOW_TASK_FAILED: {
    status: 500,
    summary:
      'A workflow task failed (its own error, a timeout, or a callback completed with an error); the run records each attempt.',
  },
  CANOPY_BUS_UNAVAILABLE: {
    status: 503,
    summary:
      'The bus did not acknowledge a publish (broker unreachable, or no acknowledgement within `bus.publishTimeoutMs`). The message may or may not be on the bus: it is not acknowledged to its sender, whose retry the idempotency key deduplicates.',
  },
  CANOPY_BUS_CLOSED: {
    status: 503,
    summary: 'The bus is closing or closed; nothing more is published or consumed.',
  },
  CANOPY_SIMULATOR_TARGET_FAILED: {
    status: 502,
    summary: 'The simulator could not deliver to its target (broker or API down).',
  },
  CANOPY_IMPUTATION_BAD_INPUT: {
    status: 400,
    summary:
      'Imputation cannot work on the data or options given (no regular time step, no measure with known values, an invalid model name or option).',
  },
  CANOPY_IMPUTATION_MODEL_INVALID: {
    status: 500,
    summary:
      'A stored imputation model is not a model this version can read (bad JSON, unknown format or kind).',
  },
  CANOPY_IMPUTATION_FAILED: {
    status: 500,
    summary:
      'The imputation worker thread failed (training or prediction); the workflow task fails and is retried.',
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class CanopyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Structured detail for the caller (e.g. the list of config problems). */
  readonly details: unknown;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; details?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CanopyError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = options.details;
  }
}

export function isCanopyError(err: unknown, code?: ErrorCode): err is CanopyError {
  return err instanceof CanopyError && (code === undefined || err.code === code);
}

/**
 * Why a payload or record went to the dead-letter store. Stable, like the
 * error codes: dashboards and alert rules group dead letters by them.
 */
export const REJECT_REASONS = {
  EMPTY_PAYLOAD: 'The message or request had no content.',
  PAYLOAD_TOO_LARGE: 'The payload exceeded the configured size limit.',
  UNSUPPORTED_FORMAT: 'The payload is not in a format Canopy decodes (JSON, NDJSON, CSV).',
  INVALID_JSON: 'The payload (or one NDJSON line) is not valid JSON.',
  INVALID_CSV: 'The CSV could not be parsed, or a required column is missing.',
  NOT_AN_OBJECT: 'A record is not a JSON object.',
  TOO_MANY_READINGS: 'One payload carried more readings than `ingest.maxReadingsPerPayload`.',
  MISSING_SENSOR_ID: 'No `sensor_id` (or `device_id`).',
  INVALID_SENSOR_ID:
    'The sensor id is empty, not a string, or has characters outside [A-Za-z0-9._:/-].',
  MISSING_TIMESTAMP: 'No `timestamp` (or `event_time`, `ts`).',
  INVALID_TIMESTAMP: 'The timestamp is neither ISO 8601 nor epoch seconds/milliseconds.',
  FUTURE_TIMESTAMP: 'The timestamp is more than `ingest.maxFutureSkewMs` ahead of the clock.',
  TIMESTAMP_OUT_OF_RANGE: 'The timestamp lies before the year 1 or after the year 9999.',
  MISSING_VALUE: 'No `value` field (send `null` for a known-missing value).',
  INVALID_VALUE: 'The value is not a finite number or null.',
  INVALID_FIELD: 'An optional field has the wrong type (e.g. `anomaly_score` not a number).',
  STRING_TOO_LONG: 'A string field is longer than `ingest.maxStringLength`.',
  NUL_CHARACTER:
    'A string field (`location`, `sensor_type`, `unit`) contains a NUL character (U+0000), which the hot stores cannot hold.',
  TOO_MANY_SENSORS:
    'The reading is from a sensor id Canopy has not seen, and `ingest.maxSensors` distinct sensors are registered already.',
  POLL_HTTP_ERROR: 'A polled endpoint answered with an HTTP error status.',
  POLL_FAILED: 'A polled endpoint could not be reached or timed out after all retries.',
  BUS_MESSAGE_UNREADABLE:
    'A message on the bus is not in a wire format this version reads (unknown version, broken header); its raw bytes are kept, base64-encoded.',
} as const;

export type RejectReason = keyof typeof REJECT_REASONS;
