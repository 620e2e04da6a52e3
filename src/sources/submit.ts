/**
 * Submitting with patience, for sources whose peer waits for an
 * acknowledgement (MQTT): while the pipeline is overloaded, the store is
 * failing or the bus does not acknowledge, keep the message and retry with
 * capped exponential backoff instead of dropping it. Withholding the PUBACK is the back-pressure: the
 * client's in-flight window fills and it stops sending.
 *
 * Rejections other than overload and commit failure (bugs) are not retried.
 */
import { isCanopyError } from '../core/errors.js';
import type { IngestMessage, IngestResult, IngestSink } from '../core/ingest.js';

export interface PatientSubmitOptions {
  /** Stop retrying when this returns true (source closing). */
  isClosed: () => boolean;
  initialDelayMs?: number;
  maxDelayMs?: number;
}

export async function submitPatiently(
  sink: IngestSink,
  message: IngestMessage,
  options: PatientSubmitOptions,
): Promise<IngestResult> {
  let delay = options.initialDelayMs ?? 10;
  const maxDelay = options.maxDelayMs ?? 2_000;
  for (;;) {
    try {
      return await sink.submit(message);
    } catch (err) {
      const retryable =
        isCanopyError(err, 'CANOPY_INGEST_OVERLOADED') ||
        isCanopyError(err, 'CANOPY_STORE_COMMIT_FAILED') ||
        isCanopyError(err, 'CANOPY_BUS_UNAVAILABLE');
      if (!retryable || options.isClosed()) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, maxDelay);
    }
  }
}
