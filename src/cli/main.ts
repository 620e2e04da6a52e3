#!/usr/bin/env node
/**
 * The `canopy` command. With src/runtime/app.ts the only place that wires
 * concrete adapters. Exit codes: 0 ok, 1 runtime failure, 2 bad config or usage.
 */
import { Command, Option } from 'commander';
import { writeFileSync } from 'node:fs';
import { CanopyError, isCanopyError } from '../core/errors.js';
import { loadConfig, redactConfig, renderConfigDocs, type CanopyConfig } from '../config/index.js';
import { ROLES } from '../config/roles.js';
import { renderErrorDocs } from '../core/error-docs.js';
import { createLogger } from '../observability/logger.js';
import { renderMetricsDocs } from '../observability/metrics-docs.js';
import { startCanopy } from '../runtime/app.js';
import { resolveAuthMode } from '../auth/mode.js';
import { alertsCommand } from './alerts.js';
import { apiKeyOption } from './api-client.js';
import { authCommands } from './auth.js';
import { imputeCommand } from './impute.js';
import { ingestFile } from './ingest-file.js';
import { JOBS, lakeCatalog, queryLake, runJob, type JobName } from './jobs.js';
import { simulateCommand } from './simulate.js';
import { addWorkflowCommands, runWorkflow } from './workflows.js';

function fail(err: unknown): never {
  if (isCanopyError(err)) {
    console.error(`${err.code}: ${err.message}`);
    process.exit(err.code.startsWith('CANOPY_CONFIG') ? 2 : 1);
  }
  console.error(err);
  process.exit(1);
}

function isJobName(name: string): name is JobName {
  return (JOBS as readonly string[]).includes(name);
}

function load(
  file: string | undefined,
  overrides?: (raw: Record<string, unknown>) => void,
): CanopyConfig {
  try {
    return loadConfig({ file, overrides }).config;
  } catch (err) {
    fail(err);
  }
}

const program = new Command('canopy')
  .description('Canopy sensor-telemetry platform')
  .showHelpAfterError();

program
  .command('up')
  .description(
    'run the platform: sources, pipeline, hot store, jobs and API (or the parts --role names)',
  )
  .option('-c, --config <file>', 'YAML config file (default: $CANOPY_CONFIG or none)')
  .option('--simulate', 'also run the sensor simulator and the plants API, so data flows at once')
  .option(
    '--role <roles>',
    `run only these parts, comma-separated (${ROLES.join(', ')}; default: all, or the config's roles)`,
  )
  .action(async (opts: { config?: string; simulate?: boolean; role?: string }) => {
    const config = load(opts.config, (raw) => {
      if (opts.role !== undefined) raw.roles = opts.role.split(',').map((r) => r.trim());
      if (opts.simulate) {
        const sim = (raw.simulator ??= {}) as Record<string, unknown>;
        sim.enabled = true;
      }
    });
    const logger = createLogger(config.log.level, false, { levels: config.log.levels });
    try {
      const app = await startCanopy(config, { logger });
      const host = config.http.host === '0.0.0.0' ? 'localhost' : config.http.host;
      if (app.httpPort !== null) logger.info(`readings: http://${host}:${app.httpPort}/api/data`);
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        app.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
    } catch (err) {
      logger.error({ err }, 'start-up failed');
      fail(err);
    }
  });

program
  .command('ingest')
  .description('ingest a file (long CSV, wide CSV, JSON, NDJSON) into the hot store')
  .argument('<file>')
  .option('-c, --config <file>', 'YAML config file')
  .addOption(
    new Option(
      '--format <format>',
      'payload format (default: from the file name and content)',
    ).choices(['json', 'ndjson', 'csv', 'csv-wide']),
  )
  .option('--mapping <name>', 'wide-CSV mapping: a name under ingest.wideCsv, or "air-quality-uci"')
  .addOption(apiKeyOption())
  .action(
    async (
      file: string,
      opts: {
        config?: string;
        format?: 'json' | 'ndjson' | 'csv' | 'csv-wide';
        mapping?: string;
        apiKey?: string;
      },
    ) => {
      const config = load(opts.config);
      try {
        const summary = await ingestFile(config, file, {
          format: opts.format,
          mapping: opts.mapping,
          apiKey: opts.apiKey,
        });
        console.log(JSON.stringify(summary, null, 2));
        process.exitCode = summary.rejected > 0 ? 1 : 0;
      } catch (err) {
        fail(err);
      }
    },
  );

program.addCommand(simulateCommand());

program
  .command('query')
  .description(
    'run one read-only SELECT over the lake (bronze_readings, silver_readings, gold_*, …)',
  )
  .argument('<sql>')
  .addOption(new Option('--config <file>', 'YAML config file'))
  .action(async (sql: string, opts: { config?: string }) => {
    const config = load(opts.config);
    try {
      const result = await queryLake(config, sql);
      console.log(JSON.stringify(result, null, 2));
    } catch (err) {
      fail(err);
    }
  });

program
  .command('catalog')
  .description(
    'the lake catalogue: tables, partitions, files, bytes, rows, columns, dirty partitions',
  )
  .addOption(new Option('--config <file>', 'YAML config file'))
  .action(async (opts: { config?: string }) => {
    const config = load(opts.config);
    try {
      console.log(JSON.stringify(await lakeCatalog(config), null, 2));
    } catch (err) {
      fail(err);
    }
  });

interface JobRunFlags {
  config?: string;
  url?: string;
  apiKey?: string;
  wait?: boolean;
  dryRun?: boolean;
  /** Validated by the job (CANOPY_JOB_BAD_DATE). */
  date?: string;
  full?: boolean;
}

const jobs = program
  .command('jobs')
  .description("the platform's batch jobs and workflows (scheduled, with run history)");
jobs
  .command('run')
  .description(
    'run a batch job now in this process (bronze-export needs the hot store, so stop Canopy first; silver and quality need only the lake; exit 1 when a quality suite fails), or start a run of a workflow in the running Canopy (see `jobs list`)',
  )
  .addOption(new Option('--config <file>', 'YAML config file'))
  .addOption(new Option('--url <url>', 'workflows: the running Canopy (default: from config http)'))
  .addOption(apiKeyOption())
  .option('--wait', 'workflows: wait until the run ends (or waits for a callback)')
  .argument('<job>', `${JOBS.join(' | ')} | a workflow`)
  .option('--dry-run', 'retention: list what would be deleted, delete nothing')
  .option(
    '--date <YYYY-MM-DD>',
    'one event date: silver/gold rebuild it, quality checks it, warehouse-load reloads it, retention runs as of it',
  )
  .option('--full', 'warehouse-load: reload every window and the sensor dimension')
  .action(async (job: string, opts: JobRunFlags) => {
    try {
      if (!isJobName(job)) {
        await runWorkflow({ load, fail }, job, opts);
        return;
      }
      const config = load(opts.config);
      if (opts.full && job !== 'warehouse-load') {
        throw new CanopyError('CANOPY_API_BAD_REQUEST', '--full applies to warehouse-load only');
      }
      const outcome = await runJob(config, job, {
        dryRun: opts.dryRun ?? false,
        date: opts.date,
        full: opts.full ?? false,
      });
      console.log(
        JSON.stringify(
          outcome.report,
          (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value),
          2,
        ),
      );
      process.exitCode = outcome.ok ? 0 : 1;
    } catch (err) {
      fail(err);
    }
  });

program.addCommand(alertsCommand({ load: (file) => load(file), fail }));

addWorkflowCommands(jobs, { load, fail });

for (const command of authCommands({ load: (file) => load(file), fail }))
  program.addCommand(command);

program.addCommand(imputeCommand({ load: (file) => load(file), fail }));

const configCommand = program.command('config').description('configuration tools');
configCommand
  .command('check')
  .description('validate the configuration (file + environment) and list every problem at once')
  .option('-c, --config <file>', 'YAML config file')
  .option('--print', 'print the effective configuration (secrets redacted)')
  .action((opts: { config?: string; print?: boolean }) => {
    const config = load(opts.config);
    try {
      const { warning } = resolveAuthMode(config);
      if (warning !== undefined) console.warn(`warning: ${warning}`);
    } catch (err) {
      fail(err);
    }
    console.log('configuration is valid');
    if (opts.print) console.log(JSON.stringify(redactConfig(config), null, 2));
  });

program
  .command('docs')
  .description('regenerate docs/config.md, docs/errors.md and docs/metrics.md from the code')
  .action(() => {
    writeFileSync('docs/config.md', renderConfigDocs());
    writeFileSync('docs/errors.md', renderErrorDocs());
    writeFileSync('docs/metrics.md', renderMetricsDocs());
    console.log('wrote docs/config.md, docs/errors.md and docs/metrics.md');
  });

program.parseAsync(process.argv).catch(fail);
