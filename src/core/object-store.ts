/**
 * The lake's object store: a local folder by default, an S3-compatible bucket
 * by configuration. Every adapter passes the one conformance suite in
 * `src/storage/object-store.conformance.ts`.
 *
 * Keys are relative POSIX paths (`bronze/readings/date=2026-11-22/hour=10/part-1.parquet`):
 * no leading `/`, no empty, `.` or `..` segments, no backslashes. Any other
 * key is refused with CANOPY_LAKE_INVALID_KEY before anything is touched, so
 * no key can reach outside the lake.
 */

export interface ObjectInfo {
  key: string;
  /** Bytes. */
  size: number;
  /** Epoch ms. */
  lastModified: number;
  /** Changes whenever the content changes (S3 ETag; a content hash locally). */
  etag: string;
}

export interface ObjectStore {
  readonly kind: 'local' | 's3';
  /** Human-readable location for logs and the catalogue: a folder path or `s3://bucket/prefix`. */
  readonly location: string;

  /** Writes an object whole (readers never see a partial object). */
  put(key: string, body: Uint8Array | string): Promise<ObjectInfo>;
  /** Uploads a local file, streaming it. */
  putFile(key: string, localPath: string): Promise<ObjectInfo>;
  /** Throws CANOPY_LAKE_NOT_FOUND when absent. */
  get(key: string): Promise<Buffer>;
  /** Downloads to a local file (written atomically). Throws CANOPY_LAKE_NOT_FOUND when absent. */
  getToFile(key: string, localPath: string): Promise<ObjectInfo>;
  /** Null when absent. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Every object whose key starts with `prefix`, sorted by key, across all pages. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Deletes the keys; absent keys are fine. */
  delete(keys: readonly string[]): Promise<void>;
  /** Moves an object to a new key (copy then delete on S3; rename locally). */
  move(fromKey: string, toKey: string): Promise<ObjectInfo>;
  /**
   * A path DuckDB can read directly, for the local adapter; undefined for
   * remote stores (callers download through a cache instead).
   */
  localPath(key: string): string | undefined;
  /** Releases connections (the S3 client's sockets). The store must not be used afterwards. */
  close(): void;
}
