/**
 * A real scrape: Debian's Prometheus on a free 127.0.0.1 port scrapes a running
 * Canopy every second and evaluates deploy/prometheus/rules.yml, shortened by the
 * documented transform (test/helpers/prometheus.ts: durations ÷ 60, so the
 * ingest-stopped window of 5m is 5s and its `for: 10m` is 10s). A simulated
 * fleet posts readings over HTTP until Prometheus sees a positive ingest rate;
 * meanwhile every rule must evaluate cleanly and every dashboard expression
 * must run (vector matching errors only show on real data). Then the fleet
 * stops, and CanopyIngestStopped must go pending, then firing, through
 * Prometheus's HTTP API.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/observability/logger.js';
import { runSimulator, type SimulatorHandle } from '../src/simulator/index.js';
import { startTestApp, type TestApp } from './helpers/app.js';
import { dashboardExpressions, withGrafanaVariables } from './helpers/grafana.js';
import {
  debianToolForTests,
  rulesFile,
  shortenRuleDurations,
  startPrometheus,
  type PrometheusAlert,
  type PrometheusServer,
} from './helpers/prometheus.js';

const prometheusBinary = debianToolForTests('prometheus');

/** Polls `probe` every 200 ms until it returns a value, or fails naming `what`. */
async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe.runIf(prometheusBinary)('Prometheus scraping a running Canopy', () => {
  let app: TestApp | undefined;
  let fleet: SimulatorHandle | undefined;
  let prometheus: PrometheusServer | undefined;

  beforeAll(async () => {
    app = await startTestApp();
    // The fleet starts before Prometheus, so the first scrape already has the
    // accepted-readings counter and the "never ingested" branch cannot fire.
    fleet = runSimulator(
      {
        mode: 'continuous',
        sensors: 5,
        ratePerSecond: 20,
        target: { kind: 'http', url: `http://127.0.0.1:${app.httpPort}/api/data`, batchSize: 5 },
      },
      { clock: systemClock, logger: silentLogger() },
    );
    prometheus = await startPrometheus(
      prometheusBinary as string,
      {
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        scrape_configs: [
          { job_name: 'canopy', static_configs: [{ targets: [`127.0.0.1:${app.httpPort}`] }] },
        ],
      },
      shortenRuleDurations(readFileSync(rulesFile, 'utf8'), 60),
    );
  });

  afterAll(async () => {
    await fleet?.stop();
    await prometheus?.stop();
    await app?.dispose();
  });

  it('scrapes the ingest rate; every rule and dashboard expression evaluates', async () => {
    const server = prometheus as PrometheusServer;
    const rate = await until(
      'a positive ingest rate',
      async () => {
        const [sample] = await server.query(
          `sum by (instance) (canopy:readings_accepted:rate5m{job="canopy",source="http"})`,
        );
        return sample && Number(sample.value[1]) > 0 ? sample : undefined;
      },
      15_000,
    );
    expect(rate.metric.instance).toBe(`127.0.0.1:${app?.httpPort}`);
    expect((await server.query('up{job="canopy"}')).map((s) => s.value[1])).toEqual(['1']);

    const health = await until(
      'every rule evaluated',
      async () => {
        const rules = await server.ruleHealth();
        return rules.every((r) => r.health !== 'unknown') ? rules : undefined;
      },
      10_000,
    );
    expect(health.filter((r) => r.health !== 'ok')).toEqual([]);
    // Each query throws on a PromQL or evaluation error.
    for (const { expr } of dashboardExpressions())
      await server.query(withGrafanaVariables(expr, '5s'));
  });

  it('raises CanopyIngestStopped, pending then firing, after the data stops', async () => {
    const server = prometheus as PrometheusServer;
    const target = `127.0.0.1:${app?.httpPort}`;
    const ingestStopped = async (): Promise<PrometheusAlert | undefined> =>
      (await server.alerts()).find((a) => a.labels.alertname === 'CanopyIngestStopped');
    expect(await ingestStopped()).toBeUndefined();

    await fleet?.stop();

    const pending = await until(
      'CanopyIngestStopped pending',
      async () => {
        const alert = await ingestStopped();
        return alert?.state === 'pending' ? alert : undefined;
      },
      15_000,
    );
    expect(pending.labels).toMatchObject({ instance: target, job: 'canopy', severity: 'critical' });
    const firing = await until(
      'CanopyIngestStopped firing',
      async () => {
        const alert = await ingestStopped();
        return alert?.state === 'firing' ? alert : undefined;
      },
      20_000,
    );
    expect(firing.activeAt).toBe(pending.activeAt);
    expect(firing.annotations.runbook_url).toBe('docs/operations.md#canopyingeststopped');
  }, 60_000);
});
