/**
 * The lake in an S3-compatible bucket (AWS S3, MinIO, s3rver, …): key
 * `a/b.parquet` is the object `<prefix>a/b.parquet`.
 *
 * Contract beyond `core/object-store.ts`:
 * - `prefix` is normalized to '' or a value ending in one "/" (`canopy` and
 *   `canopy/` are the same lake, and neither sees `canopy-2/`). An invalid
 *   prefix is refused at construction with CANOPY_CONFIG_INVALID.
 * - `etag` is the server's ETag without quotes (for objects this adapter
 *   wrote, the md5 hex unless the bucket encrypts with KMS, since it uploads
 *   each in one request).
 * - `lastModified` from `put`/`putFile` is this machine's clock when the
 *   upload was answered (S3 returns the stored time only to another
 *   request); `head`, `list`, `getToFile` and `move` report the server's.
 * - One request per object, so `put`/`putFile`/`move` are bounded by S3's
 *   single-request limit (5 GB), far above any lake file.
 * - Objects under the prefix whose names are not valid keys (folder markers
 *   `x/`, `a//b`, written by other tools) are left out of listings.
 * - NoSuchKey / 404 becomes CANOPY_LAKE_NOT_FOUND (`head`: null). Every other
 *   failure (network, permissions, a missing bucket) becomes
 *   CANOPY_LAKE_IO_FAILED with the SDK error as `cause`; the SDK has already
 *   retried transient ones (`maxAttempts`). Messages never carry credentials.
 * - `move` is CopyObject then DeleteObject, so not atomic: a crash between
 *   the two leaves the object under both keys, and repeating the move
 *   finishes it.
 */
import type { Readable } from 'node:stream';
import path from 'node:path';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { CanopyError } from '../core/errors.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import { openLocalSource, STREAM_CHUNK_BYTES, writeFileAtomic } from './object-store-fs.js';
import { assertValidKey, assertValidPrefix, compareKeys, isValidKey } from './object-store-key.js';

export interface S3ObjectStoreOptions {
  bucket: string;
  /** Key prefix inside the bucket; '' for the whole bucket. */
  prefix?: string;
  /** S3-compatible endpoint URL; default AWS. */
  endpoint?: string;
  /** Default `us-east-1`. */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), as most S3-compatible servers need. */
  forcePathStyle?: boolean;
  /** Both or neither; neither means the AWS SDK's default credential chain. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Attempts per request including the first (SDK default 3). */
  maxAttempts?: number;
  /** fsync files written by `getToFile` (default true). */
  durable?: boolean;
}

/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  readonly location: string;
  readonly bucket: string;
  /** The normalized prefix: '' or ending in "/". */
  readonly prefix: string;
  readonly #client: S3Client;
  readonly #durable: boolean;
  /** Strings to blank out of error messages. */
  readonly #secrets: string[];

  constructor(options: S3ObjectStoreOptions) {
    if (options.bucket === '') {
      throw new CanopyError('CANOPY_CONFIG_INVALID', 'lake.s3.bucket must not be empty');
    }
    if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
      throw new CanopyError(
        'CANOPY_CONFIG_INVALID',
        'lake.s3.accessKeyId and lake.s3.secretAccessKey must be given together',
      );
    }
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.location = `s3://${this.bucket}/${this.prefix}`;
    this.#durable = options.durable ?? true;
    this.#secrets = [options.secretAccessKey, options.accessKeyId].filter(
      (s): s is string => s !== undefined && s !== '',
    );
    const config: S3ClientConfig = {
      region: options.region ?? 'us-east-1',
      forcePathStyle: options.forcePathStyle ?? false,
      // Only checksums the API requires: with the SDK's default (a CRC trailer
      // on every streamed upload) servers without trailer support, s3rver
      // among them, store the chunk-encoded body instead of the file.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (options.endpoint !== undefined) config.endpoint = options.endpoint;
    if (options.maxAttempts !== undefined) config.maxAttempts = options.maxAttempts;
    if (options.accessKeyId !== undefined && options.secretAccessKey !== undefined) {
      config.credentials = {
        accessKeyId: options.accessKeyId,
        secretAccessKey: options.secretAccessKey,
      };
    }
    this.#client = new S3Client(config);
  }

  async put(key: string, body: Uint8Array | string): Promise<ObjectInfo> {
    assertValidKey(key);
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    try {
      const res = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.#fullKey(key),
          Body: bytes,
          ContentLength: bytes.byteLength,
        }),
      );
      return { key, size: bytes.byteLength, lastModified: Date.now(), etag: unquote(res.ETag) };
    } catch (err) {
      throw this.#fail('put', key, err);
    }
  }

  async putFile(key: string, localPath: string): Promise<ObjectInfo> {
    assertValidKey(key);
    const fh = await openLocalSource(localPath);
    try {
      const { size } = await fh.stat();
      const res = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.#fullKey(key),
          Body: fh.createReadStream({ highWaterMark: STREAM_CHUNK_BYTES, autoClose: false }),
          ContentLength: size,
        }),
      );
      return { key, size, lastModified: Date.now(), etag: unquote(res.ETag) };
    } catch (err) {
      throw this.#fail('putFile', key, err);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async get(key: string): Promise<Buffer> {
    assertValidKey(key);
    try {
      const res = await this.#client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.#fullKey(key) }),
      );
      if (res.Body === undefined) throw new Error('the answer had no body');
      const bytes = await res.Body.transformToByteArray();
      if (res.ContentLength !== undefined && bytes.byteLength !== res.ContentLength) {
        throw new Error(`expected ${res.ContentLength} bytes but received ${bytes.byteLength}`);
      }
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw this.#fail('get', key, err);
    }
  }

  async getToFile(key: string, localPath: string): Promise<ObjectInfo> {
    assertValidKey(key);
    let body: Readable | undefined;
    try {
      const res = await this.#client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.#fullKey(key) }),
      );
      // In Node the SDK's body is an http.IncomingMessage.
      body = res.Body as Readable | undefined;
      if (body === undefined) throw new Error('the answer had no body');
      const written = await writeFileAtomic(path.resolve(localPath), body, {
        durable: this.#durable,
        ...(res.ContentLength === undefined ? {} : { expectedSize: res.ContentLength }),
      });
      return {
        key,
        size: written.size,
        lastModified: res.LastModified?.getTime() ?? Date.now(),
        etag: unquote(res.ETag),
      };
    } catch (err) {
      // Free the connection when the download stopped half-way.
      body?.destroy();
      throw this.#fail('getToFile', key, err);
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    assertValidKey(key);
    try {
      const res = await this.#client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.#fullKey(key) }),
      );
      return {
        key,
        size: res.ContentLength ?? 0,
        lastModified: res.LastModified?.getTime() ?? 0,
        etag: unquote(res.ETag),
      };
    } catch (err) {
      const failure = this.#fail('head', key, err);
      if (failure.code === 'CANOPY_LAKE_NOT_FOUND') return null;
      throw failure;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    assertValidPrefix(prefix);
    const out: ObjectInfo[] = [];
    const seenTokens = new Set<string>();
    let token: string | undefined;
    try {
      do {
        const res = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const object of res.Contents ?? []) {
          if (object.Key === undefined || !object.Key.startsWith(this.prefix)) continue;
          const key = object.Key.slice(this.prefix.length);
          if (!isValidKey(key)) continue;
          out.push({
            key,
            size: object.Size ?? 0,
            lastModified: object.LastModified?.getTime() ?? 0,
            etag: unquote(object.ETag),
          });
        }
        token = res.IsTruncated === true ? res.NextContinuationToken : undefined;
        // A server that repeats a token would otherwise loop for ever.
        if (token !== undefined) {
          if (seenTokens.has(token)) throw new Error('the server repeated a continuation token');
          seenTokens.add(token);
        }
      } while (token !== undefined);
    } catch (err) {
      throw this.#fail('list', prefix, err);
    }
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) assertValidKey(key);
    const unique = [...new Set(keys)];
    for (let i = 0; i < unique.length; i += DELETE_BATCH) {
      const batch = unique.slice(i, i + DELETE_BATCH);
      let errors;
      try {
        const res = await this.#client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: this.#fullKey(key) })), Quiet: true },
          }),
        );
        errors = res.Errors ?? [];
      } catch (err) {
        throw this.#fail('delete', batch[0] ?? '', err);
      }
      if (errors.length > 0) {
        const sample = errors
          .slice(0, 5)
          .map((e) => `${e.Key ?? '?'} (${e.Code ?? 'error'})`)
          .join(', ');
        throw new CanopyError(
          'CANOPY_LAKE_IO_FAILED',
          this.#redact(
            `Lake delete in ${this.location} failed for ${errors.length} of ${batch.length} keys: ${sample}`,
          ),
          { details: errors },
        );
      }
    }
  }

  async move(fromKey: string, toKey: string): Promise<ObjectInfo> {
    assertValidKey(fromKey);
    assertValidKey(toKey);
    if (fromKey === toKey) {
      // S3 refuses a copy onto itself, and the delete would then lose it.
      const info = await this.head(fromKey);
      if (info === null) throw this.#notFound(fromKey);
      return info;
    }
    const from = this.#fullKey(fromKey);
    try {
      await this.#client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: this.#fullKey(toKey),
          CopySource: copySource(this.bucket, from),
        }),
      );
    } catch (err) {
      throw this.#fail('move', fromKey, err);
    }
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: from }));
    } catch (err) {
      throw this.#fail('move', fromKey, err);
    }
    const info = await this.head(toKey);
    if (info === null) throw this.#notFound(toKey);
    return info;
  }

  localPath(key: string): undefined {
    assertValidKey(key);
    return undefined;
  }

  /** Releases the client's sockets. The store must not be used afterwards. */
  close(): void {
    this.#client.destroy();
  }

  #fullKey(key: string): string {
    return this.prefix + key;
  }

  #notFound(key: string): CanopyError {
    return new CanopyError(
      'CANOPY_LAKE_NOT_FOUND',
      `No object ${JSON.stringify(key)} in ${this.location}`,
    );
  }

  /** Maps an SDK or stream error to the lake's error codes. */
  #fail(op: string, key: string, err: unknown): CanopyError {
    if (err instanceof CanopyError) return err;
    if (isNotFound(err)) return this.#notFound(key);
    const name = err instanceof Error ? err.name : 'Error';
    const reason = err instanceof Error ? err.message : String(err);
    return new CanopyError(
      'CANOPY_LAKE_IO_FAILED',
      this.#redact(
        `Lake ${op} of ${JSON.stringify(key)} in ${this.location} failed: ${name}: ${reason}`,
      ),
      { cause: err },
    );
  }

  #redact(message: string): string {
    let out = message;
    for (const secret of this.#secrets) out = out.split(secret).join('***');
    return out;
  }
}

/** '' stays ''; anything else must be a valid key once trailing slashes go, and gets one back. */
function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (trimmed === '') return '';
  try {
    assertValidKey(trimmed);
  } catch (err) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `lake.s3.prefix ${JSON.stringify(prefix)} is not a valid key prefix: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return `${trimmed}/`;
}

/**
 * True for "no such object". A missing bucket is also a 404 but not this:
 * it is a configuration problem. (HEAD answers carry no error code, so
 * there a missing bucket cannot be told apart and reads as absent.)
 */
function isNotFound(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (err.name === 'NoSuchBucket') return false;
  if (err.name === 'NoSuchKey' || err.name === 'NotFound') return true;
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 404;
}

/**
 * The `x-amz-copy-source` value: bucket and key, URL-encoded per segment,
 * except for `=`, `:`, `@`, `,`, `;`, `&` and `$`, which S3 takes as they are
 * and which servers that decode the header with `decodeURI` (s3rver) would
 * otherwise leave encoded. Hive-style keys (`date=2026-11-22`) need this.
 */
function copySource(bucket: string, key: string): string {
  const encoded = key
    .split('/')
    .map((segment) =>
      encodeURIComponent(segment).replace(/%(?:3D|3A|40|2C|3B|26|24)/g, decodeURIComponent),
    )
    .join('/');
  return `${bucket}/${encoded}`;
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^"(.*)"$/, '$1');
}
