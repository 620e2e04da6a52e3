/**
 * Running fuzz properties: a fixed number of inputs in the test suite, or for
 * a time budget under `npm run fuzz`.
 */
import fc from 'fast-check';
import type { FuzzProperty } from './ingest-properties.js';

const MAX_REPORT_CHARS = 4_000;

export interface FuzzOutcome {
  name: string;
  /** Inputs tried. */
  runs: number;
  seed: number;
  /** The failure report (counterexample, seed and path to replay it), when one was found. */
  failure?: string;
}

/**
 * Runs one property for `numRuns` inputs, or until `timeLimitMs` passes when
 * that is given (then without a run cap). `seed` fixes the inputs.
 */
export async function runProperty(
  p: FuzzProperty,
  budget: { numRuns: number } | { timeLimitMs: number },
  seed?: number,
): Promise<FuzzOutcome> {
  const parameters: fc.Parameters<unknown> =
    'numRuns' in budget
      ? { numRuns: budget.numRuns }
      : {
          numRuns: Number.MAX_SAFE_INTEGER,
          interruptAfterTimeLimit: budget.timeLimitMs,
          markInterruptAsFailure: false,
        };
  if (seed !== undefined) parameters.seed = seed;
  const details = await fc.check(p.property, parameters);
  const outcome: FuzzOutcome = { name: p.name, runs: details.numRuns, seed: details.seed };
  if (details.failed) {
    const report = fc.defaultReportMessage(details) ?? 'failed without a report';
    // Counterexamples can be megabytes of brackets; the seed and path replay them exactly.
    outcome.failure =
      report.length <= MAX_REPORT_CHARS ? report : `${report.slice(0, MAX_REPORT_CHARS)}…`;
  }
  return outcome;
}
