import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../observability/logger.js';
import { LocalObjectStore } from '../storage/index.js';
import { runRetention } from './retention.js';

const dir = mkdtempSync(path.join(tmpdir(), 'canopy-retention-'));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('retention', () => {
  it('deletes whole partitions past each layer’s limit by event date, after a dry run that deletes nothing', async () => {
    const lake = new LocalObjectStore({ root: path.join(dir, 'lake') });
    const keys = [
      'bronze/readings/date=2026-10-22/hour=00/part-1-0.parquet', // 31 days: past bronze's 30
      'bronze/readings/date=2026-10-23/hour=23/part-2-0.parquet', // 30 days: kept
      'silver/readings/date=2026-10-22/part-0.parquet', // kept (60 days)
      'silver/readings/date=2026-09-22/part-0.parquet', // 61 days: gone
      'silver/readings/date=2026-09-22/_manifest.json', // goes with its partition
      'anomalies/readings/date=2026-11-14/part-0.parquet', // 8 days: gone (7)
      'anomalies/readings/date=2026-11-15/part-0.parquet', // kept
      'gold/sensor_5min/date=2026-08-23/part-0.parquet', // 91 days: gone
      'gold/_manifests/date=2026-08-23.json', // goes with it
      'gold/device_summary/part-0.parquet', // no date: never aged
      'deadletter/date=2026-11-01/part-1.jsonl', // gone (7)
      'quality/runs/date=2026-08-23/20260823T000000000Z-000000.json', // 91 days: gone
      'quality/runs/date=2026-08-24/20260824T000000000Z-000000.json', // kept (90)
    ];
    for (const key of keys) await lake.put(key, 'x');
    const options = {
      lake,
      days: { bronze: 30, silver: 60, anomalies: 7, gold: 90, deadletter: 7, quality: 90 },
      clock: new ManualClock(Date.UTC(2026, 10, 22, 12)),
      logger: silentLogger(),
    };
    const gone = [keys[0], keys[3], keys[4], keys[5], keys[7], keys[8], keys[10], keys[11]].sort();

    const dry = await runRetention({ ...options, dryRun: true });
    expect(
      Object.values(dry.layers)
        .flatMap((l) => l.keys)
        .sort(),
    ).toEqual(gone);
    expect((await lake.list('')).map((o) => o.key).sort()).toEqual([...keys].sort());

    const real = await runRetention(options);
    expect(real.layers.bronze?.before).toBe('2026-10-23');
    expect((await lake.list('')).map((o) => o.key).sort()).toEqual(
      keys.filter((k) => !gone.includes(k)).sort(),
    );
  });
});
