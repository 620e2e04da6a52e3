/**
 * Models in the lake: `models/<name>/<version>.json`, one object per trained
 * version, written whole through the ObjectStore contract (so a reader never
 * sees half a model). Versions are content hashes (models.ts), so saving
 * the same model twice writes the same key.
 */
import { CanopyError, isCanopyError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import {
  deserializeModel,
  type ImputationModel,
  type ModelMetadata,
  type SerializedModel,
} from './models.js';

export const MODELS_PREFIX = 'models/';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function modelKey(name: string, version: string): string {
  if (!NAME.test(name) || !NAME.test(version)) {
    throw new CanopyError(
      'CANOPY_IMPUTATION_BAD_INPUT',
      `model name and version must be 1-128 of letters, digits, ".", "_", "-" (got "${name}", "${version}")`,
    );
  }
  return `${MODELS_PREFIX}${name}/${version}.json`;
}

/** Writes the model; returns its key. */
export async function saveModel(store: ObjectStore, model: SerializedModel): Promise<string> {
  const key = modelKey(model.name, model.version);
  await store.put(key, JSON.stringify(model));
  return key;
}

function parse(key: string, body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new CanopyError('CANOPY_IMPUTATION_MODEL_INVALID', `${key} is not valid JSON`, {
      cause: err,
    });
  }
}

/**
 * One version of a model, or without `version` the one trained last (by
 * `trainedAt`). Throws CANOPY_LAKE_NOT_FOUND when there is none,
 * CANOPY_IMPUTATION_MODEL_INVALID when it cannot be read.
 */
export async function loadModel(
  store: ObjectStore,
  name: string,
  version?: string,
): Promise<{ model: ImputationModel; meta: ModelMetadata }> {
  let chosen = version;
  if (chosen === undefined) {
    const versions = await listModels(store, name);
    if (versions.length === 0) {
      throw new CanopyError('CANOPY_LAKE_NOT_FOUND', `no model named "${name}" in the lake`);
    }
    chosen = versions.reduce((a, b) => (b.trainedAt > a.trainedAt ? b : a)).version;
  }
  const key = modelKey(name, chosen);
  return deserializeModel(parse(key, await store.get(key)));
}

export interface StoredModelInfo extends ModelMetadata {
  key: string;
  /** Bytes. */
  size: number;
}

/**
 * Every model version in the lake (or, with `name`, of that model) with its
 * metadata, sorted by name then trainedAt. An object under models/ that is not a readable model is
 * reported as CANOPY_IMPUTATION_MODEL_INVALID (a model the caller cannot
 * trust should not be skipped silently); one deleted meanwhile is skipped.
 */
export async function listModels(store: ObjectStore, name?: string): Promise<StoredModelInfo[]> {
  const infos: StoredModelInfo[] = [];
  const prefix = name === undefined ? MODELS_PREFIX : `${MODELS_PREFIX}${name}/`;
  for (const object of await store.list(prefix)) {
    if (!object.key.endsWith('.json')) continue;
    let body: Buffer;
    try {
      body = await store.get(object.key);
    } catch (err) {
      if (isCanopyError(err, 'CANOPY_LAKE_NOT_FOUND')) continue;
      throw err;
    }
    const { meta } = deserializeModel(parse(object.key, body));
    infos.push({ ...meta, key: object.key, size: object.size });
  }
  return infos.sort((a, b) =>
    a.name === b.name ? a.trainedAt.localeCompare(b.trainedAt) : a.name.localeCompare(b.name),
  );
}
