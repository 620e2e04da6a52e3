import { describe, expect, it } from 'vitest';
import { configSchema } from '../config/schema.js';
import { dateIn, dayBefore, housekeepingIsWorkflow, summaryReport } from './platform.js';

describe('the platform schedule', () => {
  it('makes housekeeping a workflow only while run history is local to the process', () => {
    expect(housekeepingIsWorkflow(configSchema.parse({}))).toBe(true);
    expect(housekeepingIsWorkflow(configSchema.parse({ meta: { kind: 'postgres' } }))).toBe(false);
    expect(housekeepingIsWorkflow(configSchema.parse({ workflows: { enabled: false } }))).toBe(
      false,
    );
  });

  it('gives the daily run the calendar day before its slot, in the schedule’s zone', () => {
    const slot = Date.UTC(2026, 2, 29, 0, 30); // 00:30 UTC on the spring-forward day
    expect(dayBefore('UTC', slot)).toBe('2026-03-28');
    // 09:30 in Tokyo is already the 29th; 20:30 the day before in New York.
    expect(dateIn('Asia/Tokyo', slot)).toBe('2026-03-29');
    expect(dayBefore('America/New_York', slot)).toBe('2026-03-27');
    expect(dayBefore('UTC', Date.UTC(2027, 0, 1, 0, 30))).toBe('2026-12-31');
  });

  it('reports a day with a stable id per date and channel', () => {
    const report = summaryReport(
      {
        date: '2026-11-27',
        readings: 1_000,
        sensors: 3,
        anomalies: 25,
        missing: 2,
        deadLetters: 1,
        quality: { success: false, failedSuites: ['bronze_readings'] },
        alerts: { opened: 4, critical: 1 },
      },
      'team',
      Date.UTC(2026, 10, 28, 0, 31),
    );
    expect(report.id).toBe('daily-summary:2026-11-27:team');
    expect(report.period).toEqual({
      from: '2026-11-27T00:00:00.000Z',
      to: '2026-11-28T00:00:00.000Z',
    });
    expect(Object.fromEntries(report.facts)).toEqual({
      Readings: '1,000',
      Sensors: '3',
      Anomalies: '25 (2.50 %)',
      'Missing values': '2',
      'Dead letters': '1',
      Quality: 'failed: bronze_readings',
      'Alerts opened': '4 (1 critical)',
    });
  });
});
