/**
 * `canopy jobs list|runs|backfill|pause|resume`, and `canopy jobs run` of a
 * workflow: clients of the running Canopy's workflow API (api-client.ts).
 * Batch jobs (`canopy jobs run silver`, …) run in the CLI process itself;
 * see jobs.ts.
 */
import { Command } from 'commander';
import type { CanopyConfig } from '../config/schema.js';
import { CanopyError, isCanopyError } from '../core/errors.js';
import type { runToWire } from '../api/workflows.js';
import { addApiOptions, apiUrlFrom, callApi, type ApiFlags } from './api-client.js';
import { JOBS } from './jobs.js';

type WireRun = ReturnType<typeof runToWire>;

interface WireWorkflow {
  name: string;
  description: string;
  schedule: { cron: string; timezone: string } | null;
  paused: boolean;
  next_slot: string | null;
  last_run: WireRun | null;
}

export interface WorkflowCommandDeps {
  load: (configFile: string | undefined) => CanopyConfig;
  fail: (err: unknown) => never;
}

/** Columns padded to their widest cell; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function formatRuns(runs: readonly WireRun[]): string {
  if (runs.length === 0) return 'no runs';
  return table([
    ['ID', 'STATE', 'TRIGGER', 'SLOT', 'CREATED', 'DURATION', 'DEADLINE'],
    ...runs.map((r) => [
      r.id,
      r.state,
      r.trigger,
      r.slot ?? '-',
      r.created_at ?? '-',
      r.duration_ms === null ? '-' : `${(r.duration_ms / 1000).toFixed(1)} s`,
      r.deadline_missed ? 'missed' : '',
    ]),
  ]);
}

const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

export class WorkflowClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey?: string,
  ) {}

  static from(deps: WorkflowCommandDeps, flags: ApiFlags): WorkflowClient {
    return new WorkflowClient(apiUrlFrom(flags, deps.load), flags.apiKey);
  }

  async list(): Promise<WireWorkflow[]> {
    const answer = await callApi(`${this.baseUrl}/api/workflows`, {}, this.apiKey);
    return (answer as { data: WireWorkflow[] }).data;
  }

  async runs(workflow: string, limit: string, state?: string): Promise<WireRun[]> {
    const params = new URLSearchParams({ limit });
    if (state !== undefined) params.set('state', state);
    const url = `${this.baseUrl}/api/workflows/${encodeURIComponent(workflow)}/runs?${params.toString()}`;
    return ((await callApi(url, {}, this.apiKey)) as { data: WireRun[] }).data;
  }

  async run(workflow: string, params: Record<string, unknown>): Promise<WireRun> {
    const answer = (await this.post(`/api/workflows/${encodeURIComponent(workflow)}/run`, {
      params,
    })) as { run: WireRun };
    return answer.run;
  }

  async get(runId: string): Promise<WireRun> {
    const url = `${this.baseUrl}/api/workflows/runs/${encodeURIComponent(runId)}`;
    return ((await callApi(url, {}, this.apiKey)) as { run: WireRun }).run;
  }

  /**
   * Polls until the run is final or waits for a callback; with
   * `pastCallbacks`, until it is final (a callback the platform itself
   * completes, such as the imputation's prediction, is then waited out).
   */
  async wait(runId: string, pastCallbacks = false): Promise<WireRun> {
    for (;;) {
      const run = await this.get(runId);
      if (FINAL.has(run.state) || (run.state === 'waiting' && !pastCallbacks)) return run;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  post(path: string, body: Record<string, unknown>): Promise<unknown> {
    return callApi(
      `${this.baseUrl}${path}`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      },
      this.apiKey,
    );
  }
}

/** Runs a workflow through the running Canopy and prints the run (unless `quiet`); exit 1 when it fails. */
export async function runWorkflow(
  deps: WorkflowCommandDeps,
  workflow: string,
  flags: ApiFlags & { date?: string; wait?: boolean; pastCallbacks?: boolean; quiet?: boolean },
): Promise<WireRun> {
  const client = WorkflowClient.from(deps, flags);
  let run: WireRun;
  try {
    run = await client.run(workflow, flags.date === undefined ? {} : { date: flags.date });
  } catch (err) {
    if (
      isCanopyError(err, 'CANOPY_API_UNREACHABLE') ||
      isCanopyError(err, 'CANOPY_WORKFLOW_NOT_FOUND')
    )
      throw new CanopyError(
        err.code,
        `"${workflow}" is not a batch job (${JOBS.join(', ')}), and as a workflow: ${err.message}`,
      );
    throw err;
  }
  if (flags.wait) run = await client.wait(run.id, flags.pastCallbacks);
  if (!flags.quiet) console.log(JSON.stringify(run, null, 2));
  if (run.state === 'failed' || run.state === 'cancelled') process.exitCode = 1;
  return run;
}

export function addWorkflowCommands(jobs: Command, deps: WorkflowCommandDeps): void {
  jobs.addCommand(
    addApiOptions(
      new Command('list').description(
        'the batch jobs, and the workflows of the running Canopy with their schedules',
      ),
    ).action(async (flags: ApiFlags) => {
      console.log(`batch jobs (canopy jobs run <job>): ${JOBS.join(', ')}\n`);
      try {
        const workflows = await WorkflowClient.from(deps, flags).list();
        console.log(
          table([
            ['WORKFLOW', 'SCHEDULE', 'NEXT SLOT', 'PAUSED', 'LAST RUN'],
            ...workflows.map((w) => [
              w.name,
              w.schedule === null ? '-' : `${w.schedule.cron} (${w.schedule.timezone})`,
              w.next_slot ?? '-',
              w.paused ? 'yes' : '',
              w.last_run === null ? '-' : `${w.last_run.state} ${w.last_run.created_at ?? ''}`,
            ]),
          ]),
        );
      } catch (err) {
        deps.fail(err);
      }
    }),
  );

  jobs.addCommand(
    addApiOptions(
      new Command('runs')
        .description('run history of a workflow, newest first')
        .argument('<workflow>')
        .option('--limit <n>', '1 to 1000', '20')
        .option('--state <states>', 'comma list of running, waiting, succeeded, failed, cancelled')
        .option('--json', 'print the API answer as JSON'),
    ).action(
      async (
        workflow: string,
        flags: ApiFlags & { limit: string; state?: string; json?: boolean },
      ) => {
        try {
          const runs = await WorkflowClient.from(deps, flags).runs(
            workflow,
            flags.limit,
            flags.state,
          );
          console.log(flags.json ? JSON.stringify(runs, null, 2) : formatRuns(runs));
        } catch (err) {
          deps.fail(err);
        }
      },
    ),
  );

  jobs.addCommand(
    addApiOptions(
      new Command('backfill')
        .description(
          'run a workflow for every schedule slot in a range (days as YYYY-MM-DD or ISO times), a few at a time',
        )
        .argument('<workflow>')
        .requiredOption('--from <time>', 'first slot at or after this')
        .requiredOption('--to <time>', 'last slot at or before this')
        .option('--concurrency <n>', 'runs at once, 1 to 16', '2'),
    ).action(
      async (
        workflow: string,
        flags: ApiFlags & { from: string; to: string; concurrency: string },
      ) => {
        try {
          const answer = await WorkflowClient.from(deps, flags).post(
            `/api/workflows/${encodeURIComponent(workflow)}/backfill`,
            { from: flags.from, to: flags.to, concurrency: Number(flags.concurrency) },
          );
          console.log(JSON.stringify(answer, null, 2));
        } catch (err) {
          deps.fail(err);
        }
      },
    ),
  );

  for (const action of ['pause', 'resume'] as const) {
    jobs.addCommand(
      addApiOptions(
        new Command(action)
          .description(
            action === 'pause'
              ? 'stop scheduling new runs of a workflow (running ones finish)'
              : 'schedule a paused workflow again (missed slots per its catch-up policy)',
          )
          .argument('<workflow>'),
      ).action(async (workflow: string, flags: ApiFlags) => {
        try {
          const answer = await WorkflowClient.from(deps, flags).post(
            `/api/workflows/${encodeURIComponent(workflow)}/${action}`,
            {},
          );
          console.log(JSON.stringify(answer));
        } catch (err) {
          deps.fail(err);
        }
      }),
    );
  }
}
