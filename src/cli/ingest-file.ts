/**
 * `canopy ingest FILE`: loads a file through the same pipeline as every
 * source (validation, dead letters, stream checks), in chunks so that a large
 * file never exceeds the per-payload limits.
 *
 * If the hot store is held by a running Canopy (DuckDB allows one process per
 * file), the chunks are POSTed to that instance's API instead.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { systemClock } from '../core/clock.js';
import { CanopyError, isCanopyError, type RejectReason } from '../core/errors.js';
import type { IngestMessage, IngestSink, PayloadFormat } from '../core/ingest.js';
import type { CanopyConfig } from '../config/schema.js';
import {
  BUILT_IN_WIDE_CSV_MAPPINGS,
  chunkFile,
  formatFromFileName,
  type WideCsvMapping,
} from '../ingest/index.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { openStore } from '../runtime/app.js';
import { createPipeline } from '../runtime/pipeline.js';
import { withApiKey } from './api-client.js';

export interface IngestFileSummary {
  file: string;
  format: PayloadFormat;
  via: 'store' | 'api';
  accepted: number;
  rejected: number;
  reasons: Record<string, number>;
}

function resolveMapping(
  config: CanopyConfig,
  name: string | undefined,
): WideCsvMapping | undefined {
  if (name === undefined) return undefined;
  const mapping = config.ingest.wideCsv[name] ?? BUILT_IN_WIDE_CSV_MAPPINGS[name];
  if (!mapping) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `no wide-CSV mapping "${name}" under ingest.wideCsv`,
      {
        details: [`ingest.wideCsv.${name}: not defined`],
      },
    );
  }
  return mapping;
}

/** A sink that forwards to a running Canopy's HTTP API. Only formats the API takes by content type. */
function apiSink(baseUrl: string, apiKey: string | undefined): IngestSink {
  const contentTypes: Partial<Record<PayloadFormat, string>> = {
    json: 'application/json',
    ndjson: 'application/x-ndjson',
    csv: 'text/csv',
  };
  return {
    async submit(message: IngestMessage) {
      const contentType = contentTypes[message.format ?? 'json'];
      if (!contentType) {
        throw new CanopyError(
          'CANOPY_STORE_OPEN_FAILED',
          `the store is in use by a running Canopy, and ${message.format} files cannot be sent over its API; stop it and run canopy ingest again`,
        );
      }
      const response = await fetch(
        `${baseUrl}/api/data`,
        withApiKey(
          { method: 'POST', headers: { 'content-type': contentType }, body: message.payload },
          apiKey,
        ),
      );
      const body = (await response.json()) as {
        accepted?: number;
        batch_id?: string;
        rejected?: { index: number | null; reason: string; message: string }[];
        error?: { message?: string };
      };
      if (response.status === 401 || response.status === 403) {
        throw new CanopyError(
          response.status === 401 ? 'CANOPY_AUTH_REQUIRED' : 'CANOPY_AUTH_FORBIDDEN',
          `the running Canopy refused the file: ${body.error?.message ?? response.status}; give an API key with the ingest scope (--api-key or CANOPY_API_KEY)`,
        );
      }
      if (response.status !== 200 && response.status !== 400) {
        throw new CanopyError(
          'CANOPY_STORE_COMMIT_FAILED',
          `API answered ${response.status}: ${JSON.stringify(body)}`,
        );
      }
      return {
        batchId: body.batch_id ?? '',
        accepted: body.accepted ?? 0,
        rejected: (body.rejected ?? []).map((r) => ({
          reason: r.reason as RejectReason,
          message: r.message,
          index: r.index ?? undefined,
          raw: '',
        })),
      };
    },
    submitDeadLetter() {
      return Promise.reject(new Error('not used by file ingest'));
    },
  };
}

export async function ingestFile(
  config: CanopyConfig,
  file: string,
  options: {
    format?: PayloadFormat | undefined;
    mapping?: string | undefined;
    /** Sent when the file goes through a running Canopy's API. */
    apiKey?: string | undefined;
  },
): Promise<IngestFileSummary> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new CanopyError('CANOPY_SOURCE_FILE_UNREADABLE', `cannot read ${file}`, { cause });
  }
  const wideCsv = resolveMapping(config, options.mapping);
  const format = options.format ?? (wideCsv ? 'csv-wide' : (formatFromFileName(file) ?? 'json'));
  if (format === 'csv-wide' && !wideCsv) {
    throw new CanopyError('CANOPY_CONFIG_INVALID', 'wide CSV needs --mapping NAME', {
      details: ['--mapping: required with --format csv-wide'],
    });
  }

  const logger = silentLogger();
  let sink: IngestSink;
  let via: IngestFileSummary['via'] = 'store';
  let close = async (): Promise<void> => {};
  try {
    const store = await openStore(config, logger);
    const pipeline = await createPipeline(
      config,
      store,
      { clock: systemClock, metrics: new Metrics({ defaultMetrics: false }), logger },
      wideCsv ? { wideCsv } : {},
    );
    sink = pipeline;
    close = async () => {
      await pipeline.drain();
      await store.close();
    };
  } catch (err) {
    if (!isCanopyError(err, 'CANOPY_STORE_OPEN_FAILED') || !config.http.enabled) throw err;
    sink = apiSink(
      `http://${config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host}:${config.http.port}`,
      options.apiKey,
    );
    via = 'api';
  }

  const summary: IngestFileSummary = { file, format, via, accepted: 0, rejected: 0, reasons: {} };
  try {
    for (const chunk of chunkFile(text, format)) {
      const result = await sink.submit({
        source: 'file',
        payload: chunk,
        format,
        origin: path.basename(file),
      });
      summary.accepted += result.accepted;
      summary.rejected += result.rejected.length;
      for (const r of result.rejected)
        summary.reasons[r.reason] = (summary.reasons[r.reason] ?? 0) + 1;
    }
  } finally {
    await close();
  }
  return summary;
}
