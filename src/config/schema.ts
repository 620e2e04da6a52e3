/**
 * The one configuration schema. It is the single source of the TypeScript
 * types (`CanopyConfig`), validation, defaults, environment variable names and
 * `docs/config.md`. Every object is strict: an unknown key is an error.
 *
 * Defaults give the embedded mode: one process, no external servers.
 */
import { z } from 'zod';
import { allowedHostsProblems, hostOf, isHostAllowed } from '../alerts/notifiers/allowed-hosts.js';
import { ROLES, roleProblems } from './roles.js';

const port = z.number().int().min(0).max(65535);
const positiveMs = z.number().int().positive();

/** A certificate and its private key in PEM files, read once at start-up. */
const tlsFiles = {
  certFile: z.string().min(1).describe('PEM certificate (chain) file.'),
  keyFile: z
    .string()
    .min(1)
    .describe('PEM private key file. Secret: its contents are never logged.'),
};

const range = z
  .strictObject({
    min: z.number().describe('Lowest physically possible value.'),
    max: z.number().describe('Highest physically possible value.'),
  })
  .refine((r) => r.min < r.max, { message: 'min must be below max' });

const thresholds = z
  .strictObject({
    min: z.number().optional().describe('Below this the reading breaches.'),
    max: z.number().optional().describe('Above this the reading breaches.'),
  })
  .describe('A band; either side may be left open.');

const sensorType = z.strictObject({
  unit: z.string().optional().describe('Default unit for readings of this type that carry none.'),
  range: range.optional().describe('Physical range; values outside it are range anomalies.'),
  intervalMs: positiveMs.optional().describe('Expected interval between readings.'),
  warning: thresholds.optional(),
  critical: thresholds.optional(),
});

const sensor = z.strictObject({
  id: z.string().min(1).describe('The sensor id readings carry as `sensor_id`.'),
  type: z.string().optional().describe('Sensor type; fills `sensor_type` when readings omit it.'),
  unit: z.string().optional(),
  location: z.string().optional().describe('`site/floor/zone` style path.'),
  intervalMs: positiveMs.optional(),
  range: range.optional().describe("Overrides its type's physical range."),
  warning: thresholds.optional(),
  critical: thresholds.optional(),
});

/** A PostgreSQL connection and the schema its tables live in. */
const postgresConnection = (defaultSchema: string, schemaDescription: string) =>
  z
    .strictObject({
      url: z
        .string()
        .optional()
        .describe(
          '`postgres://user:password@host:port/database`; when set, host/port/user/password/database are ignored.',
        ),
      host: z.string().default('127.0.0.1'),
      port: port.default(5432),
      user: z.string().default('postgres'),
      password: z.string().optional().describe('Secret: never logged.'),
      database: z.string().default('postgres'),
      schema: z
        .string()
        .regex(/^[a-z_][a-z0-9_]{0,62}$/)
        .default(defaultSchema)
        .describe(schemaDescription),
    })
    .prefault({});

const notifierCommon = {
  timeoutMs: positiveMs.default(5_000).describe('One delivery attempt gives up after this.'),
};

const notifier = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('webhook'),
    url: z.url().describe('Receives a JSON POST per notification.'),
    secret: z
      .string()
      .min(16)
      .optional()
      .describe(
        'Secret: never logged. Signs each request: `X-Canopy-Signature: sha256=<hex HMAC-SHA256(secret, "<X-Canopy-Timestamp>.<body>")>`, the timestamp in Unix seconds; receivers check it in constant time and refuse old timestamps.',
      ),
    headers: z.record(z.string(), z.string()).default({}),
    ...notifierCommon,
  }),
  z.strictObject({
    kind: z.literal('slack'),
    url: z.url().describe('Slack incoming-webhook URL. Secret: never logged.'),
    ...notifierCommon,
  }),
  z.strictObject({
    kind: z.literal('email'),
    host: z.string().min(1).describe('SMTP server.'),
    port: port.default(587),
    secure: z
      .boolean()
      .default(false)
      .describe('TLS from the start (port 465); else STARTTLS when offered.'),
    user: z.string().optional(),
    password: z.string().optional().describe('Secret: never logged.'),
    from: z.string().min(3),
    to: z.array(z.string().min(3)).min(1),
    ...notifierCommon,
  }),
  z.strictObject({
    kind: z.literal('sns'),
    topicArn: z.string().startsWith('arn:'),
    region: z.string().default('us-east-1'),
    endpoint: z.url().optional().describe('Custom SNS endpoint (LocalStack, a VPC endpoint).'),
    accessKeyId: z.string().optional().describe('Default: the AWS SDK credential chain.'),
    secretAccessKey: z.string().optional().describe('Secret: never logged.'),
    ...notifierCommon,
  }),
  z.strictObject({
    kind: z.literal('log'),
    level: z.enum(['info', 'warn', 'error']).default('warn'),
    ...notifierCommon,
  }),
]);

const alertRoute = z.strictObject({
  severity: z
    .array(z.enum(['warning', 'critical']))
    .min(1)
    .optional(),
  labels: z
    .record(z.string(), z.string())
    .optional()
    .describe('Every label must match the alert’s (rule labels, `sensor_type`, `location`, …).'),
  events: z
    .array(
      z.enum([
        'opened',
        'severity-raised',
        'severity-lowered',
        'escalated',
        'de-escalated',
        'tier-notified',
        'reminder',
        'acknowledged',
        'snoozed',
        'resolved',
      ]),
    )
    .min(1)
    .default(['escalated', 'resolved'])
    .describe('Which alert events the route sends.'),
  channels: z.array(z.string().min(1)).min(1).describe('Names from `alerting.notifiers`.'),
});

const wideCsvMapping = z.strictObject({
  deviceId: z.string().min(1),
  location: z.string().optional(),
  delimiter: z.string().length(1).optional(),
  timestamp: z.strictObject({
    column: z.string(),
    timeColumn: z.string().optional(),
    format: z.enum(['iso', 'dmy', 'mdy', 'ymd', 'epoch_s', 'epoch_ms']),
    utcOffsetMinutes: z.number().int().optional(),
  }),
  missingValue: z.number().optional(),
  columns: z
    .record(
      z.string(),
      z.strictObject({ sensorType: z.string().optional(), unit: z.string().optional() }),
    )
    .optional(),
});

const pollSource = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z0-9-]+$/)
    .describe('Source name; readings carry `poll:<name>` as source.'),
  urlTemplate: z
    .string()
    .describe('URL with `{id}` replaced by each id, e.g. `http://127.0.0.1:4000/plants/{id}`.'),
  ids: z
    .array(z.union([z.string(), z.number()]))
    .min(1)
    .describe('The ids to poll each round.'),
  format: z.enum(['json', 'plants']).default('json').describe('How to decode each response.'),
  intervalMs: positiveMs.default(60_000),
  timeoutMs: positiveMs.default(5_000),
  concurrency: z.number().int().min(1).max(256).default(8),
  retries: z
    .number()
    .int()
    .min(0)
    .max(10)
    .default(2)
    .describe('Retries after a failed fetch, with backoff.'),
});

const configObject = z.strictObject({
  roles: z
    .array(z.enum(ROLES))
    .min(1)
    .default([...ROLES])
    .describe(
      'What this process runs: `ingest` (sources), `process` (pipeline and hot-store commits), `jobs` (workflows, housekeeping, alerting), `api` (read API and dashboard). All four by default; `canopy up --role ingest,process` overrides. Splitting them needs shared engines (bus, PostgreSQL): see docs/scaling.md.',
    ),
  dataDir: z
    .string()
    .default('./data')
    .describe('Where the hot store, the local lake and temporary export files live.'),
  shutdownTimeoutMs: positiveMs
    .default(30_000)
    .describe(
      'How long stopping may take (sources stop, in-flight requests finish, the pipeline drains); past it, stopping fails and `canopy up` exits with status 1. Every acknowledged reading is already committed, so that exit loses none.',
    ),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      levels: z
        .record(z.string(), z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
        .default({})
        .describe(
          'Level by component, overriding `log.level` for it (more or less verbose), e.g. `{"mqtt-broker": "debug", "api": "warn"}`. Components: api, pipeline, store, query, query-sandbox, housekeeping, mqtt-broker, mqtt-client, poll, landing, simulator.',
        ),
    })
    .prefault({}),
  http: z
    .strictObject({
      enabled: z.boolean().default(true),
      host: z.string().default('127.0.0.1').describe('Bind address of the API and dashboard.'),
      port: port.default(3000).describe('API port.'),
      dashboardDir: z
        .string()
        .optional()
        .describe(
          'Folder of the built dashboard served at `/` (`index.html`, `assets/`); default `web/dist` of the Canopy package (`npm run build:web`).',
        ),
      tls: z
        .strictObject({
          ...tlsFiles,
          caFile: z
            .string()
            .min(1)
            .optional()
            .describe('PEM CA bundle sent with the certificate chain (intermediates).'),
        })
        .optional()
        .describe(
          'Serve HTTPS from these files; also sends `Strict-Transport-Security` and marks the session cookie `Secure`.',
        ),
      rateLimit: z
        .strictObject({
          enabled: z
            .boolean()
            .optional()
            .describe(
              'Unset: on when the API listens beyond loopback (`http.host`), off on loopback (the local demo and benchmarks).',
            ),
          max: z
            .number()
            .int()
            .positive()
            .default(6_000)
            .describe(
              'Requests one API key, session or (without credentials) client address may make per window; beyond it the API answers 429 `CANOPY_API_RATE_LIMITED` with `Retry-After`. Health and readiness probes are not counted.',
            ),
          windowMs: positiveMs.default(60_000).describe('The window `max` counts over.'),
        })
        .prefault({}),
    })
    .prefault({}),
  auth: z
    .strictObject({
      mode: z
        .enum(['off', 'required'])
        .optional()
        .describe(
          '`required`: every API route but health, readiness, metrics and the dashboard’s files needs an API key or a session, and MQTT devices need credentials (`canopy keys|users|devices`). `off`: no checks. Unset: off while the API and the embedded broker listen on loopback only; binding beyond loopback with it unset refuses to start (see docs/security.md).',
        ),
      sessionTtlMs: positiveMs
        .default(12 * 3_600_000)
        .describe('How long a dashboard session lasts after login.'),
      secureCookies: z
        .boolean()
        .default(false)
        .describe(
          'Mark the session cookie `Secure` (sent over HTTPS only): set it when clients reach Canopy through a TLS-terminating proxy.',
        ),
      publicMetrics: z
        .boolean()
        .default(true)
        .describe('Serve `GET /metrics` without credentials (false: it needs the `read` scope).'),
      failureLimit: z
        .strictObject({
          maxFailures: z
            .number()
            .int()
            .positive()
            .default(10)
            .describe(
              'Refused credentials (API key, password at login, MQTT device login) one client address may present per window; beyond it its attempts are refused unchecked (HTTP 429 `CANOPY_AUTH_THROTTLED` with `Retry-After`, MQTT CONNACK "not authorized") until the window ends. Successful attempts do not count.',
            ),
          windowMs: positiveMs
            .default(300_000)
            .describe('The window, counted from an address’s first failure.'),
          maxTrackedAddresses: z
            .number()
            .int()
            .positive()
            .default(10_000)
            .describe('Addresses tracked at once; beyond it the oldest window is forgotten.'),
        })
        .prefault({}),
    })
    .prefault({}),
  mqtt: z
    .strictObject({
      embedded: z
        .strictObject({
          enabled: z
            .boolean()
            .default(true)
            .describe('Run the embedded MQTT broker (aedes, MQTT 3.1.1).'),
          host: z.string().default('127.0.0.1'),
          port: port.default(1883).describe('Embedded broker port.'),
          portFallback: z
            .boolean()
            .default(true)
            .describe(
              'If the port is taken (say by Mosquitto), use a free port and log it, instead of failing.',
            ),
          topics: z
            .array(z.string())
            .default(['iot/data', 'sensors/#'])
            .describe('Topic filters whose messages are ingested.'),
          tls: z
            .strictObject(tlsFiles)
            .optional()
            .describe('Accept MQTT over TLS (MQTTS) only, from these files, on `port`.'),
          publishRateLimit: z
            .strictObject({
              enabled: z
                .boolean()
                .optional()
                .describe(
                  'Unset: on when the broker listens beyond loopback (`mqtt.embedded.host`), off on loopback.',
                ),
              perSecond: z
                .number()
                .positive()
                .default(50)
                .describe(
                  'Publishes per second each device (each client id without authentication) earns, a token bucket; over the limit a publish is refused without PUBACK and the client disconnected (`canopy_mqtt_publishes_rate_limited_total`).',
                ),
              burst: z
                .number()
                .int()
                .positive()
                .default(500)
                .describe('Publishes a client id may make at once after a quiet spell.'),
            })
            .prefault({}),
        })
        .prefault({}),
      client: z
        .strictObject({
          enabled: z
            .boolean()
            .default(false)
            .describe('Subscribe to an external broker (Mosquitto, EMQX, …).'),
          url: z.string().default('mqtt://127.0.0.1:1883'),
          clientId: z
            .string()
            .min(1)
            .default('canopy-ingest')
            .refine((id) => /^(?:[^{}]|\{hostname\}|\{pid\})*$/.test(id), {
              message: 'only the placeholders {hostname} and {pid} may appear in braces',
            })
            .describe(
              'Stable id: the broker keeps the session under it. Each process needs its own: `{hostname}` is replaced by the host name (a container’s or pod’s name), `{pid}` by the process id (new on every start, so no session survives a restart), e.g. `canopy-{hostname}` for replicas that share one config.',
            ),
          topics: z.array(z.string()).default(['iot/data', 'sensors/#']),
          protocolVersion: z
            .number()
            .int()
            .min(4)
            .max(5)
            .default(5)
            .describe(
              '5 (MQTT 5), or 4 (MQTT 3.1.1) for brokers without MQTT 5, Canopy’s embedded broker among them.',
            ),
          shareGroup: z
            .string()
            .min(1)
            .refine((g) => !/[/+#]/.test(g), {
              message: 'a share group name cannot contain "/", "+" or "#"',
            })
            .optional()
            .describe(
              'Subscribe each topic as `$share/<group>/<topic>`: the processes with the same group split the messages, each delivered to one of them. Unset: every process gets every message.',
            ),
          sessionExpirySeconds: z
            .number()
            .int()
            .min(0)
            .max(4_294_967_295)
            .default(3600)
            .describe(
              'MQTT 5 with `cleanSession: false`: how long the broker keeps the session (subscriptions, queued and unacknowledged messages) after a disconnect. Ignored on MQTT 3.1.1, whose sessions last until the broker expires them.',
            ),
          username: z.string().optional(),
          password: z.string().optional().describe('Secret: never logged.'),
          tls: z
            .strictObject({
              caFile: z
                .string()
                .min(1)
                .optional()
                .describe(
                  'PEM CA bundle the broker’s certificate must chain to (default: system CAs).',
                ),
              certFile: z
                .string()
                .min(1)
                .optional()
                .describe('PEM client certificate (mutual TLS).'),
              keyFile: z
                .string()
                .min(1)
                .optional()
                .describe(
                  'PEM key of the client certificate. Secret: its contents are never logged.',
                ),
              rejectUnauthorized: z
                .boolean()
                .default(true)
                .describe(
                  'Refuse a broker certificate that does not verify; false only for testing.',
                ),
            })
            .optional()
            .describe('TLS settings for an `mqtts://` URL.'),
          cleanSession: z
            .boolean()
            .default(false)
            .describe('false keeps QoS 1 messages queued at the broker while Canopy is down.'),
        })
        .prefault({}),
    })
    .prefault({}),
  poll: z.array(pollSource).default([]).describe('HTTP endpoints polled on an interval.'),
  ingest: z
    .strictObject({
      maxPayloadBytes: z
        .number()
        .int()
        .positive()
        .default(10 * 1024 * 1024),
      maxReadingsPerPayload: z.number().int().positive().default(100_000),
      maxStringLength: z.number().int().positive().default(256),
      maxFutureSkewMs: z
        .number()
        .int()
        .nonnegative()
        .default(300_000)
        .describe('Readings further ahead of the clock are rejected (FUTURE_TIMESTAMP).'),
      maxPendingReadings: z
        .number()
        .int()
        .positive()
        .default(200_000)
        .describe('Readings waiting for a commit before sources are told to back off.'),
      maxBatchReadings: z
        .number()
        .int()
        .positive()
        .default(20_000)
        .describe('Most readings written in one group commit.'),
      maxSensors: z
        .number()
        .int()
        .positive()
        .default(100_000)
        .describe(
          'Most distinct sensor ids Canopy registers (label cardinality); readings of further new sensors are rejected (TOO_MANY_SENSORS).',
        ),
      wideCsv: z
        .record(z.string(), wideCsvMapping)
        .default({})
        .describe(
          'Named column mappings for wide CSV files (`canopy ingest --format csv-wide --mapping NAME`).',
        ),
    })
    .prefault({}),
  bus: z
    .strictObject({
      kind: z
        .enum(['in-process', 'nats', 'kafka'])
        .default('in-process')
        .describe(
          'The bus between the ingest role (sources) and the process role (pipeline, hot store); see `docs/scaling.md`. `in-process`: none in between, sources hand messages straight to the pipeline and acknowledge after the commit. `nats` (JetStream) or `kafka`: sources publish to the bus and acknowledge after its durable accept; consumers commit to the hot store, then acknowledge the bus.',
        ),
      partitions: z
        .number()
        .int()
        .min(1)
        .max(1024)
        .default(16)
        .describe(
          'Partitions messages are spread over by key (sensor id or routing key); a key keeps its order within its partition. Changing it moves keys between partitions.',
        ),
      maxInFlight: z
        .number()
        .int()
        .positive()
        .default(1_000)
        .describe(
          'Messages one consumer holds delivered and not yet acknowledged (fetched ahead included): the back-pressure bound, and what a crash hands back for redelivery.',
        ),
      maxBatch: z
        .number()
        .int()
        .positive()
        .default(100)
        .describe('Most messages of one partition handed to the pipeline at once.'),
      ackWaitMs: positiveMs
        .default(30_000)
        .describe(
          'How long a message may stay unacknowledged before the broker gives it to another consumer: JetStream ack wait (a live consumer extends it while it works), Kafka session timeout (at least 6 s).',
        ),
      maxDeliver: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe(
          'Deliveries after which a message is acknowledged unhandled, counted and logged (0: retry forever — a store outage must not drop readings).',
        ),
      publishTimeoutMs: positiveMs
        .default(10_000)
        .describe(
          'A publish the broker has not acknowledged by then fails (the source does not acknowledge its peer).',
        ),
      capacity: z
        .number()
        .int()
        .positive()
        .default(10_000)
        .describe('In-process bus only: messages held before publishers wait.'),
      nats: z
        .strictObject({
          servers: z.array(z.string().min(1)).min(1).default(['nats://127.0.0.1:4222']),
          user: z.string().optional(),
          password: z.string().optional().describe('Secret: never logged.'),
          token: z.string().optional().describe('Secret: never logged.'),
          stream: z
            .string()
            .regex(/^[A-Za-z0-9_-]+$/)
            .default('CANOPY_READINGS')
            .describe('JetStream stream (work-queue retention), created when missing.'),
          subjectPrefix: z
            .string()
            .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/)
            .default('canopy.readings')
            .describe('Subjects are `<subjectPrefix>.<partition>`.'),
          consumer: z
            .string()
            .regex(/^[A-Za-z0-9_-]+$/)
            .default('canopy-process')
            .describe('Durable pull consumer that every process-role instance shares.'),
        })
        .prefault({}),
      kafka: z
        .strictObject({
          brokers: z.array(z.string().min(1)).min(1).default(['127.0.0.1:9092']),
          topic: z.string().min(1).default('sensor-events'),
          groupId: z
            .string()
            .min(1)
            .default('canopy-process')
            .describe('Consumer group of the process-role instances.'),
          clientId: z.string().min(1).default('canopy'),
          replicationFactor: z
            .number()
            .int()
            .min(1)
            .default(1)
            .describe('Replicas of a topic Canopy creates (3 on a production cluster).'),
          tls: z.boolean().default(false),
          sasl: z
            .strictObject({
              mechanism: z.enum(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']),
              username: z.string().min(1),
              password: z.string().describe('Secret: never logged.'),
            })
            .optional(),
        })
        .prefault({}),
    })
    .prefault({}),
  store: z
    .strictObject({
      kind: z
        .enum(['duckdb', 'postgres'])
        .default('duckdb')
        .describe(
          'Hot-store engine: a DuckDB file held by this process, or PostgreSQL (several Canopy processes share it; COPY writes, day partitions).',
        ),
      path: z
        .string()
        .optional()
        .describe('DuckDB file (kind duckdb); default `<dataDir>/canopy.duckdb`.'),
      postgres: postgresConnection(
        'canopy_hot',
        'Schema of the hot-store tables (created if missing) when kind is postgres.',
      ),
      retentionHours: z
        .number()
        .positive()
        .default(24)
        .describe(
          'Hot window kept in the store; older readings and dead letters are purged once exported to the lake.',
        ),
      memoryLimitMB: z
        .number()
        .int()
        .min(64)
        .default(1024)
        .describe(
          'DuckDB hot store: the most memory its buffer pool holds (it caches the hot window’s blocks up to this, then reads them from the file and spills large queries to disk). Bounds the process’s RSS; DuckDB’s own default would be 80 % of RAM.',
        ),
      receiptRetentionDays: z
        .number()
        .positive()
        .default(30)
        .describe(
          'How long idempotency keys (HTTP `Idempotency-Key`, landing files) are remembered; a key seen again later is ingested again.',
        ),
      mqttReceiptRetentionHours: z
        .number()
        .positive()
        .default(24)
        .describe(
          'How long the MQTT client source remembers the messages it committed (by topic and payload), so a broker redelivering one (a lost PUBACK, a reconnect) stores nothing twice. Keep it above `mqtt.client.sessionExpirySeconds`: a persistent session can hold an unacknowledged message that long.',
        ),
    })
    .prefault({}),
  lake: z
    .strictObject({
      kind: z.enum(['local', 's3']).default('local').describe('Where the Parquet lake lives.'),
      exportIntervalMs: positiveMs
        .default(60_000)
        .describe(
          'How often new hot-store rows are exported to bronze (then the hot window is purged).',
        ),
      path: z.string().optional().describe('Local lake folder; default `<dataDir>/lake`.'),
      maxBytes: z
        .number()
        .int()
        .positive()
        .optional()
        .describe(
          'Quota of a local lake folder, in bytes: a write that would pass it fails with CANOPY_LAKE_FULL (the export is retried on the next pass, and nothing unexported is purged). Unset: no limit but the disk.',
        ),
      engineMemoryMB: z
        .number()
        .int()
        .min(64)
        .default(1024)
        .describe(
          'Memory of the DuckDB that a lake job (compaction, silver, gold, quality, warehouse load) transforms Parquet with; what does not fit spills to `<dataDir>/tmp/lake-engine`. Gold splits it among the dates it builds side by side. DuckDB’s own default would be 80 % of RAM per job.',
        ),
      cacheDir: z
        .string()
        .optional()
        .describe(
          'Local cache of an S3 lake’s Parquet and dead-letter files, which SQL queries, quality suites and the catalogue read (checked against the ETags on each use); default `<dataDir>/cache/lake`.',
        ),
      retentionDays: z
        .strictObject({
          bronze: z.number().positive().default(30),
          silver: z.number().positive().default(60),
          anomalies: z.number().positive().default(7),
          gold: z.number().positive().default(90),
          deadletter: z.number().positive().default(7),
          quality: z.number().positive().default(90).describe('Quality run results, by run date.'),
        })
        .prefault({})
        .describe('Days each lake layer keeps, by event date (`canopy jobs run retention`).'),
      s3: z
        .strictObject({
          bucket: z.string().min(1).optional().describe('Bucket name (required when kind is s3).'),
          prefix: z.string().default('').describe('Key prefix inside the bucket, e.g. `canopy/`.'),
          endpoint: z
            .string()
            .optional()
            .describe('S3-compatible endpoint URL (MinIO, s3rver, …); default AWS.'),
          region: z.string().default('us-east-1'),
          forcePathStyle: z
            .boolean()
            .default(false)
            .describe('Path-style URLs, as most S3-compatible servers need.'),
          accessKeyId: z.string().optional().describe('Default: the AWS SDK credential chain.'),
          secretAccessKey: z.string().optional().describe('Secret: never logged.'),
        })
        .prefault({}),
    })
    .prefault({})
    .refine((lake) => lake.kind !== 's3' || lake.s3.bucket !== undefined, {
      message: 'lake.s3.bucket is required when lake.kind is s3',
      path: ['s3', 'bucket'],
    }),
  warehouse: z
    .strictObject({
      kind: z
        .enum(['duckdb', 'postgres'])
        .default('duckdb')
        .describe(
          'Where `canopy jobs run warehouse-load` loads the gold tables and `dim_sensors`.',
        ),
      path: z
        .string()
        .optional()
        .describe(
          'DuckDB warehouse file; default `<dataDir>/warehouse.duckdb` (not the hot-store file, which a running Canopy holds open).',
        ),
      postgres: postgresConnection(
        'canopy',
        'Schema of the warehouse tables (created if missing).',
      ),
    })
    .prefault({}),
  meta: z
    .strictObject({
      kind: z
        .enum(['duckdb', 'postgres'])
        .default('duckdb')
        .describe('Where alerts, their history and the notification outbox live.'),
      path: z
        .string()
        .optional()
        .describe('DuckDB metadata file; default `<dataDir>/meta.duckdb`.'),
      postgres: postgresConnection(
        'canopy_meta',
        'Schema of the metadata tables (created if missing).',
      ),
    })
    .prefault({}),
  alerting: z
    .strictObject({
      enabled: z.boolean().default(true),
      rulesFile: z
        .string()
        .optional()
        .describe(
          'Alert rules (YAML); default `<dataDir>/alert-rules.yaml`, written with the starter rules when missing. `PUT /api/alert-rules` rewrites it.',
        ),
      rulesReadOnly: z
        .boolean()
        .default(false)
        .describe('Refuse `PUT /api/alert-rules` (rules managed as files, e.g. in git).'),
      tickMs: positiveMs
        .default(1_000)
        .describe(
          'How often time-based conditions are checked: no-data, reminders, tiers, snoozes.',
        ),
      publicUrl: z
        .url()
        .optional()
        .describe(
          'Base URL of this Canopy as people reach it; notifications link to alerts under it.',
        ),
      notifiers: z
        .record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/), notifier)
        .default({ log: { kind: 'log', level: 'warn', timeoutMs: 5_000 } })
        .describe('Named notification channels that rules and routes refer to.'),
      routes: z
        .array(alertRoute)
        .default([])
        .describe(
          'Send alert events to channels by severity and labels, besides each rule’s own `notify`.',
        ),
      outbox: z
        .strictObject({
          maxAttempts: z.number().int().positive().default(12),
          initialBackoffMs: positiveMs.default(1_000),
          maxBackoffMs: positiveMs.default(300_000),
          concurrency: z
            .number()
            .int()
            .min(1)
            .max(64)
            .default(8)
            .describe('Deliveries in flight at once, over all channels.'),
        })
        .prefault({}),
      retentionDays: z
        .number()
        .positive()
        .default(90)
        .describe('Resolved alerts, their history and notifications are deleted after this.'),
      allowedHosts: z
        .array(z.string())
        .default([])
        .describe(
          'Hosts webhook and Slack notifiers may call: hostnames, `*.domain` for subdomains, IP addresses or CIDR blocks. A notifier URL naming another host fails validation. Empty: any host.',
        ),
    })
    .superRefine((alerting, ctx) => {
      for (const problem of allowedHostsProblems(alerting.allowedHosts)) {
        ctx.addIssue({ code: 'custom', path: ['allowedHosts'], message: problem });
      }
      for (const [name, n] of Object.entries(alerting.notifiers)) {
        if (
          (n.kind === 'webhook' || n.kind === 'slack') &&
          !isHostAllowed(n.url, alerting.allowedHosts)
        ) {
          ctx.addIssue({
            code: 'custom',
            path: ['notifiers', name, 'url'],
            message: `host ${JSON.stringify(hostOf(n.url))} is not in alerting.allowedHosts (${alerting.allowedHosts.join(', ')})`,
          });
        }
      }
    })
    .prefault({}),
  workflows: z
    .strictObject({
      enabled: z
        .boolean()
        .default(true)
        .describe(
          'Run the platform workflows (housekeeping, hourly lake, daily pipeline) on their schedules. Off: housekeeping runs on `lake.exportIntervalMs` alone.',
        ),
      timezone: z
        .string()
        .default('UTC')
        .describe(
          'IANA time zone of the hourly and daily schedules (and of the daily pipeline’s date).',
        ),
      instanceId: z
        .string()
        .regex(/^[A-Za-z0-9._:-]{1,128}$/)
        .optional()
        .describe('Names this process in run leases; default `<hostname>:<pid>`.'),
      leaseMs: positiveMs
        .default(60_000)
        .describe(
          'A run whose owner stops renewing its lease this long is taken over by another instance.',
        ),
      historyDays: z
        .number()
        .positive()
        .default(30)
        .describe('Finished runs, their tasks and attempts are deleted after this.'),
      hourly: z
        .strictObject({
          cron: z.string().default('5 * * * *'),
          deadlineMs: positiveMs.default(30 * 60_000),
        })
        .prefault({})
        .describe('Silver and gold for every changed date, then quality for the day.'),
      daily: z
        .strictObject({
          cron: z.string().default('30 0 * * *'),
          deadlineMs: positiveMs.default(2 * 3_600_000),
          catchUpDays: z
            .number()
            .int()
            .min(0)
            .max(60)
            .default(7)
            .describe('Days missed while down that are run at start (oldest first).'),
          summaryChannels: z
            .array(z.string().min(1))
            .optional()
            .describe(
              'Channels (`alerting.notifiers`) the daily summary goes to; default `[log]` when a `log` channel is configured, else none.',
            ),
        })
        .prefault({})
        .describe(
          'Yesterday’s pipeline: freshness → silver → gold → quality → warehouse load → summary → notify, then retention.',
        ),
    })
    .prefault({}),
  imputation: z
    .strictObject({
      enabled: z
        .boolean()
        .default(true)
        .describe(
          'Run the `daily-imputation` workflow (needs `workflows.enabled`): fill yesterday’s missing values with a trained model and write them back.',
        ),
      cron: z.string().default('0 2 * * *').describe('When it runs, in `workflows.timezone`.'),
      deadlineMs: positiveMs.default(2 * 3_600_000),
      model: z
        .enum(['forest', 'linear', 'locf', 'mean'])
        .default('forest')
        .describe(
          'Model kind trained per sensor; `forest` falls back to `linear` for a sensor with too little history.',
        ),
      maxGapMs: positiveMs
        .default(6 * 3_600_000)
        .describe('Gaps longer than this are not filled: their readings stay missing.'),
      trainingDays: z
        .number()
        .int()
        .min(1)
        .max(90)
        .default(14)
        .describe('Days of silver history (ending with the run’s date) a model is trained on.'),
      retrainDays: z
        .number()
        .positive()
        .default(7)
        .describe(
          'A sensor’s model older than this, or trained on a different set of co-located sensors, is retrained.',
        ),
      maxTrainingRows: z.number().int().min(10).default(4_000),
      predictionTimeoutMs: positiveMs
        .default(30 * 60_000)
        .describe(
          'The prediction step (a worker thread) must call back within this; it is then retried.',
        ),
    })
    .prefault({}),
  landing: z
    .strictObject({
      enabled: z
        .boolean()
        .default(true)
        .describe(
          'Ingest files dropped in the landing area (see `docs/architecture.md`, File drop).',
        ),
      path: z
        .string()
        .optional()
        .describe(
          'Local landing folder. Default: `<dataDir>/landing` for a local lake; for an S3 lake, the prefix `landing/` inside the lake bucket and prefix.',
        ),
      scanIntervalMs: positiveMs
        .default(10_000)
        .describe('How often the landing area is listed (a local folder is also watched).'),
      settleMs: z
        .number()
        .int()
        .nonnegative()
        .default(2_000)
        .describe(
          'A file is taken once its size, modification time and content hash have stayed the same for this long (0 = on first sight).',
        ),
      maxFileBytes: z
        .number()
        .int()
        .positive()
        .default(256 * 1024 * 1024)
        .describe('Larger files go to `failed/` unread.'),
    })
    .prefault({}),
  stream: z
    .strictObject({
      zscoreWindow: z
        .number()
        .int()
        .min(2)
        .default(60)
        .describe('Previous readings the z-score compares against.'),
      zscoreMinHistory: z
        .number()
        .int()
        .min(2)
        .default(10)
        .describe('Readings needed before the z-score can fire.'),
      zscoreThreshold: z.number().positive().default(3),
      deviceScoreThreshold: z
        .number()
        .default(0.5)
        .describe('`anomaly_score` above this is a device anomaly.'),
    })
    .prefault({}),
  sensorTypes: z
    .record(z.string(), sensorType)
    .default({})
    .describe('Per-type settings; merged over the built-in types (temperature, humidity, …).'),
  sensors: z
    .array(sensor)
    .default([])
    .describe('Known sensors; others are registered on first sight.'),
  simulator: z
    .strictObject({
      enabled: z.boolean().default(false).describe('`canopy up --simulate` turns this on.'),
      sensors: z.number().int().min(1).max(10_000).default(50),
      ratePerSecond: z.number().positive().default(50),
      anomalyRate: z.number().min(0).max(1).default(0.02),
      seed: z.number().int().default(1),
      target: z
        .enum(['mqtt', 'http'])
        .default('mqtt')
        .describe('How simulated sensors reach Canopy.'),
      plants: z
        .strictObject({
          enabled: z
            .boolean()
            .default(true)
            .describe('Serve the plants API and poll it each minute.'),
          port: port.default(0).describe('0 picks a free port.'),
          count: z.number().int().min(1).max(1000).default(50),
          intervalMs: positiveMs.default(60_000),
        })
        .prefault({}),
    })
    .prefault({}),
});

/** The whole config; checks across sections (such as the roles' rules) run on the parsed value. */
export const configSchema = configObject.superRefine((config, ctx) => {
  for (const message of roleProblems(config))
    ctx.addIssue({ code: 'custom', message, path: ['roles'] });
});

/** The validated configuration, with every default filled in. */
export type CanopyConfig = z.output<typeof configSchema>;
/** What a user may write: every key optional where it has a default. */
export type CanopyConfigInput = z.input<typeof configSchema>;
export type SensorConfig = z.output<typeof sensor>;
export type SensorTypeConfig = z.output<typeof sensorType>;
export type PollSourceConfig = z.output<typeof pollSource>;
export type WideCsvMappingConfig = z.output<typeof wideCsvMapping>;
export type LakeConfig = CanopyConfig['lake'];
export type WarehouseConfig = CanopyConfig['warehouse'];
export type Thresholds = z.output<typeof thresholds>;
export type AlertingConfig = CanopyConfig['alerting'];
export type NotifierConfig = z.output<typeof notifier>;
export type AlertRouteConfig = z.output<typeof alertRoute>;
export type MetaConfig = CanopyConfig['meta'];
export type WorkflowsConfig = CanopyConfig['workflows'];
export type BusConfig = CanopyConfig['bus'];
