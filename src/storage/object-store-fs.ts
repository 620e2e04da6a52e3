/**
 * File helpers the object-store adapters share: atomic writes with a content
 * hash taken on the way through, and hashing an open file.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { BigIntStats } from 'node:fs';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CanopyError } from '../core/errors.js';
import { TEMP_SUFFIX } from './object-store-key.js';

/** What an atomic write produced. */
export interface WrittenFile {
  size: number;
  /** md5 of the bytes written, lower-case hex (the same digest S3 gives a single-part upload). */
  etag: string;
  /** Stats of the finished file (its inode survives the rename). */
  stats: BigIntStats;
}

export interface WriteFileAtomicOptions {
  /** fsync the file before the rename and its folder after, so the write survives power loss. */
  durable: boolean;
  /** When given, a body of any other length is refused before it replaces `target`. */
  expectedSize?: number;
}

/** Chunk size for streamed reads: large enough that a 20 MB file is a few dozen writes. */
export const STREAM_CHUNK_BYTES = 1024 * 1024;

/** Name of a temporary file beside `target`: hidden, random, and ending in the reserved suffix. */
function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`);
}

/** The `code` of a Node system error (`ENOENT`, …), if it has one. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : undefined;
}

/**
 * Writes `body` to `target` whole or not at all: the bytes go to a temporary
 * file in the same folder (created if missing), which is then renamed over
 * `target`, so a reader sees the old content or the new, never a part. On
 * any failure the temporary file is removed and the error is rethrown
 * unchanged; `target` is untouched.
 */
export async function writeFileAtomic(
  target: string,
  body: Uint8Array | AsyncIterable<Uint8Array>,
  options: WriteFileAtomicOptions,
): Promise<WrittenFile> {
  const dir = path.dirname(target);
  const tmp = tempPathFor(target);
  let fh: FileHandle | undefined;
  try {
    fh = await openExclusive(tmp, dir);
    const hash = createHash('md5');
    let size = 0;
    if (body instanceof Uint8Array) {
      hash.update(body);
      size = body.byteLength;
      await fh.writeFile(body);
    } else {
      for await (const chunk of body) {
        hash.update(chunk);
        size += chunk.byteLength;
        await writeAll(fh, chunk);
      }
    }
    if (options.expectedSize !== undefined && size !== options.expectedSize) {
      throw new Error(`expected ${options.expectedSize} bytes but received ${size}`);
    }
    if (options.durable) await fh.sync();
    const stats = await fh.stat({ bigint: true });
    await fh.close();
    fh = undefined;
    await rename(tmp, target);
    if (options.durable) await syncDir(dir);
    return { size, etag: hash.digest('hex'), stats };
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Opens a new temporary file, creating its folder. Retried when the folder
 * vanishes between the mkdir and the open: the local store removes folders
 * that a delete left empty, and may do so concurrently with a write.
 */
async function openExclusive(tmp: string, dir: string): Promise<FileHandle> {
  for (let attempt = 1; ; attempt++) {
    await mkdir(dir, { recursive: true });
    try {
      return await open(tmp, 'wx');
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' || attempt >= 5) throw err;
    }
  }
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await fh.write(chunk, offset, chunk.byteLength - offset);
    offset += bytesWritten;
  }
}

/** fsync a folder so a rename or unlink in it is durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** md5 hex of an open file's content, read from the start without moving its position. */
export async function hashOpenFile(fh: FileHandle): Promise<string> {
  const hash = createHash('md5');
  const buffer = Buffer.allocUnsafe(STREAM_CHUNK_BYTES);
  let position = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buffer, 0, buffer.byteLength, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex');
}

/** Reads an open file from its start in chunks, for streaming it elsewhere. */
export async function* readChunks(fh: FileHandle): AsyncGenerator<Uint8Array> {
  let position = 0;
  for (;;) {
    // A fresh buffer per chunk: the consumer may hold on to it.
    const buffer = Buffer.allocUnsafe(STREAM_CHUNK_BYTES);
    const { bytesRead } = await fh.read(buffer, 0, buffer.byteLength, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}

/** Opens a caller's file to upload; CANOPY_LAKE_IO_FAILED when it is missing or not a file. */
export async function openLocalSource(localPath: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(localPath, 'r');
  } catch (err) {
    throw sourceError(localPath, err);
  }
  const stats = await fh.stat().catch(async (err: unknown) => {
    await fh.close().catch(() => undefined);
    throw sourceError(localPath, err);
  });
  if (!stats.isFile()) {
    await fh.close().catch(() => undefined);
    throw sourceError(localPath, new Error('not a regular file'));
  }
  return fh;
}

/** The error for a local file that cannot be uploaded. */
function sourceError(localPath: string, err: unknown): CanopyError {
  const reason = err instanceof Error ? err.message : String(err);
  return new CanopyError(
    'CANOPY_LAKE_IO_FAILED',
    `Cannot upload local file ${localPath}: ${reason}`,
    { cause: err },
  );
}
