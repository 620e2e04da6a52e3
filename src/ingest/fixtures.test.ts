/**
 * Fixture-folder runner: every folder under test/fixtures/ingest/ is one case.
 *
 *   input.<ext>     the payload (read as bytes)
 *   options.json    optional: format, contentType, now (ISO or epoch ms),
 *                   limits (partial, over DEFAULT_LIMITS), wideCsv, plantsLocation
 *   expected.json   { readings: [...], rejections: [{ reason, index?, messageIncludes?, raw? }] }
 *
 * Expected readings give eventTime as an ISO string; omitted optional fields
 * (sensorType, location, unit, anomalyScore) mean null. A new case is a new folder.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REJECT_REASONS, type RejectReason } from '../core/errors.js';
import type { PayloadFormat } from '../core/ingest.js';
import type { Reading } from '../core/reading.js';
import {
  decodeAndValidate,
  DEFAULT_LIMITS,
  type IngestLimits,
  type WideCsvMapping,
} from './index.js';

const ROOT = new URL('../../test/fixtures/ingest/', import.meta.url);
const DEFAULT_NOW = '2026-11-22T12:00:00.000Z';

interface CaseOptions {
  format?: PayloadFormat;
  contentType?: string;
  now?: string | number;
  limits?: Partial<IngestLimits>;
  wideCsv?: WideCsvMapping;
  plantsLocation?: string;
}

interface ExpectedReading extends Partial<Omit<Reading, 'eventTime'>> {
  eventTime: string;
}

interface ExpectedRejection {
  reason: RejectReason;
  index?: number;
  messageIncludes?: string;
  raw?: string;
}

interface Expected {
  readings: ExpectedReading[];
  rejections: ExpectedRejection[];
}

function readJson<T>(url: URL): T {
  return JSON.parse(readFileSync(url, 'utf8')) as T;
}

const cases = readdirSync(ROOT, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

describe('ingest fixtures', () => {
  it('has cases', () => {
    expect(cases.length).toBeGreaterThan(20);
  });

  for (const name of cases) {
    it(name, () => {
      const dir = new URL(`${name}/`, ROOT);
      const files = readdirSync(dir);
      const inputFile = files.find((f) => f.startsWith('input.'));
      if (inputFile === undefined) throw new Error(`${name}: no input.* file`);
      const optionsUrl = new URL('options.json', dir);
      const opts = existsSync(optionsUrl) ? readJson<CaseOptions>(optionsUrl) : {};
      const expected = readJson<Expected>(new URL('expected.json', dir));
      const now = typeof opts.now === 'number' ? opts.now : Date.parse(opts.now ?? DEFAULT_NOW);

      const result = decodeAndValidate(
        {
          source: 'fixture',
          payload: readFileSync(new URL(inputFile, dir)),
          ...(opts.format === undefined ? {} : { format: opts.format }),
          ...(opts.contentType === undefined ? {} : { contentType: opts.contentType }),
        },
        {
          limits: { ...DEFAULT_LIMITS, ...opts.limits },
          ...(opts.wideCsv === undefined ? {} : { wideCsv: opts.wideCsv }),
          ...(opts.plantsLocation === undefined ? {} : { plantsLocation: opts.plantsLocation }),
        },
        now,
      );

      const actualReadings = result.readings.map((r) => ({
        ...r,
        eventTime: new Date(r.eventTime).toISOString(),
      }));
      const expectedReadings = expected.readings.map((r) => ({
        sensorId: r.sensorId,
        sensorType: r.sensorType ?? null,
        location: r.location ?? null,
        eventTime: new Date(r.eventTime).toISOString(),
        value: r.value,
        unit: r.unit ?? null,
        anomalyScore: r.anomalyScore ?? null,
      }));
      expect(actualReadings).toEqual(expectedReadings);

      expect(result.rejections.map((r) => ({ reason: r.reason, index: r.index }))).toEqual(
        expected.rejections.map((r) => ({ reason: r.reason, index: r.index })),
      );
      result.rejections.forEach((rej, i) => {
        const want = expected.rejections[i]!;
        expect(rej.message.length).toBeGreaterThan(0);
        expect(typeof rej.raw).toBe('string');
        if (want.messageIncludes !== undefined) expect(rej.message).toContain(want.messageIncludes);
        if (want.raw !== undefined) expect(rej.raw).toBe(want.raw);
      });
    });
  }

  it('cover every reason code that decoding and validation can produce', () => {
    // POLL_* reasons belong to the poll source, TOO_MANY_SENSORS to the pipeline's registry,
    // BUS_MESSAGE_UNREADABLE to the bus consumer (src/runtime/bus.ts).
    const elsewhere = new Set(['TOO_MANY_SENSORS', 'BUS_MESSAGE_UNREADABLE']);
    const producible = Object.keys(REJECT_REASONS).filter(
      (r) => !r.startsWith('POLL_') && !elsewhere.has(r),
    );
    const expectedReasons = new Set<string>();
    for (const name of cases) {
      const expected = readJson<Expected>(new URL(`${name}/expected.json`, ROOT));
      for (const r of expected.rejections) expectedReasons.add(r.reason);
    }
    expect([...expectedReasons].sort()).toEqual(producible.sort());
  });
});
