import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCanopy, type CliResult } from '../../test/helpers/cli.js';
import { loadConfig } from '../config/index.js';
import { evaluate, type EvaluationReport, type StoredModelInfo } from '../ml/index.js';
import { readFrame } from './impute.js';

const FILE = '../shared/datasets/air-quality-uci.csv';
const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-impute-cli-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function canopy(args: string[]): Promise<CliResult> {
  return runCanopy(args, { CANOPY_DATA_DIR: dataDir });
}

describe('canopy impute evaluate', () => {
  it('prints the JSON report the library computes for the same steps and seed', async () => {
    const result = await canopy([
      'impute',
      'evaluate',
      '--file',
      FILE,
      '--steps',
      '400',
      '--scenario',
      'random',
      'gap-6h',
      '--seed',
      '7',
      '--json',
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as EvaluationReport;
    expect(report).toMatchObject({ seed: 7, steps: 400, stepMs: 3_600_000, maxGapSteps: 12 });
    expect(report.scenarios.map((s) => s.scenario)).toEqual(['random', 'gap-6h']);
    expect(report.scenarios[0]!.measures.map((m) => m.measure)).toContain('co_gt');
    // second route: the same evaluation in this process
    const frame = readFrame(
      loadConfig({}).config,
      path.resolve(import.meta.dirname, '../..', FILE),
      'air-quality-uci',
      400,
    );
    const expected = evaluate(frame, { seed: 7, scenarios: ['random', 'gap-6h'] });
    expect(report).toEqual(JSON.parse(JSON.stringify(expected)));
  });

  it('prints a table, measure × method', async () => {
    const result = await canopy([
      'impute',
      'evaluate',
      '--file',
      FILE,
      '--steps',
      '300',
      '--scenario',
      'gap-24h',
    ]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).toMatch(
      /^SCENARIO\s+MEASURE\s+HIDDEN\s+FILLED\s+MEAN MAE\s+RMSE\s+LOCF MAE\s+RMSE\s+LINEAR MAE\s+RMSE\s+FOREST MAE\s+RMSE\s+BEST$/,
    );
    expect(lines.filter((l) => l.startsWith('gap-24h'))).toHaveLength(13);
    expect(lines[lines.length - 1]).toMatch(
      /^seed 1, 300 steps of 60 min, gaps longer than 48 steps left missing$/,
    );
  });

  it('refuses bad options with the error code', async () => {
    const bad = await canopy(['impute', 'evaluate', '--file', FILE, '--seed', 'x']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('CANOPY_IMPUTATION_BAD_INPUT: --seed must be an integer');
    const missing = await canopy(['impute', 'evaluate', '--file', 'no-such.csv']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('CANOPY_IMPUTATION_BAD_INPUT: cannot read no-such.csv');
  });
});

describe('canopy impute train and models', () => {
  it('lists nothing in an empty lake, then the forests train stored', async () => {
    const empty = await canopy(['impute', 'models']);
    expect(empty.code).toBe(0);
    expect(empty.stdout.trim()).toBe('no models');

    const train = await canopy([
      'impute',
      'train',
      '--file',
      FILE,
      '--steps',
      '300',
      '--seed',
      '2',
    ]);
    expect(train.code).toBe(0);
    expect(train.stdout).toMatch(/^co_gt: models\/co_gt-forest\/[0-9a-f]{16}\.json$/m);

    const listed = await canopy(['impute', 'models', '--json']);
    expect(listed.code).toBe(0);
    const models = JSON.parse(listed.stdout) as StoredModelInfo[];
    expect(models).toHaveLength(13);
    expect(models.every((m) => m.kind === 'forest' && m.seed === 2 && m.maxGapSteps === 48)).toBe(
      true,
    );
    const co = models.find((m) => m.name === 'co_gt-forest')!;
    expect(co.key).toBe(`models/co_gt-forest/${co.version}.json`);
    expect(co.features).toContain('pt08_s1_co');

    const table = await canopy(['impute', 'models']);
    expect(table.stdout.split('\n')[0]).toMatch(
      /^NAME\s+VERSION\s+KIND\s+MEASURE\s+ROWS\s+TRAINED\s+MAX GAP$/,
    );
    expect(table.stdout).toContain(`co_gt-forest`);
  });
});
