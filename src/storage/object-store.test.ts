import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema, type LakeConfig } from '../config/schema.js';
import { LocalObjectStore } from './local-object-store.js';
import { createObjectStore } from './object-store.js';
import { assertValidKey, assertValidPrefix, compareKeys, isValidKey } from './object-store-key.js';
import { S3ObjectStore } from './s3-object-store.js';

function lake(input: unknown): LakeConfig {
  return configSchema.shape.lake.parse(input);
}

describe('createObjectStore', () => {
  it('defaults to a local lake in <dataDir>/lake, without touching the disk', () => {
    const store = createObjectStore(lake({}), '/nonexistent/canopy-data');
    expect(store).toBeInstanceOf(LocalObjectStore);
    expect(store.kind).toBe('local');
    expect(store.location).toBe(path.resolve('/nonexistent/canopy-data/lake'));
  });

  it('uses lake.path, resolving a relative one against the working directory', () => {
    expect(createObjectStore(lake({ path: '/srv/lake' }), '/data').location).toBe(
      path.resolve('/srv/lake'),
    );
    expect(createObjectStore(lake({ path: 'rel/lake' }), '/data').location).toBe(
      path.resolve('rel/lake'),
    );
    expect(createObjectStore(lake({}), 'data').location).toBe(path.resolve('data/lake'));
  });

  it('builds an S3 store from lake.s3, normalizing the prefix', () => {
    const store = createObjectStore(
      lake({
        kind: 's3',
        s3: {
          bucket: 'telemetry',
          prefix: 'canopy',
          endpoint: 'http://127.0.0.1:9000',
          forcePathStyle: true,
          accessKeyId: 'AKID',
          secretAccessKey: 'SECRET',
        },
      }),
      '/data',
    );
    expect(store).toBeInstanceOf(S3ObjectStore);
    expect(store.kind).toBe('s3');
    expect(store.location).toBe('s3://telemetry/canopy/');
    expect(JSON.stringify(store)).not.toContain('SECRET');
    (store as S3ObjectStore).close();
  });

  it('refuses an s3 lake without a bucket', () => {
    const config = { ...lake({}), kind: 's3' } as LakeConfig;
    expect(() => createObjectStore(config, '/data')).toThrow(
      expect.objectContaining({ code: 'CANOPY_CONFIG_INVALID' }),
    );
  });
});

describe('object keys', () => {
  it('accepts lake keys', () => {
    for (const key of [
      'a',
      'bronze/readings/date=2026-11-22/hour=10/part-1.parquet',
      '.hidden/x',
      'a/..b/c..',
      'with space/ü',
      'x.canopy-tmp.not',
    ]) {
      expect(() => assertValidKey(key)).not.toThrow();
      expect(isValidKey(key)).toBe(true);
    }
  });

  it('refuses keys outside the rules with a message naming the problem', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['/abs', /absolute/],
      ['a/../b', /"\.\." segment/],
      ['./a', /"\." segment/],
      ['a//b', /empty segment/],
      ['a/', /empty segment/],
      ['a\\b', /backslash/],
      ['a\u0007', /control character/],
      ['p/.1.canopy-tmp', /reserved/],
    ];
    for (const [key, message] of cases) {
      expect(() => assertValidKey(key)).toThrow(message);
      expect(() => assertValidKey(key)).toThrow(
        expect.objectContaining({ code: 'CANOPY_LAKE_INVALID_KEY' }),
      );
      expect(isValidKey(key)).toBe(false);
    }
  });

  it('accepts prefixes that are empty, end in a slash or stop mid-segment', () => {
    for (const prefix of ['', 'a/', 'a/b', 'gold/sensor_5min/date=2026-11']) {
      expect(() => assertValidPrefix(prefix)).not.toThrow();
    }
    for (const prefix of ['/', '//', 'a//', '../', 'a/./']) {
      expect(() => assertValidPrefix(prefix)).toThrow(
        expect.objectContaining({ code: 'CANOPY_LAKE_INVALID_KEY' }),
      );
    }
  });

  it('orders keys by string order, "." and "-" before "/"', () => {
    expect(['a/b', 'a.b', 'a-b', 'A', 'a'].sort(compareKeys)).toEqual([
      'A',
      'a',
      'a-b',
      'a.b',
      'a/b',
    ]);
  });
});
