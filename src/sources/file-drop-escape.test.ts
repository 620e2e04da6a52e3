/**
 * The landing area never reaches outside its folder: symlinks (to a file or a
 * folder outside), names with `..`, and keys that are absolute or climb out
 * are neither ingested nor moved, and the files outside stay as they were.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { isCanopyError } from '../core/errors.js';
import type { IngestMessage, IngestResult, IngestSink } from '../core/ingest.js';
import { DEFAULT_LIMITS } from '../ingest/index.js';
import { silentLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { LocalObjectStore } from '../storage/index.js';
import { FileDropSource } from './file-drop.js';

const T0 = Date.UTC(2026, 10, 22, 0, 0, 0);

/** Records what reaches it; every submit is accepted. */
class RecordingSink implements IngestSink {
  readonly messages: IngestMessage[] = [];
  submit(message: IngestMessage): Promise<IngestResult> {
    this.messages.push(message);
    return Promise.resolve({ batchId: 'b', accepted: 1, rejected: [] });
  }
  submitDeadLetter(): Promise<void> {
    return Promise.resolve();
  }
}

function reading(sensorId: string): string {
  return `${JSON.stringify({ sensor_id: sensorId, timestamp: T0, value: 1 })}\n`;
}

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function setup(): Promise<{
  root: string;
  outside: string;
  sink: RecordingSink;
  source: FileDropSource;
  store: LocalObjectStore;
}> {
  const base = await mkdtemp(path.join(tmpdir(), 'canopy-landing-escape-'));
  dirs.push(base);
  const root = path.join(base, 'landing');
  const outside = path.join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
  const store = new LocalObjectStore({ root });
  const sink = new RecordingSink();
  const source = new FileDropSource({
    store,
    prefix: '',
    sink,
    clock: new ManualClock(T0),
    metrics: new Metrics({ defaultMetrics: false }),
    logger: silentLogger(),
    scanIntervalMs: 60_000,
    settleMs: 0,
    maxFileBytes: 1024 * 1024,
    decode: { limits: DEFAULT_LIMITS },
    wideCsvMappings: {},
  });
  return { root, outside, sink, source, store };
}

describe('file drop: no way out of the landing folder', () => {
  it('ingests files inside, and ignores symlinks to a file or a folder outside', async () => {
    const { root, outside, sink, source } = await setup();
    await writeFile(path.join(outside, 'secret.ndjson'), reading('outside-file'));
    await mkdir(path.join(outside, 'dir'));
    await writeFile(path.join(outside, 'dir', 'inner.ndjson'), reading('outside-dir'));
    await symlink(path.join(outside, 'secret.ndjson'), path.join(root, 'link.ndjson'));
    await symlink(path.join(outside, 'dir'), path.join(root, 'linked-dir'));
    await writeFile(path.join(root, 'in..side..ndjson'), reading('inside'));

    const report = await source.scanOnce();
    expect(report.processed).toEqual(['in..side..ndjson']);
    const payloads = sink.messages.map((m) => m.payload.toString());
    expect(payloads.join('')).toContain('"inside"');
    expect(payloads.join('')).not.toContain('outside');
    // Outside, nothing was moved or changed.
    expect(await readFile(path.join(outside, 'secret.ndjson'), 'utf8')).toBe(
      reading('outside-file'),
    );
    expect(await readFile(path.join(outside, 'dir', 'inner.ndjson'), 'utf8')).toBe(
      reading('outside-dir'),
    );
  });

  it('refuses absolute and climbing keys at the store, whatever the call', async () => {
    const { store } = await setup();
    for (const key of [
      '/etc/passwd',
      '../outside/secret.ndjson',
      'a/../../b',
      'a/./b',
      'a\\..\\b',
      '',
    ]) {
      for (const call of [
        () => store.get(key),
        () => store.put(key, 'x'),
        () => store.delete([key]),
        () => store.move('a', key),
        () => store.putFile(key, '/etc/hostname'),
      ]) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect([key, isCanopyError(err, 'CANOPY_LAKE_INVALID_KEY')]).toEqual([key, true]);
      }
    }
  });
});
