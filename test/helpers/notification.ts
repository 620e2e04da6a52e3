/** A complete NotificationPayload for notifier and outbox tests. */
import type { NotificationPayload } from '../../src/core/alerts.js';

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
