/** Renders docs/errors.md from the error and reject-reason catalogues; a test keeps them in step. */
import { ERROR_CODES, REJECT_REASONS } from './errors.js';

export function renderErrorDocs(): string {
  const lines = [
    '# Errors and dead-letter reasons',
    '',
    '<!-- Generated from src/core/errors.ts by `npm run docs`. Do not edit by hand. -->',
    '',
    '## Error codes',
    '',
    'API errors have the body `{"error": {"code", "message", "details"?}}`. Codes are stable.',
    '',
    '| code | HTTP status | meaning |',
    '| --- | --- | --- |',
    ...Object.entries(ERROR_CODES).map(
      ([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.summary} |`,
    ),
    '',
    '## Dead-letter reasons',
    '',
    'Every payload or record that is turned away is stored in the dead-letter store',
    '(`GET /api/deadletters`) with the raw payload, source, receive time and one of these reasons.',
    '',
    '| reason | meaning |',
    '| --- | --- |',
    ...Object.entries(REJECT_REASONS).map(([reason, meaning]) => `| \`${reason}\` | ${meaning} |`),
    '',
  ];
  return lines.join('\n');
}
