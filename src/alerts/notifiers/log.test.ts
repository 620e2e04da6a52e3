import { describe, expect, it } from 'vitest';
import { createLogger } from '../../observability/logger.js';
import { captureLines } from '../../../test/helpers/logs.js';
import { samplePayload, sampleReport } from '../../../test/helpers/notification.js';
import { LogNotifier } from './log.js';

describe('LogNotifier', () => {
  it('logs the payload at the configured level with the headline', async () => {
    const { stream, lines } = captureLines();
    const logger = createLogger('info', false, { destination: stream });
    const notifier = new LogNotifier({ channel: 'log', level: 'error', logger });
    const payload = samplePayload();
    await notifier.send(payload);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 50,
      notification: payload,
      msg: `[CRITICAL] escalated: ${payload.alert.summary}`,
    });
  });

  it('logs a report as one line at the configured level: the report, its title and every fact', async () => {
    const { stream, lines } = captureLines();
    const logger = createLogger('info', false, { destination: stream });
    const notifier = new LogNotifier({ channel: 'log', level: 'warn', logger });
    const report = sampleReport();
    await notifier.sendReport(report);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, report });
    expect(lines[0]?.msg).toBe(
      'Canopy daily summary for 2026-11-28 — Readings: 4 320 000; Anomalies: 1.9 %; ' +
        'Alerts opened: 3; Busiest site: greenhouse <1> & co',
    );
  });
});
