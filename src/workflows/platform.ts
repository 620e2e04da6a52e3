/**
 * The platform's own schedule, as workflows:
 *
 * - `housekeeping`, every minute: bronze and dead-letter export, compaction of
 *   closed bronze hours, purge of the hot window and of metadata past
 *   retention; beside it, a freshness check of every sensor against its
 *   expected interval. Missed minutes are not caught up (the next run does
 *   all the work).
 * - `hourly-lake`: silver and gold for every date whose input changed, then
 *   the quality suites over the slot's date.
 * - `daily-pipeline`, the reference DAG for yesterday (in the workflows' time
 *   zone): freshness → (no bronze for the date: report that and stop) →
 *   silver → gold → quality → warehouse load → summary → notify, with a
 *   deadline; retention runs beside it. Missed days are caught up, oldest
 *   first.
 *
 * Staleness alerts are the alert engine's (its tick), and polled endpoints
 * keep their own interval in the poll sources; neither needs a run record.
 */
import type { AlertStore, ReportPayload } from '../core/alerts.js';
import type { ObjectStore } from '../core/object-store.js';
import type { HotStore } from '../core/store.js';
import type { CanopyConfig } from '../config/schema.js';
import type { Notifier } from '../alerts/index.js';
import type { LakeQueries } from '../query/index.js';
import type { Housekeeping } from '../runtime/housekeeping.js';
import type { WorkflowDefinition } from './definition.js';
import type { LakeJobs } from './jobs.js';

export interface PlatformDeps {
  config: CanopyConfig;
  jobs: LakeJobs;
  lake: ObjectStore;
  hotStore: HotStore;
  housekeeping: Housekeeping;
  queries: LakeQueries;
  /** For the daily summary's alert counts; absent when alerting is off. */
  alerts?: Pick<AlertStore, 'listAlerts'>;
  notifiers: ReadonlyMap<string, Notifier>;
  /** Where the daily summary goes (names in `notifiers`). */
  summaryChannels: readonly string[];
  now(): number;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/** `YYYY-MM-DD` of an instant in a time zone. */
export function dateIn(timezone: string, at: number): string {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(at);
}

/** The calendar day before the one `slot` falls on, in the time zone: the day a daily run covers. */
export function dayBefore(timezone: string, slot: number): string {
  const today = dateIn(timezone, slot);
  return new Date(Date.parse(`${today}T00:00:00Z`) - DAY).toISOString().slice(0, 10);
}

/** The run's `date` parameter (YYYY-MM-DD); throws when the run has none. */
export function dateParam(params: Readonly<Record<string, unknown>>): string {
  const date = params.date;
  if (typeof date !== 'string') throw new Error('this run has no `date` parameter');
  return date;
}

export interface DailySummary {
  date: string;
  readings: number;
  sensors: number;
  anomalies: number;
  missing: number;
  deadLetters: number;
  quality: { success: boolean; failedSuites: string[] } | null;
  alerts: { opened: number; critical: number } | null;
}

export function summaryReport(summary: DailySummary, channel: string, at: number): ReportPayload {
  const pct = summary.readings === 0 ? 0 : (summary.anomalies / summary.readings) * 100;
  const facts: [string, string][] = [
    ['Readings', summary.readings.toLocaleString('en-US')],
    ['Sensors', String(summary.sensors)],
    ['Anomalies', `${summary.anomalies.toLocaleString('en-US')} (${pct.toFixed(2)} %)`],
    ['Missing values', summary.missing.toLocaleString('en-US')],
    ['Dead letters', String(summary.deadLetters)],
    [
      'Quality',
      summary.quality === null
        ? 'not run'
        : summary.quality.success
          ? 'all suites passed'
          : `failed: ${summary.quality.failedSuites.join(', ')}`,
    ],
    [
      'Alerts opened',
      summary.alerts === null
        ? 'alerting off'
        : `${summary.alerts.opened} (${summary.alerts.critical} critical)`,
    ],
  ];
  return {
    id: `daily-summary:${summary.date}:${channel}`,
    kind: 'daily-summary',
    title: `Canopy daily summary for ${summary.date}`,
    at: new Date(at).toISOString(),
    period: {
      from: `${summary.date}T00:00:00.000Z`,
      to: new Date(Date.parse(`${summary.date}T00:00:00Z`) + DAY).toISOString(),
    },
    facts,
    data: { ...summary },
    url: null,
  };
}

async function buildSummary(
  deps: PlatformDeps,
  date: string,
  quality: DailySummary['quality'],
): Promise<DailySummary> {
  const day = `DATE '${date}'`;
  // A view over a layer with no file for the date has nothing to read: count those as zero.
  const has = async (prefix: string) => (await deps.lake.list(prefix)).length > 0;
  let [readings, sensors, anomalies, missing] = [0, 0, 0, 0];
  if (await has(`gold/daily_summary/date=${date}/`)) {
    const gold = await deps.queries.run(
      `SELECT coalesce(sum(reading_count), 0), count(DISTINCT sensor_id),
              coalesce(sum(anomaly_count), 0), coalesce(sum(missing_count), 0)
         FROM gold_daily_summary WHERE date = ${day}`,
    );
    [readings = 0, sensors = 0, anomalies = 0, missing = 0] = (gold.rows[0] ?? []).map(Number);
  }
  let deadLetters = 0;
  if (await has(`deadletter/date=${date}/`)) {
    const dl = await deps.queries.run(`SELECT count(*) FROM dead_letters WHERE date = ${day}`);
    deadLetters = Number(dl.rows[0]?.[0] ?? 0);
  }
  let alerts: DailySummary['alerts'] = null;
  if (deps.alerts) {
    const from = Date.parse(`${date}T00:00:00Z`);
    const opened = (await deps.alerts.listAlerts({ from, to: from + DAY, limit: 1000 })).filter(
      (a) => a.openedAt >= from && a.openedAt < from + DAY,
    );
    alerts = {
      opened: opened.length,
      critical: opened.filter((a) => a.severity === 'critical').length,
    };
  }
  return {
    date,
    readings,
    sensors,
    anomalies,
    missing,
    deadLetters,
    quality,
    alerts,
  };
}

async function notify(deps: PlatformDeps, summary: DailySummary, signal: AbortSignal) {
  const sent: string[] = [];
  for (const channel of deps.summaryChannels) {
    const notifier = deps.notifiers.get(channel);
    if (!notifier) throw new Error(`summary channel "${channel}" is not in alerting.notifiers`);
    await notifier.sendReport(summaryReport(summary, channel, deps.now()), signal);
    sent.push(channel);
  }
  return { channels: sent };
}

/**
 * Whether housekeeping is the `housekeeping` workflow. It exports and purges
 * this process's own hot store (a local DuckDB file), so it is a workflow only
 * while run history is local too (`meta.kind: duckdb`): with history in a
 * shared PostgreSQL, one run per slot would leave every other instance's hot
 * store unexported, so each instance runs housekeeping on its own timer.
 */
export function housekeepingIsWorkflow(config: CanopyConfig): boolean {
  return config.workflows.enabled && config.meta.kind === 'duckdb';
}

export function platformWorkflows(deps: PlatformDeps): WorkflowDefinition[] {
  const { config } = deps;
  const timezone = config.workflows.timezone;
  const { hourly, daily } = config.workflows;
  const housekeeping: WorkflowDefinition[] = housekeepingIsWorkflow(config)
    ? [housekeepingWorkflow(deps)]
    : [];
  return [
    ...housekeeping,
    {
      name: 'hourly-lake',
      description: 'Silver and gold for every date whose input changed, then quality for the day.',
      schedule: { cron: hourly.cron, timezone, catchUp: 'once' },
      deadlineMs: hourly.deadlineMs,
      params: (slot) => ({ date: dateIn(timezone, (slot ?? deps.now()) - MINUTE) }),
      tasks: [
        {
          id: 'silver',
          retries: 2,
          retryBackoffMs: MINUTE,
          run: async () => ({ dates: (await deps.jobs.silver()).map((d) => d.date) }),
        },
        {
          id: 'gold',
          dependsOn: ['silver'],
          retries: 2,
          retryBackoffMs: MINUTE,
          run: async () => ({ dates: (await deps.jobs.gold()).dates.map((d) => d.date) }),
        },
        {
          id: 'quality',
          dependsOn: ['gold'],
          run: async (ctx) => {
            const date = dateParam(ctx.params);
            if ((await deps.lake.list(`silver/readings/date=${date}/`)).length === 0)
              return { date, skipped: 'no silver for the date yet' };
            const run = await deps.jobs.quality(date);
            return { date, runId: run.run_id, success: run.success };
          },
        },
      ],
    },
    {
      name: 'daily-pipeline',
      description:
        'Yesterday: freshness → silver → gold → quality → warehouse load → summary → notify; retention beside it.',
      schedule: {
        cron: daily.cron,
        timezone,
        ...(daily.catchUpDays === 0
          ? { catchUp: 'skip' as const }
          : { catchUp: 'all' as const, maxCatchUp: daily.catchUpDays }),
      },
      deadlineMs: daily.deadlineMs,
      params: (slot) => ({ date: dayBefore(timezone, slot ?? deps.now()) }),
      tasks: [
        {
          id: 'freshness',
          kind: 'choice',
          description: 'Is there bronze for the date?',
          choose: async (ctx) =>
            (await deps.lake.list(`bronze/readings/date=${dateParam(ctx.params)}/`)).length > 0
              ? 'process'
              : 'no-data',
          branches: { process: ['silver'], 'no-data': ['summary-no-data'] },
        },
        {
          id: 'silver',
          dependsOn: ['freshness'],
          retries: 2,
          retryBackoffMs: 5 * MINUTE,
          run: async (ctx) => ({ rows: (await deps.jobs.silver(dateParam(ctx.params)))[0]?.rows }),
        },
        {
          id: 'gold',
          dependsOn: ['silver'],
          retries: 2,
          retryBackoffMs: 5 * MINUTE,
          run: async (ctx) => {
            await deps.jobs.gold(dateParam(ctx.params));
            return { date: dateParam(ctx.params) };
          },
        },
        {
          id: 'quality',
          dependsOn: ['gold'],
          run: async (ctx) => {
            const run = await deps.jobs.quality(dateParam(ctx.params));
            return {
              runId: run.run_id,
              success: run.success,
              failedSuites: run.suites.filter((s) => !s.success).map((s) => s.suite),
            };
          },
        },
        {
          id: 'warehouse-load',
          dependsOn: ['quality'],
          retries: 2,
          retryBackoffMs: 5 * MINUTE,
          run: async (ctx) => {
            await deps.jobs.warehouseLoad({ date: dateParam(ctx.params) });
            return { date: dateParam(ctx.params) };
          },
        },
        {
          id: 'summary',
          dependsOn: ['warehouse-load'],
          run: (ctx) =>
            buildSummary(
              deps,
              dateParam(ctx.params),
              ctx.outputs.quality as DailySummary['quality'],
            ),
        },
        {
          id: 'notify',
          dependsOn: ['summary'],
          retries: 3,
          retryBackoffMs: MINUTE,
          run: (ctx) => notify(deps, ctx.outputs.summary as DailySummary, ctx.signal),
        },
        {
          id: 'summary-no-data',
          dependsOn: ['freshness'],
          retries: 3,
          retryBackoffMs: MINUTE,
          run: async (ctx) =>
            notify(deps, await buildSummary(deps, dateParam(ctx.params), null), ctx.signal),
        },
        {
          id: 'retention',
          retries: 2,
          retryBackoffMs: 5 * MINUTE,
          run: async () => {
            const report = await deps.jobs.retention({});
            // Counts, not keys: a run's output stays small.
            return Object.fromEntries(
              Object.entries(report.layers).map(([layer, r]) => [layer, r.keys.length]),
            );
          },
        },
      ],
    },
  ];
}

function housekeepingWorkflow(deps: PlatformDeps): WorkflowDefinition {
  return {
    name: 'housekeeping',
    description:
      'Bronze and dead-letter export, compaction of closed hours, purge past retention; freshness of every sensor.',
    schedule: { cron: '* * * * *', catchUp: 'skip' },
    deadlineMs: 5 * MINUTE,
    tasks: [
      { id: 'export', run: () => deps.housekeeping.step('export').then(() => ({})) },
      {
        id: 'compact',
        dependsOn: ['export'],
        run: () => deps.housekeeping.step('compact').then(() => ({})),
      },
      {
        id: 'purge',
        dependsOn: ['export'],
        run: () => deps.housekeeping.step('purge').then(() => ({})),
      },
      {
        id: 'freshness',
        description: 'Sensors silent for over three of their expected intervals.',
        run: async () => {
          const now = deps.now();
          const sensors = await deps.hotStore.listSensors();
          const stale = sensors
            .filter((s) => s.lastSeen !== null && now - s.lastSeen > 3 * (s.intervalMs ?? MINUTE))
            .map((s) => s.sensorId);
          return {
            sensors: sensors.length,
            stale: stale.length,
            staleSensors: stale.slice(0, 50),
          };
        },
      },
    ],
  };
}
