/**
 * Every PromQL expression shipped in deploy/ — each Grafana panel target and
 * variable query in deploy/grafana/dashboards, each rule in
 * deploy/prometheus/rules.yml — names only metrics that exist: the catalogue
 * of `new Metrics()` (histograms also as `_bucket`, `_sum`, `_count`),
 * Prometheus's own `up` and `ALERTS`, and the recording rules of rules.yml
 * (whose own expressions are checked the same way). Expressions are parsed
 * with Prometheus's PromQL grammar (@prometheus-io/lezer-promql), so a metric
 * name is a selector's name, never a function, label or keyword.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { Metrics } from '../src/observability/metrics.js';
import {
  dashboardExpressions,
  dashboardsDir,
  panelsOf,
  readDashboards,
  withGrafanaVariables,
} from './helpers/grafana.js';
import { rulesFile } from './helpers/prometheus.js';

/**
 * The metric names an expression selects (Grafana's variables substituted
 * first). Throws on a syntax error or a selector without a metric name.
 */
function metricNames(expr: string): string[] {
  const promql = withGrafanaVariables(expr, '5m');
  const names: string[] = [];
  parser.parse(promql).iterate({
    enter(node) {
      if (node.type.isError)
        throw new Error(`PromQL syntax error at ${node.from} in: ${promql.slice(0, 200)}`);
      if (node.name !== 'VectorSelector') return;
      const name = node.node.getChild('Identifier');
      if (!name) throw new Error(`a selector without a metric name in: ${promql}`);
      names.push(promql.slice(name.from, name.to));
    },
  });
  return names;
}

async function catalogue(): Promise<Set<string>> {
  const metrics = await new Metrics().registry.getMetricsAsJSON();
  return new Set(
    metrics.flatMap((m) =>
      String(m.type) === 'histogram'
        ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`]
        : [m.name],
    ),
  );
}

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}
const rules = (
  YAML.parse(readFileSync(rulesFile, 'utf8')) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);
const recorded = new Set(rules.flatMap((r) => r.record ?? []));
/** Series Prometheus makes itself: scrape health and alert state. */
const PROMETHEUS_SERIES = new Set(['up', 'ALERTS']);

const dashboards = readDashboards();

describe('metric names in shipped PromQL', () => {
  it('are read from selectors only, not functions, labels or keywords', () => {
    expect(
      metricNames(
        'sum by (source) (rate(canopy_x_total{source=~"$s"}[$__rate_interval])) / on (job) canopy:y:rate5m or count(ALERTS) > time()',
      ),
    ).toEqual(['canopy_x_total', 'canopy:y:rate5m', 'ALERTS']);
    expect(() => metricNames('sum(rate(canopy_x_total[5m])')).toThrow(/syntax error/);
    expect(() => metricNames('{__name__="canopy_x_total"}')).toThrow(/without a metric name/);
  });

  it('in rules.yml use only catalogue metrics, up, and recording rules', async () => {
    const known = await catalogue();
    const unknown = rules.flatMap((rule) =>
      metricNames(rule.expr)
        .filter((name) => !known.has(name) && !recorded.has(name) && !PROMETHEUS_SERIES.has(name))
        .map((name) => `${rule.record ?? rule.alert}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('in the Grafana dashboards use only catalogue metrics, recording rules, up and ALERTS', async () => {
    const known = await catalogue();
    const expressions = dashboardExpressions();
    expect(expressions.length).toBeGreaterThan(30);
    const unknown = expressions.flatMap(({ where, expr }) =>
      metricNames(expr)
        .filter((name) => !known.has(name) && !recorded.has(name) && !PROMETHEUS_SERIES.has(name))
        .map((name) => `${where}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });
});

describe('Grafana dashboards', () => {
  it('are the four of the issue, with unique uids, each panel on the datasource variable', () => {
    expect(dashboards.map((d) => d.file).sort()).toEqual([
      'alerts-workflows.json',
      'ingest.json',
      'lake-quality.json',
      'overview.json',
    ]);
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(4);
    for (const { file, dashboard } of dashboards) {
      expect(dashboard.description, file).toBeTruthy();
      for (const panel of panelsOf(dashboard.panels).filter((p) => p.type !== 'row'))
        expect(panel.datasource?.uid, `${file}: ${panel.title}`).toBe('${datasource}');
    }
  });

  it('are provisioned by a file provider, with a Prometheus data source', () => {
    const provisioning = path.resolve(dashboardsDir, '../provisioning');
    const providers = YAML.parse(
      readFileSync(path.join(provisioning, 'dashboards/canopy.yml'), 'utf8'),
    ) as { providers: { type: string; options: { path: string } }[] };
    expect(providers.providers.map((p) => p.type)).toEqual(['file']);
    const sources = YAML.parse(
      readFileSync(path.join(provisioning, 'datasources/prometheus.yml'), 'utf8'),
    ) as { datasources: { type: string }[] };
    expect(sources.datasources.map((d) => d.type)).toEqual(['prometheus']);
  });
});
