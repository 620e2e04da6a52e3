/**
 * Correctness at volume: a large JSON array through the hot path. Timing is
 * left to the benchmarks; this checks that nothing is lost or misplaced.
 */
import { describe, expect, it } from 'vitest';
import { decodeAndValidate, DEFAULT_LIMITS } from './index.js';

describe('a JSON array of 100 000 readings', () => {
  const N = 100_000;
  const now = Date.UTC(2026, 10, 22, 12);
  const start = now - N * 1000;
  const records = Array.from({ length: N }, (_, i) =>
    // Every 1000th record is bad: its value is not a number.
    ({
      sensor_id: `sensor-${i % 50}`,
      timestamp: new Date(start + i * 1000).toISOString(),
      value: i % 1000 === 999 ? 'n/a' : i / 10,
    }),
  );
  const result = decodeAndValidate(
    { source: 'test', payload: JSON.stringify(records), contentType: 'application/json' },
    { limits: DEFAULT_LIMITS },
    now,
  );

  it('accepts every good reading, in order, with the right fields', () => {
    expect(result.readings).toHaveLength(N - N / 1000);
    let k = 0;
    for (let i = 0; i < N; i++) {
      if (i % 1000 === 999) continue;
      const r = result.readings[k++]!;
      if (
        r.sensorId !== `sensor-${i % 50}` ||
        r.eventTime !== start + i * 1000 ||
        r.value !== i / 10
      ) {
        expect({ i, r }).toBeNull();
      }
    }
  });

  it('rejects every bad one with its index', () => {
    expect(result.rejections.map((r) => r.index)).toEqual(
      Array.from({ length: N / 1000 }, (_, j) => j * 1000 + 999),
    );
    expect(new Set(result.rejections.map((r) => r.reason))).toEqual(new Set(['INVALID_VALUE']));
  });
});
