/**
 * The wide-CSV decoder on the real UCI air-quality file, checked against
 * counts made independently here by plain string splitting.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AIR_QUALITY_UCI_MAPPING, decodeAndValidate, DEFAULT_LIMITS } from './index.js';

const FILE = '/work/shared/datasets/air-quality-uci.csv';
const MEASURES = 13;

describe('AIR_QUALITY_UCI_MAPPING on air-quality-uci.csv', () => {
  const text = readFileSync(FILE, 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0]!.split(',');
  const rows = lines.slice(1).map((l) => l.split(','));
  const result = decodeAndValidate(
    { source: 'file', payload: readFileSync(FILE), format: 'csv-wide' },
    // The file holds 121 641 readings, above the default per-payload limit.
    {
      limits: { ...DEFAULT_LIMITS, maxReadingsPerPayload: 200_000 },
      wideCsv: AIR_QUALITY_UCI_MAPPING,
    },
    Date.UTC(2026, 0, 1),
  );

  it('maps every measure column of the file', () => {
    expect(header.slice(2)).toEqual(Object.keys(AIR_QUALITY_UCI_MAPPING.columns!));
    expect(rows.length).toBe(9357);
  });

  it('yields rows x 13 readings and no rejections', () => {
    expect(result.rejections).toEqual([]);
    expect(result.readings.length).toBe(rows.length * MEASURES);
  });

  it('turns exactly the -200 cells into null values', () => {
    let sentinels = 0;
    let empty = 0;
    for (const cells of rows) {
      for (const cell of cells.slice(2)) {
        if (cell.trim() === '-200') sentinels++;
        if (cell.trim() === '') empty++;
      }
    }
    expect(sentinels).toBeGreaterThan(10_000);
    expect(empty).toBe(0);
    expect(result.readings.filter((r) => r.value === null).length).toBe(sentinels);
  });

  it('reads the first row as 10 March 2004 18:00 at UTC+1', () => {
    const first = result.readings.slice(0, MEASURES);
    const at = Date.parse('2004-03-10T17:00:00Z');
    expect(first.every((r) => r.eventTime === at)).toBe(true);
    expect(first[0]).toEqual({
      sensorId: 'airquality-uci.CO_GT',
      sensorType: 'co_gt',
      location: null,
      eventTime: at,
      value: 2.6,
      unit: 'mg/m³',
      anomalyScore: null,
    });
    expect(first.find((r) => r.sensorId === 'airquality-uci.T')).toMatchObject({
      sensorType: 'temperature',
      unit: '°C',
      value: 13.6,
    });
    expect(first.find((r) => r.sensorId === 'airquality-uci.PT08_S1_CO')).toMatchObject({
      unit: null,
      value: 1360,
    });
  });

  it('spot-checks a row with missing values and a one-digit day and hour', () => {
    // 4/04/2005,14:00:00 is the last row; 11/03/2004,4:00:00 has CO_GT = -200.
    const last = result.readings.slice(-MEASURES);
    expect(new Date(last[0]!.eventTime).toISOString()).toBe('2005-04-04T13:00:00.000Z');
    expect(last.find((r) => r.sensorId === 'airquality-uci.AH')!.value).toBe(0.5028);
    const t = Date.parse('2004-03-11T03:00:00Z');
    const co = result.readings.find(
      (r) => r.eventTime === t && r.sensorId === 'airquality-uci.CO_GT',
    );
    expect(co).toMatchObject({ value: null, unit: 'mg/m³' });
  });

  it('is hourly and strictly increasing, one reading per sensor and hour', () => {
    const times = result.readings
      .filter((r) => r.sensorId === 'airquality-uci.RH')
      .map((r) => r.eventTime);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(3_600_000);
    expect(new Set(result.readings.map((r) => `${r.sensorId}@${r.eventTime}`)).size).toBe(
      result.readings.length,
    );
  });

  it('is one TOO_MANY_READINGS rejection under the default limit', () => {
    const r = decodeAndValidate(
      { source: 'file', payload: text, format: 'csv-wide' },
      { limits: DEFAULT_LIMITS, wideCsv: AIR_QUALITY_UCI_MAPPING },
      Date.UTC(2026, 0, 1),
    );
    expect(r.readings).toEqual([]);
    expect(r.rejections.map((x) => x.reason)).toEqual(['TOO_MANY_READINGS']);
  });
});
