/**
 * `canopy simulate`: drives a running Canopy — or any MQTT broker or HTTP
 * endpoint — with the simulated fleet, a batch, or a CSV replay; and
 * `canopy simulate plants` serves the plants API on its own.
 */
import { Command, Option } from 'commander';
import { systemClock } from '../core/clock.js';
import { createLogger } from '../observability/logger.js';
import { apiKeyOption } from './api-client.js';
import {
  runSimulator,
  startPlantsServer,
  type SimulatorOptions,
  type SimulatorTarget,
} from '../simulator/index.js';

interface SimulateFlags {
  mode: 'continuous' | 'batch' | 'replay';
  target: 'mqtt' | 'http' | 'file';
  url?: string;
  topic: string;
  dir?: string;
  rate?: string;
  count?: string;
  sensors: string;
  seed: string;
  anomalyRate: string;
  file?: string;
  speed?: string;
  perMessage: string;
  batchSize: string;
  format?: string;
  shiftToNow?: boolean;
  apiKey?: string;
  username?: string;
  password?: string;
}

const int = (name: string, raw: string): number => {
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${raw}"`);
  return n;
};

function targetOf(flags: SimulateFlags): SimulatorTarget {
  switch (flags.target) {
    case 'mqtt':
      return {
        kind: 'mqtt',
        url: flags.url ?? 'mqtt://127.0.0.1:1883',
        topic: flags.topic,
        qos: 1,
        readingsPerMessage: int('per-message', flags.perMessage),
        // A device's client id must be its id or start with `<id>:` (docs/security.md).
        ...(flags.username === undefined
          ? {}
          : { username: flags.username, clientId: `${flags.username}:simulate` }),
        ...(flags.password === undefined ? {} : { password: flags.password }),
      };
    case 'http':
      return {
        kind: 'http',
        url: flags.url ?? 'http://127.0.0.1:3000/api/data',
        batchSize: int('batch-size', flags.batchSize),
        format: flags.format === 'ndjson' ? 'ndjson' : 'json',
        ...(flags.apiKey === undefined
          ? {}
          : { headers: { authorization: `Bearer ${flags.apiKey}` } }),
      };
    case 'file':
      return {
        kind: 'file',
        dir: flags.dir ?? './landing',
        format: flags.format === 'csv' ? 'csv' : 'ndjson',
      };
  }
}

export function simulateCommand(): Command {
  const command = new Command('simulate')
    .description('send simulated sensor readings to MQTT, HTTP or a folder')
    .addOption(
      new Option('--mode <mode>', 'continuous, batch of --count, or replay of --file')
        .choices(['continuous', 'batch', 'replay'])
        .default('continuous'),
    )
    .addOption(
      new Option('--target <target>', 'where readings go')
        .choices(['mqtt', 'http', 'file'])
        .default('mqtt'),
    )
    .option('--url <url>', 'broker URL (mqtt://…) or ingest URL (http://…/api/data)')
    .option('--topic <topic>', 'MQTT topic', 'iot/data')
    .option('--dir <dir>', 'folder for the file target')
    .option('--rate <n>', 'continuous: readings per second over the fleet')
    .option('--count <n>', 'batch: readings to send; continuous: stop after this many')
    .option('--sensors <n>', 'fleet size', '50')
    .option('--seed <n>', 'random seed: the same seed gives the same readings', '1')
    .option('--anomaly-rate <x>', 'fraction of readings with an injected anomaly', '0.02')
    .option('--file <csv>', 'replay: long CSV (timestamp,device_id,value,unit,anomaly_score)')
    .option('--speed <x>', 'replay: 0 = as fast as possible, k = k× the original pace')
    .option('--shift-to-now', 'replay: move timestamps to now')
    .option('--per-message <n>', 'MQTT: readings per message', '1')
    .option('--batch-size <n>', 'HTTP: readings per request', '100')
    .option('--format <format>', 'HTTP: json | ndjson; file: ndjson | csv')
    .addOption(apiKeyOption())
    .option('--username <device>', 'MQTT: device id, when the broker requires credentials')
    .option('--password <password>', 'MQTT: the device password (from canopy devices create)')
    .action(async (flags: SimulateFlags) => {
      const logger = createLogger('info', true);
      const options: SimulatorOptions = {
        mode: flags.mode,
        target: targetOf(flags),
        sensors: int('sensors', flags.sensors),
        seed: int('seed', flags.seed),
        anomalyRate: int('anomaly-rate', flags.anomalyRate),
        ...(flags.rate === undefined ? {} : { ratePerSecond: int('rate', flags.rate) }),
        ...(flags.count === undefined ? {} : { count: int('count', flags.count) }),
        ...(flags.file === undefined ? {} : { file: flags.file }),
        ...(flags.speed === undefined ? {} : { speed: int('speed', flags.speed) }),
        ...(flags.shiftToNow ? { shiftToNow: true } : {}),
      };
      const run = runSimulator(options, { clock: systemClock, logger });
      process.once('SIGINT', () => void run.stop());
      process.once('SIGTERM', () => void run.stop());
      await run.done;
      const stats = run.stats();
      console.log(
        JSON.stringify({
          sent: stats.sent,
          failed: stats.failed,
          batches: stats.batches,
          error: stats.error?.message ?? null,
        }),
      );
      process.exitCode = stats.error || stats.failed > 0 ? 1 : 0;
    });

  command
    .command('plants')
    .description('serve the conservatory plants API (GET /plants/:id) for a polling source')
    .option('--port <n>', 'port', '4000')
    .option('--count <n>', 'number of plants', '50')
    .option('--seed <n>', 'random seed', '1')
    .action(async (flags: { port: string; count: string; seed: string }) => {
      const server = await startPlantsServer({
        port: int('port', flags.port),
        count: int('count', flags.count),
        seed: int('seed', flags.seed),
        clock: systemClock,
      });
      console.log(JSON.stringify({ url: server.url, faultyIds: server.faultyIds }));
      const close = (): void => void server.close();
      process.once('SIGINT', close);
      process.once('SIGTERM', close);
    });
  return command;
}
