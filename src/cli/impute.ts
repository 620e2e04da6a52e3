/**
 * `canopy impute evaluate|train|models`: the imputation models and their
 * evaluation, run in the CLI process. A file is read with a wide-CSV mapping
 * (default: the built-in `air-quality-uci`) through the ingest decoder and
 * validation, so the values the models see are those Canopy would store.
 */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import type { CanopyConfig } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import {
  BUILT_IN_WIDE_CSV_MAPPINGS,
  chunkFile,
  decodeAndValidate,
  DEFAULT_LIMITS,
} from '../ingest/index.js';
import {
  createModel,
  DEFAULT_MAX_GAP_STEPS,
  DEFAULT_MAX_TRAINING_ROWS,
  evaluate,
  formatReport,
  frameFromReadings,
  headOfFrame,
  listModels,
  MIN_KNOWN_VALUES,
  saveModel,
  SCENARIOS,
  serializeModel,
  trainingSet,
  type FrameReading,
  type Scenario,
  type SeriesFrame,
} from '../ml/index.js';
import { createObjectStore } from '../storage/index.js';
import type { imputationRunToWire } from '../api/imputation.js';
import { IMPUTATION_WORKFLOW } from '../imputation/workflow.js';
import { addApiOptions, apiUrlFrom, callApi, type ApiFlags } from './api-client.js';
import { runWorkflow, table } from './workflows.js';

type ImputationRun = ReturnType<typeof imputationRunToWire>;

async function imputationRuns(
  deps: ImputeCommandDeps,
  flags: ApiFlags,
  limit: number,
): Promise<ImputationRun[]> {
  const url = `${apiUrlFrom(flags, deps.load)}/api/imputation/runs?limit=${limit}`;
  return ((await callApi(url, {}, flags.apiKey)) as { data: ImputationRun[] }).data;
}

export interface ImputeCommandDeps {
  load: (configFile: string | undefined) => CanopyConfig;
  fail: (err: unknown) => never;
}

interface FileFlags {
  file: string;
  mapping: string;
  config?: string;
  seed: string;
  maxGap?: string;
  steps?: string;
}

function integer(flag: string, text: string, min: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) {
    throw new CanopyError('CANOPY_IMPUTATION_BAD_INPUT', `${flag} must be an integer ≥ ${min}`);
  }
  return n;
}

/**
 * The file as a frame: measures are sensor types (the sensor id without
 * one). Rejected rows are reported on stderr and left out (they become
 * missing steps). With `steps`, only the first that many steps.
 */
export function readFrame(
  config: CanopyConfig,
  file: string,
  mappingName: string,
  steps?: number,
): SeriesFrame {
  const mapping = config.ingest.wideCsv[mappingName] ?? BUILT_IN_WIDE_CSV_MAPPINGS[mappingName];
  if (!mapping) {
    throw new CanopyError('CANOPY_IMPUTATION_BAD_INPUT', `no wide-CSV mapping "${mappingName}"`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new CanopyError('CANOPY_IMPUTATION_BAD_INPUT', `cannot read ${file}`, { cause: err });
  }
  const readings: FrameReading[] = [];
  let rejected = 0;
  const now = systemClock.now();
  for (const chunk of chunkFile(text, 'csv-wide')) {
    const result = decodeAndValidate(
      { source: 'file', payload: chunk, format: 'csv-wide', origin: file },
      { limits: DEFAULT_LIMITS, wideCsv: mapping },
      now,
    );
    rejected += result.rejections.length;
    for (const r of result.readings) {
      readings.push({
        measure: r.sensorType ?? r.sensorId,
        eventTime: r.eventTime,
        value: r.value,
      });
    }
  }
  if (rejected > 0) console.error(`${rejected} rows or cells rejected by validation; left missing`);
  const frame = frameFromReadings(readings);
  return steps === undefined ? frame : headOfFrame(frame, steps);
}

/** The frame a command's `--file`, `--mapping` and `--steps` flags name. */
function frameOf(config: CanopyConfig, opts: FileFlags): SeriesFrame {
  const steps = opts.steps === undefined ? undefined : integer('--steps', opts.steps, 2);
  return readFrame(config, opts.file, opts.mapping, steps);
}

function fileOptions(command: Command): Command {
  return command
    .requiredOption('--file <csv>', 'wide CSV file')
    .option(
      '--mapping <name>',
      'wide-CSV mapping: a name under ingest.wideCsv, or built-in',
      'air-quality-uci',
    )
    .option('-c, --config <file>', 'YAML config file')
    .option('--seed <n>', 'seed for hiding, sampling and the forest', '1')
    .option('--max-gap <steps>', 'gaps longer than this many steps are not filled')
    .option('--steps <n>', 'use only the first N time steps of the file');
}

export function imputeCommand(deps: ImputeCommandDeps): Command {
  const impute = new Command('impute').description(
    'imputation: run the daily workflow, list its runs, evaluate models on a file, train and list models',
  );

  impute.addCommand(
    addApiOptions(
      new Command('run')
        .description(
          'run the daily-imputation workflow in the running Canopy for one date (default: yesterday) and wait for its result',
        )
        .option('--date <YYYY-MM-DD>', 'the event date whose missing values to fill')
        .option('--no-wait', 'return once the run is started'),
    ).action(async (flags: ApiFlags & { date?: string; wait: boolean }) => {
      try {
        const run = await runWorkflow(deps, IMPUTATION_WORKFLOW, {
          ...flags,
          pastCallbacks: true,
          quiet: flags.wait,
        });
        if (flags.wait) {
          const summary = (await imputationRuns(deps, flags, 100)).find((r) => r.id === run.id);
          console.log(JSON.stringify(summary ?? run, null, 2));
        }
      } catch (err) {
        deps.fail(err);
      }
    }),
  );

  impute.addCommand(
    addApiOptions(
      new Command('runs')
        .description('the daily-imputation runs of the running Canopy, newest first')
        .option('--limit <n>', '1 to 100', '20')
        .option('--json', 'print the API answer as JSON'),
    ).action(async (flags: ApiFlags & { limit: string; json?: boolean }) => {
      try {
        const runs = await imputationRuns(deps, flags, integer('--limit', flags.limit, 1));
        if (flags.json) {
          console.log(JSON.stringify(runs, null, 2));
          return;
        }
        const cell = (v: number | string | null) => (v === null ? '-' : String(v));
        console.log(
          table([
            [
              'RUN',
              'DATE',
              'STATE',
              'RESULT',
              'MISSING',
              'FILLED',
              'LEFT MISSING',
              'MODELS TRAINED',
            ],
            ...runs.map((r) => [
              r.id,
              cell(r.date),
              r.state,
              cell(r.result),
              cell(r.missing),
              cell(r.filled),
              cell(r.left_missing),
              cell(r.models_trained),
            ]),
          ]),
        );
      } catch (err) {
        deps.fail(err);
      }
    }),
  );

  fileOptions(
    impute
      .command('evaluate')
      .description(
        'hide known values (10 % at random, 6 h and 24 h gaps), impute them with the forest and each baseline, report MAE and RMSE per measure',
      ),
  )
    .addOption(new Option('--scenario <names...>', 'scenarios to run').choices([...SCENARIOS]))
    .option('--json', 'print the report as JSON')
    .action((opts: FileFlags & { json?: boolean; scenario?: Scenario[] }) => {
      try {
        const config = deps.load(opts.config);
        const frame = frameOf(config, opts);
        const report = evaluate(frame, {
          seed: integer('--seed', opts.seed, 0),
          scenarios: opts.scenario,
          maxGapSteps: opts.maxGap === undefined ? undefined : integer('--max-gap', opts.maxGap, 1),
        });
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
      } catch (err) {
        deps.fail(err);
      }
    });

  fileOptions(
    impute
      .command('train')
      .description(
        'train one forest per measure on the whole file and store it in the lake (models/<measure>-forest/<version>.json)',
      ),
  ).action(async (opts: FileFlags) => {
    try {
      const config = deps.load(opts.config);
      const frame = frameOf(config, opts);
      const seed = integer('--seed', opts.seed, 0);
      const maxGapSteps =
        opts.maxGap === undefined ? DEFAULT_MAX_GAP_STEPS : integer('--max-gap', opts.maxGap, 1);
      const lake = createObjectStore(config.lake, config.dataDir);
      try {
        for (const [m, measure] of frame.measures.entries()) {
          const train = trainingSet(frame, m, {
            maxRows: DEFAULT_MAX_TRAINING_ROWS,
            maxGapSteps,
            seed,
          });
          if (train.rows.length < MIN_KNOWN_VALUES) {
            console.log(`${measure}: skipped, ${train.rows.length} known values`);
            continue;
          }
          const model = createModel('forest', { maxGapSteps, forest: { seed } });
          model.fit(train);
          const serialized = serializeModel(model, {
            name: `${measure}-forest`,
            measure,
            features: train.features,
            trainingRows: train.rows.length,
            seed,
            trainedAt: new Date(systemClock.now()),
          });
          console.log(`${measure}: ${await saveModel(lake, serialized)}`);
        }
      } finally {
        lake.close();
      }
    } catch (err) {
      deps.fail(err);
    }
  });

  impute
    .command('models')
    .description('list the imputation models stored in the lake (models/…)')
    .option('-c, --config <file>', 'YAML config file')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; json?: boolean }) => {
      try {
        const config = deps.load(opts.config);
        const lake = createObjectStore(config.lake, config.dataDir);
        try {
          const models = await listModels(lake);
          if (opts.json) {
            console.log(JSON.stringify(models, null, 2));
          } else if (models.length === 0) {
            console.log('no models');
          } else {
            console.log(
              table([
                ['NAME', 'VERSION', 'KIND', 'MEASURE', 'ROWS', 'TRAINED', 'MAX GAP'],
                ...models.map((m) => [
                  m.name,
                  m.version,
                  m.kind,
                  m.measure,
                  String(m.trainingRows),
                  m.trainedAt,
                  String(m.maxGapSteps),
                ]),
              ]),
            );
          }
        } finally {
          lake.close();
        }
      } catch (err) {
        deps.fail(err);
      }
    });

  return impute;
}
