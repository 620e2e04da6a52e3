import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config/load.js';
import type { CanopyConfigInput } from '../config/schema.js';
import { isCanopyError } from '../core/errors.js';
import { isLoopback, resolveAuthMode } from './mode.js';

function config(input: CanopyConfigInput) {
  return loadConfig({ env: {}, overrides: (raw) => Object.assign(raw, input) }).config;
}

describe('isLoopback', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['localhost', true],
    ['LOCALHOST', true],
    ['::1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['192.168.1.10', false],
    ['128.0.0.1', false],
    ['example.org', false],
    ['127.0.0.1.example.org', false],
  ])('%s → %s', (host, expected) => {
    expect(isLoopback(host)).toBe(expected);
  });
});

describe('resolveAuthMode', () => {
  it('defaults to off on loopback: the demo needs no keys', () => {
    expect(resolveAuthMode(config({}))).toEqual({ mode: 'off' });
  });

  it('obeys required anywhere', () => {
    expect(resolveAuthMode(config({ auth: { mode: 'required' } }))).toEqual({ mode: 'required' });
    expect(
      resolveAuthMode(config({ auth: { mode: 'required' }, http: { host: '0.0.0.0' } })),
    ).toEqual({ mode: 'required' });
  });

  it('refuses to start beyond loopback with auth.mode unset, naming what to set', () => {
    for (const input of [
      { http: { host: '0.0.0.0' } },
      { mqtt: { embedded: { host: '::' } } },
    ] satisfies CanopyConfigInput[]) {
      let err: unknown;
      try {
        resolveAuthMode(config(input));
      } catch (e) {
        err = e;
      }
      expect(isCanopyError(err, 'CANOPY_CONFIG_INVALID')).toBe(true);
      expect(String(err)).toMatch(/auth\.mode: required/);
      expect(String(err)).toMatch(/auth\.mode: off/);
    }
  });

  it('a listener that is off does not count', () => {
    expect(resolveAuthMode(config({ http: { host: '0.0.0.0', enabled: false } })).mode).toBe('off');
  });

  it('starts open beyond loopback only when told to, with a warning', () => {
    const resolved = resolveAuthMode(
      config({ auth: { mode: 'off' }, http: { host: '0.0.0.0', port: 8080 } }),
    );
    expect(resolved.mode).toBe('off');
    expect(resolved.warning).toMatch(/AUTHENTICATION IS OFF.*0\.0\.0\.0:8080/);
    expect(resolveAuthMode(config({ auth: { mode: 'off' } }))).toEqual({ mode: 'off' });
  });
});
