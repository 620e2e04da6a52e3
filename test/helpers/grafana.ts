/** The Canopy Grafana dashboards (deploy/grafana/dashboards) and the PromQL in them, for tests. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const dashboardsDir = path.resolve(import.meta.dirname, '../../deploy/grafana/dashboards');

export interface Panel {
  title?: string;
  type: string;
  panels?: Panel[];
  datasource?: { uid?: string };
  targets?: { expr?: string }[];
}

export interface Dashboard {
  uid: string;
  title: string;
  description?: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string } }[] };
}

export function readDashboards(): { file: string; dashboard: Dashboard }[] {
  return readdirSync(dashboardsDir)
    .filter((f) => f.endsWith('.json'))
    .map((file) => ({
      file,
      dashboard: JSON.parse(readFileSync(path.join(dashboardsDir, file), 'utf8')) as Dashboard,
    }));
}

/** Every panel, rows' nested panels included. */
export const panelsOf = (panels: Panel[]): Panel[] =>
  panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);

/**
 * Each PromQL expression of the dashboards, named for failure messages: panel
 * targets, and the selector of `label_values(<selector>, <label>)` variable
 * queries (Grafana's own syntax, not PromQL).
 */
export function dashboardExpressions(): { where: string; expr: string }[] {
  return readDashboards().flatMap(({ file, dashboard }) => [
    ...panelsOf(dashboard.panels).flatMap((panel) =>
      (panel.targets ?? []).flatMap((t) =>
        t.expr === undefined ? [] : [{ where: `${file}: ${panel.title}`, expr: t.expr }],
      ),
    ),
    ...dashboard.templating.list.flatMap((v) => {
      if (v.type !== 'query') return [];
      const query = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
      const selector = /^label_values\((.+),\s*\w+\)$/.exec(query)?.[1] ?? query;
      return [{ where: `${file}: variable ${v.name}`, expr: selector }];
    }),
  ]);
}

/**
 * An expression as Grafana would send it: interval variables become `interval`,
 * other variables (`$instance`, only inside label matchers) match everything.
 */
export function withGrafanaVariables(expr: string, interval: string): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, interval)
    .replace(/\$\{?\w+\}?/g, '.*');
}
