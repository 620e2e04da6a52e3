import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isCanopyError } from '../core/errors.js';
import { LocalObjectStore } from '../storage/local-object-store.js';
import { featureRow, gapAround } from './features.js';
import type { SeriesFrame } from './frame.js';
import { listModels, loadModel, modelKey, saveModel } from './model-store.js';
import { createModel, serializeModel } from './models.js';
import { trainingSet } from './training.js';

const root = mkdtempSync(path.join(tmpdir(), 'canopy-models-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const frame: SeriesFrame = {
  startMs: 0,
  stepMs: 3_600_000,
  measures: ['x', 'y'],
  values: [
    Float64Array.from({ length: 200 }, (_, t) => Math.sin(t / 4)),
    Float64Array.from({ length: 200 }, (_, t) => 2 * Math.sin(t / 4) + 1),
  ],
};

function trained(seed: number, trainedAt: number) {
  const train = trainingSet(frame, 0, { maxRows: 150, maxGapSteps: 12, seed });
  const model = createModel('forest', { maxGapSteps: 12, forest: { trees: 10, seed } });
  model.fit(train);
  return {
    model,
    json: serializeModel(model, {
      name: 'x-forest',
      measure: 'x',
      features: train.features,
      trainingRows: train.rows.length,
      seed,
      trainedAt: new Date(trainedAt),
    }),
  };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    return isCanopyError(err) ? err.code : String(err);
  }
  return undefined;
}

describe('models in the lake', () => {
  const store = new LocalObjectStore({ root, durable: false });

  it('saves under models/<name>/<version>.json and loads the same model back', async () => {
    const { model, json } = trained(1, 1_000);
    const key = await saveModel(store, json);
    expect(key).toBe(`models/x-forest/${json.version}.json`);
    const loaded = await loadModel(store, 'x-forest', json.version);
    expect(loaded.meta).toMatchObject({
      name: 'x-forest',
      version: json.version,
      kind: 'forest',
      measure: 'x',
      trainingRows: 150,
      seed: 1,
      trainedAt: '1970-01-01T00:00:01.000Z',
      library: { name: 'canopy-histogram-forest', version: '1' },
    });
    const rows = [100, 101].map((t) =>
      featureRow(frame, 0, gapAround(frame.values[0]!, t, 100, 101)),
    );
    expect(loaded.model.predict(rows)).toEqual(model.predict(rows));
  });

  it('lists every version and loads the one trained last when no version is given', async () => {
    const second = trained(2, 5_000).json;
    await saveModel(store, second);
    const listed = await listModels(store);
    expect(listed.map((m) => [m.name, m.seed])).toEqual([
      ['x-forest', 1],
      ['x-forest', 2],
    ]);
    expect(listed[1]!.key).toBe(modelKey('x-forest', second.version));
    expect(listed[1]!.size).toBeGreaterThan(0);
    expect((await loadModel(store, 'x-forest')).meta.version).toBe(second.version);
  });

  it('reports a missing model, a bad name and an unreadable object', async () => {
    expect(await codeOf(loadModel(store, 'nothing'))).toBe('CANOPY_LAKE_NOT_FOUND');
    expect(await codeOf(loadModel(store, 'x-forest', 'feedface'))).toBe('CANOPY_LAKE_NOT_FOUND');
    expect(await codeOf(loadModel(store, '../escape', 'v'))).toBe('CANOPY_IMPUTATION_BAD_INPUT');
    await store.put('models/broken/v1.json', '{not json');
    expect(await codeOf(loadModel(store, 'broken', 'v1'))).toBe('CANOPY_IMPUTATION_MODEL_INVALID');
    expect(await codeOf(listModels(store))).toBe('CANOPY_IMPUTATION_MODEL_INVALID');
  });
});
