/**
 * Opens the configured bus. With src/runtime this is the only place that
 * picks a bus adapter; see src/core/bus.ts for the contract.
 */
import { hostname } from 'node:os';
import type { Bus } from '../core/bus.js';
import type { BusConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { InProcessBus } from './in-process.js';
import { openKafkaBus } from './kafka.js';
import { openNatsBus } from './nats.js';

export { InProcessBus } from './in-process.js';
export { encodeBusMessage, decodeBusMessage, BUS_WIRE_VERSION } from './wire.js';

/** Back-off of a failed batch's retries: from 100 ms, doubling, at most 5 s. */
const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 5_000;

export async function openBus(
  config: BusConfig,
  deps: { metrics?: Metrics; logger: Logger },
): Promise<Bus> {
  const logger = deps.logger.child({ component: 'bus' });
  const common = {
    partitions: config.partitions,
    maxInFlight: config.maxInFlight,
    maxBatch: config.maxBatch,
    maxDeliver: config.maxDeliver,
    retryInitialMs: RETRY_INITIAL_MS,
    retryMaxMs: RETRY_MAX_MS,
    logger,
    ...(deps.metrics === undefined ? {} : { metrics: deps.metrics }),
  };
  switch (config.kind) {
    case 'in-process':
      return new InProcessBus({ ...common, capacity: config.capacity });
    case 'nats':
      return openNatsBus({
        ...common,
        ...config.nats,
        ackWaitMs: config.ackWaitMs,
        publishTimeoutMs: config.publishTimeoutMs,
        name: `canopy@${hostname()}:${process.pid}`,
      });
    case 'kafka':
      return openKafkaBus({
        ...common,
        ...config.kafka,
        ackWaitMs: config.ackWaitMs,
        publishTimeoutMs: config.publishTimeoutMs,
      });
  }
}
