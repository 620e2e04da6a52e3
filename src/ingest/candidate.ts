/**
 * Candidates whose raw text is produced only when asked for.
 *
 * A JSON array of a million readings would otherwise pay one JSON.stringify
 * per record just in case it is rejected. `raw` is read only when a
 * rejection is built, so good records never pay for it.
 *
 * Because `raw` is a getter, spreading a candidate (`{...c}`) drops it; copy
 * fields explicitly.
 */
import type { Candidate } from '../core/ingest.js';
import { recordText } from './rejection.js';

export class JsonCandidate implements Candidate {
  readonly record: unknown;
  readonly index: number;
  private cachedRaw: string | undefined;

  /** `raw`, when given, is the record's own source text (e.g. an NDJSON line). */
  constructor(record: unknown, index: number, raw?: string) {
    this.record = record;
    this.index = index;
    this.cachedRaw = raw;
  }

  /** The record's text: the given source text, or the record as JSON (see {@link recordText}). */
  get raw(): string {
    if (this.cachedRaw === undefined) {
      this.cachedRaw = recordText(this.record);
    }
    return this.cachedRaw;
  }
}
