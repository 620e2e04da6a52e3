/**
 * docs/metrics.md and the naming rules, both read from the registry of a
 * `new Metrics()`, so the catalogue cannot drift from the code: a test
 * compares the file with `renderMetricsDocs()` and checks every metric
 * against `metricNamingProblems`.
 */
import { Metrics } from './metrics.js';

export interface MetricDescription {
  name: string;
  type: string;
  help: string;
  labels: readonly string[];
}

/** Canopy's own metrics (prom-client's default process metrics left out), sorted by name. */
export function describeMetrics(): MetricDescription[] {
  const metrics = new Metrics({ defaultMetrics: false });
  return metrics.registry
    .getMetricsAsArray()
    .map((metric) => ({
      name: metric.name,
      type: String(metric.type),
      help: metric.help,
      // Set by every prom-client metric; not in its MetricObject type.
      labels: (metric as { labelNames?: readonly string[] }).labelNames ?? [],
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Labels that would make one series per sensor or device: unbounded. */
const PER_ENTITY_LABEL = /(^|_)(sensor|device)(_?id)?$|_id$|^id$/;

/**
 * Prometheus naming rules as Canopy applies them: `canopy_` prefix, snake
 * case, counters end in `_total` (and only counters), durations are
 * histograms in `_seconds`, no per-entity labels. Returns the problems found.
 */
export function metricNamingProblems(metric: MetricDescription): string[] {
  const problems: string[] = [];
  const { name, type } = metric;
  if (!name.startsWith('canopy_')) problems.push('name must start with canopy_');
  if (!/^[a-z][a-z0-9_]*$/.test(name)) problems.push('name must be snake_case');
  if (type === 'counter' && !name.endsWith('_total')) problems.push('a counter ends in _total');
  if (type !== 'counter' && name.endsWith('_total')) problems.push('only counters end in _total');
  if (type === 'histogram' && /duration|latency/.test(name) && !name.endsWith('_seconds'))
    problems.push('a duration histogram ends in _seconds');
  if (/_(ms|milliseconds|millis|kb|mb)(_|$)/.test(name))
    problems.push('use base units (seconds, bytes)');
  for (const label of metric.labels) {
    if (PER_ENTITY_LABEL.test(label))
      problems.push(`label ${label} would be one series per entity`);
    if (!/^[a-z][a-z0-9_]*$/.test(label)) problems.push(`label ${label} must be snake_case`);
  }
  return problems;
}

export function renderMetricsDocs(): string {
  const cell = (text: string) => text.replaceAll('|', '\\|');
  const lines = [
    '# Metrics',
    '',
    '<!-- Generated from src/observability/metrics.ts by `npm run docs`. Do not edit by hand. -->',
    '',
    'Canopy serves Prometheus metrics at `GET /metrics`. Names follow the Prometheus conventions:',
    'the `canopy_` prefix, base units in the name (`_seconds`, `_bytes`), `_total` for counters.',
    'Label values are bounded: no label names a sensor or device, `sensor_type` is a configured or',
    'built-in type (else `other`, or `none` for a reading without a type), `source` is `http`,',
    '`mqtt`, `mqtt-client`, `file`, `landing` or `poll:<configured name>`, and `route` is the route',
    'pattern (`unmatched` for 404s), never the raw URL.',
    '',
    'Some gauges are read when `/metrics` is requested (at scrape time): the hot-store row count',
    'on each scrape, the quality results from the lake on each scrape, the free disk space of the',
    'data and local lake folders on each scrape, and the lake catalogue at most once a minute (a',
    'scrape never fails or waits long because the lake or a disk is slow or down;',
    '`canopy_lake_catalog_last_success_timestamp_seconds` tells how fresh the lake gauges are).',
    '',
    '| name | type | labels | description |',
    '| --- | --- | --- | --- |',
  ];
  for (const m of describeMetrics()) {
    const labels = m.labels.length === 0 ? '—' : m.labels.map((l) => `\`${l}\``).join(', ');
    lines.push(`| \`${m.name}\` | ${m.type} | ${labels} | ${cell(m.help)} |`);
  }
  lines.push(
    '',
    "Also exported: prom-client's default process and Node.js metrics with the same prefix",
    '(`canopy_process_cpu_seconds_total`, `canopy_process_resident_memory_bytes`,',
    '`canopy_nodejs_eventloop_lag_seconds`, `canopy_nodejs_gc_duration_seconds`, …).',
    '',
  );
  return lines.join('\n');
}
