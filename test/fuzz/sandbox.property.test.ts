import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCanopyError } from '../../src/core/errors.js';
import { runProperty } from './runner.js';
import {
  openSandboxFixture,
  sandboxProperties,
  type SandboxFixture,
} from './sandbox-properties.js';

/** Each query takes a few milliseconds; `npm run fuzz` runs the same properties for minutes. */
const NUM_RUNS = 200;
const SQL_CORPUS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'corpus', 'sql');

let fixture: SandboxFixture;

beforeAll(async () => {
  fixture = await openSandboxFixture();
});

afterAll(async () => {
  await fixture?.close();
});

describe('SQL sandbox under hostile SQL', () => {
  it('refuses every statement of the seed corpus with CANOPY_QUERY_REFUSED', async () => {
    const files = readdirSync(SQL_CORPUS).filter((f) => f.endsWith('.sql'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const sql = readFileSync(path.join(SQL_CORPUS, file), 'utf8')
        .replaceAll('{lake}', fixture.lake)
        .replaceAll('{outside}', fixture.outside);
      const err = await fixture.sandbox.run(sql).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect({ file, code: isCanopyError(err) ? err.code : String(err) }).toEqual({
        file,
        code: 'CANOPY_QUERY_REFUSED',
      });
    }
  });

  it('runs the properties', async () => {
    for (const p of await sandboxProperties(fixture)) {
      const outcome = await runProperty(p, { numRuns: NUM_RUNS });
      expect({ name: p.name, failure: outcome.failure }).toEqual({
        name: p.name,
        failure: undefined,
      });
      expect(outcome.runs).toBe(NUM_RUNS);
    }
  });
});
