/**
 * Properties of the ingest decoders and validator under hostile input, shared
 * by the quick test run (`ingest.property.test.ts`) and the long one
 * (`npm run fuzz`). Every property states the contract of `decodeAndValidate`
 * and its parts: nothing throws, every rejection carries a known reason, and
 * every accepted reading is one the hot stores can hold.
 */
import fc from 'fast-check';
import { REJECT_REASONS } from '../../src/core/errors.js';
import type { IngestMessage, PayloadFormat } from '../../src/core/ingest.js';
import type { Reading } from '../../src/core/reading.js';
import {
  AIR_QUALITY_UCI_MAPPING,
  chunkFile,
  FILE_CHUNK_RECORDS,
  decodeAndValidate,
  detectFormat,
  isValidSensorId,
  parseTimestamp,
  validateRecord,
  type DecodeOptions,
  type IngestLimits,
  type ValidationResult,
  type WideCsvMapping,
} from '../../src/ingest/index.js';
import { MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS } from '../../src/ingest/timestamp.js';

/** A named property; `run` counts as one input. */
export interface FuzzProperty {
  name: string;
  property: fc.IRawProperty<unknown>;
}

/** The clock of every property: validation only compares event times with it. */
export const FUZZ_NOW = Date.UTC(2026, 10, 30, 12, 0, 0);

const FORMATS: readonly (PayloadFormat | undefined)[] = [
  undefined,
  'json',
  'ndjson',
  'csv',
  'csv-wide',
  'plants',
];

/** Characters that broke parsers somewhere once: NUL, BOM, surrogate halves, separators. */
const NASTY_CHARS = [
  '\0',
  '\uFEFF',
  '\uD800',
  '\uDFFF',
  '\u2028',
  '\r',
  '\n',
  '"',
  ',',
  ';',
  '\t',
  '\\',
  '{',
  '[',
  '-',
  'é',
  '😀',
];

const nastyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...NASTY_CHARS), maxLength: 40 }),
  // Very long strings: cheap to build, they probe the length limits.
  fc
    .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }), fc.nat(5_000))
    .map(([s, n]) => s.repeat(n)),
);

const nastyNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(
    0,
    -0,
    1e11,
    -1e11,
    1e11 - 1,
    8.64e15,
    -8.64e15,
    8.64e15 + 1,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
    -62_135_596_800_001,
    253_402_300_800_000,
  ),
);

const nastyTimestamp = fc.oneof(
  nastyNumber,
  nastyNumber.map(String),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom(
    '0000-01-01T00:00:00Z',
    '0001-01-01T00:00:00Z',
    '9999-12-31T23:59:59.999Z',
    '+010000-01-01T00:00:00Z',
    '-000001-01-01T00:00:00Z',
    '2026-02-30T00:00:00Z',
    '2026-11-22T24:00:00Z',
    '2026-11-22T10:00:00+99:99',
    '1e309',
    '-1e309',
    'NaN',
    'Infinity',
    '0x10',
    '2026-11-22T10:00:00\0Z',
  ),
  nastyString,
);

/** Any JSON value, nested up to a few levels, with nasty leaves. */
const nastyLeaf = fc.oneof(
  nastyString,
  nastyNumber,
  nastyTimestamp,
  fc.boolean(),
  fc.constant(null),
);
const nastyJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyLeaf,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(nastyString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const FIELD_NAMES = [
  'sensor_id',
  'device_id',
  'timestamp',
  'event_time',
  'ts',
  'value',
  'readings',
  'units',
  'location',
  'sensor_type',
  'unit',
  'anomaly_score',
  'plant_id',
  'recording_taken',
  'soil_moisture',
  'temperature',
  '__proto__',
  'constructor',
];

/** A record with the field names decoders look for, each holding a nasty value. */
const nastyRecord = fc.dictionary(
  fc.oneof(fc.constantFrom(...FIELD_NAMES), nastyString),
  fc.oneof(nastyJson, fc.dictionary(nastyString, nastyLeaf, { maxKeys: 3 })),
  { maxKeys: 8 },
);

/** Text that looks enough like each format to get past detection. */
const nastyCsv = fc
  .tuple(
    fc.subarray(['timestamp', 'sensor_id', 'device_id', 'value', 'unit', 'Date', 'Time', 'T']),
    fc.array(fc.array(fc.oneof(nastyString, nastyNumber.map(String)), { maxLength: 6 }), {
      maxLength: 6,
    }),
    fc.constantFrom(',', ';', '\t'),
    fc.constantFrom('\n', '\r\n', '\r'),
  )
  .map(([header, rows, sep, eol]) => [header.join(sep), ...rows.map((r) => r.join(sep))].join(eol));

const deepJson = fc
  .tuple(fc.constantFrom('[', '{"a":', '{"readings":'), fc.integer({ min: 1, max: 20_000 }))
  .map(([open, depth]) => {
    const close = open === '[' ? ']' : '}';
    return `${open.repeat(depth)}1${close.repeat(depth)}`;
  });

const nastyText = fc.oneof(
  nastyString,
  nastyCsv,
  deepJson,
  nastyJson.map((v) => JSON.stringify(v) ?? ''),
  nastyRecord.map((r) => JSON.stringify(r)),
  fc.array(nastyRecord, { maxLength: 6 }).map((rs) => JSON.stringify(rs)),
  fc.array(nastyRecord, { maxLength: 6 }).map((rs) => rs.map((r) => JSON.stringify(r)).join('\n')),
  // A valid payload with a nasty string spliced in somewhere.
  fc
    .tuple(fc.array(nastyRecord, { maxLength: 3 }), nastyString, fc.nat())
    .map(([rs, splice, at]) => {
      const text = JSON.stringify(rs);
      const i = at % (text.length + 1);
      return text.slice(0, i) + splice + text.slice(i);
    }),
);

const payload: fc.Arbitrary<Buffer | string> = fc.oneof(
  nastyText,
  nastyText.map((t) => Buffer.from(t, 'utf8')),
  fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)),
);

const limitsArb: fc.Arbitrary<IngestLimits> = fc.record({
  maxPayloadBytes: fc.oneof(fc.constant(10 * 1024 * 1024), fc.integer({ min: 1, max: 4_096 })),
  maxReadingsPerPayload: fc.oneof(fc.constant(100_000), fc.integer({ min: 1, max: 8 })),
  maxStringLength: fc.oneof(fc.constant(256), fc.integer({ min: 1, max: 32 })),
  maxFutureSkewMs: fc.oneof(fc.constant(300_000), fc.nat()),
});

const wideMapping: fc.Arbitrary<WideCsvMapping | undefined> = fc.oneof(
  fc.constant(undefined),
  fc.constant(AIR_QUALITY_UCI_MAPPING),
  fc.record({
    deviceId: nastyString,
    delimiter: fc.constantFrom(',', ';', '\t'),
    timestamp: fc.record({
      column: fc.constantFrom('timestamp', 'Date', 'x'),
      format: fc.constantFrom('iso', 'dmy', 'mdy', 'ymd', 'epoch_s', 'epoch_ms'),
      utcOffsetMinutes: fc.integer({ min: -100_000, max: 100_000 }),
    }),
    missingValue: nastyNumber,
  }),
);

const message: fc.Arbitrary<IngestMessage> = fc.record(
  {
    source: fc.constant('fuzz'),
    payload,
    contentType: fc.oneof(
      fc.constantFrom('application/json', 'application/x-ndjson', 'text/csv', 'text/plain'),
      nastyString,
    ),
    format: fc.constantFrom(...FORMATS),
  },
  { requiredKeys: ['source', 'payload'] },
);

const decodeOptions: fc.Arbitrary<DecodeOptions> = fc
  .tuple(limitsArb, wideMapping, fc.option(nastyString, { nil: undefined }))
  .map(([limits, wideCsv, plantsLocation]) => {
    const options: DecodeOptions = { limits };
    if (wideCsv !== undefined) options.wideCsv = wideCsv;
    if (plantsLocation !== undefined) options.plantsLocation = plantsLocation;
    return options;
  });

/** The problems of one result against the contract; empty when it holds. */
export function contractViolations(
  result: ValidationResult,
  limits: IngestLimits,
  now: number,
): string[] {
  const problems: string[] = [];
  for (const r of result.rejections) {
    if (!Object.hasOwn(REJECT_REASONS, r.reason)) problems.push(`unknown reason ${r.reason}`);
    if (typeof r.message !== 'string' || r.message === '') problems.push('rejection without text');
    if (typeof r.raw !== 'string') problems.push(`${r.reason}: raw is not a string`);
  }
  if (result.readings.length > limits.maxReadingsPerPayload) {
    problems.push(`${result.readings.length} readings over the limit`);
  }
  for (const reading of result.readings) {
    const p = readingViolation(reading, limits, now);
    if (p !== undefined) problems.push(`${p}: ${JSON.stringify(reading)}`);
  }
  return problems;
}

function readingViolation(r: Reading, limits: IngestLimits, now: number): string | undefined {
  const max = limits.maxStringLength;
  if (!isValidSensorId(r.sensorId) || r.sensorId.length > max) return 'bad sensor id';
  if (!(r.value === null || Number.isFinite(r.value))) return 'value not finite or null';
  if (!(r.anomalyScore === null || Number.isFinite(r.anomalyScore))) return 'bad anomaly score';
  if (!Number.isInteger(r.eventTime)) return 'event time not an integer';
  if (r.eventTime < MIN_EVENT_TIME_MS || r.eventTime > MAX_EVENT_TIME_MS)
    return 'year outside 1-9999';
  if (r.eventTime - now > limits.maxFutureSkewMs) return 'event time too far ahead';
  for (const label of [r.sensorType, r.location, r.unit]) {
    if (label === null) continue;
    if (typeof label !== 'string' || label === '' || label.length > max) return 'bad label';
    if (label.includes('\0')) return 'NUL in a label';
  }
  return undefined;
}

function assertContract(result: ValidationResult, limits: IngestLimits, now: number): void {
  const problems = contractViolations(result, limits, now);
  if (problems.length > 0) throw new Error(problems.slice(0, 5).join('\n'));
}

/** A well-formed reading, to check that validation keeps what it should (the oracle side). */
const goodReading = fc.record({
  sensor_id: fc.stringMatching(/^[A-Za-z0-9._:/-]{1,40}$/),
  timestamp: fc
    .integer({ min: Date.UTC(1900, 0, 1), max: FUZZ_NOW })
    .map((ms) => new Date(ms).toISOString()),
  value: fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant(null)),
  location: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
});

export function ingestProperties(): FuzzProperty[] {
  return [
    {
      name: 'decodeAndValidate: any message under any limits keeps the contract',
      property: fc.property(message, decodeOptions, (m, options) => {
        assertContract(decodeAndValidate(m, options, FUZZ_NOW), options.limits, FUZZ_NOW);
      }),
    },
    {
      name: 'decodeAndValidate: a payload over maxPayloadBytes is one PAYLOAD_TOO_LARGE',
      property: fc.property(message, limitsArb, (m, limits) => {
        const bytes =
          typeof m.payload === 'string' ? Buffer.byteLength(m.payload) : m.payload.length;
        const result = decodeAndValidate(m, { limits }, FUZZ_NOW);
        if (bytes <= limits.maxPayloadBytes) return;
        if (result.readings.length !== 0 || result.rejections.length !== 1) {
          throw new Error('an oversized payload must yield exactly one rejection');
        }
        if (result.rejections[0]!.reason !== 'PAYLOAD_TOO_LARGE') throw new Error('wrong reason');
      }),
    },
    {
      name: 'validateRecord: any in-process value keeps the contract',
      property: fc.property(
        fc.oneof(nastyRecord, fc.anything({ withBigInt: true, withNullPrototype: true })),
        limitsArb,
        (record, limits) => {
          const candidate = { record, index: 0, raw: 'raw' };
          assertContract(validateRecord(candidate, { limits }, FUZZ_NOW), limits, FUZZ_NOW);
        },
      ),
    },
    {
      name: 'validateRecord: a well-formed reading is accepted unchanged',
      property: fc.property(goodReading, (rec) => {
        const limits: IngestLimits = {
          maxPayloadBytes: 1 << 20,
          maxReadingsPerPayload: 10,
          maxStringLength: 256,
          maxFutureSkewMs: 0,
        };
        const json = JSON.stringify([rec]);
        const { readings, rejections } = decodeAndValidate(
          { source: 'fuzz', payload: json },
          { limits },
          FUZZ_NOW,
        );
        const r = readings[0];
        if (rejections.length > 0 || readings.length !== 1 || r === undefined) {
          throw new Error(`rejected: ${JSON.stringify(rejections)}`);
        }
        // Second way: Date.parse reads a Z-suffixed ISO string exactly.
        const same =
          r.sensorId === rec.sensor_id &&
          r.eventTime === Date.parse(rec.timestamp) &&
          Object.is(r.value, rec.value === null ? null : JSON.parse(JSON.stringify(rec.value))) &&
          r.location === rec.location;
        if (!same) throw new Error(`changed: ${JSON.stringify(r)}`);
      }),
    },
    {
      name: 'parseTimestamp: NaN or an integer inside the Date range',
      property: fc.property(fc.oneof(nastyTimestamp, nastyJson), (value) => {
        const ms = parseTimestamp(value);
        if (Number.isNaN(ms)) return;
        if (!Number.isInteger(ms) || Math.abs(ms) > 8.64e15) throw new Error(`got ${ms}`);
      }),
    },
    {
      name: 'parseTimestamp: agrees with Date on ISO strings of years 1-9999',
      property: fc.property(
        fc.integer({ min: MIN_EVENT_TIME_MS, max: MAX_EVENT_TIME_MS }),
        (ms) => parseTimestamp(new Date(ms).toISOString()) === ms,
      ),
    },
    {
      name: 'isValidSensorId: agrees with the contract regular expression',
      property: fc.property(
        fc.oneof(nastyString, fc.stringMatching(/^[A-Za-z0-9._:/-]{0,10}$/)),
        (id) => isValidSensorId(id) === /^[A-Za-z0-9._:/-]+$/.test(id),
      ),
    },
    {
      name: 'chunkFile: never throws, and JSON array chunks hold at most FILE_CHUNK_RECORDS',
      property: fc.property(nastyText, fc.constantFrom(...FORMATS), (text, format) => {
        const chunks = chunkFile(text, format ?? 'json');
        if (format !== 'json' || chunks.length < 2) return;
        for (const chunk of chunks) {
          const records: unknown = JSON.parse(chunk);
          if (!Array.isArray(records) || records.length > FILE_CHUNK_RECORDS) {
            throw new Error('a JSON chunk is not a bounded array');
          }
        }
      }),
    },
    {
      name: 'detectFormat: never throws, answers a known format or nothing',
      property: fc.property(message, (m) => {
        const format = detectFormat(m);
        if (!FORMATS.includes(format)) throw new Error(`unknown format ${String(format)}`);
      }),
    },
  ];
}

/** The messages a corpus file is replayed as: each format, as text and as bytes. */
export function corpusMessages(text: string): IngestMessage[] {
  const out: IngestMessage[] = [];
  for (const format of FORMATS) {
    out.push({ source: 'corpus', payload: text, format });
    out.push({ source: 'corpus', payload: Buffer.from(text, 'utf8'), format });
  }
  return out;
}
