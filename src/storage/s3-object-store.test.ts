/**
 * The S3 adapter against s3rver (test/helpers/s3rver.ts), one server for the
 * file, one fresh prefix per test.
 *
 * s3rver gaps, declared here (not adapter gaps):
 * - Paged listings walk its folders in name order, which differs from S3's
 *   key order when a key and a folder share a stem (`a-b` sorts after the
 *   folder `a`, whose keys are `a/…`), so a page boundary there can skip or
 *   repeat keys. The paging test uses fixed-width names in one folder, where
 *   both orders agree. The adapter sorts every listing, so unpaged results
 *   are ordered regardless.
 * - It decodes `x-amz-copy-source` with `decodeURI`, which leaves `%2B`,
 *   `%3F` and `%23` encoded, so `move` of a key with `+`, `?` or `#` fails
 *   there (S3 handles them). The adapter sends `=` and the like unencoded so
 *   Hive-style keys work on both; the suite's `move` keys avoid `+?#`.
 */
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../../test/helpers/s3rver.js';
import { describeObjectStoreConformance } from './object-store.conformance.js';
import { S3ObjectStore, type S3ObjectStoreOptions } from './s3-object-store.js';

let server: S3rverHandle;
let run = 0;

beforeAll(async () => {
  server = await startS3rver();
});

afterAll(async () => {
  await server?.stop();
});

function storeOptions(overrides: Partial<S3ObjectStoreOptions> = {}): S3ObjectStoreOptions {
  return {
    bucket: server.bucket,
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    ...S3RVER_CREDENTIALS,
    ...overrides,
  };
}

function rawClient(): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

describeObjectStoreConformance('s3 (s3rver)', () => {
  const store = new S3ObjectStore(storeOptions({ prefix: `conformance/run-${++run}` }));
  return Promise.resolve({
    store,
    cleanup: async () => {
      await store.delete((await store.list('')).map((o) => o.key));
      store.close();
    },
  });
});

describe('S3ObjectStore (S3 specifics)', () => {
  const stores: S3ObjectStore[] = [];
  const make = (overrides: Partial<S3ObjectStoreOptions> = {}): S3ObjectStore => {
    const store = new S3ObjectStore(storeOptions(overrides));
    stores.push(store);
    return store;
  };
  afterAll(() => {
    for (const store of stores) store.close();
  });

  it('keeps stores with different prefixes in one bucket apart', async () => {
    const bucket = 'prefixes';
    const client = rawClient();
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    client.destroy();
    // "tenant" must not see "tenant-2/…", with or without the trailing slash.
    const a = make({ bucket, prefix: 'tenant' });
    const b = make({ bucket, prefix: 'tenant-2/' });
    const root = make({ bucket, prefix: '' });
    expect(a.location).toBe('s3://prefixes/tenant/');
    expect(b.location).toBe('s3://prefixes/tenant-2/');
    expect(root.location).toBe('s3://prefixes/');

    await a.put('x/one', 'a1');
    await b.put('x/one', 'b1');
    await b.put('x/two', 'b2');
    expect((await a.list('')).map((o) => o.key)).toEqual(['x/one']);
    expect((await b.list('')).map((o) => o.key)).toEqual(['x/one', 'x/two']);
    expect((await a.get('x/one')).toString()).toBe('a1');
    expect((await b.get('x/one')).toString()).toBe('b1');
    expect(await a.head('x/two')).toBeNull();
    await a.delete(['x/one', 'x/two']);
    expect((await b.list('')).map((o) => o.key)).toEqual(['x/one', 'x/two']);
    await b.move('x/two', 'y/two');
    expect(await a.list('')).toEqual([]);
    // The bucket root sees both, under their prefixes.
    expect((await root.list('')).map((o) => o.key)).toEqual(['tenant-2/x/one', 'tenant-2/y/two']);
    // A second store on the same prefix sees the same objects.
    expect((await make({ bucket, prefix: 'tenant-2' }).list('y/')).map((o) => o.key)).toEqual([
      'y/two',
    ]);
  });

  it('leaves out objects whose names are not valid keys', async () => {
    const store = make({ prefix: 'foreign' });
    await store.put('ok/a', 'a');
    const client = rawClient();
    for (const key of ['foreign/folder/', 'foreign/x\\y', 'foreign/t.canopy-tmp']) {
      await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: key, Body: 'z' }));
    }
    client.destroy();
    expect((await store.list('')).map((o) => o.key)).toEqual(['ok/a']);
  });

  it('refuses an invalid prefix or half-given credentials as a config error', () => {
    for (const prefix of ['/abs', 'a/../b', 'a//b', 'a\\b']) {
      expect(() => make({ prefix })).toThrow(
        expect.objectContaining({ code: 'CANOPY_CONFIG_INVALID' }),
      );
    }
    expect(() => make({ secretAccessKey: undefined })).toThrow(
      expect.objectContaining({ code: 'CANOPY_CONFIG_INVALID' }),
    );
    expect(make({ prefix: 'p//' }).prefix).toBe('p/');
  });

  it('has no local path', () => {
    expect(make().localPath('a/b')).toBeUndefined();
  });

  it('reports failures as IO_FAILED with the cause, never the credentials', async () => {
    const secret = 'very-secret-key-0123456789';
    const badKey = make({ accessKeyId: 'AKIDCANOPYTEST', secretAccessKey: secret });
    const err: unknown = await badKey.put('x', 'y').catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'CanopyError', code: 'CANOPY_LAKE_IO_FAILED' });
    expect((err as Error).cause).toBeInstanceOf(Error);
    expect((err as Error).message).not.toContain(secret);
    expect((err as Error).message).not.toContain('AKIDCANOPYTEST');

    const noBucket = make({ bucket: 'no-such-bucket' });
    await expect(noBucket.get('x')).rejects.toMatchObject({ code: 'CANOPY_LAKE_IO_FAILED' });
    await expect(noBucket.list('')).rejects.toMatchObject({ code: 'CANOPY_LAKE_IO_FAILED' });

    // Nothing listens on port 9 (discard) on loopback; one attempt keeps it quick.
    const down = make({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    const netErr: unknown = await down.head('x').catch((e: unknown) => e);
    expect(netErr).toMatchObject({ code: 'CANOPY_LAKE_IO_FAILED' });
    expect((netErr as Error).cause).toBeDefined();
    expect((netErr as Error).message).toContain('s3://canopy-test/');
  });
});
