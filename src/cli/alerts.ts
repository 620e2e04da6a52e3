/**
 * `canopy alerts …`. `alerts rules check` validates a rules file against the
 * configuration (exit 0 with `ok: N rules`, exit 1 listing every problem) and
 * `alerts rules export` prints the normalized YAML, the form Canopy itself
 * writes: both work on files, with no Canopy running. `alerts list`, `ack`,
 * `snooze` and `resolve` ask the running Canopy's API (alerts-client.ts).
 */
import { Command, Option } from 'commander';
import type { CanopyConfig } from '../config/index.js';
import {
  exportRules,
  loadRulesFile,
  ruleContextOf,
  rulesFilePath,
  type RuleSet,
} from '../alerts/rules/index.js';
import { actOnAlert, formatAlerts, listAlerts, type AlertListFilters } from './alerts-client.js';
import { addApiOptions, apiUrlFrom, type ApiFlags } from './api-client.js';

/** How main.ts loads the configuration and reports a failure (exit codes live there). */
export interface AlertsCommandDeps {
  load: (configFile: string | undefined) => CanopyConfig;
  fail: (err: unknown) => never;
}

interface RulesFlags {
  config?: string;
  file?: string;
}

async function loadRules(deps: AlertsCommandDeps, flags: RulesFlags): Promise<RuleSet> {
  const config = deps.load(flags.config);
  return loadRulesFile(flags.file ?? rulesFilePath(config), ruleContextOf(config));
}

function rulesCommand(deps: AlertsCommandDeps): Command {
  const rules = new Command('rules').description('alert rules files: validate, normalize');
  const fileOption = (): Option =>
    new Option(
      '--file <file>',
      'rules file (default: alerting.rulesFile, or <dataDir>/alert-rules.yaml)',
    );
  rules
    .command('check')
    .description('validate a rules file against the configuration; list every problem at once')
    .addOption(new Option('--config <file>', 'YAML config file'))
    .addOption(fileOption())
    .action(async (flags: RulesFlags) => {
      try {
        const set = await loadRules(deps, flags);
        console.log(`ok: ${set.rules.length} rule${set.rules.length === 1 ? '' : 's'}`);
      } catch (err) {
        deps.fail(err);
      }
    });
  rules
    .command('export')
    .description('print the rules file as normalized YAML (defaults left out)')
    .addOption(new Option('--config <file>', 'YAML config file'))
    .addOption(fileOption())
    .action(async (flags: RulesFlags) => {
      try {
        process.stdout.write(exportRules(await loadRules(deps, flags)));
      } catch (err) {
        deps.fail(err);
      }
    });
  return rules;
}

interface ListFlags extends ApiFlags, AlertListFilters {
  json?: boolean;
}

function listCommand(deps: AlertsCommandDeps): Command {
  return addApiOptions(
    new Command('list')
      .description('alerts of the running Canopy, newest first (default: those not resolved)')
      .option(
        '--state <states>',
        'comma list of open, escalated, acknowledged, resolved; or active',
        'active',
      )
      .option('--severity <severities>', 'comma list of warning, critical')
      .option('--sensor <id>', 'one sensor')
      .option('--location <path>', 'a location and everything under it')
      .option('--rule <id>', 'one rule')
      .option('--limit <n>', '1 to 1000', '100')
      .option('--json', 'print the API answer as JSON'),
  ).action(async (flags: ListFlags) => {
    try {
      const alerts = await listAlerts(apiUrlFrom(flags, deps.load), flags, flags.apiKey);
      console.log(flags.json ? JSON.stringify(alerts, null, 2) : formatAlerts(alerts));
    } catch (err) {
      deps.fail(err);
    }
  });
}

interface ActFlags extends ApiFlags {
  by?: string;
  note?: string;
  for?: string;
  until?: string;
}

/** ack, snooze, resolve: one alert by id; prints the alert as it now is. */
function actCommand(
  deps: AlertsCommandDeps,
  action: 'ack' | 'snooze' | 'resolve',
  description: string,
): Command {
  const command = addApiOptions(
    new Command(action)
      .description(description)
      .argument('<id>', 'alert id (from `canopy alerts list`)')
      .option('--by <name>', 'who acts; recorded in the alert history', process.env.USER)
      .option('--note <text>', 'why; recorded in the alert history'),
  );
  if (action === 'snooze')
    command
      .option('--for <duration>', 'how long, e.g. 30m, 2h, 1d')
      .option('--until <time>', 'until when, ISO 8601');
  return command.action(async (id: string, flags: ActFlags) => {
    try {
      const body: Record<string, string> = {};
      for (const key of ['by', 'note', 'for', 'until'] as const) {
        const value = flags[key];
        if (value !== undefined) body[key] = value;
      }
      const url = apiUrlFrom(flags, deps.load);
      console.log(formatAlerts([await actOnAlert(url, id, action, body, flags.apiKey)]));
    } catch (err) {
      deps.fail(err);
    }
  });
}

/** The `alerts` command group. */
export function alertsCommand(deps: AlertsCommandDeps): Command {
  const alerts = new Command('alerts').description('alerting: rules files and alerts');
  alerts.addCommand(rulesCommand(deps));
  alerts.addCommand(listCommand(deps));
  alerts.addCommand(
    actCommand(deps, 'ack', 'acknowledge an alert: stops its reminders and escalation'),
  );
  alerts.addCommand(
    actCommand(deps, 'snooze', 'silence an alert’s reminders and escalation until a time'),
  );
  alerts.addCommand(actCommand(deps, 'resolve', 'resolve an alert by hand'));
  return alerts;
}
