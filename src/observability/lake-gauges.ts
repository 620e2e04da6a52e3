/**
 * The `canopy_lake_*` gauges (files, bytes, rows by layer), sampled from the
 * lake catalogue at scrape time. Building the catalogue lists the lake and
 * reads Parquet footers (and for an S3 lake syncs its cache), which can take
 * seconds, so a result is reused for `ttlMs`, and a scrape waits for a
 * refresh at most `maxWaitMs`: past that it serves the previous values while
 * the refresh finishes in the background. A failed refresh keeps the previous
 * values and is logged; `canopy_lake_catalog_last_success_timestamp_seconds`
 * shows how old they are. A scrape never fails because of the lake.
 */
import { systemClock, type Clock } from '../core/clock.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

/** What the gauges need of a catalogue table (src/lake/catalog.ts `CatalogTable`). */
export interface CatalogedTable {
  layer: string;
  files: number;
  bytes: number;
  rows: number | null;
}

export interface LakeGaugeOptions {
  catalog: () => Promise<readonly CatalogedTable[]>;
  metrics: Metrics;
  logger: Logger;
  /** Reuse a catalogue this long, ms. */
  ttlMs?: number;
  /** Longest a scrape waits for a refresh, ms. */
  maxWaitMs?: number;
  clock?: Clock;
}

/** The lake's layers; a top-level folder outside them (a stray upload) counts as `other`. */
const LAYERS: ReadonlySet<string> = new Set([
  'bronze',
  'silver',
  'gold',
  'anomalies',
  'deadletter',
  'quality',
]);

export class LakeGauges {
  private readonly ttlMs: number;
  private readonly maxWaitMs: number;
  private readonly clock: Clock;
  /** When the last refresh started (success or not), ms; a failure is retried after ttlMs too. */
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;

  constructor(private readonly o: LakeGaugeOptions) {
    this.ttlMs = o.ttlMs ?? 60_000;
    this.maxWaitMs = o.maxWaitMs ?? 2_000;
    this.clock = o.clock ?? systemClock;
  }

  /** Called by each scrape; never rejects. */
  async sample(): Promise<void> {
    if (this.refreshing === undefined && this.clock.now() - this.lastAttempt >= this.ttlMs) {
      this.lastAttempt = this.clock.now();
      this.refreshing = this.refresh().finally(() => {
        this.refreshing = undefined;
      });
    }
    if (this.refreshing === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.refreshing,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.maxWaitMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private async refresh(): Promise<void> {
    const m = this.o.metrics;
    try {
      const tables = await this.o.catalog();
      const byLayer = new Map<string, { files: number; bytes: number; rows: number }>();
      for (const t of tables) {
        const name = LAYERS.has(t.layer) ? t.layer : 'other';
        const layer = byLayer.get(name) ?? { files: 0, bytes: 0, rows: 0 };
        layer.files += t.files;
        layer.bytes += t.bytes;
        layer.rows += t.rows ?? 0;
        byLayer.set(name, layer);
      }
      // Reset first: a layer that retention emptied must disappear, not keep its last value.
      m.lakeFiles.reset();
      m.lakeBytes.reset();
      m.lakeRows.reset();
      for (const [layer, totals] of byLayer) {
        m.lakeFiles.set({ layer }, totals.files);
        m.lakeBytes.set({ layer }, totals.bytes);
        m.lakeRows.set({ layer }, totals.rows);
      }
      m.lakeCatalogLastSuccess.set(this.clock.now() / 1000);
    } catch (err) {
      this.o.logger.warn({ err }, 'could not read the lake catalogue for /metrics');
    }
  }
}
