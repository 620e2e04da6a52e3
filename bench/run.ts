/**
 * `npm run bench [-- <scenario> ...]`: runs the throughput and latency scenarios of
 * DESIGN §7 (all of them, or those named), writes one JSON file per scenario
 * to bench/results/<scenario>.json and prints a summary table.
 *
 * The systems under test run in this process; every load generator runs in
 * a child process, so each side has a core of its own on a 2-core machine.
 * Exit code: 0 when every target is met, 1 when one is missed or a scenario
 * failed to run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './lib/load-process.js';
import { benchOptions } from './lib/probe.js';
import { DISTURBED_CPU } from './lib/flows.js';
import type { Figure, Scenario, ScenarioOutcome } from './lib/types.js';
import { httpBatch } from './scenarios/http-batch.js';
import { lake } from './scenarios/lake.js';
import { metricsCost } from './scenarios/metrics-cost.js';
import { mqttBatch } from './scenarios/mqtt-batch.js';
import { mqttSingle } from './scenarios/mqtt-single.js';
import { alertLatency } from './scenarios/alert-latency.js';
import { busThroughput } from './scenarios/bus-throughput.js';
import { imputation } from './scenarios/imputation.js';
import { firstContact } from './scenarios/first-contact.js';
import { soak } from './scenarios/soak.js';
import { scaleOut } from './scenarios/scale-out.js';

const SCENARIOS: Scenario[] = [
  mqttSingle,
  mqttBatch,
  httpBatch,
  lake,
  metricsCost,
  alertLatency,
  busThroughput,
  imputation,
  firstContact,
  soak,
  scaleOut,
];
const RESULTS_DIR = path.join(repoRoot, 'bench', 'results');

interface ScenarioReport extends Partial<ScenarioOutcome> {
  scenario: string;
  title: string;
  /** The commit measured, and whether src/ had uncommitted changes. */
  revision: { commit: string | null; srcDirty: boolean | null };
  pass: boolean;
  error?: string;
  date: string;
  durationMs: number;
  machine: {
    node: string;
    platform: string;
    arch: string;
    cores: number;
    cpuModel: string;
    memoryMB: number;
    loadAverage1m: number;
  };
}

function machine(): ScenarioReport['machine'] {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: os.platform(),
    arch: os.arch(),
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryMB: Math.round(os.totalmem() / 1024 / 1024),
    // Other work on the machine skews every figure: this is the 1-minute load average when the scenario started.
    loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

function revision(): ScenarioReport['revision'] {
  const git = (...args: string[]): string | null => {
    try {
      return execFileSync('git', args, {
        cwd: repoRoot,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim();
    } catch {
      return null;
    }
  };
  const status = git('status', '--porcelain', '--', 'src');
  return { commit: git('rev-parse', 'HEAD'), srcDirty: status === null ? null : status !== '' };
}

function pickScenarios(args: string[]): Scenario[] {
  const names = args.filter((a) => !a.startsWith('-'));
  if (names.length === 0) return SCENARIOS.filter((s) => s.onlyWhenNamed !== true);
  const unknown = names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length > 0) {
    console.error(
      `unknown scenario(s): ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}`,
    );
    process.exit(2);
  }
  return SCENARIOS.filter((s) => names.includes(s.name));
}

const fmt = new Intl.NumberFormat('en-US');

function table(reports: ScenarioReport[]): string {
  const header = ['figure', 'Canopy', 'peer / limit', 'peer', 'ratio', 'target', 'result'];
  const rows: string[][] = [];
  for (const r of reports) {
    if (r.error !== undefined) {
      rows.push([
        r.scenario,
        '-',
        '-',
        '-',
        '-',
        '-',
        `ERROR: ${r.error.split('\n')[0]!.slice(0, 60)}`,
      ]);
      continue;
    }
    for (const f of r.figures ?? []) {
      const verified = r.verification?.ok ?? false;
      rows.push([
        f.name,
        `${fmt.format(f.value)} ${f.unit}`,
        f.peer.name,
        `${fmt.format(f.peer.value)} ${f.unit}`,
        f.ratio.toFixed(2),
        f.target.text,
        f.pass ? 'PASS' : verified ? 'FAIL' : 'FAIL (not verified)',
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string =>
    '| ' +
    cells
      .map((c, i) =>
        i === 1 || i === 3 || i === 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!),
      )
      .join(' | ') +
    ' |';
  return [
    line(header),
    '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|',
    ...rows.map(line),
  ].join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  // `--readings N` (the lake scenario's size) takes a value; take both out before naming scenarios.
  const readingsAt = args.indexOf('--readings');
  if (readingsAt >= 0) {
    benchOptions.lakeReadings = args[readingsAt + 1];
    if (benchOptions.lakeReadings === undefined) {
      console.error('--readings needs a number');
      process.exit(2);
    }
    args.splice(readingsAt, 2);
  }
  const unknownFlags = args.filter((a) => a.startsWith('-') && a !== '--profile');
  if (unknownFlags.length > 0) {
    console.error(
      `unknown option(s): ${unknownFlags.join(', ')}; the options are --profile and --readings N`,
    );
    process.exit(2);
  }
  benchOptions.profile = args.includes('--profile');
  const scenarios = pickScenarios(args);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const env = machine();
  console.log(
    `Canopy bench: ${scenarios.map((s) => s.name).join(', ')} — Node ${env.node}, ${env.cores} cores (${env.cpuModel}), load average ${env.loadAverage1m}`,
  );
  const reports: ScenarioReport[] = [];
  const benchStart = performance.now();
  for (const scenario of scenarios) {
    console.log(`\n▶ ${scenario.name}: ${scenario.title}`);
    const date = new Date().toISOString();
    const atStart = machine();
    const rev = revision();
    const t0 = performance.now();
    let report: ScenarioReport;
    try {
      const outcome = await scenario.run();
      report = {
        scenario: scenario.name,
        title: scenario.title,
        revision: rev,
        pass: outcome.figures.length > 0 && outcome.figures.every((f: Figure) => f.pass),
        date,
        durationMs: Math.round(performance.now() - t0),
        machine: atStart,
        ...outcome,
      };
      const v = outcome.verification;
      console.log(
        v.summary !== undefined
          ? `    verified: ${v.summary} → ${v.ok ? 'ok' : 'MISMATCH'}`
          : `    verified: ${fmt.format(v.storedReadings)} stored / ${fmt.format(v.ackedReadings)} acknowledged, ${v.deadLetters} dead letters, ${v.errors} errors → ${v.ok ? 'ok' : 'MISMATCH'}`,
      );
    } catch (err) {
      console.error(`    ${scenario.name} failed:`, err);
      report = {
        scenario: scenario.name,
        title: scenario.title,
        revision: rev,
        pass: false,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
        date,
        durationMs: Math.round(performance.now() - t0),
        machine: atStart,
      };
    }
    writeFileSync(
      path.join(RESULTS_DIR, `${scenario.name}.json`),
      JSON.stringify(report, null, 2) + '\n',
    );
    reports.push(report);
  }
  console.log(
    `\nSummary (${((performance.now() - benchStart) / 1000).toFixed(0)} s; results in bench/results/):\n`,
  );
  console.log(table(reports));
  const disturbed = reports.flatMap((r) =>
    (r.runs ?? [])
      .filter((run) => run.used && (run.otherCpu ?? 0) > DISTURBED_CPU)
      .map((run) => `${r.scenario}/${run.label} (${Math.round(run.otherCpu! * 100)}%)`),
  );
  if (disturbed.length > 0) {
    console.log(
      `\nWarning: even the least disturbed attempt had other processes using more than a quarter of a core: ${disturbed.join(', ')}; those figures are disturbed.`,
    );
  }
  if (!reports.every((r) => r.pass)) process.exitCode = 1;
}

await main();
