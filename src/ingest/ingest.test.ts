/**
 * Behaviour of the public API beyond the fixture cases: mixed payloads,
 * the lower-level pieces, raw texts, and robustness against arbitrary input.
 */
import { describe, expect, it } from 'vitest';
import { REJECT_REASONS } from '../core/errors.js';
import type { IngestMessage, PayloadFormat } from '../core/ingest.js';
import {
  AIR_QUALITY_UCI_MAPPING,
  decode,
  decodeAndValidate,
  DEFAULT_LIMITS,
  validateRecord,
  type DecodeOptions,
} from './index.js';

const NOW = Date.parse('2026-11-22T12:00:00Z');
const OPTIONS: DecodeOptions = { limits: DEFAULT_LIMITS };
const json = (payload: unknown, format: PayloadFormat = 'json'): IngestMessage => ({
  source: 'test',
  payload: JSON.stringify(payload),
  format,
});

describe('decodeAndValidate', () => {
  it('returns the good readings of a payload beside a reason for every bad one', () => {
    const records = [
      { sensor_id: 'a', timestamp: '2026-11-22T10:00:00Z', value: 1 },
      { sensor_id: 'a', timestamp: 'soon', value: 2 },
      { sensor_id: 'b', timestamp: '2026-11-22T10:00:00Z', value: 'x' },
      { sensor_id: 'c', timestamp: '2026-11-22T10:00:00Z', value: null },
      7,
    ];
    const r = decodeAndValidate(json(records), OPTIONS, NOW);
    expect(r.readings.map((x) => [x.sensorId, x.value])).toEqual([
      ['a', 1],
      ['c', null],
    ]);
    expect(r.rejections.map((x) => [x.reason, x.index, x.raw])).toEqual([
      ['INVALID_TIMESTAMP', 1, JSON.stringify(records[1])],
      ['INVALID_VALUE', 2, JSON.stringify(records[2])],
      ['NOT_AN_OBJECT', 4, '7'],
    ]);
  });

  it('gives the same result for a Buffer and a string payload', () => {
    const records = [{ sensor_id: 'a', timestamp: 1795341600, value: 1, location: 'Zürich/bed-2' }];
    const fromString = decodeAndValidate(json(records), OPTIONS, NOW);
    const fromBuffer = decodeAndValidate(
      { source: 'test', payload: Buffer.from(JSON.stringify(records)), format: 'json' },
      OPTIONS,
      NOW,
    );
    expect(fromBuffer).toEqual(fromString);
    expect(fromString.readings[0]!.location).toBe('Zürich/bed-2');
  });

  it('measures the payload limit in UTF-8 bytes, not characters', () => {
    const limits = { ...DEFAULT_LIMITS, maxPayloadBytes: 100 };
    // 40 characters, 120 bytes.
    const payload = '€'.repeat(40);
    const r = decodeAndValidate({ source: 'test', payload, format: 'json' }, { limits }, NOW);
    expect(r.rejections.map((x) => x.reason)).toEqual(['PAYLOAD_TOO_LARGE']);
    expect(r.rejections[0]!.message).toContain('120 bytes');
  });

  it('keeps only the start of an oversized payload as raw', () => {
    const limits = { ...DEFAULT_LIMITS, maxPayloadBytes: 10_000 };
    const payload = Buffer.alloc(50_000, 'a');
    const r = decodeAndValidate({ source: 'test', payload, format: 'json' }, { limits }, NOW);
    expect(r.rejections[0]!.reason).toBe('PAYLOAD_TOO_LARGE');
    expect(r.rejections[0]!.raw).toBe('a'.repeat(4096));
  });

  it('cuts long bad values in messages but keeps the raw record whole', () => {
    const value = 'z'.repeat(5000);
    const r = decodeAndValidate(
      json([{ sensor_id: 'a', timestamp: '2026-11-22T10:00:00Z', value }]),
      OPTIONS,
      NOW,
    );
    const rej = r.rejections[0]!;
    expect(rej.reason).toBe('INVALID_VALUE');
    expect(rej.message.length).toBeLessThan(300);
    expect(rej.message).toContain('value of a');
    expect(rej.raw).toContain(value);
  });

  it('counts expanded multi-measure readings against the limit', () => {
    const limits = { ...DEFAULT_LIMITS, maxReadingsPerPayload: 4 };
    const rec = (id: string) => ({ sensor_id: id, ts: 1795341600, readings: { a: 1, b: 2 } });
    expect(decodeAndValidate(json([rec('x'), rec('y')]), { limits }, NOW).readings).toHaveLength(4);
    const over = decodeAndValidate(json([rec('x'), rec('y'), rec('z')]), { limits }, NOW);
    expect(over.readings).toEqual([]);
    expect(over.rejections.map((x) => x.reason)).toEqual(['TOO_MANY_READINGS']);
  });

  it('orders rejections by position when decoding and validation both reject (NDJSON)', () => {
    const payload = ['{"sensor_id":"a","ts":1,"value":"bad"}', '{oops', '{"ts":1,"value":1}'].join(
      '\n',
    );
    const r = decodeAndValidate({ source: 'test', payload, format: 'ndjson' }, OPTIONS, NOW);
    expect(r.rejections.map((x) => [x.index, x.reason])).toEqual([
      [0, 'INVALID_VALUE'],
      [1, 'INVALID_JSON'],
      [2, 'MISSING_SENSOR_ID'],
    ]);
  });

  it('never throws and only produces known reason codes, whatever the bytes', () => {
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const alphabet = '{}[]",:0123456789.-eE tnrufalsx\n\r\\/Tabc_ZüÂ€';
    const formats: (PayloadFormat | undefined)[] = [
      'json',
      'ndjson',
      'csv',
      'csv-wide',
      'plants',
      undefined,
    ];
    const seeds = [
      '{"sensor_id":"a","timestamp":"2026-11-22T10:00:00Z","value":1,"readings":{"x":1}}',
      'timestamp,device_id,value\n2026-11-22T10:00:00Z,a,1\n',
      'Date,Time,CO_GT\n10/03/2004,18:00:00,2.6\n',
      '{"plant_id":7,"soil_moisture":1,"temperature":2,"recording_taken":"2026-11-22T10:00:00Z"}',
    ];
    for (let i = 0; i < 3000; i++) {
      const base = seeds[i % seeds.length]!;
      // Mutate a valid payload, so that the decoders get past their first checks.
      const chars = [...base];
      const edits = 1 + Math.floor(rand() * 6);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rand() * (chars.length + 1));
        const ch = alphabet[Math.floor(rand() * alphabet.length)]!;
        if (rand() < 0.5) chars.splice(at, 1, ch);
        else chars.splice(at, 0, ch);
      }
      const format = formats[i % formats.length];
      const message: IngestMessage = {
        source: 'fuzz',
        payload: chars.join(''),
        ...(format ? { format } : {}),
      };
      const r = decodeAndValidate(
        message,
        { limits: DEFAULT_LIMITS, wideCsv: AIR_QUALITY_UCI_MAPPING },
        NOW,
      );
      for (const rej of r.rejections) {
        expect(Object.keys(REJECT_REASONS)).toContain(rej.reason);
        expect(typeof rej.raw).toBe('string');
        expect(rej.message.length).toBeGreaterThan(0);
      }
      for (const reading of r.readings) {
        expect(Number.isInteger(reading.eventTime)).toBe(true);
        expect(reading.value === null || Number.isFinite(reading.value)).toBe(true);
        expect(reading.sensorId).toMatch(/^[A-Za-z0-9._:/-]+$/);
      }
    }
  });
});

describe('decode', () => {
  it('returns candidates with index and raw, and leaves judging to validation', () => {
    const records = [{ sensor_id: 'a' }, 42];
    const { candidates, rejections } = decode(json(records), OPTIONS);
    expect(rejections).toEqual([]);
    expect(candidates.map((c) => [c.index, c.raw, c.record])).toEqual([
      [0, '{"sensor_id":"a"}', { sensor_id: 'a' }],
      [1, '42', 42],
    ]);
  });

  it('gives NDJSON candidates their line as raw and line number - 1 as index', () => {
    const payload = '\n{"a":1}\n\n  {"b":2}  \n';
    const { candidates } = decode({ source: 'test', payload, format: 'ndjson' }, OPTIONS);
    expect(candidates.map((c) => [c.index, c.raw])).toEqual([
      [1, '{"a":1}'],
      [3, '  {"b":2}  '],
    ]);
  });

  it('gives CSV candidates their data row position and line', () => {
    const payload =
      'timestamp,device_id,value\r\n2026-11-22T10:00:00Z,a,1\r\n\r\n2026-11-22T10:00:00Z,b,2\r\n';
    const { candidates } = decode({ source: 'test', payload, contentType: 'text/csv' }, OPTIONS);
    expect(candidates.map((c) => [c.index, c.raw])).toEqual([
      [0, '2026-11-22T10:00:00Z,a,1'],
      [1, '2026-11-22T10:00:00Z,b,2'],
    ]);
  });

  it('rejects a payload it cannot classify as UNSUPPORTED_FORMAT with the payload as raw', () => {
    const { candidates, rejections } = decode(
      { source: 'test', payload: 'temperature=21.4' },
      OPTIONS,
    );
    expect(candidates).toEqual([]);
    expect(rejections).toEqual([
      expect.objectContaining({ reason: 'UNSUPPORTED_FORMAT', raw: 'temperature=21.4' }),
    ]);
  });
});

describe('validateRecord', () => {
  const candidate = (record: unknown) => ({ record, index: 3, raw: 'RAW' });

  it('accepts a reading and maps it to camelCase with integer epoch ms', () => {
    const r = validateRecord(
      candidate({
        sensor_id: 'a',
        timestamp: '2026-11-22T10:00:00.5Z',
        value: '1.5',
        unit: 'C',
        anomaly_score: 0,
      }),
      OPTIONS,
      NOW,
    );
    expect(r).toEqual({
      readings: [
        {
          sensorId: 'a',
          sensorType: null,
          location: null,
          eventTime: Date.parse('2026-11-22T10:00:00.500Z'),
          value: 1.5,
          unit: 'C',
          anomalyScore: 0,
        },
      ],
      rejections: [],
    });
  });

  it("rejects with the candidate's index and raw", () => {
    const r = validateRecord(candidate({ sensor_id: 'a', timestamp: 'x', value: 1 }), OPTIONS, NOW);
    expect(r.readings).toEqual([]);
    expect(r.rejections).toEqual([
      {
        reason: 'INVALID_TIMESTAMP',
        message: expect.stringContaining('"x"') as string,
        index: 3,
        raw: 'RAW',
      },
    ]);
  });

  it('prefers sensor_id over device_id and timestamp over its aliases', () => {
    const r = validateRecord(
      candidate({
        sensor_id: 's',
        device_id: 'd',
        timestamp: 1795341600,
        event_time: 0,
        ts: 1,
        value: 1,
      }),
      OPTIONS,
      NOW,
    );
    expect(r.readings[0]).toMatchObject({ sensorId: 's', eventTime: 1795341600000 });
  });

  it('accepts old timestamps (late data) and bounds future ones by maxFutureSkewMs', () => {
    const at = (ts: number) =>
      validateRecord(candidate({ sensor_id: 'a', ts, value: 1 }), OPTIONS, NOW);
    expect(at(Date.UTC(1990, 0, 1)).readings).toHaveLength(1);
    expect(at(NOW + DEFAULT_LIMITS.maxFutureSkewMs).readings).toHaveLength(1);
    expect(at(NOW + DEFAULT_LIMITS.maxFutureSkewMs + 1).rejections[0]!.reason).toBe(
      'FUTURE_TIMESTAMP',
    );
  });
});
