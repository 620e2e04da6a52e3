import { describe, expect, it } from 'vitest';
import { configSchema } from '../../config/schema.js';
import { createLogger, silentLogger } from '../../observability/logger.js';
import { captureLines } from '../../../test/helpers/logs.js';
import { samplePayload } from '../../../test/helpers/notification.js';
import { createNotifiers } from './index.js';

function notifiersConfig(notifiers: unknown) {
  return configSchema.parse({ alerting: { notifiers } }).alerting.notifiers;
}

describe('createNotifiers', () => {
  it('builds one notifier per configured channel, of its kind, without touching the network', async () => {
    const config = notifiersConfig({
      'ops-hook': { kind: 'webhook', url: 'http://hook.invalid/x', secret: '0123456789abcdef' },
      growers: { kind: 'slack', url: 'https://hooks.slack.invalid/services/T/B/X' },
      oncall: { kind: 'email', host: 'smtp.invalid', from: 'a@b.c', to: ['x@y.z'] },
      aws: { kind: 'sns', topicArn: 'arn:aws:sns:eu-west-1:1:t', endpoint: 'http://sns.invalid' },
      audit: { kind: 'log', level: 'info' },
    });
    const notifiers = createNotifiers(config, { logger: silentLogger() });
    expect([...notifiers].map(([name, n]) => [name, n.kind, n.channel])).toEqual([
      ['ops-hook', 'webhook', 'ops-hook'],
      ['growers', 'slack', 'growers'],
      ['oncall', 'email', 'oncall'],
      ['aws', 'sns', 'aws'],
      ['audit', 'log', 'audit'],
    ]);
    for (const notifier of notifiers.values()) await notifier.close?.();
  });

  it('gives the default config a log channel that logs with its channel name', async () => {
    const { stream, lines } = captureLines();
    const notifiers = createNotifiers(notifiersConfig(undefined), {
      logger: createLogger('info', false, { destination: stream }),
    });
    expect([...notifiers.keys()]).toEqual(['log']);
    await notifiers.get('log')?.send(samplePayload(), AbortSignal.timeout(1_000));
    expect(lines[0]).toMatchObject({ level: 40, channel: 'log', notifier: 'log' });
  });

  it('refuses an SNS key without its secret', () => {
    const config = notifiersConfig({
      aws: { kind: 'sns', topicArn: 'arn:aws:sns:eu-west-1:1:t', accessKeyId: 'AKID' },
    });
    expect(() => createNotifiers(config, { logger: silentLogger() })).toThrow(
      expect.objectContaining({ code: 'CANOPY_CONFIG_INVALID' }) as Error,
    );
  });
});
