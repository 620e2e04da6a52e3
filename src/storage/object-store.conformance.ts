/**
 * The one conformance suite every `ObjectStore` adapter runs (local folder,
 * S3). It tests the contract in `core/object-store.ts` only.
 *
 * Contract details the interface comments leave open, fixed here so that
 * every adapter agrees:
 * - `list` sorts by JavaScript string order and matches keys by plain string
 *   prefix (`a/b` finds `a/b.txt`, `a/b/c` and `a/bc`); the prefix '' lists
 *   everything. A prefix follows the key rules, except that it may be empty
 *   or end in "/".
 * - A "folder" (the common prefix of stored keys) is not an object: `get`
 *   says NOT_FOUND and `head` null.
 * - Besides the interface's rules, keys with control characters or a segment
 *   ending in `.canopy-tmp` are refused (see `object-store-key.ts`).
 * - Every method, `localPath` and `delete` included, checks all its keys
 *   before it does anything: one bad key in a `delete` deletes nothing.
 * - `put`, `putFile` and `getToFile` return the stored size and etag (equal
 *   to what `head` says next); `getToFile` creates missing folders of the
 *   destination and replaces an existing file there.
 * - `putFile` of a local file that cannot be read fails with
 *   CANOPY_LAKE_IO_FAILED and stores nothing.
 * - `move` onto an existing key replaces it; `move` of a key onto itself
 *   leaves the object as it is.
 *
 * Keep it adapter-neutral: no assumption about what `etag` looks like beyond
 * "changes when the content changes", nor about `lastModified` beyond being
 * near the wall clock.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ErrorCode } from '../core/errors.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';

export interface ObjectStoreHarness {
  /** A store over empty storage, used by one test only. */
  store: ObjectStore;
  /** Removes what the test stored and releases the store. */
  cleanup: () => Promise<void>;
}

/** Keys every method must refuse with CANOPY_LAKE_INVALID_KEY. */
export const INVALID_KEYS = [
  '',
  '/abs',
  'a/../b',
  '..',
  '../a',
  'a/..',
  'a//b',
  './a',
  'a/./b',
  'a/',
  'a\\b',
  'a/b\\',
  'a\u0000b',
  'a\nb',
  'a/.x.canopy-tmp',
] as const;

/** Prefixes `list` must refuse ('' and a trailing "/" are fine for a prefix). */
const INVALID_PREFIXES = ['/abs', 'a/../b', '../', 'a//b', './a', 'a\\b', 'a//', 'a\nb'];

/** Time within which `lastModified` must lie around the test's wall clock. */
const CLOCK_SLACK_MS = 10 * 60_000;

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Runs `fn` over `items`, at most `limit` at once (servers dislike a thousand requests at a time). */
async function eachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'CanopyError', code });
}

function expectSameObject(actual: ObjectInfo | null, expected: ObjectInfo): void {
  expect(actual).not.toBeNull();
  expect(actual?.key).toBe(expected.key);
  expect(actual?.size).toBe(expected.size);
  expect(actual?.etag).toBe(expected.etag);
}

function expectRecent(info: ObjectInfo): void {
  expect(Number.isFinite(info.lastModified)).toBe(true);
  expect(Math.abs(info.lastModified - Date.now())).toBeLessThan(CLOCK_SLACK_MS);
}

export function describeObjectStoreConformance(
  name: string,
  makeStore: () => Promise<ObjectStoreHarness>,
): void {
  describe(`ObjectStore conformance: ${name}`, () => {
    const cleanups: Array<() => Promise<void>> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    /** A fresh store and a scratch folder for local files. */
    async function setup(): Promise<{ store: ObjectStore; scratch: string }> {
      const harness = await makeStore();
      cleanups.push(harness.cleanup);
      const scratch = await mkdtemp(path.join(tmpdir(), 'canopy-object-store-'));
      cleanups.push(() => rm(scratch, { recursive: true, force: true }));
      return { store: harness.store, scratch };
    }

    it('round-trips bytes through put, get and head', async () => {
      const { store } = await setup();
      const cases: Array<[string, Uint8Array | string, Buffer]> = [];
      const big = randomBytes(5 * 1024 * 1024);
      cases.push(['bronze/readings/date=2026-11-22/hour=10/part-1.bin', big, big]);
      cases.push(['empty', new Uint8Array(0), Buffer.alloc(0)]);
      const text = 'grüße ☃ — 𝄞\n';
      cases.push(['odd names/date=2026-11-22/ü ß,x;y@z&$.txt', text, Buffer.from(text, 'utf8')]);
      // Every byte value, from a view into a larger buffer (offset must be honoured).
      const all = Buffer.alloc(300);
      for (let i = 0; i < 256; i++) all[i + 20] = i;
      const view = new Uint8Array(all.buffer, all.byteOffset + 20, 256);
      cases.push(['bytes/all-256', view, Buffer.from(view)]);

      for (const [key, body, expected] of cases) {
        const put = await store.put(key, body);
        expect(put.key).toBe(key);
        expect(put.size).toBe(expected.byteLength);
        expect(typeof put.etag).toBe('string');
        expect(put.etag).not.toBe('');
        expectRecent(put);
        const got = await store.get(key);
        expect(Buffer.isBuffer(got)).toBe(true);
        expect(got.byteLength).toBe(expected.byteLength);
        expect(sha256(got)).toBe(sha256(expected));
        const head = await store.head(key);
        expectSameObject(head, put);
        expectRecent(head as ObjectInfo);
        const local = store.localPath(key);
        if (local !== undefined) expect(sha256(await readFile(local))).toBe(sha256(expected));
      }
    });

    it('streams files through putFile and getToFile', async () => {
      const { store, scratch } = await setup();
      const content = randomBytes(20 * 1024 * 1024);
      const source = path.join(scratch, 'source.bin');
      await writeFile(source, content);

      const put = await store.putFile('silver/readings/date=2026-11-22/part-0.parquet', source);
      expect(put.size).toBe(content.byteLength);
      expectRecent(put);
      expectSameObject(await store.head(put.key), put);

      // Missing folders of the destination are created.
      const outDir = path.join(scratch, 'deep', 'er');
      const out = path.join(outDir, 'copy.bin');
      const got = await store.getToFile(put.key, out);
      expectSameObject(got, put);
      expectRecent(got);
      expect(sha256(await readFile(out))).toBe(sha256(content));

      // An existing destination is replaced whole, and no temporary file stays behind.
      await writeFile(out, 'stale content that is longer than nothing');
      await store.put('small', 'fresh');
      const small = await store.getToFile('small', out);
      expect(small.size).toBe(5);
      expect(await readFile(out, 'utf8')).toBe('fresh');
      expect(await readdir(outDir)).toEqual(['copy.bin']);

      // The source file is untouched by the upload.
      expect(sha256(await readFile(source))).toBe(sha256(content));
    });

    it('changes the etag when the content changes', async () => {
      const { store } = await setup();
      const first = await store.put('gold/daily_summary/date=2026-11-22/part.bin', 'aaaa');
      const second = await store.put(first.key, 'bbbb'); // same size, new content
      expect(second.etag).not.toBe(first.etag);
      expectSameObject(await store.head(first.key), second);
      const third = await store.put(first.key, 'a longer body');
      expect(third.etag).not.toBe(second.etag);
      expect(third.etag).not.toBe(first.etag);
      expect((await store.get(first.key)).toString()).toBe('a longer body');
      const [listed] = await store.list(first.key);
      expectSameObject(listed ?? null, third);
    });

    it('lists by exact prefix, sorted, with nested keys', async () => {
      const { store } = await setup();
      const keys = [
        'b/x',
        'a/bc.txt',
        'a/b/e/f/g.bin',
        'a/b/d.txt',
        'a/b.txt',
        'a/b/c.txt',
        'ab.txt',
        'a-b/c',
        'a/b-c/d',
        'z',
      ];
      const infos = new Map<string, ObjectInfo>();
      for (const [i, key] of keys.entries()) infos.set(key, await store.put(key, 'x'.repeat(i)));
      const sorted = [...keys].sort();
      const listKeys = async (prefix: string): Promise<string[]> =>
        (await store.list(prefix)).map((o) => o.key);

      const everything = await store.list('');
      expect(everything.map((o) => o.key)).toEqual(sorted);
      for (const info of everything) expectSameObject(info, infos.get(info.key) as ObjectInfo);

      expect(await listKeys('a/')).toEqual(sorted.filter((k) => k.startsWith('a/')));
      expect(await listKeys('a/b')).toEqual([
        'a/b-c/d',
        'a/b.txt',
        'a/b/c.txt',
        'a/b/d.txt',
        'a/b/e/f/g.bin',
        'a/bc.txt',
      ]);
      expect(await listKeys('a/b/')).toEqual(['a/b/c.txt', 'a/b/d.txt', 'a/b/e/f/g.bin']);
      expect(await listKeys('a/b/e/f/g.bin')).toEqual(['a/b/e/f/g.bin']);
      expect(await listKeys('a')).toEqual(sorted.filter((k) => k.startsWith('a')));
      expect(await listKeys('a/b/e/f/g.binx')).toEqual([]);
      expect(await listKeys('nothing/')).toEqual([]);
      expect(await listKeys('a/b/c.txt/')).toEqual([]);

      // A folder is not an object.
      await expectCode(store.get('a/b'), 'CANOPY_LAKE_NOT_FOUND');
      expect(await store.head('a/b/e')).toBeNull();
    });

    it('lists and deletes more than 1000 objects (paging and batching)', async () => {
      const { store } = await setup();
      // Fixed-width names in one folder: see the s3rver note in s3-object-store.test.ts.
      const keys = Array.from({ length: 1100 }, (_, i) => `many/k-${String(i).padStart(4, '0')}`);
      await eachLimit(keys, 32, (key) => store.put(key, key));
      await store.put('other/keep', 'keep');

      const listed = await store.list('many/');
      expect(listed).toHaveLength(1100);
      expect(listed.map((o) => o.key)).toEqual(keys);
      expect(listed.every((o) => o.size === 11)).toBe(true);
      expect((await store.list('many/k-10')).map((o) => o.key)).toEqual(keys.slice(1000, 1100));
      expect(await store.list('')).toHaveLength(1101);

      await store.delete([...keys, 'many/absent', 'never/there']);
      expect(await store.list('many/')).toEqual([]);
      expect((await store.list('')).map((o) => o.key)).toEqual(['other/keep']);
    });

    it('deletes keys, ignoring absent and repeated ones', async () => {
      const { store } = await setup();
      await store.put('d/1', 'one');
      await store.put('d/2', 'two');
      await store.put('d/3/deeper', 'three');
      await store.delete([]);
      await store.delete(['d/1', 'd/1', 'd/absent', 'absent/too', 'd/3/deeper']);
      expect(await store.head('d/1')).toBeNull();
      expect(await store.head('d/3/deeper')).toBeNull();
      await expectCode(store.get('d/1'), 'CANOPY_LAKE_NOT_FOUND');
      expect((await store.list('')).map((o) => o.key)).toEqual(['d/2']);
      expect((await store.get('d/2')).toString()).toBe('two');
      await store.delete(['d/1']); // deleting again is fine
      await store.delete(['d']); // a folder is not an object: nothing happens
      expect((await store.get('d/2')).toString()).toBe('two');
      // A key freed by a delete can be written again, also below a removed folder.
      await store.put('d/3/deeper', 'again');
      expect((await store.get('d/3/deeper')).toString()).toBe('again');
    });

    it('moves an object to a new key', async () => {
      const { store } = await setup();
      const content = randomBytes(64 * 1024);
      const original = await store.put('tmp/upload-1.parquet', content);

      const moved = await store.move(original.key, 'silver/date=2026-11-22/part 1.parquet');
      expect(moved.key).toBe('silver/date=2026-11-22/part 1.parquet');
      expect(moved.size).toBe(content.byteLength);
      expectRecent(moved);
      expectSameObject(await store.head(moved.key), moved);
      expect(sha256(await store.get(moved.key))).toBe(sha256(content));
      expect(await store.head(original.key)).toBeNull();
      expect((await store.list('')).map((o) => o.key)).toEqual([moved.key]);

      // Onto an existing key: replaced.
      await store.put('other', 'old');
      const over = await store.move(moved.key, 'other');
      expect(sha256(await store.get('other'))).toBe(sha256(content));
      expect(over.size).toBe(content.byteLength);
      expect(await store.head(moved.key)).toBeNull();

      // Onto itself: unchanged.
      const same = await store.move('other', 'other');
      expectSameObject(same, over);
      expect(sha256(await store.get('other'))).toBe(sha256(content));

      // From an absent key: NOT_FOUND, and nothing appears at the target.
      await expectCode(store.move('absent', 'target'), 'CANOPY_LAKE_NOT_FOUND');
      await expectCode(store.move('absent', 'absent'), 'CANOPY_LAKE_NOT_FOUND');
      expect(await store.head('target')).toBeNull();
    });

    it('reports a missing object: NOT_FOUND from get and getToFile, null from head', async () => {
      const { store, scratch } = await setup();
      await store.put('present/x', 'x');
      const out = path.join(scratch, 'out.bin');
      for (const key of ['absent', 'present/y', 'present', 'present/x/deeper']) {
        await expectCode(store.get(key), 'CANOPY_LAKE_NOT_FOUND');
        await expectCode(store.getToFile(key, out), 'CANOPY_LAKE_NOT_FOUND');
        expect(await store.head(key)).toBeNull();
      }
      expect(existsSync(out)).toBe(false);
      expect(await readdir(scratch)).toEqual([]);
    });

    it('refuses invalid keys on every method before touching anything', async () => {
      const { store, scratch } = await setup();
      await store.put('keep/me', 'kept');
      const source = path.join(scratch, 'source.bin');
      await writeFile(source, 'source');
      const out = path.join(scratch, 'out.bin');
      const invalid = 'CANOPY_LAKE_INVALID_KEY';

      for (const key of INVALID_KEYS) {
        await expectCode(store.put(key, 'x'), invalid);
        await expectCode(store.putFile(key, source), invalid);
        await expectCode(store.putFile(key, path.join(scratch, 'no-such-file')), invalid);
        await expectCode(store.get(key), invalid);
        await expectCode(store.getToFile(key, out), invalid);
        await expectCode(store.head(key), invalid);
        await expectCode(store.delete([key]), invalid);
        await expectCode(store.delete(['keep/me', key]), invalid);
        await expectCode(store.move(key, 'keep/moved'), invalid);
        await expectCode(store.move('keep/me', key), invalid);
        expect(() => store.localPath(key)).toThrow(expect.objectContaining({ code: invalid }));
      }
      for (const prefix of INVALID_PREFIXES) await expectCode(store.list(prefix), invalid);

      // Nothing was written, deleted or moved.
      expect((await store.list('')).map((o) => o.key)).toEqual(['keep/me']);
      expect((await store.get('keep/me')).toString()).toBe('kept');
      expect(existsSync(out)).toBe(false);
    });

    it('keeps concurrent puts to distinct keys apart', async () => {
      const { store } = await setup();
      const bodies = Array.from({ length: 64 }, (_, i) => randomBytes(1024 + i * 97));
      const keys = bodies.map((_, i) => `concurrent/${i % 4}/obj-${String(i).padStart(2, '0')}`);
      const infos = await Promise.all(keys.map((key, i) => store.put(key, bodies[i] as Buffer)));
      for (const [i, info] of infos.entries()) expect(info.size).toBe(bodies[i]?.byteLength);
      const got = await Promise.all(keys.map((key) => store.get(key)));
      for (const [i, bytes] of got.entries())
        expect(sha256(bytes)).toBe(sha256(bodies[i] as Buffer));
      expect((await store.list('concurrent/')).map((o) => o.key)).toEqual([...keys].sort());
    });

    it('fails putFile of an unreadable local file with IO_FAILED and stores nothing', async () => {
      const { store, scratch } = await setup();
      await expectCode(
        store.putFile('x', path.join(scratch, 'missing.bin')),
        'CANOPY_LAKE_IO_FAILED',
      );
      await expectCode(store.putFile('y', scratch), 'CANOPY_LAKE_IO_FAILED'); // a folder
      expect(await store.list('')).toEqual([]);
    });
  });
}
