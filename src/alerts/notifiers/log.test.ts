import { describe, expect, it } from 'vitest';
import { createLogger } from '../../observability/logger.js';
import { captureLines } from '../../../test/helpers/logs.js';
import { samplePayload } from '../../../test/helpers/notification.js';
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
});
