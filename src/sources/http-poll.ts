/**
 * HTTP polling source: every `intervalMs`, GET `urlTemplate` with `{id}`
 * replaced by each id, with a per-request timeout, bounded concurrency and
 * retries with backoff. Each response body is ingested like any payload.
 * An endpoint that answers an HTTP error, or cannot be reached after all
 * retries, becomes a dead letter (POLL_HTTP_ERROR / POLL_FAILED) and the
 * round goes on with the other ids.
 *
 * Retries: network errors, timeouts and 5xx/429 are retried; other 4xx are
 * not (asking again will not help). A round that is still running when the
 * next is due is not doubled: the next round starts when it ends.
 */
import type { IngestSink, PayloadFormat } from '../core/ingest.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { submitPatiently } from './submit.js';

export interface HttpPollOptions {
  name: string;
  urlTemplate: string;
  ids: readonly (string | number)[];
  format: Extract<PayloadFormat, 'json' | 'plants'>;
  intervalMs: number;
  timeoutMs: number;
  concurrency: number;
  retries: number;
  sink: IngestSink;
  logger: Logger;
  metrics: Metrics;
  /** Base backoff between retries; doubled each attempt. */
  retryDelayMs?: number;
}

export interface PollRoundReport {
  ok: number;
  httpErrors: number;
  failed: number;
}

type FetchOutcome =
  | { kind: 'ok'; body: string }
  | { kind: 'http_error'; status: number; body: string }
  | { kind: 'failed'; error: string };

export class HttpPollSource {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private round: Promise<PollRoundReport> | undefined;
  private readonly source: string;

  constructor(private readonly o: HttpPollOptions) {
    this.source = `poll:${o.name}`;
  }

  /** Polls once at once, then every interval. */
  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.round = this.pollOnce();
      void this.round
        .catch((err: unknown) => this.o.logger.error({ err }, 'poll round failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.o.intervalMs);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round?.catch(() => undefined);
  }

  /** One round over every id. Resolves when every response is committed or dead-lettered. */
  async pollOnce(): Promise<PollRoundReport> {
    const report: PollRoundReport = { ok: 0, httpErrors: 0, failed: 0 };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.stopped && next < this.o.ids.length) {
        const id = this.o.ids[next++]!;
        const url = this.o.urlTemplate.replaceAll('{id}', encodeURIComponent(String(id)));
        const outcome = await this.fetchWithRetries(url);
        this.o.metrics.pollRequests.inc({ source: this.source, result: outcome.kind });
        if (outcome.kind === 'ok') {
          report.ok++;
          await submitPatiently(
            this.o.sink,
            { source: this.source, payload: outcome.body, format: this.o.format, origin: url },
            { isClosed: () => this.stopped },
          );
        } else if (outcome.kind === 'http_error') {
          report.httpErrors++;
          await this.o.sink.submitDeadLetter({
            source: this.source,
            origin: url,
            reason: 'POLL_HTTP_ERROR',
            message: `GET ${url} answered HTTP ${outcome.status}`,
            raw: outcome.body,
          });
        } else {
          report.failed++;
          await this.o.sink.submitDeadLetter({
            source: this.source,
            origin: url,
            reason: 'POLL_FAILED',
            message: `GET ${url} failed after ${this.o.retries + 1} attempts: ${outcome.error}`,
            raw: '',
          });
        }
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(this.o.concurrency, this.o.ids.length) }, worker),
    );
    return report;
  }

  private async fetchWithRetries(url: string): Promise<FetchOutcome> {
    let outcome: FetchOutcome = { kind: 'failed', error: 'not attempted' };
    for (let attempt = 0; attempt <= this.o.retries && !this.stopped; attempt++) {
      if (attempt > 0)
        await new Promise((r) => setTimeout(r, (this.o.retryDelayMs ?? 200) * 2 ** (attempt - 1)));
      outcome = await this.fetchOnce(url);
      const retryable =
        outcome.kind === 'failed' ||
        (outcome.kind === 'http_error' && (outcome.status >= 500 || outcome.status === 429));
      if (!retryable) break;
    }
    return outcome;
  }

  private async fetchOnce(url: string): Promise<FetchOutcome> {
    try {
      const response = await fetch(url, {
        signal: AbortSignal.timeout(this.o.timeoutMs),
        headers: { accept: 'application/json' },
      });
      const body = await response.text();
      return response.ok
        ? { kind: 'ok', body }
        : { kind: 'http_error', status: response.status, body };
    } catch (err) {
      return { kind: 'failed', error: err instanceof Error ? err.message : String(err) };
    }
  }
}
