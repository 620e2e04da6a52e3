import { describe, expect, it } from 'vitest';
import type { IngestMessage, PayloadFormat } from '../core/ingest.js';
import { detectFormat } from './detect.js';

const msg = (
  payload: string | Buffer,
  contentType?: string,
  format?: PayloadFormat,
): IngestMessage => ({
  source: 'test',
  payload,
  ...(contentType === undefined ? {} : { contentType }),
  ...(format === undefined ? {} : { format }),
});

describe('detectFormat', () => {
  it.each([
    ['application/json', 'json'],
    ['application/json; charset=utf-8', 'json'],
    ['Application/JSON', 'json'],
    ['application/x-ndjson', 'ndjson'],
    ['application/ndjson', 'ndjson'],
    ['application/jsonl', 'ndjson'],
    ['text/csv', 'csv'],
    ['text/csv;charset=UTF-8', 'csv'],
  ])('content type %s -> %s', (contentType, format) => {
    // The content type wins over what the bytes look like.
    expect(detectFormat(msg('whatever', contentType))).toBe(format);
  });

  it('an explicit format wins over the content type', () => {
    expect(detectFormat(msg('{}', 'application/json', 'plants'))).toBe('plants');
    expect(detectFormat(msg('a,b', 'text/csv', 'csv-wide'))).toBe('csv-wide');
  });

  it.each([
    ['[{"a":1}]', 'json'],
    ['  \n [1]', 'json'],
    ['{"a":1}', 'json'],
    ['{"a":1}\n', 'json'],
    ['{\n  "a": 1\n}\n', 'json'],
    ['{"a":\n{"b":1}}', 'json'],
    ['{"a":1}\n{"a":2}', 'ndjson'],
    ['{"a":1}\r\n\r\n{"a":2}\r\n', 'ndjson'],
    ['\ufeff{"a":1}\n{"a":2}', 'ndjson'],
    ['timestamp,device_id,value,unit,anomaly_score\n2026-11-22T10:00:00Z,d,1,C,0', 'csv'],
    ['"timestamp","sensor_id","value"\n', 'csv'],
    ['Device_ID, TS, value\n', 'csv'],
    ['event_time,sensor_id\n', 'csv'],
  ])('sniffs %j as %s', (payload, format) => {
    expect(detectFormat(msg(payload))).toBe(format);
    expect(detectFormat(msg(Buffer.from(payload), 'application/octet-stream'))).toBe(format);
  });

  it.each([
    'hello',
    '<xml/>',
    'time,value\n1,2',
    'timestamp,value\n',
    'device_id,value\n',
    '',
    '   ',
    '42',
  ])('does not recognise %j', (payload) => {
    expect(detectFormat(msg(payload, 'text/plain'))).toBeUndefined();
  });
});
