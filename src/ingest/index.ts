/**
 * Ingest: decoding and validation of sensor payloads (JSON, NDJSON, long and
 * wide CSV, plants-API records) into readings and rejections.
 *
 * Pure: no I/O, no clock (the time is passed in), no logging. Storing the
 * rejections as dead letters is the caller's (the pipeline's) job.
 */
export { AIR_QUALITY_UCI_MAPPING } from './air-quality.js';
export { decode } from './decode.js';
export { DEFAULT_PLANTS_LOCATION, plantIdOf } from './decode-plants.js';
export { detectFormat } from './detect.js';
export {
  BUILT_IN_WIDE_CSV_MAPPINGS,
  chunkFile,
  FILE_CHUNK_RECORDS,
  formatFromFileName,
} from './file.js';
export { decodeAndValidate } from './pipeline.js';
export { isValidSensorId } from './sensor-id.js';
export { parseTimestamp } from './timestamp.js';
export {
  DEFAULT_LIMITS,
  type DecodeOptions,
  type DecodeResult,
  type IngestLimits,
  type ValidationResult,
  type WideCsvMapping,
  type WideTimestampFormat,
} from './types.js';
export { validateRecord } from './validate.js';
