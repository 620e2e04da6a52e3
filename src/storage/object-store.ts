/** Picks the lake's object store from the `lake` config section. */
import path from 'node:path';
import { CanopyError } from '../core/errors.js';
import type { ObjectStore } from '../core/object-store.js';
import type { LakeConfig } from '../config/schema.js';
import { LocalObjectStore } from './local-object-store.js';
import { S3ObjectStore } from './s3-object-store.js';

/**
 * Builds the configured store without touching the disk or the network: a
 * local folder (`lake.path`, default `<dataDir>/lake`, relative paths against
 * the working directory) or an S3 bucket. Throws CANOPY_CONFIG_INVALID for an
 * s3 lake without a bucket or with an invalid prefix (config validation
 * normally catches the first already).
 */
export function createObjectStore(lake: LakeConfig, dataDir: string): ObjectStore {
  if (lake.kind === 'local') {
    return new LocalObjectStore({
      root: path.resolve(lake.path ?? path.join(dataDir, 'lake')),
      ...(lake.maxBytes === undefined ? {} : { maxBytes: lake.maxBytes }),
    });
  }
  const { bucket, prefix, endpoint, region, forcePathStyle, accessKeyId, secretAccessKey } =
    lake.s3;
  if (bucket === undefined) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      'lake.s3.bucket is required when lake.kind is s3',
    );
  }
  return new S3ObjectStore({
    bucket,
    prefix,
    region,
    forcePathStyle,
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(accessKeyId === undefined ? {} : { accessKeyId }),
    ...(secretAccessKey === undefined ? {} : { secretAccessKey }),
  });
}
