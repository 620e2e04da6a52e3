/** A complete NotificationPayload and ReportPayload for notifier and outbox tests. */
import type { NotificationPayload, ReportPayload } from '../../src/core/alerts.js';

export function samplePayload(overrides: Partial<NotificationPayload> = {}): NotificationPayload {
  return {
    id: 'evt-7f3a:ops-hook',
    event: 'escalated',
    at: '2025-06-01T12:00:05.000Z',
    alert: {
      id: 'alert-1',
      ruleId: 'greenhouse-too-hot',
      subject: 'sensor:gh-temp-17',
      sensorId: 'gh-temp-17',
      location: 'greenhouse/1/a',
      severity: 'critical',
      state: 'escalated',
      summary: 'gh-temp-17 temperature 41.5 above 38',
      value: 41.5,
      threshold: 38,
      labels: { team: 'growers', sensor_type: 'temperature' },
      openedAt: '2025-06-01T11:58:00.000Z',
      url: 'https://canopy.example.com/alerts/alert-1',
    },
    tier: 1,
    actor: 'system',
    note: null,
    ...overrides,
  };
}

/** A complete ReportPayload (the daily summary) for notifier tests. */
export function sampleReport(overrides: Partial<ReportPayload> = {}): ReportPayload {
  return {
    id: 'daily-summary:2026-11-28:ops-hook',
    kind: 'daily-summary',
    title: 'Canopy daily summary for 2026-11-28',
    at: '2026-11-29T06:00:00.000Z',
    period: { from: '2026-11-28T00:00:00.000Z', to: '2026-11-29T00:00:00.000Z' },
    facts: [
      ['Readings', '4 320 000'],
      ['Anomalies', '1.9 %'],
      ['Alerts opened', '3'],
      ['Busiest site', 'greenhouse <1> & co'],
    ],
    data: { readings: 4_320_000, anomalyRate: 0.019, alertsOpened: 3, busiestSite: 'greenhouse/1' },
    url: 'https://canopy.example.com/reports/daily/2026-11-28',
    ...overrides,
  };
}
