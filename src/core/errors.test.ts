import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorDocs } from './error-docs.js';
import { CanopyError, ERROR_CODES, REJECT_REASONS } from './errors.js';

describe('errors', () => {
  it('every code follows CANOPY_<AREA>_<WHAT> and carries its HTTP status', () => {
    for (const code of Object.keys(ERROR_CODES) as (keyof typeof ERROR_CODES)[]) {
      expect(code).toMatch(/^CANOPY_[A-Z]+_[A-Z_]+$/);
      const err = new CanopyError(code, 'x', { cause: new Error('root') });
      expect(err.status).toBe(ERROR_CODES[code].status);
      expect((err.cause as Error).message).toBe('root');
    }
  });

  it('reject reasons are SCREAMING_SNAKE and documented', () => {
    for (const reason of Object.keys(REJECT_REASONS)) expect(reason).toMatch(/^[A-Z]+(_[A-Z]+)*$/);
  });

  it('docs/errors.md lists exactly the codes and reasons in the code (run `npm run docs`)', () => {
    const doc = readFileSync('docs/errors.md', 'utf8');
    expect(doc).toBe(renderErrorDocs());
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(
      [...Object.keys(ERROR_CODES), ...Object.keys(REJECT_REASONS)].sort(),
    );
  });
});
