/**
 * Replays the seed corpus of nasty inputs (test/fuzz/corpus/*.txt) through
 * every decoder: each file once per format, as text and as bytes. Files that
 * once crashed or slipped through are kept here so they never come back.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { RejectReason } from '../../src/core/errors.js';
import {
  AIR_QUALITY_UCI_MAPPING,
  chunkFile,
  decodeAndValidate,
  DEFAULT_LIMITS,
  type DecodeOptions,
} from '../../src/ingest/index.js';
import { contractViolations, corpusMessages, FUZZ_NOW } from './ingest-properties.js';

const CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'corpus');
const files = readdirSync(CORPUS).filter((f) => f.endsWith('.txt'));

/** What some files must yield as JSON: the rule they were added for. */
const EXPECTED: Record<string, { reasons: RejectReason[]; accepted: number }> = {
  'deep-array.txt': { reasons: ['NOT_AN_OBJECT'], accepted: 0 },
  'deep-object.txt': { reasons: ['MISSING_SENSOR_ID'], accepted: 0 },
  'deep-readings.txt': { reasons: ['INVALID_VALUE'], accepted: 0 },
  'nul-in-location.txt': { reasons: ['NUL_CHARACTER'], accepted: 0 },
  'nul-in-unit.txt': { reasons: ['NUL_CHARACTER'], accepted: 0 },
  'year-0000.txt': { reasons: ['TIMESTAMP_OUT_OF_RANGE'], accepted: 0 },
  'year-10000-epoch-ms.txt': { reasons: ['TIMESTAMP_OUT_OF_RANGE'], accepted: 0 },
  'year-before-1-epoch-s.txt': { reasons: ['TIMESTAMP_OUT_OF_RANGE'], accepted: 0 },
  'proto-keys.txt': { reasons: ['MISSING_SENSOR_ID'], accepted: 0 },
  'multi-measure-bad-names.txt': {
    reasons: ['INVALID_SENSOR_ID', 'INVALID_SENSOR_ID', 'INVALID_SENSOR_ID'],
    accepted: 1,
  },
};

const options: DecodeOptions = { limits: DEFAULT_LIMITS, wideCsv: AIR_QUALITY_UCI_MAPPING };

describe('seed corpus of hostile input', () => {
  it('holds the files the expectations name', () => {
    for (const name of Object.keys(EXPECTED)) expect(files).toContain(name);
  });

  for (const file of files) {
    it(file, () => {
      const text = readFileSync(path.join(CORPUS, file), 'utf8');
      for (const message of corpusMessages(text)) {
        const result = decodeAndValidate(message, options, FUZZ_NOW);
        expect(contractViolations(result, DEFAULT_LIMITS, FUZZ_NOW)).toEqual([]);
        if (message.format !== undefined && message.format !== 'csv-wide') {
          expect(() => chunkFile(text, message.format!)).not.toThrow();
        }
      }
      const expected = EXPECTED[file];
      if (expected !== undefined) {
        const result = decodeAndValidate(
          { source: 'corpus', payload: text, format: 'json' },
          options,
          FUZZ_NOW,
        );
        expect(result.rejections.map((r) => r.reason)).toEqual(expected.reasons);
        expect(result.readings).toHaveLength(expected.accepted);
      }
    });
  }
});
