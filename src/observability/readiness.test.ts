import { describe, expect, it } from 'vitest';
import { checkReadiness } from './readiness.js';

describe('checkReadiness', () => {
  it('is ready with no checks, and when every check resolves', async () => {
    expect(await checkReadiness([])).toEqual({ ready: true, checks: [] });
    expect(await checkReadiness([{ name: 'a', probe: () => Promise.resolve() }])).toEqual({
      ready: true,
      checks: [{ name: 'a', ok: true }],
    });
  });

  it('reports each failing check with its reason, a hung one as a timeout', async () => {
    const result = await checkReadiness(
      [
        { name: 'store', probe: () => Promise.resolve() },
        { name: 'lake', probe: () => Promise.reject(new Error('connect ECONNREFUSED')) },
        { name: 'broker', probe: () => new Promise<void>(() => undefined) },
      ],
      0,
    );
    expect(result).toEqual({
      ready: false,
      checks: [
        { name: 'store', ok: true },
        { name: 'lake', ok: false, reason: 'connect ECONNREFUSED' },
        { name: 'broker', ok: false, reason: 'no answer within 0 ms' },
      ],
    });
  });
});
