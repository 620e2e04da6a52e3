/**
 * `npm run fuzz`: the ingest and SQL-sandbox properties of the test suite,
 * run for a time budget instead of a few hundred inputs.
 *
 *   CANOPY_FUZZ_MS   total budget in ms, shared evenly by the properties (default 600 000)
 *   CANOPY_FUZZ_SEED seed, to replay a run (default: random, printed)
 *
 * Prints, per property, how many inputs ran and any counterexample (with
 * the seed and path that replay it); exits 1 when a property failed.
 */
import { ingestProperties } from './ingest-properties.js';
import { runProperty, type FuzzOutcome } from './runner.js';
import { openSandboxFixture, sandboxProperties } from './sandbox-properties.js';

const totalMs = Number(process.env.CANOPY_FUZZ_MS ?? 600_000);
const seedText = process.env.CANOPY_FUZZ_SEED;
if (!Number.isFinite(totalMs) || totalMs <= 0) {
  throw new Error(`CANOPY_FUZZ_MS must be a positive number of milliseconds, got ${totalMs}`);
}
const seed = seedText === undefined ? undefined : Number(seedText);

const fixture = await openSandboxFixture();
const outcomes: FuzzOutcome[] = [];
try {
  const properties = [...ingestProperties(), ...(await sandboxProperties(fixture))];
  const perProperty = Math.max(1, Math.floor(totalMs / properties.length));
  for (const p of properties) {
    const outcome = await runProperty(p, { timeLimitMs: perProperty }, seed);
    outcomes.push(outcome);
    const status = outcome.failure === undefined ? 'ok' : 'FAILED';
    console.log(`${status.padEnd(6)} ${String(outcome.runs).padStart(10)} inputs  ${p.name}`);
    if (outcome.failure !== undefined) console.log(outcome.failure);
  }
} finally {
  await fixture.close();
}
const inputs = outcomes.reduce((sum, o) => sum + o.runs, 0);
const failed = outcomes.filter((o) => o.failure !== undefined).length;
console.log(
  `${outcomes.length} properties, ${inputs} inputs in ${Math.round(totalMs / 1000)} s, ${failed} failed`,
);
process.exitCode = failed > 0 ? 1 : 0;
