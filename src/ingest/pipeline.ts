/**
 * Decoding and validation in one call: the entry point of every ingest path.
 */
import type { IngestMessage } from '../core/ingest.js';
import { decodePayload } from './decode.js';
import { tooManyReadings } from './rejection.js';
import type { DecodeOptions, ValidationResult } from './types.js';
import { validateInto } from './validate.js';

/**
 * Decodes and validates one message. Never throws on bad input: every
 * problem is a rejection with a reason code, and the good readings of a
 * payload are returned beside the rejections of its bad records. When the
 * expanded readings exceed `limits.maxReadingsPerPayload`, the result is a
 * single TOO_MANY_READINGS rejection and no readings. `now` is epoch ms.
 */
export function decodeAndValidate(
  message: IngestMessage,
  options: DecodeOptions,
  now: number,
): ValidationResult {
  const decoded = decodePayload(message, options);
  const decodeRejections = decoded.rejections.length;
  const out: ValidationResult = { readings: [], rejections: decoded.rejections };
  const candidates = decoded.candidates;
  const limits = options.limits;
  for (let i = 0; i < candidates.length; i++) validateInto(candidates[i]!, limits, now, out);
  if (decodeRejections > 0 && out.rejections.length > decodeRejections) {
    // Decoders and validation each reject in payload order; merge so callers see one order.
    out.rejections.sort((a, b) => (a.index ?? -1) - (b.index ?? -1));
  }
  // Decoders bound the record count; multi-measure records can still expand past the limit.
  if (out.readings.length > limits.maxReadingsPerPayload) {
    return {
      readings: [],
      rejections: [
        tooManyReadings(decoded.text, out.readings.length, limits.maxReadingsPerPayload),
      ],
    };
  }
  return out;
}
