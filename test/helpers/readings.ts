/** A reading ready for `HotStore.append`, with plain defaults; tests override what they look at. */
import type { NewReading } from '../../src/core/store.js';

export function newReading(
  overrides: Partial<NewReading> & Pick<NewReading, 'eventTime'>,
): NewReading {
  return {
    sensorId: 's',
    sensorType: 'temperature',
    location: 'kew',
    value: 20,
    unit: 'C',
    anomalyScore: null,
    isAnomaly: false,
    anomalyReasons: [],
    ingestTime: overrides.eventTime,
    source: 'test',
    batchId: 'b',
    imputed: false,
    ...overrides,
  };
}
