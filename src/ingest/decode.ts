/**
 * Decoding: payload → candidate records, without judging the records.
 * Payload-level problems (size, emptiness, format, syntax) are rejections of
 * the whole payload; record-level problems are left to validation.
 */
import type { IngestMessage } from '../core/ingest.js';
import { decodeLongCsv } from './decode-csv.js';
import { decodeJson, decodeNdjson } from './decode-json.js';
import { DEFAULT_PLANTS_LOCATION, decodePlants } from './decode-plants.js';
import { decodeWideCsv } from './decode-wide-csv.js';
import { detectFromText, skipSpace } from './detect.js';
import { oversizeBytes, payloadPrefix, payloadText } from './payload.js';
import { rejection } from './rejection.js';
import type { DecodeOptions, DecodeResult } from './types.js';

/** How much of an oversized payload a PAYLOAD_TOO_LARGE rejection keeps as raw. */
export const OVERSIZE_RAW_CHARS = 4096;

/** A decode result with the payload text, which a later whole-payload rejection needs as raw. */
export interface DecodedPayload extends DecodeResult {
  text: string;
}

/**
 * Splits a message into candidate records. Never throws on bad input.
 * Candidates carry their index in the payload and their raw text (computed on
 * first access for JSON records).
 */
export function decode(message: IngestMessage, options: DecodeOptions): DecodeResult {
  const { candidates, rejections } = decodePayload(message, options);
  return { candidates, rejections };
}

export function decodePayload(message: IngestMessage, options: DecodeOptions): DecodedPayload {
  const limits = options.limits;
  const out: DecodedPayload = { candidates: [], rejections: [], text: '' };
  const payload = message.payload;

  const oversize = oversizeBytes(payload, limits.maxPayloadBytes);
  if (oversize !== undefined) {
    out.rejections.push(
      rejection(
        'PAYLOAD_TOO_LARGE',
        `payload is ${oversize} bytes, limit ${limits.maxPayloadBytes} (ingest.maxPayloadBytes); raw keeps its first ${OVERSIZE_RAW_CHARS} characters`,
        payloadPrefix(payload, OVERSIZE_RAW_CHARS),
      ),
    );
    return out;
  }

  const text = payloadText(payload);
  out.text = text;
  if (skipSpace(text, 0) === text.length) {
    out.rejections.push(rejection('EMPTY_PAYLOAD', 'payload is empty or only whitespace', text));
    return out;
  }

  const format = message.format ?? detectFromText(message.contentType, text);
  switch (format) {
    case 'json':
      decodeJson(text, limits, out);
      break;
    case 'ndjson':
      decodeNdjson(text, limits, out);
      break;
    case 'csv':
      decodeLongCsv(text, limits, out);
      break;
    case 'csv-wide':
      if (options.wideCsv === undefined) {
        out.rejections.push(
          rejection(
            'UNSUPPORTED_FORMAT',
            'format csv-wide needs a column mapping (wideCsv) and none was configured',
            text,
          ),
        );
      } else {
        decodeWideCsv(text, options.wideCsv, limits, out);
      }
      break;
    case 'plants':
      decodePlants(text, limits, options.plantsLocation ?? DEFAULT_PLANTS_LOCATION, out);
      break;
    case undefined: {
      const ct =
        message.contentType === undefined
          ? 'no content type'
          : `content type ${JSON.stringify(message.contentType)}`;
      out.rejections.push(
        rejection(
          'UNSUPPORTED_FORMAT',
          `payload (${ct}) is not JSON, NDJSON or CSV with a timestamp and device_id/sensor_id header`,
          text,
        ),
      );
      break;
    }
  }
  return out;
}
