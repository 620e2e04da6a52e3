import { createHash } from 'node:crypto';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalObjectStore } from './local-object-store.js';
import { describeObjectStoreConformance } from './object-store.conformance.js';

describeObjectStoreConformance('local', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'canopy-local-lake-'));
  return {
    // The root does not exist yet: the store creates it on the first write.
    store: new LocalObjectStore({ root: path.join(dir, 'lake') }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

/** Every file and symlink below `dir`, relative, sorted (folders left out). */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => !e.isDirectory())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('LocalObjectStore (local specifics)', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  async function scratch(): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), 'canopy-local-lake-'));
    dirs.push(dir);
    return dir;
  }

  it('refuses keys that lead outside the root through a symlink', async () => {
    const dir = await scratch();
    const root = path.join(dir, 'lake');
    const outside = path.join(dir, 'outside');
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret.txt'), 'secret');
    const store = new LocalObjectStore({ root });
    await store.put('inside/ok.txt', 'ok');
    await symlink(outside, path.join(root, 'evil'));
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'inside', 'link.txt'));
    const out = path.join(dir, 'out.bin');
    const refused = { code: 'CANOPY_LAKE_INVALID_KEY' };

    for (const key of ['evil/secret.txt', 'inside/link.txt']) {
      await expect(store.get(key)).rejects.toMatchObject(refused);
      await expect(store.head(key)).rejects.toMatchObject(refused);
      await expect(store.getToFile(key, out)).rejects.toMatchObject(refused);
      await expect(store.put(key, 'overwritten')).rejects.toMatchObject(refused);
      await expect(store.delete([key])).rejects.toMatchObject(refused);
      await expect(store.move(key, 'inside/taken.txt')).rejects.toMatchObject(refused);
      expect(() => store.localPath(key)).toThrow(expect.objectContaining(refused));
    }
    // Writes below the link would create files (and folders) outside.
    await expect(store.put('evil/new.txt', 'x')).rejects.toMatchObject(refused);
    await expect(store.put('evil/sub/new.txt', 'x')).rejects.toMatchObject(refused);
    await expect(store.putFile('evil/new.txt', out)).rejects.toMatchObject(refused);
    await expect(store.move('inside/ok.txt', 'evil/moved.txt')).rejects.toMatchObject(refused);
    await expect(store.list('evil/')).rejects.toMatchObject(refused);

    expect(await filesBelow(outside)).toEqual(['secret.txt']);
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('secret');
    expect(await readFile(path.join(root, 'inside', 'ok.txt'), 'utf8')).toBe('ok');
    // Listings do not follow symlinks at all.
    expect((await store.list('')).map((o) => o.key)).toEqual(['inside/ok.txt']);
  });

  it('works through a root that is itself a symlink, and links that stay inside', async () => {
    const dir = await scratch();
    await mkdir(path.join(dir, 'real', 'data'), { recursive: true });
    await symlink(path.join(dir, 'real'), path.join(dir, 'lake'));
    const store = new LocalObjectStore({ root: path.join(dir, 'lake') });
    await store.put('data/a.txt', 'a');
    await symlink(path.join(dir, 'real', 'data'), path.join(dir, 'real', 'alias'));
    expect((await store.get('alias/a.txt')).toString()).toBe('a');
    expect(store.localPath('data/a.txt')).toBe(path.join(dir, 'lake', 'data', 'a.txt'));
  });

  it('leaves no temporary files behind', async () => {
    const dir = await scratch();
    const root = path.join(dir, 'lake');
    const store = new LocalObjectStore({ root });
    const source = path.join(dir, 'source.bin');
    await writeFile(source, Buffer.alloc(3 * 1024 * 1024, 7));
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put('same/key', `v${i}`)));
    await store.putFile('p/file.bin', source);
    await store.putFile('p/file.bin', source);
    await store.getToFile('p/file.bin', path.join(dir, 'down', 'file.bin'));
    await store.move('p/file.bin', 'q/file.bin');
    // Failed writes clean up too.
    await store.put('blocker', 'file');
    await expect(store.put('blocker/below', 'x')).rejects.toMatchObject({
      code: 'CANOPY_LAKE_IO_FAILED',
    });
    await expect(store.putFile('p/gone.bin', path.join(dir, 'nope'))).rejects.toMatchObject({
      code: 'CANOPY_LAKE_IO_FAILED',
    });

    expect(await filesBelow(root)).toEqual(['blocker', 'q/file.bin', 'same/key']);
    expect(await filesBelow(path.join(dir, 'down'))).toEqual(['file.bin']);
    expect((await store.get('same/key')).toString()).toMatch(/^v\d+$/);
  });

  it('never shows a reader a partial object while it is being replaced', async () => {
    const dir = await scratch();
    const store = new LocalObjectStore({ root: path.join(dir, 'lake') });
    const size = 2 * 1024 * 1024;
    const versions = [Buffer.alloc(size, 'a'), Buffer.alloc(size, 'b')];
    await store.put('hot/obj', versions[0] as Buffer);
    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 1; i <= 20; i++) await store.put('hot/obj', versions[i % 2] as Buffer);
      } finally {
        writing = false;
      }
    })();
    let reads = 0;
    let writeError: unknown;
    try {
      while (writing) {
        const got = await store.get('hot/obj');
        expect(got.byteLength).toBe(size);
        expect(got.equals(versions[0] as Buffer) || got.equals(versions[1] as Buffer)).toBe(true);
        expect((await store.list('hot/')).map((o) => o.key)).toEqual(['hot/obj']);
        reads++;
      }
    } finally {
      // Let the writer finish before the folder is removed, also when a read failed.
      await writer.catch((err: unknown) => (writeError = err));
    }
    expect(writeError).toBeUndefined();
    expect(reads).toBeGreaterThan(0);
  });

  it('skips temporary files a crash left behind, and removes folders a delete emptied', async () => {
    const dir = await scratch();
    const root = path.join(dir, 'lake');
    const store = new LocalObjectStore({ root });
    await store.put('bronze/date=2026-11-22/hour=10/part-1.parquet', 'p1');
    await store.put('bronze/date=2026-11-22/hour=11/part-1.parquet', 'p2');
    const stray = path.join(root, 'bronze', 'date=2026-11-22', 'hour=10', '.0123abcd.canopy-tmp');
    await writeFile(stray, 'half a file');
    expect((await store.list('bronze/')).map((o) => o.key)).toEqual([
      'bronze/date=2026-11-22/hour=10/part-1.parquet',
      'bronze/date=2026-11-22/hour=11/part-1.parquet',
    ]);

    await rm(stray);
    await store.delete(['bronze/date=2026-11-22/hour=10/part-1.parquet']);
    expect(await readdir(path.join(root, 'bronze', 'date=2026-11-22'))).toEqual(['hour=11']);
    await store.move('bronze/date=2026-11-22/hour=11/part-1.parquet', 'moved/part-1.parquet');
    expect(await readdir(root)).toEqual(['moved']);
  });

  it('keeps the etag a content hash, also for files changed behind its back', async () => {
    const dir = await scratch();
    const root = path.join(dir, 'lake');
    const store = new LocalObjectStore({ root });
    const put = await store.put('a.txt', 'hello');
    // md5("hello"): the same digest S3 gives a single-part upload.
    expect(put.etag).toBe('5d41402abc4b2a76b9719d911017c592');

    // Rewritten in place by another program, same size, new mtime.
    await writeFile(path.join(root, 'a.txt'), 'jello');
    const later = new Date(Date.now() + 5_000);
    await utimes(path.join(root, 'a.txt'), later, later);
    const changed = await store.head('a.txt');
    expect(changed?.etag).toBe(createHash('md5').update('jello').digest('hex'));

    // A fresh store (cold cache) agrees with the warm one.
    const fresh = new LocalObjectStore({ root });
    expect((await fresh.head('a.txt'))?.etag).toBe(changed?.etag);
    expect((await fresh.list(''))[0]?.etag).toBe(changed?.etag);
  });

  it('declares its gap against S3: a key cannot be both a file and a folder', async () => {
    const dir = await scratch();
    const store = new LocalObjectStore({ root: path.join(dir, 'lake') });
    await store.put('a', 'file');
    await expect(store.put('a/b', 'x')).rejects.toMatchObject({ code: 'CANOPY_LAKE_IO_FAILED' });
    await store.put('c/d', 'x');
    await expect(store.put('c', 'x')).rejects.toMatchObject({ code: 'CANOPY_LAKE_IO_FAILED' });
    expect((await store.list('')).map((o) => o.key)).toEqual(['a', 'c/d']);
  });

  it('reports location and localPath as absolute paths', async () => {
    const dir = await scratch();
    const store = new LocalObjectStore({ root: path.relative(process.cwd(), path.join(dir, 'l')) });
    expect(store.kind).toBe('local');
    expect(store.location).toBe(path.join(dir, 'l'));
    expect(store.localPath('x/y.parquet')).toBe(path.join(dir, 'l', 'x', 'y.parquet'));
  });
});

// The whole contract holds with a quota kept (large enough never to refuse).
describeObjectStoreConformance('local with maxBytes', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'canopy-local-lake-quota-'));
  return {
    store: new LocalObjectStore({ root: path.join(dir, 'lake'), maxBytes: 1e12 }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('LocalObjectStore maxBytes (the lake quota)', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  async function quotaStore(maxBytes: number): Promise<{ store: LocalObjectStore; root: string }> {
    const dir = await mkdtemp(path.join(tmpdir(), 'canopy-local-quota-'));
    dirs.push(dir);
    const root = path.join(dir, 'lake');
    return { store: new LocalObjectStore({ root, maxBytes, durable: false }), root };
  }
  const full: unknown = expect.objectContaining({ code: 'CANOPY_LAKE_FULL', status: 507 });

  it('refuses a write past the quota and writes nothing; a replacement counts only the difference', async () => {
    const { store, root } = await quotaStore(100);
    await store.put('a/x.bin', Buffer.alloc(60));
    await expect(store.put('a/y.bin', Buffer.alloc(41))).rejects.toEqual(full);
    expect(await filesBelow(root)).toEqual([path.join('a', 'x.bin')]);
    await store.put('a/y.bin', Buffer.alloc(40)); // exactly at the limit
    await store.put('a/x.bin', Buffer.alloc(60)); // replaces 60 bytes with 60
    await expect(store.put('a/x.bin', Buffer.alloc(61))).rejects.toEqual(full);
    const local = path.join(root, '..', 'source.bin');
    await writeFile(local, Buffer.alloc(1));
    await expect(store.putFile('b/z.bin', local)).rejects.toEqual(full);
  });

  it('frees space on delete and on a move over an object', async () => {
    const { store } = await quotaStore(100);
    await store.put('a.bin', Buffer.alloc(50));
    await store.put('b.bin', Buffer.alloc(50));
    await store.delete(['a.bin']);
    await store.put('c.bin', Buffer.alloc(50));
    await store.move('c.bin', 'b.bin'); // 100 → 50
    await store.put('d.bin', Buffer.alloc(50));
    await expect(store.put('e.bin', Buffer.alloc(1))).rejects.toEqual(full);
  });

  it('counts files already in the folder, and sees space freed behind its back before refusing', async () => {
    const { store, root } = await quotaStore(100);
    await mkdir(root, { recursive: true });
    await writeFile(path.join(root, 'filler'), Buffer.alloc(90));
    await expect(store.put('a.bin', Buffer.alloc(20))).rejects.toEqual(full);
    await rm(path.join(root, 'filler'));
    await store.put('a.bin', Buffer.alloc(20));
    expect((await store.head('a.bin'))?.size).toBe(20);
  });

  it('lets concurrent writes together stay within the quota', async () => {
    const { store, root } = await quotaStore(1_000);
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.put(`p/${i}.bin`, Buffer.alloc(100))),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(10);
    const refusals = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    expect(refusals).toEqual(Array.from({ length: 10 }, (): unknown => full));
    expect(await filesBelow(root)).toHaveLength(10);
  });
});
