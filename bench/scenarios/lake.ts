/**
 * The lake: bronze → silver → gold over 10 M readings (DESIGN §7: ≥ 2 M
 * readings/s, and ≥ 0.5 × plain DuckDB SQL doing the same work).
 *
 * Setup (untimed) writes a bronze lake with DuckDB SQL (bench/lake/generate.ts).
 * Then, alternately and twice each, two sides run in a fresh child process
 * (bench/lake/worker.ts), so each has both cores and its own peak RSS:
 *  - Canopy: `runSilverJob` then `runGoldJob` on a LocalObjectStore over the
 *    lake, as `canopy jobs run silver` / `gold` do, from an empty silver/gold;
 *  - the peer: the same work as one straightforward DuckDB script
 *    (bench/lake/peer.ts).
 * A side's figure is input readings ÷ wall time of its fastest run. Finally
 * (untimed) every silver and gold table of Canopy's last run is compared
 * with the peer's last output (bench/lake/verify.ts); a mismatch fails the
 * run.
 *
 * Size: `--readings N` or `BENCH_LAKE_READINGS` (default 10 M).
 */
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clearDerived, generateBronze, INTERVAL_MS, SENSORS } from '../lake/generate.js';
import { verifyAgainstPeer } from '../lake/verify.js';
import type { LakeWorkerParams, LakeWorkerResult } from '../lake/worker.js';
import { repoRoot } from '../lib/load-process.js';
import { benchOptions } from '../lib/probe.js';
import { figure, type BatchRunRecord, type Scenario } from '../lib/types.js';

export const DEFAULT_LAKE_READINGS = 10_000_000;
const ROUNDS = 2;
/** Fixed, so both sides write the same lineage and reruns give the same bytes. */
const PROCESSING_TIME = Date.parse('2026-11-10T00:00:00Z');
const fmt = new Intl.NumberFormat('en-US');

function runWorker(params: LakeWorkerParams): Promise<LakeWorkerResult> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(repoRoot, 'bench', 'lake', 'worker.ts'), [], {
      cwd: repoRoot,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_LAKE_PARAMS: JSON.stringify(params) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: LakeWorkerResult | undefined;
    child.on('message', (m: LakeWorkerResult) => (result = m));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (result) resolve(result);
      else reject(new Error(`lake worker (${params.side}) exited with ${signal ?? code}`));
    });
  });
}

function lakeReadings(): number {
  const raw = benchOptions.lakeReadings ?? process.env.BENCH_LAKE_READINGS;
  if (raw === undefined) return DEFAULT_LAKE_READINGS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 100_000) {
    throw new Error(`lake readings must be an integer >= 100000, got ${String(raw)}`);
  }
  return n;
}

export const lake: Scenario = {
  name: 'lake',
  title: 'bronze → silver → gold (silver and gold jobs) vs plain DuckDB SQL',
  async run() {
    const readings = lakeReadings();
    const tmp = mkdtempSync(path.join(process.env.BENCH_TMPDIR ?? os.tmpdir(), 'canopy-lake-'));
    try {
      const lakeRoot = path.join(tmp, 'lake');
      const generated = await generateBronze(lakeRoot, readings);
      console.log(
        `    bronze: ${fmt.format(generated.readings)} readings (${fmt.format(generated.duplicates)} re-deliveries), ${generated.dates.length} dates, ${generated.files} files, ${(generated.bytes / 1e6).toFixed(0)} MB, generated in ${(generated.ms / 1000).toFixed(1)} s`,
      );
      const sensorIntervals = Object.fromEntries(
        Array.from({ length: SENSORS }, (_, s) => [
          `sensor-${String(s).padStart(3, '0')}`,
          INTERVAL_MS,
        ]),
      );
      const runs: BatchRunRecord[] = [];
      const peerDir = path.join(tmp, 'peer');
      for (let round = 1; round <= ROUNDS; round++) {
        // Alternate who goes first, so neither side always gets the warmer page cache.
        const order: ('canopy' | 'peer')[] =
          round % 2 === 1 ? ['peer', 'canopy'] : ['canopy', 'peer'];
        for (const side of order) {
          const workDir = side === 'canopy' ? path.join(tmp, 'work') : peerDir;
          if (side === 'canopy') clearDerived(lakeRoot);
          rmSync(workDir, { recursive: true, force: true });
          mkdirSync(workDir, { recursive: true });
          const r = await runWorker({
            side,
            lakeRoot,
            workDir,
            sensorIntervals,
            processingTime: PROCESSING_TIME,
          });
          const record: BatchRunRecord = {
            system: side,
            label: side === 'canopy' ? 'silver + gold jobs' : 'plain DuckDB SQL',
            attempt: round,
            used: false,
            readings,
            ms: Math.round(r.ms),
            readingsPerSecond: Math.round(readings / (r.ms / 1000)),
            peakRssMB: r.peakRssMB,
            cpu: r.cpu,
            otherCpu: r.otherCpu,
            ...(r.silverMs !== undefined && r.goldMs !== undefined
              ? { phases: { silverMs: Math.round(r.silverMs), goldMs: Math.round(r.goldMs) } }
              : {}),
          };
          runs.push(record);
          const phases = record.phases
            ? ` (silver ${(record.phases.silverMs! / 1000).toFixed(1)} s over ${r.silverDates} dates, gold ${(record.phases.goldMs! / 1000).toFixed(1)} s)`
            : '';
          console.log(
            `    ${side.padEnd(6)} ${fmt.format(record.readingsPerSecond).padStart(11)} readings/s  (${(record.ms / 1000).toFixed(1)} s${phases}; peak RSS ${record.peakRssMB} MB; cpu ${Math.round(record.cpu * 100)}%, others ${record.otherCpu === null ? '?' : Math.round(record.otherCpu * 100)}%)`,
          );
        }
      }
      const best = (system: 'canopy' | 'peer'): BatchRunRecord => {
        const mine = runs.filter((r) => r.system === system);
        const fastest = mine.reduce((a, b) => (b.ms < a.ms ? b : a));
        fastest.used = true;
        return fastest;
      };
      const canopy = best('canopy');
      const peer = best('peer');

      // Canopy's lake holds the output of its last run; the peer folder, the peer's last.
      const checks = await verifyAgainstPeer(lakeRoot, peerDir);
      for (const c of checks) {
        console.log(
          `    check ${c.table.padEnd(15)} canopy ${fmt.format(c.canopyRows)} rows, peer ${fmt.format(c.peerRows)}, mismatched ${c.mismatchedRows}${c.sumMismatches.length ? `, sums differ: ${c.sumMismatches.join(', ')}` : ''} → ${c.ok ? 'ok' : 'MISMATCH'}`,
        );
      }
      const verified = checks.every((c) => c.ok);
      const silver = checks.find((c) => c.table === 'silver')!;
      const peerName = 'plain DuckDB SQL, same work';
      return {
        figures: [
          figure(
            'lake',
            canopy.readingsPerSecond,
            { name: peerName, value: peer.readingsPerSecond },
            { kind: 'absolute', min: 2_000_000, text: '≥ 2,000,000 readings/s' },
            verified,
          ),
          figure(
            'lake/vs-sql',
            canopy.readingsPerSecond,
            { name: peerName, value: peer.readingsPerSecond },
            { kind: 'ratio', min: 0.5, text: '≥ 0.5 × plain DuckDB SQL' },
            verified,
          ),
        ],
        verification: {
          ackedReadings: readings,
          storedReadings: silver.canopyRows,
          deadLetters: 0,
          errors: checks.filter((c) => !c.ok).length,
          ok: verified,
          summary: `${checks.filter((c) => c.ok).length}/${checks.length} tables equal to the peer's (silver ${fmt.format(silver.canopyRows)} rows from ${fmt.format(readings)} bronze readings)`,
        },
        runs,
        parameters: {
          readings,
          duplicates: generated.duplicates,
          sensors: SENSORS,
          intervalMs: INTERVAL_MS,
          dates: generated.dates,
          bronzeFiles: generated.files,
          bronzeBytes: generated.bytes,
          generateMs: generated.ms,
          rounds: ROUNDS,
          checks,
        },
      };
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
};
