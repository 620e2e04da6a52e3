import { describe, expect, it } from 'vitest';
import { captureLines } from '../../test/helpers/logs.js';
import { loadConfig } from '../config/load.js';
import { createLogger } from './logger.js';

describe('createLogger', () => {
  it('applies log.levels per component, more or less verbose than the root, down to grandchildren', () => {
    const { stream, lines } = captureLines();
    const root = createLogger('info', false, {
      levels: { 'mqtt-broker': 'debug', api: 'warn' },
      destination: stream,
    });
    const broker = root.child({ component: 'mqtt-broker' });
    const api = root.child({ component: 'api' });
    const request = api.child({ requestId: 'r1' });
    const store = root.child({ component: 'store' });
    broker.debug('broker debug');
    api.info('api info');
    request.info('request info');
    request.warn('request warn');
    store.debug('store debug');
    store.info('store info');
    root.debug('root debug');
    expect(lines.map((l) => [l.component, l.msg])).toEqual([
      ['mqtt-broker', 'broker debug'],
      ['api', 'request warn'],
      ['store', 'store info'],
    ]);
    expect(lines[1]).toMatchObject({ service: 'canopy', requestId: 'r1', level: 40 });
  });

  it('redacts secrets', () => {
    const { stream, lines } = captureLines();
    createLogger('info', false, { destination: stream }).info(
      { mqtt: { password: 'hunter2' } },
      'x',
    );
    expect(lines[0]).toMatchObject({ mqtt: { password: '***' } });
  });
});

describe('log.levels in config', () => {
  it('takes a map of component to level from the file or CANOPY_LOG_LEVELS, and rejects unknown levels', () => {
    const fromFile = loadConfig({
      env: {},
      overrides: (raw) => Object.assign(raw, { log: { levels: { 'mqtt-broker': 'debug' } } }),
    }).config;
    expect(fromFile.log).toEqual({ level: 'info', levels: { 'mqtt-broker': 'debug' } });
    const fromEnv = loadConfig({ env: { CANOPY_LOG_LEVELS: '{"api":"warn"}' } }).config;
    expect(fromEnv.log.levels).toEqual({ api: 'warn' });
    expect(() =>
      loadConfig({
        env: {},
        overrides: (raw) => Object.assign(raw, { log: { levels: { api: 'loud' } } }),
      }),
    ).toThrow(/log\.levels/);
  });
});
