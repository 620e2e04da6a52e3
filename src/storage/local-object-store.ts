/**
 * The lake on local disk: key `a/b/c.parquet` is the file `<root>/a/b/c.parquet`.
 *
 * Contract beyond `core/object-store.ts`:
 * - Writes (`put`, `putFile`, and `getToFile`'s destination) go to a hidden
 *   temporary file in the target's folder (`.<random>.canopy-tmp`) that is
 *   then renamed over the target, so readers never see a partial object. With
 *   `durable` (the default) the file and its folder are fsynced first.
 *   Listings leave temporary files out; one left by a crash is harmless.
 * - `etag` is the md5 hex of the content. It is computed while writing and
 *   remembered in memory per inode (checked against size and mtime), so
 *   `head` and `list` hash a file only when this process has not seen that
 *   version yet: after a restart, or when another process wrote it. The
 *   choice keeps the etag a true content hash without sidecar files to keep
 *   in step; the cost is one read of each such file.
 * - A key whose path resolves outside `root` through a symlink is refused
 *   with CANOPY_LAKE_INVALID_KEY before anything is read or written. The
 *   check is not proof against a symlink swapped in concurrently: whoever
 *   can do that can write to the lake folder anyway. `list` does not follow
 *   symlinks at all.
 * - A delete or move removes folders it leaves empty, up to `root`.
 * - With `maxBytes`, a write that would take the folder past that many bytes
 *   is refused with CANOPY_LAKE_FULL before anything is written (a stand-in
 *   for a full disk that fails early and by name). Usage is every file below
 *   `root`, counted by one walk on the first write and then kept up to date
 *   by this store's own writes, deletes and moves; a refusal counts again
 *   first, so space freed by hand or by another process is seen without a
 *   restart. Concurrent writes reserve their size before writing, so together
 *   they do not pass the limit. Files written into the folder by others are
 *   seen only at a count.
 *
 * Known gap against S3 (declared here, tested in the local test file): a key
 * cannot name a file and a folder at once, so with `a` stored, a write to
 * `a/b` fails (and vice versa) with CANOPY_LAKE_IO_FAILED. The lake's own
 * keys never do this.
 */
import { realpathSync, type BigIntStats } from 'node:fs';
import {
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  rmdir,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import path from 'node:path';
import { CanopyError } from '../core/errors.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import {
  errnoCode,
  hashOpenFile,
  openLocalSource,
  readChunks,
  syncDir,
  writeFileAtomic,
  type WrittenFile,
} from './object-store-fs.js';
import {
  assertValidKey,
  assertValidPrefix,
  compareKeys,
  isValidKey,
  TEMP_SUFFIX,
} from './object-store-key.js';

export interface LocalObjectStoreOptions {
  /** The lake folder; created on the first write. A relative path resolves against the working directory. */
  root: string;
  /** fsync each written file and its folder (default true). Tests may turn it off for speed. */
  durable?: boolean;
  /** Most bytes the folder may hold (every file below `root`); unset: no limit. */
  maxBytes?: number;
}

/** Remembered etags; beyond this many the oldest are forgotten (and rehashed if asked for again). */
const ETAG_CACHE_LIMIT = 100_000;
/** Files stat-ed or hashed at once by `list` and `delete`. */
const IO_CONCURRENCY = 16;

interface CachedEtag {
  size: bigint;
  mtimeNs: bigint;
  etag: string;
}

/** Errors that mean "no object there" when reading a key's path. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR']);

export class LocalObjectStore implements ObjectStore {
  readonly kind = 'local' as const;
  readonly location: string;
  /** Absolute path of the lake folder. */
  readonly root: string;
  readonly #durable: boolean;
  #realRoot: string | undefined;
  readonly #etags = new Map<string, CachedEtag>();
  readonly #maxBytes: number | undefined;
  // The quota's bookkeeping (only with maxBytes): bytes of the files below
  // root, counted on the first write and then kept by this store's changes;
  // bytes admitted for writes still in progress; the walk in progress.
  #onDisk: number | undefined;
  #reserved = 0;
  #counting: Promise<void> | undefined;
  #grownDuringCount = 0;

  constructor(options: LocalObjectStoreOptions) {
    this.root = path.resolve(options.root);
    this.location = this.root;
    this.#durable = options.durable ?? true;
    this.#maxBytes = options.maxBytes;
  }

  async put(key: string, body: Uint8Array | string): Promise<ObjectInfo> {
    const target = await this.#checkedPath(key);
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const settle = await this.#reserve(key, target, bytes.byteLength);
    try {
      const written = await writeFileAtomic(target, bytes, { durable: this.#durable });
      settle(true);
      return this.#written(key, written);
    } catch (err) {
      settle(false);
      throw this.#ioError('put', key, err);
    }
  }

  async putFile(key: string, localPath: string): Promise<ObjectInfo> {
    const target = await this.#checkedPath(key);
    const source = await openLocalSource(localPath);
    try {
      const settle = await this.#reserve(key, target, (await source.stat()).size);
      try {
        const written = await writeFileAtomic(target, readChunks(source), {
          durable: this.#durable,
        });
        settle(true);
        return this.#written(key, written);
      } catch (err) {
        settle(false);
        throw err;
      }
    } catch (err) {
      throw this.#ioError('putFile', key, err);
    } finally {
      await source.close().catch(() => undefined);
    }
  }

  async get(key: string): Promise<Buffer> {
    const file = await this.#checkedPath(key);
    const fh = await this.#openObject(key, file);
    try {
      return await fh.readFile();
    } catch (err) {
      throw this.#ioError('get', key, err);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async getToFile(key: string, localPath: string): Promise<ObjectInfo> {
    const file = await this.#checkedPath(key);
    const fh = await this.#openObject(key, file);
    try {
      const stats = await fh.stat({ bigint: true });
      const written = await writeFileAtomic(path.resolve(localPath), readChunks(fh), {
        durable: this.#durable,
      });
      // The download hashed the object's bytes: remember them for its inode.
      this.#remember(stats, written.etag);
      return { key, size: written.size, lastModified: mtimeMs(stats), etag: written.etag };
    } catch (err) {
      throw this.#ioError('getToFile', key, err);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    return this.#headAt(key, await this.#checkedPath(key));
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    // Walk only below the deepest folder the prefix names in full.
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash === -1 ? '' : prefix.slice(0, slash);
    const startDir = dirKey === '' ? this.root : this.#pathOf(dirKey);
    if (dirKey !== '') await this.#assertInside(startDir, prefix);

    const found: Array<{ key: string; file: string }> = [];
    try {
      await walk(startDir, dirKey, prefix, found);
    } catch (err) {
      throw this.#ioError('list', prefix, err);
    }
    // The walk followed no symlink, so the files need no further check.
    const infos = await mapLimit(found, IO_CONCURRENCY, ({ key, file }) => this.#headAt(key, file));
    return infos
      .filter((i): i is ObjectInfo => i !== null)
      .sort((a, b) => compareKeys(a.key, b.key));
  }

  async delete(keys: readonly string[]): Promise<void> {
    // Every key is checked before any file is removed.
    for (const key of keys) assertValidKey(key);
    const unique = [...new Set(keys)];
    const files = await mapLimit(unique, IO_CONCURRENCY, (key) => this.#checkedPath(key));
    const touchedDirs = new Set<string>();
    await mapLimit(unique, IO_CONCURRENCY, async (key, i) => {
      const file = files[i] as string;
      try {
        const size = await this.#sizeForQuota(file);
        await unlink(file);
        this.#adjustUsage(-size);
        touchedDirs.add(path.dirname(file));
      } catch (err) {
        const code = errnoCode(err);
        if (ABSENT.has(code ?? '')) return;
        // unlink refuses a folder (EISDIR on Linux, EPERM on macOS); a folder
        // is not an object, so there is nothing to delete.
        if ((code === 'EISDIR' || code === 'EPERM') && (await isDirectory(file))) return;
        throw this.#ioError('delete', key, err);
      }
    });
    // One fsync per folder, then drop the folders the deletes emptied (an
    // empty folder that comes back after a power loss is harmless).
    await mapLimit([...touchedDirs], IO_CONCURRENCY, async (dir) => {
      if (this.#durable) await syncDir(dir).catch(() => undefined);
      await this.#pruneEmptyDirs(dir);
    });
  }

  async move(fromKey: string, toKey: string): Promise<ObjectInfo> {
    const from = await this.#checkedPath(fromKey);
    const to = await this.#checkedPath(toKey);
    if (!(await isFile(from))) throw notFound(fromKey, this.location);
    if (fromKey === toKey) return this.#headOrNotFound(fromKey, from);
    try {
      for (let attempt = 1; ; attempt++) {
        await mkdir(path.dirname(to), { recursive: true });
        try {
          // The rename frees the space of the object it replaces.
          const replaced = await this.#sizeForQuota(to);
          await rename(from, to);
          this.#adjustUsage(-replaced);
          break;
        } catch (err) {
          // The target folder may have been pruned by a concurrent delete; the
          // source may have been removed concurrently (then this is NOT_FOUND).
          if (errnoCode(err) !== 'ENOENT' || attempt >= 5) throw err;
          if (!(await isFile(from))) throw notFound(fromKey, this.location);
        }
      }
      if (this.#durable) {
        await syncDir(path.dirname(to));
        await syncDir(path.dirname(from));
      }
    } catch (err) {
      throw this.#ioError('move', `${fromKey} -> ${toKey}`, err);
    }
    await this.#pruneEmptyDirs(path.dirname(from));
    // A rename keeps the inode and mtime, so the remembered etag still applies.
    return this.#headOrNotFound(toKey, to);
  }

  /** Nothing to release: files are opened per call. */
  close(): void {}

  localPath(key: string): string {
    assertValidKey(key);
    const file = this.#pathOf(key);
    this.#assertInsideSync(file, key);
    return file;
  }

  #pathOf(key: string): string {
    return path.join(this.root, ...key.split('/'));
  }

  /** The key's absolute path, after the key rules and the symlink check. */
  async #checkedPath(key: string): Promise<string> {
    assertValidKey(key);
    const file = this.#pathOf(key);
    await this.#assertInside(file, key);
    return file;
  }

  /** Describes the object stored at `file`; null when there is none. */
  async #headAt(key: string, file: string): Promise<ObjectInfo | null> {
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return null;
      throw this.#ioError('head', key, err);
    }
    try {
      const stats = await fh.stat({ bigint: true });
      if (!stats.isFile()) return null;
      return { key, ...(await this.#describe(fh, stats)) };
    } catch (err) {
      throw this.#ioError('head', key, err);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async #headOrNotFound(key: string, file: string): Promise<ObjectInfo> {
    const info = await this.#headAt(key, file);
    if (info === null) throw notFound(key, this.location);
    return info;
  }

  /** Opens an object's file for reading; CANOPY_LAKE_NOT_FOUND when there is none. */
  async #openObject(key: string, file: string): Promise<FileHandle> {
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) throw notFound(key, this.location);
      throw this.#ioError('read', key, err);
    }
    const stats = await fh.stat().catch(async (err: unknown) => {
      await fh.close().catch(() => undefined);
      throw this.#ioError('read', key, err);
    });
    if (!stats.isFile()) {
      await fh.close().catch(() => undefined);
      throw notFound(key, this.location);
    }
    return fh;
  }

  /**
   * Refuses `target` if it, or its deepest existing ancestor, resolves
   * outside the real root. A path below a missing folder cannot pass through
   * a symlink beyond that folder, so checking the deepest existing part is
   * enough.
   */
  async #assertInside(target: string, key: string): Promise<void> {
    const realRoot = await this.#resolveRoot();
    if (realRoot === undefined) return; // no root yet, so no symlink below it
    for (let probe = target; ; probe = path.dirname(probe)) {
      let real: string;
      try {
        real = await realpath(probe);
      } catch (err) {
        if (ABSENT.has(errnoCode(err) ?? '') && probe !== this.root) continue;
        if (ABSENT.has(errnoCode(err) ?? '')) return;
        throw this.#ioError('resolve', key, err);
      }
      if (!isInside(real, realRoot)) throw escapes(key);
      return;
    }
  }

  #assertInsideSync(target: string, key: string): void {
    let realRoot: string;
    try {
      realRoot = realpathSync(this.root);
    } catch {
      return;
    }
    for (let probe = target; ; probe = path.dirname(probe)) {
      let real: string;
      try {
        real = realpathSync(probe);
      } catch (err) {
        if (ABSENT.has(errnoCode(err) ?? '') && probe !== this.root) continue;
        if (ABSENT.has(errnoCode(err) ?? '')) return;
        throw this.#ioError('resolve', key, err);
      }
      if (!isInside(real, realRoot)) throw escapes(key);
      return;
    }
  }

  async #resolveRoot(): Promise<string | undefined> {
    if (this.#realRoot !== undefined) return this.#realRoot;
    try {
      this.#realRoot = await realpath(this.root);
      return this.#realRoot;
    } catch (err) {
      if (ABSENT.has(errnoCode(err) ?? '')) return undefined;
      throw this.#ioError('resolve', '', err);
    }
  }

  #written(key: string, written: WrittenFile): ObjectInfo {
    this.#remember(written.stats, written.etag);
    return { key, size: written.size, lastModified: mtimeMs(written.stats), etag: written.etag };
  }

  async #describe(fh: FileHandle, stats: BigIntStats): Promise<Omit<ObjectInfo, 'key'>> {
    const cached = this.#etags.get(inodeId(stats));
    let etag: string;
    if (cached !== undefined && cached.size === stats.size && cached.mtimeNs === stats.mtimeNs) {
      etag = cached.etag;
    } else {
      etag = await hashOpenFile(fh);
      this.#remember(stats, etag);
    }
    return { size: Number(stats.size), lastModified: mtimeMs(stats), etag };
  }

  #remember(stats: BigIntStats, etag: string): void {
    const id = inodeId(stats);
    this.#etags.delete(id);
    this.#etags.set(id, { size: stats.size, mtimeNs: stats.mtimeNs, etag });
    if (this.#etags.size > ETAG_CACHE_LIMIT) {
      const oldest = this.#etags.keys().next();
      if (oldest.done !== true) this.#etags.delete(oldest.value);
    }
  }

  /**
   * Admits a write of `size` bytes to `file` under the quota, reserving the
   * space; the returned function settles it (the reservation ends and, once
   * written, the file's bytes less those it replaced count as on disk).
   * Without maxBytes it does nothing. The check and the reservation happen
   * with no await between them, so concurrent writes cannot both take the
   * last free bytes.
   */
  async #reserve(key: string, file: string, size: number): Promise<(written: boolean) => void> {
    const max = this.#maxBytes;
    if (max === undefined) return () => undefined;
    const replaced = await this.#sizeForQuota(file);
    if (this.#onDisk === undefined) await this.#count();
    const fits = (): boolean => this.#onDisk! + this.#reserved + size - replaced <= max;
    if (!fits()) {
      // Space may have been freed behind this store's back: count again before refusing.
      await this.#count();
      if (!fits()) {
        const used = this.#onDisk! + this.#reserved;
        throw new CanopyError(
          'CANOPY_LAKE_FULL',
          `Lake write of ${JSON.stringify(key)} (${size} bytes) refused: ${this.location} holds ${used} of its ${max} bytes (lake.maxBytes)`,
          { details: { key, size, usedBytes: used, maxBytes: max } },
        );
      }
    }
    this.#reserved += size;
    return (written) => {
      this.#reserved -= size;
      if (written) this.#adjustUsage(size - replaced);
    };
  }

  /**
   * Counts the bytes below root (one walk; callers at the same time share it).
   * Growth settled while the walk runs is added on top, since the walk may
   * have missed it: the count errs high, never low, and the next refusal
   * counts again.
   */
  #count(): Promise<void> {
    this.#counting ??= (async () => {
      this.#grownDuringCount = 0;
      try {
        const bytes = await folderBytes(this.root);
        this.#onDisk = bytes + this.#grownDuringCount;
      } catch (err) {
        throw this.#ioError('count', '', err);
      } finally {
        this.#counting = undefined;
      }
    })();
    return this.#counting;
  }

  #adjustUsage(delta: number): void {
    if (this.#onDisk !== undefined) this.#onDisk = Math.max(0, this.#onDisk + delta);
    if (this.#counting !== undefined && delta > 0) this.#grownDuringCount += delta;
  }

  /** A file's size when a quota is kept (0 when absent or without maxBytes). */
  async #sizeForQuota(file: string): Promise<number> {
    if (this.#maxBytes === undefined) return 0;
    return lstat(file).then(
      (s) => (s.isFile() ? s.size : 0),
      () => 0,
    );
  }

  /** Removes now-empty folders from `start` upwards, up to (not including) the root. */
  async #pruneEmptyDirs(start: string): Promise<void> {
    for (let dir = start; dir !== this.root && isInside(dir, this.root);) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (the usual case), already gone, or not ours to remove
      }
      dir = path.dirname(dir);
    }
  }

  #ioError(op: string, key: string, err: unknown): CanopyError {
    if (err instanceof CanopyError) return err;
    const reason = err instanceof Error ? err.message : String(err);
    return new CanopyError(
      'CANOPY_LAKE_IO_FAILED',
      `Lake ${op} of ${JSON.stringify(key)} in ${this.location} failed: ${reason}`,
      { cause: err },
    );
  }
}

/**
 * Collects the files below `dir` (whose key is `dirKey`) whose keys start
 * with `prefix`, descending only into folders that can hold such keys.
 * Symlinks, temporary files and names that are not valid keys are skipped.
 */
async function walk(
  dir: string,
  dirKey: string,
  prefix: string,
  found: Array<{ key: string; file: string }>,
): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (ABSENT.has(errnoCode(err) ?? '')) return;
    throw err;
  }
  for (const entry of entries) {
    const key = dirKey === '' ? entry.name : `${dirKey}/${entry.name}`;
    if (entry.isDirectory()) {
      const asFolder = `${key}/`;
      if (asFolder.startsWith(prefix) || prefix.startsWith(asFolder)) {
        await walk(path.join(dir, entry.name), key, prefix, found);
      }
    } else if (
      entry.isFile() &&
      !entry.name.endsWith(TEMP_SUFFIX) &&
      key.startsWith(prefix) &&
      isValidKey(key)
    ) {
      found.push({ key, file: path.join(dir, entry.name) });
    }
  }
}

/** Bytes of every regular file below `dir` (temporary files included: they take space too); 0 when it is missing. */
async function folderBytes(dir: string): Promise<number> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (ABSENT.has(errnoCode(err) ?? '')) return 0;
    throw err;
  }
  let total = 0;
  for (const entry of entries) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await folderBytes(file);
    else if (entry.isFile())
      total += await lstat(file).then(
        (s) => s.size,
        () => 0,
      );
  }
  return total;
}

/** Runs `fn` over `items` with at most `limit` at once, keeping the order of results. */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function isFile(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
}

async function isDirectory(file: string): Promise<boolean> {
  return lstat(file).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

function isInside(candidate: string, root: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (!rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel));
}

function inodeId(stats: BigIntStats): string {
  return `${stats.dev}:${stats.ino}`;
}

function mtimeMs(stats: BigIntStats): number {
  return Number(stats.mtimeMs);
}

function notFound(key: string, location: string): CanopyError {
  return new CanopyError(
    'CANOPY_LAKE_NOT_FOUND',
    `No object ${JSON.stringify(key)} in ${location}`,
  );
}

function escapes(key: string): CanopyError {
  return new CanopyError(
    'CANOPY_LAKE_INVALID_KEY',
    `Invalid lake key ${JSON.stringify(key)}: its path leads outside the lake through a symlink`,
  );
}
