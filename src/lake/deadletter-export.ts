/**
 * Dead letters to the lake: `deadletter/date=YYYY-MM-DD/part-<first id>.jsonl`,
 * one JSON object per line (id, received_at, source, origin, reason, message,
 * raw), partitioned by the day they were received, then the dead-letter
 * watermark moves. Crash-safe the same way as the bronze export: a batch
 * starts right after the watermark and its files are named after its first
 * id, so a redo writes the same names over a superset of the same records.
 */
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { Logger } from '../observability/logger.js';

export const DEAD_LETTER_PREFIX = 'deadletter/';

export interface DeadLetterExportReport {
  rows: number;
  files: string[];
  watermark: bigint;
}

export async function runDeadLetterExport(options: {
  store: HotStore;
  lake: ObjectStore;
  logger: Logger;
  maxRowsPerBatch?: number;
}): Promise<DeadLetterExportReport> {
  const { store, lake } = options;
  const report: DeadLetterExportReport = { rows: 0, files: [], watermark: 0n };
  for (;;) {
    const after = await store.getDeadLetterWatermark();
    report.watermark = after;
    const letters = await store.deadLettersAfter(after, options.maxRowsPerBatch ?? 10_000);
    if (letters.length === 0) break;
    const byDate = new Map<string, string[]>();
    for (const d of letters) {
      const receivedAt = new Date(d.receivedAt).toISOString();
      const line = JSON.stringify({
        id: d.id.toString(),
        received_at: receivedAt,
        source: d.source,
        origin: d.origin,
        reason: d.reason,
        message: d.message,
        raw: d.raw,
      });
      const date = receivedAt.slice(0, 10);
      byDate.set(date, [...(byDate.get(date) ?? []), line]);
    }
    const tag = (after + 1n).toString().padStart(20, '0');
    for (const [date, lines] of byDate) {
      const key = `${DEAD_LETTER_PREFIX}date=${date}/part-${tag}.jsonl`;
      await lake.put(key, lines.join('\n') + '\n');
      report.files.push(key);
    }
    const last = letters[letters.length - 1]!.id;
    await store.setDeadLetterWatermark(last);
    report.rows += letters.length;
    report.watermark = last;
    options.logger.debug(
      { rows: letters.length, lastId: last.toString() },
      'dead letters exported',
    );
  }
  return report;
}
