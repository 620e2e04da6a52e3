/**
 * Local files for reading the lake with DuckDB. DuckDB reads local paths only
 * here (its S3 extension cannot be assumed: no extension is ever downloaded),
 * so a lake in S3 is read through a cache folder whose layout mirrors the
 * lake's keys, and `canopyLakeViews(mirror.root)` works over either kind.
 * A local lake is its own mirror: no copy is made.
 *
 * The cache folder (`lake.cacheDir`, default `<dataDir>/cache/lake`) holds:
 * - `objects/<key>`: the copies, the only folder handed to DuckDB (and to the
 *   query sandbox as its one allowed directory);
 * - `stamps/<key>.json`: for each copy, the ETag it was downloaded at and the
 *   identity of the file written then (inode, size, mtime in ns);
 * - `tmp/<pid>-<random>/`: one process's downloads in progress.
 *
 * `sync(prefixes)` lists the data objects (`.parquet`, `.jsonl`; manifests
 * are not needed by readers) under the prefixes, downloads each one whose
 * copy is not current, and deletes copies under the prefixes whose objects
 * are gone, so a dropped or replaced partition disappears from queries. A
 * copy is current when its stamp has the listed ETag and still describes the
 * file at the copy's path. Downloads go to the process's tmp folder and are
 * renamed into place, so a reader never sees a partial file; a crash leaves
 * at most a tmp folder (removed once its process is gone) or a copy whose
 * stamp does not match (downloaded again). A copy truncated or rewritten in
 * place no longer matches its stamp either.
 *
 * Concurrency. Within a process, every mirror over one cache folder shares
 * one read-write lock: a sync holds it exclusively, and `read` holds it
 * shared while its work reads the files, so no sync of this process deletes
 * or replaces a file under a running query. Across processes (`canopy query`
 * beside a server, several workers) the folder is shared without a lock,
 * which is safe because every change is a rename or an unlink: an open file
 * keeps its content, and a stamp vouches only for the inode it was written
 * with, so when two processes race to replace the same copy, whichever stamp
 * survives either matches the surviving file or forces a new download. What
 * remains is a file deleted by another process between DuckDB's glob and
 * its open: `read` retries its work once, after a new sync, when it fails
 * because a file vanished.
 */
import { randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CanopyError } from '../core/errors.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import type { Logger } from '../observability/logger.js';

/** A lake object and the absolute path of a local file with its content. */
export interface MirroredObject extends ObjectInfo {
  path: string;
}

export interface SyncReport {
  /** Every data object under the prefixes, sorted by key. */
  objects: MirroredObject[];
  /** Keys copied from the lake by this sync. */
  downloaded: string[];
  /** Keys whose stale copies this sync removed. */
  deleted: string[];
}

export interface LakeMirror {
  /** Absolute, symlink-free folder whose layout mirrors the lake's data keys. */
  readonly root: string;
  /** Brings the local files under `prefixes` in line with the lake. */
  sync(prefixes: readonly string[]): Promise<SyncReport>;
  /**
   * Syncs `prefixes`, then runs `work` over the files while no sync of this
   * process can change them. Retried once (new sync, new run) when `work`
   * fails because a file vanished under it. `work` must not call `read` or
   * `sync` of a mirror over the same cache (it would wait for itself).
   */
  read<T>(prefixes: readonly string[], work: (objects: MirroredObject[]) => Promise<T>): Promise<T>;
  /**
   * `read` for work that finds the files itself (globs under `root`): a
   * local lake is then not listed at all, since listing hashes every file
   * the process has not seen yet.
   */
  readFiles<T>(prefixes: readonly string[], work: () => Promise<T>): Promise<T>;
}

/** The cache folder the configuration names: `lake.cacheDir`, default `<dataDir>/cache/lake`. */
export function lakeCacheDir(cacheDir: string | undefined, dataDir: string): string {
  return path.resolve(cacheDir ?? path.join(dataDir, 'cache', 'lake'));
}

/**
 * The mirror of `lake`: the lake folder itself for a local lake, a cache
 * under `cacheDir` otherwise (created if missing). Throws
 * CANOPY_CONFIG_INVALID for a remote lake without `cacheDir`.
 */
export async function openLakeMirror(
  lake: ObjectStore,
  options: { cacheDir?: string | undefined; logger?: Logger | undefined } = {},
): Promise<LakeMirror> {
  if (lake.kind === 'local') {
    await mkdir(lake.location, { recursive: true });
    return new LocalLakeMirror(lake, await realpath(lake.location));
  }
  if (options.cacheDir === undefined) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `reading the lake ${lake.location} needs a local cache folder (lake.cacheDir)`,
    );
  }
  const state = await cacheState(path.resolve(options.cacheDir));
  return new CachedLakeMirror(lake, state, options.logger);
}

/** Data files, as opposed to manifests and other bookkeeping objects. */
export function isDataKey(key: string): boolean {
  return key.endsWith('.parquet') || key.endsWith('.jsonl');
}

async function listData(lake: ObjectStore, prefixes: readonly string[]): Promise<ObjectInfo[]> {
  const byKey = new Map<string, ObjectInfo>();
  for (const prefix of new Set(prefixes)) {
    for (const o of await lake.list(prefix)) if (isDataKey(o.key)) byKey.set(o.key, o);
  }
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** The error, or one of its causes, says a file that was there is not. */
function isVanishedFile(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ('code' in e && e.code === 'ENOENT') return true;
    if (/No such file or directory|No files found that match the pattern/i.test(e.message)) {
      return true;
    }
  }
  return false;
}

async function readWithRetry<T>(
  sync: () => Promise<{ objects: MirroredObject[]; done: () => void }>,
  work: (objects: MirroredObject[]) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    const { objects, done } = await sync();
    try {
      return await work(objects);
    } catch (err) {
      if (attempt >= 2 || !isVanishedFile(err)) throw err;
    } finally {
      done();
    }
  }
}

class LocalLakeMirror implements LakeMirror {
  constructor(
    private readonly lake: ObjectStore,
    readonly root: string,
  ) {}

  async sync(prefixes: readonly string[]): Promise<SyncReport> {
    const objects = (await listData(this.lake, prefixes)).map((o) => ({
      ...o,
      path: path.join(this.root, ...o.key.split('/')),
    }));
    return { objects, downloaded: [], deleted: [] };
  }

  read<T>(
    prefixes: readonly string[],
    work: (objects: MirroredObject[]) => Promise<T>,
  ): Promise<T> {
    // The lake's own jobs change these files without any lock of ours: the
    // retry is the only protection, and enough for a reader.
    return readWithRetry(async () => ({ ...(await this.sync(prefixes)), done: () => {} }), work);
  }

  readFiles<T>(_prefixes: readonly string[], work: () => Promise<T>): Promise<T> {
    return readWithRetry(() => Promise.resolve({ objects: [], done: () => {} }), work);
  }
}

/** What a copy's stamp records; sizes and times as decimal strings (they are bigints). */
interface Stamp {
  etag: string;
  ino: string;
  size: string;
  mtimeNs: string;
}

/** What every mirror over one cache folder in this process shares. */
interface CacheState {
  objectsRoot: string;
  stampsRoot: string;
  /** This process's download folder. */
  tmpDir: string;
  lock: ReadWriteLock;
  /** Stamps read or written by this process, by key; checked against the disk before use. */
  stamps: Map<string, Stamp>;
}

const states = new Map<string, Promise<CacheState>>();

function cacheState(cacheDir: string): Promise<CacheState> {
  let state = states.get(cacheDir);
  if (state === undefined) {
    state = createCacheState(cacheDir);
    states.set(cacheDir, state);
    // A failed start (a folder that cannot be created) is tried again next time.
    state.catch(() => states.delete(cacheDir));
  }
  return state;
}

async function createCacheState(cacheDir: string): Promise<CacheState> {
  const objects = path.join(cacheDir, 'objects');
  const stamps = path.join(cacheDir, 'stamps');
  const tmp = path.join(cacheDir, 'tmp');
  await Promise.all([objects, stamps, tmp].map((dir) => mkdir(dir, { recursive: true })));
  await removeDeadDownloads(tmp);
  const tmpDir = path.join(tmp, `${process.pid}-${randomBytes(6).toString('hex')}`);
  await mkdir(tmpDir);
  return {
    objectsRoot: await realpath(objects),
    stampsRoot: stamps,
    tmpDir,
    lock: new ReadWriteLock(),
    stamps: new Map(),
  };
}

/** Removes the download folders of processes that no longer run (crashed mid-download). */
async function removeDeadDownloads(tmp: string): Promise<void> {
  for (const name of await readdir(tmp)) {
    const pid = Number(name.split('-', 1)[0]);
    if (!Number.isInteger(pid) || pid <= 0 || isRunning(pid)) continue;
    await rm(path.join(tmp, name), { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** How many objects one sync downloads at a time. */
const DOWNLOAD_CONCURRENCY = 4;

class CachedLakeMirror implements LakeMirror {
  readonly root: string;

  constructor(
    private readonly lake: ObjectStore,
    private readonly state: CacheState,
    private readonly logger: Logger | undefined,
  ) {
    this.root = state.objectsRoot;
  }

  async sync(prefixes: readonly string[]): Promise<SyncReport> {
    await this.state.lock.acquire('write');
    try {
      return await this.syncLocked(prefixes);
    } finally {
      this.state.lock.release('write');
    }
  }

  read<T>(
    prefixes: readonly string[],
    work: (objects: MirroredObject[]) => Promise<T>,
  ): Promise<T> {
    const { lock } = this.state;
    return readWithRetry(async () => {
      await lock.acquire('write');
      try {
        const { objects } = await this.syncLocked(prefixes);
        lock.downgrade();
        return { objects, done: () => lock.release('read') };
      } catch (err) {
        lock.release('write');
        throw err;
      }
    }, work);
  }

  readFiles<T>(prefixes: readonly string[], work: () => Promise<T>): Promise<T> {
    return this.read(prefixes, () => work());
  }

  private async syncLocked(prefixes: readonly string[]): Promise<SyncReport> {
    const listed = await listData(this.lake, prefixes);
    const objects: MirroredObject[] = [];
    const stale: ObjectInfo[] = [];
    for (const o of listed) {
      if (await this.isCurrent(o)) objects.push({ ...o, path: this.copyPath(o.key) });
      else stale.push(o);
    }
    const downloaded = await mapLimited(stale, DOWNLOAD_CONCURRENCY, (o) => this.download(o));
    objects.push(...downloaded);
    objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

    const wanted = new Set(listed.map((o) => o.key));
    const deleted: string[] = [];
    for (const prefix of new Set(prefixes)) {
      for (const key of await this.copiesUnder(prefix)) {
        if (wanted.has(key) || deleted.includes(key)) continue;
        await rm(this.copyPath(key), { force: true });
        await rm(this.stampPath(key), { force: true });
        this.state.stamps.delete(key);
        deleted.push(key);
      }
    }
    if (downloaded.length > 0 || deleted.length > 0) {
      this.logger?.info(
        { lake: this.lake.location, downloaded: downloaded.length, deleted: deleted.length },
        'lake cache updated',
      );
    }
    return { objects, downloaded: downloaded.map((o) => o.key), deleted };
  }

  private copyPath(key: string): string {
    return path.join(this.state.objectsRoot, ...key.split('/'));
  }

  private stampPath(key: string): string {
    return path.join(this.state.stampsRoot, ...`${key}.json`.split('/'));
  }

  /** The copy exists, its stamp has the object's etag, and the stamp describes that very file. */
  private async isCurrent(o: ObjectInfo): Promise<boolean> {
    let file: BigIntStats;
    try {
      file = await stat(this.copyPath(o.key), { bigint: true });
    } catch {
      return false;
    }
    if (file.size !== BigInt(o.size)) return false;
    const known = this.state.stamps.get(o.key);
    if (known !== undefined && stampMatches(known, o.etag, file)) return true;
    // Written by another process, or before a restart: the stamp file decides.
    const stored = await this.readStamp(o.key);
    if (stored === undefined || !stampMatches(stored, o.etag, file)) return false;
    this.state.stamps.set(o.key, stored);
    return true;
  }

  private async readStamp(key: string): Promise<Stamp | undefined> {
    try {
      const value: unknown = JSON.parse(await readFile(this.stampPath(key), 'utf8'));
      return isStamp(value) ? value : undefined;
    } catch {
      return undefined;
    }
  }

  private async download(o: ObjectInfo): Promise<MirroredObject> {
    const name = randomBytes(8).toString('hex');
    const tmpCopy = path.join(this.state.tmpDir, `${name}.download`);
    const tmpStamp = path.join(this.state.tmpDir, `${name}.stamp`);
    try {
      const got = await this.lake.getToFile(o.key, tmpCopy);
      // The inode survives the rename: the stamp names this file and no other.
      const file = await stat(tmpCopy, { bigint: true });
      const stamp: Stamp = {
        etag: got.etag,
        ino: String(file.ino),
        size: String(file.size),
        mtimeNs: String(file.mtimeNs),
      };
      const copy = this.copyPath(o.key);
      const stampFile = this.stampPath(o.key);
      await mkdir(path.dirname(copy), { recursive: true });
      await mkdir(path.dirname(stampFile), { recursive: true });
      await rename(tmpCopy, copy);
      await writeFile(tmpStamp, JSON.stringify(stamp));
      await rename(tmpStamp, stampFile);
      this.state.stamps.set(o.key, stamp);
      return { ...o, size: got.size, etag: got.etag, path: copy };
    } finally {
      await rm(tmpCopy, { force: true });
      await rm(tmpStamp, { force: true });
    }
  }

  /** Keys of the copies under `prefix` (data files only; no temporary file lives here). */
  private async copiesUnder(prefix: string): Promise<string[]> {
    const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const keys: string[] = [];
    const walk = async (dir: string, keyPrefix: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const entry of entries) {
        const key = `${keyPrefix}${entry.name}`;
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), `${key}/`);
        else if (isDataKey(key) && key.startsWith(prefix)) keys.push(key);
      }
    };
    await walk(path.join(this.state.objectsRoot, ...folder.split('/').filter(Boolean)), folder);
    return keys;
  }
}

function stampMatches(stamp: Stamp, etag: string, file: BigIntStats): boolean {
  return (
    stamp.etag === etag &&
    stamp.ino === String(file.ino) &&
    stamp.size === String(file.size) &&
    stamp.mtimeNs === String(file.mtimeNs)
  );
}

function isStamp(value: unknown): value is Stamp {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return ['etag', 'ino', 'size', 'mtimeNs'].every((k) => typeof v[k] === 'string');
}

/** `fn` over `items`, at most `limit` at a time; results in input order. */
async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next;
      next += 1;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  // Every worker has stopped before this returns or throws: nothing keeps
  // writing after the caller has let go of its lock.
  const settled = await Promise.allSettled(
    Array.from({ length: Math.min(limit, items.length) }, worker),
  );
  const rejected = settled.find((s) => s.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
  return results;
}

/**
 * Many readers or one writer, granted in arrival order (a waiting writer
 * holds back later readers, so syncs are not starved by a stream of reads).
 */
class ReadWriteLock {
  private readers = 0;
  private writing = false;
  private readonly waiting: { mode: 'read' | 'write'; grant: () => void }[] = [];

  acquire(mode: 'read' | 'write'): Promise<void> {
    return new Promise((grant) => {
      this.waiting.push({ mode, grant });
      this.pump();
    });
  }

  release(mode: 'read' | 'write'): void {
    if (mode === 'write') this.writing = false;
    else this.readers -= 1;
    this.pump();
  }

  /** The writer becomes a reader, without letting another writer in between. */
  downgrade(): void {
    this.writing = false;
    this.readers += 1;
    this.pump();
  }

  private pump(): void {
    while (this.waiting.length > 0 && !this.writing) {
      const head = this.waiting[0]!;
      if (head.mode === 'write' && this.readers > 0) return;
      this.waiting.shift();
      if (head.mode === 'write') this.writing = true;
      else this.readers += 1;
      head.grant();
    }
  }
}
