/**
 * The landing area: files dropped in a folder (or under an S3 prefix) are
 * ingested like any payload, then moved to `processed/` — or to `failed/`,
 * with a `<name>.reason.json` beside them, when the file as a whole cannot be
 * read. Works over the `ObjectStore` contract, so one implementation serves
 * a local folder and an S3 prefix.
 *
 * Layout under the area's prefix:
 * - `<path>.csv|.json|.ndjson|.jsonl`: long CSV, JSON, NDJSON by extension;
 * - `wide/<mapping>/<path>.csv`: wide CSV decoded with the named mapping (a
 *   key of `ingest.wideCsv` or a built-in such as `air-quality-uci`);
 * - `processed/<path>`, `failed/<path>` (+ `.reason.json`): never scanned.
 * A file keeps its relative path when moved; on a name clash a suffix is
 * added (`x-1.csv`), never overwriting.
 *
 * Files still being written are left alone: names with a segment starting
 * with `.` or ending in `.tmp` / `.part` are ignored, and a file is only taken
 * once its size, modification time and etag have stayed the same for
 * `settleMs` (as seen by successive scans of this process). Writers should
 * still write under a temporary name and rename; S3 objects appear whole, so
 * `settleMs: 0` suits a bucket.
 *
 * Exactly once: each chunk of a file (see `chunkFile`, deterministic) is
 * submitted with the idempotency key `file:<sha256 of the file>:<chunk index>`,
 * and the sink commits the key's receipt with the chunk's data. A crash at any
 * point leaves the file in the landing area; the next scan submits every
 * chunk again, and those already committed come back as duplicates and store
 * nothing. The file is moved only after all its chunks are committed. The
 * same content dropped again (any name) is also recognised, within the
 * receipt retention (`store.receiptRetentionDays`). A move interrupted after
 * its copy (S3: copy, then delete) leaves the same content at the target;
 * the retry sees the equal etag and just removes the source.
 *
 * A file is "failed" (moved to `failed/`) when it is not in a supported
 * format, not UTF-8, larger than `maxFileBytes`, has no records, or when the
 * decoder rejects one of its chunks as a whole (invalid JSON, a CSV header
 * without the required columns, a wide CSV that does not fit its mapping).
 * Nothing of a failed file is stored. Individually invalid records of a
 * readable file go to the dead-letter store as usual, and the file counts as
 * processed.
 *
 * One Canopy scans one landing area: two scanners of the same area would not
 * double data (the keys), but could race on the moves.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import type { IngestSink, PayloadFormat } from '../core/ingest.js';
import type { ObjectInfo, ObjectStore } from '../core/object-store.js';
import {
  chunkFile,
  decode,
  formatFromFileName,
  type DecodeOptions,
  type WideCsvMapping,
} from '../ingest/index.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { submitPatiently } from './submit.js';

export interface FileDropOptions {
  /** Holds the landing area. */
  store: ObjectStore;
  /** The area's key prefix in `store`: `''` or ending in `/` (e.g. `landing/`). */
  prefix: string;
  sink: IngestSink;
  clock: Clock;
  metrics: Metrics;
  logger: Logger;
  scanIntervalMs: number;
  settleMs: number;
  maxFileBytes: number;
  /** Limits for the whole-file check; the same the pipeline applies. */
  decode: DecodeOptions;
  /** Mappings a `wide/<mapping>/` folder may name. */
  wideCsvMappings: Readonly<Record<string, WideCsvMapping>>;
  /** A local folder to watch for prompt scans (the area's folder); periodic scans only without it. */
  watchPath?: string;
  /** Source name on readings and dead letters; default `landing`. */
  source?: string;
}

/**
 * Why a file went to `failed/`: one of the file's own reasons
 * (`UNSUPPORTED_FORMAT`, `UNKNOWN_MAPPING`, `FILE_TOO_LARGE`, `NOT_UTF8`,
 * `EMPTY_FILE`) or the decoder's reject reason for a whole payload
 * (`INVALID_JSON`, `INVALID_CSV`, `PAYLOAD_TOO_LARGE`, …).
 */
export type FileFailureReason = string;

/** The content of `failed/<name>.reason.json`. */
export interface FileFailure {
  /** The file's key where it was dropped. */
  file: string;
  reason: FileFailureReason;
  message: string;
  size: number;
  failedAt: string;
}

export interface ScanReport {
  /** Keys (before the move) of the files processed in this scan. */
  processed: string[];
  failed: string[];
  /** Candidate files not yet settled. */
  waiting: number;
  /** Files whose processing threw; they stay and are retried by a later scan. */
  errors: number;
}

interface Sighting {
  signature: string;
  since: number;
}

const IGNORED_SUFFIXES = ['.tmp', '.part'];

export class FileDropSource {
  private readonly log: Logger;
  private readonly source: string;
  private readonly sightings = new Map<string, Sighting>();
  private running: Promise<ScanReport> | undefined;
  private rescanRequested = false;
  private stopping = false;
  private interval: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;

  constructor(private readonly o: FileDropOptions) {
    if (o.prefix !== '' && !o.prefix.endsWith('/')) {
      throw new Error(
        `landing prefix must be empty or end in "/", got ${JSON.stringify(o.prefix)}`,
      );
    }
    this.log = o.logger;
    this.source = o.source ?? 'landing';
  }

  /** Starts watching and scanning; the first scan starts at once. */
  start(): void {
    if (this.o.watchPath !== undefined) {
      try {
        this.watcher = watch(this.o.watchPath, { recursive: true }, () => this.requestScan());
        this.watcher.on('error', (err) => {
          this.log.warn({ err }, 'landing folder watch failed; periodic scans go on');
          this.watcher?.close();
          this.watcher = undefined;
        });
      } catch (err) {
        this.log.warn({ err }, 'cannot watch the landing folder; periodic scans only');
      }
    }
    this.interval = setInterval(() => this.requestScan(), this.o.scanIntervalMs);
    this.interval.unref();
    this.requestScan();
    this.log.info({ location: this.o.store.location, prefix: this.o.prefix }, 'landing area open');
  }

  /** Stops watching and scanning, and waits for the file in progress to finish. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.watcher?.close();
    this.watcher = undefined;
    clearInterval(this.interval);
    clearTimeout(this.settleTimer);
    await this.running?.catch(() => undefined);
  }

  /**
   * One scan: lists the area and processes every settled file, one at a time.
   * Runs after a scan in progress rather than beside it. Never rejects:
   * a failed listing or file is logged and retried by a later scan.
   */
  scanOnce(): Promise<ScanReport> {
    const previous = this.running ?? Promise.resolve(undefined);
    const next = previous.then(() => this.scan());
    this.running = next;
    void next.finally(() => {
      if (this.running === next) this.running = undefined;
    });
    return next;
  }

  private requestScan(): void {
    if (this.stopping) return;
    if (this.running) {
      this.rescanRequested = true;
      return;
    }
    void this.scanOnce().then(() => {
      if (this.rescanRequested && !this.stopping) {
        this.rescanRequested = false;
        this.requestScan();
      }
    });
  }

  private async scan(): Promise<ScanReport> {
    const report: ScanReport = { processed: [], failed: [], waiting: 0, errors: 0 };
    let objects: ObjectInfo[];
    try {
      objects = await this.o.store.list(this.o.prefix);
    } catch (err) {
      this.log.warn({ err }, 'listing the landing area failed; retrying at the next scan');
      report.errors++;
      return report;
    }
    const now = this.o.clock.now();
    const present = new Set<string>();
    const ready: ObjectInfo[] = [];
    for (const object of objects) {
      if (!isCandidate(object.key.slice(this.o.prefix.length))) continue;
      present.add(object.key);
      const signature = `${object.size}:${object.lastModified}:${object.etag}`;
      const seen = this.sightings.get(object.key);
      if (!seen || seen.signature !== signature) {
        this.sightings.set(object.key, { signature, since: now });
        if (this.o.settleMs === 0) ready.push(object);
        else report.waiting++;
      } else if (now - seen.since >= this.o.settleMs) {
        ready.push(object);
      } else {
        report.waiting++;
      }
    }
    for (const key of this.sightings.keys()) if (!present.has(key)) this.sightings.delete(key);

    for (const object of ready) {
      if (this.stopping) break;
      try {
        const outcome = await this.processFile(object);
        if (outcome === 'processed') report.processed.push(object.key);
        if (outcome === 'failed') report.failed.push(object.key);
        this.sightings.delete(object.key);
      } catch (err) {
        report.errors++;
        this.log.error(
          { err, file: object.key },
          'landing file not finished; it stays and is retried at the next scan',
        );
      }
    }
    if (report.waiting > 0 && !this.stopping && this.settleTimer === undefined) {
      this.settleTimer = setTimeout(() => {
        this.settleTimer = undefined;
        this.requestScan();
      }, this.o.settleMs);
      this.settleTimer.unref();
    }
    return report;
  }

  private async processFile(object: ObjectInfo): Promise<'processed' | 'failed' | 'gone'> {
    const rel = object.key.slice(this.o.prefix.length);
    const kind = this.kindOf(rel);
    if ('failure' in kind) return this.fail(object, kind.failure, kind.message);
    const tooLarge = (size: number) =>
      this.fail(
        object,
        'FILE_TOO_LARGE',
        `file is ${size} bytes, limit ${this.o.maxFileBytes} (landing.maxFileBytes)`,
      );
    // Checked before reading (the listed size) and after (the file may have grown since).
    if (object.size > this.o.maxFileBytes) return tooLarge(object.size);
    let content: Buffer;
    try {
      content = await this.o.store.get(object.key);
    } catch (err) {
      if (isCanopyError(err, 'CANOPY_LAKE_NOT_FOUND')) return 'gone';
      throw err;
    }
    if (content.length > this.o.maxFileBytes) return tooLarge(content.length);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(content);
    } catch {
      return this.fail(object, 'NOT_UTF8', 'file is not valid UTF-8 text');
    }
    const chunks = chunkFile(text, kind.format);
    if (chunks.length === 0) return this.fail(object, 'EMPTY_FILE', 'file holds no records');
    const decodeOptions: DecodeOptions =
      kind.mapping === undefined
        ? this.o.decode
        : { ...this.o.decode, wideCsv: this.o.wideCsvMappings[kind.mapping] };
    for (let i = 0; i < chunks.length; i++) {
      // Payload-level rejections carry no record index: the file as a whole is unreadable.
      const whole = decode(
        { source: this.source, payload: chunks[i]!, format: kind.format },
        decodeOptions,
      ).rejections.find((r) => r.index === undefined);
      if (whole) {
        const where = chunks.length === 1 ? '' : ` (chunk ${i + 1} of ${chunks.length})`;
        return this.fail(object, whole.reason, `${whole.message}${where}`);
      }
    }

    const hash = createHash('sha256').update(content).digest('hex');
    const totals = { accepted: 0, rejected: 0, duplicateChunks: 0 };
    for (let i = 0; i < chunks.length; i++) {
      const result = await submitPatiently(
        this.o.sink,
        {
          source: this.source,
          payload: chunks[i]!,
          format: kind.format,
          ...(kind.mapping === undefined ? {} : { wideCsvMapping: kind.mapping }),
          origin: object.key,
          idempotencyKey: `file:${hash}:${i}`,
        },
        // Once stopping, give up on a failing sink: the file stays and is redone.
        { isClosed: () => this.stopping },
      );
      totals.accepted += result.accepted;
      totals.rejected += result.rejected.length;
      if (result.duplicate) totals.duplicateChunks++;
    }
    const target = await this.moveAside(object, `${this.o.prefix}processed/${rel}`);
    this.o.metrics.landingFiles.inc({ outcome: 'processed' });
    this.log.info(
      { file: object.key, movedTo: target, chunks: chunks.length, ...totals },
      'landing file processed',
    );
    return 'processed';
  }

  /** The format (and wide mapping) a relative path names, or why it names none. */
  private kindOf(
    rel: string,
  ): { format: PayloadFormat; mapping?: string } | { failure: FileFailureReason; message: string } {
    const segments = rel.split('/');
    const base = segments[segments.length - 1]!;
    if (segments[0] === 'wide') {
      const mapping = segments[1];
      if (segments.length < 3 || mapping === undefined) {
        return {
          failure: 'UNKNOWN_MAPPING',
          message: 'wide CSV files go in wide/<mapping>/; this one names no mapping',
        };
      }
      if (formatFromFileName(base) !== 'csv') {
        return { failure: 'UNSUPPORTED_FORMAT', message: 'files under wide/ must be .csv' };
      }
      if (!Object.hasOwn(this.o.wideCsvMappings, mapping)) {
        return {
          failure: 'UNKNOWN_MAPPING',
          message: `no wide-CSV mapping "${mapping}" (ingest.wideCsv or a built-in)`,
        };
      }
      return { format: 'csv-wide', mapping };
    }
    const format = formatFromFileName(base);
    if (format === undefined) {
      return {
        failure: 'UNSUPPORTED_FORMAT',
        message: 'unsupported file type; use .csv, .json, .ndjson or .jsonl',
      };
    }
    return { format };
  }

  private async fail(
    object: ObjectInfo,
    reason: FileFailureReason,
    message: string,
  ): Promise<'failed'> {
    const rel = object.key.slice(this.o.prefix.length);
    const failure: Omit<FileFailure, 'file'> = {
      reason,
      message,
      size: object.size,
      failedAt: new Date(this.o.clock.now()).toISOString(),
    };
    const target = await this.moveAside(object, `${this.o.prefix}failed/${rel}`, (key) =>
      this.o.store.put(
        `${key}.reason.json`,
        `${JSON.stringify({ file: object.key, ...failure }, null, 2)}\n`,
      ),
    );
    this.o.metrics.landingFiles.inc({ outcome: 'failed' });
    this.log.warn({ file: object.key, movedTo: target, reason, message }, 'landing file failed');
    return 'failed';
  }

  /**
   * Moves the file to `wanted`, or to `wanted` with a `-N` suffix when that is
   * taken by different content; never overwrites. When the target already
   * holds this very content (an earlier move that copied but did not delete),
   * the source is just deleted. `beforeMove` runs with the chosen key first
   * (the failure reason is written before the file, so a crash between the
   * two leaves the file to be failed again, and the reason is rewritten).
   */
  private async moveAside(
    object: ObjectInfo,
    wanted: string,
    beforeMove?: (target: string) => Promise<unknown>,
  ): Promise<string> {
    for (let n = 0; ; n++) {
      const target = n === 0 ? wanted : withSuffix(wanted, n);
      const existing = await this.o.store.head(target);
      if (existing && existing.etag === object.etag && existing.size === object.size) {
        await beforeMove?.(target);
        await this.o.store.delete([object.key]);
        return target;
      }
      if (existing) continue;
      await beforeMove?.(target);
      await this.o.store.move(object.key, target);
      return target;
    }
  }
}

/** Files the scan considers: not in processed/ or failed/, not hidden, not a temporary name. */
function isCandidate(rel: string): boolean {
  if (rel.startsWith('processed/') || rel.startsWith('failed/')) return false;
  const segments = rel.split('/');
  if (segments.some((s) => s.startsWith('.'))) return false;
  const base = segments[segments.length - 1]!.toLowerCase();
  return !IGNORED_SUFFIXES.some((suffix) => base.endsWith(suffix));
}

/** `dir/name.csv` → `dir/name-3.csv`; `dir/name` → `dir/name-3`. */
function withSuffix(key: string, n: number): string {
  const ext = path.posix.extname(key);
  const stem = key.slice(0, key.length - ext.length);
  return `${stem}-${n}${ext}`;
}
