import { describe, expect, it } from 'vitest';
import { ingestProperties } from './ingest-properties.js';
import { runProperty } from './runner.js';

/** Enough inputs to catch regressions quickly; `npm run fuzz` runs the same properties for minutes. */
const NUM_RUNS = 300;

describe('ingest under hostile input', () => {
  for (const p of ingestProperties()) {
    it(p.name, async () => {
      const outcome = await runProperty(p, { numRuns: NUM_RUNS });
      expect(outcome.failure).toBeUndefined();
      expect(outcome.runs).toBe(NUM_RUNS);
    });
  }
});
