import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../config/load.js';
import { isCanopyError } from '../../core/errors.js';
import { allowedHostsProblems, isHostAllowed } from './allowed-hosts.js';

describe('isHostAllowed', () => {
  const entries = ['hooks.slack.com', '*.example.com', '10.0.0.0/8', '192.168.1.5', 'fd00::/8'];

  it('allows every host when the list is empty', () => {
    expect(isHostAllowed('http://169.254.169.254/latest/meta-data', [])).toBe(true);
  });

  it.each([
    ['https://hooks.slack.com/services/T/B/X', true],
    ['https://HOOKS.Slack.com/x', true],
    ['https://a.example.com/hook', true],
    ['https://a.b.example.com:8443/hook', true],
    ['https://example.com/hook', false],
    ['https://evil-example.com/hook', false],
    ['https://hooks.slack.com.evil.net/x', false],
    ['http://10.1.2.3:9000/x', true],
    ['http://11.1.2.3/x', false],
    ['http://192.168.1.5/x', true],
    ['http://192.168.1.6/x', false],
    ['http://[fd12::1]/x', true],
    ['http://[::1]/x', false],
    ['http://169.254.169.254/latest/meta-data', false],
    ['http://localhost:3000/x', false],
    ['not a url', false],
  ])('%s → %s', (url, allowed) => {
    expect(isHostAllowed(url, entries)).toBe(allowed);
  });
});

describe('allowedHostsProblems', () => {
  it('names entries that are none of the accepted forms', () => {
    expect(allowedHostsProblems(['ok.example.com', '*.ok.org', '10.0.0.0/8', '::1'])).toEqual([]);
    expect(allowedHostsProblems(['10.0.0.0/33', 'bad host', 'http://x.com', '*.'])).toHaveLength(4);
  });
});

describe('alerting.allowedHosts in the config', () => {
  function load(alerting: Record<string, unknown>): string[] {
    try {
      loadConfig({ env: {}, overrides: (raw) => Object.assign(raw, { alerting }) });
      return [];
    } catch (err) {
      if (isCanopyError(err, 'CANOPY_CONFIG_INVALID')) return err.details as string[];
      throw err;
    }
  }
  const notifiers = {
    ops: { kind: 'webhook', url: 'https://hooks.example.com/canopy' },
    chat: { kind: 'slack', url: 'https://hooks.slack.com/services/T/B/X' },
    meta: { kind: 'webhook', url: 'http://169.254.169.254/latest/meta-data' },
  };

  it('accepts notifiers whose hosts are allowed, and any host with the list empty', () => {
    expect(load({ notifiers })).toEqual([]);
    expect(
      load({
        notifiers: { ops: notifiers.ops, chat: notifiers.chat },
        allowedHosts: ['*.example.com', 'hooks.slack.com'],
      }),
    ).toEqual([]);
  });

  it('refuses a notifier naming another host, and a malformed entry, naming each', () => {
    const problems = load({ notifiers, allowedHosts: ['*.example.com', 'hooks.slack.com/x'] });
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toMatch(/alerting\.allowedHosts.*not a hostname/);
    expect(problems.join('\n')).toMatch(
      /alerting\.notifiers\.chat\.url.*host "hooks\.slack\.com" is not in alerting\.allowedHosts/,
    );
    expect(problems.join('\n')).toMatch(/alerting\.notifiers\.meta\.url.*"169\.254\.169\.254"/);
  });
});
