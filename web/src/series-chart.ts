/**
 * /api/series answers → uPlot data: one chart per measure, one line per
 * sensor, a min–max band when a single downsampled sensor is shown, and the
 * buckets holding imputed values as hollow amber circles over the line.
 */
import uPlot from 'uplot';
import { IMPUTED_COLOR, PALETTE } from './theme.js';
import type { SeriesResponse } from './types.js';

export interface ChartSpec {
  key: string;
  title: string;
  unit: string | null;
  data: uPlot.AlignedData;
  series: uPlot.Series[];
  bands?: uPlot.Band[];
  pointCount: number;
  imputedCount: number;
}

type Series = SeriesResponse['series'][number];

export function buildSeriesCharts(response: SeriesResponse): ChartSpec[] {
  const groups = new Map<string, Series[]>();
  for (const s of response.series) {
    const key = s.sensor_type ?? s.unit ?? 'value';
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  return [...groups].map(([key, members]) => buildGroup(key, members, response.downsampled));
}

function buildGroup(key: string, members: Series[], downsampled: boolean): ChartSpec {
  const tables: uPlot.AlignedData[] = [];
  const series: uPlot.Series[] = [];
  const withBand = downsampled && members.length === 1;
  let pointCount = 0;
  let imputedCount = 0;

  members.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const xs = s.points.map((p) => p[0]);
    const avg = s.points.map((p) => p[1]);
    pointCount += avg.filter((v) => v !== null).length;
    const columns: (number | null)[][] = [avg];
    series.push({ label: s.sensor_id, stroke: color, width: 1.5 });
    if (withBand) {
      columns.push(
        s.points.map((p) => p[2]),
        s.points.map((p) => p[3]),
      );
      series.push(
        { label: 'min', stroke: `${color}66`, width: 1 },
        { label: 'max', stroke: `${color}66`, width: 1 },
      );
    }
    const imputed = s.points.map((p) => (p[4] > 0 ? p[1] : null));
    const imputedHere = imputed.filter((v) => v !== null).length;
    if (imputedHere > 0) {
      imputedCount += imputedHere;
      columns.push(imputed);
      series.push({
        label: `${s.sensor_id} imputed`,
        stroke: IMPUTED_COLOR,
        paths: () => null,
        points: { show: true, size: 8, width: 2, stroke: IMPUTED_COLOR, fill: 'transparent' },
      });
    }
    tables.push([xs, ...columns] as uPlot.AlignedData);
  });

  const data = tables.length === 1 ? tables[0]! : uPlot.join(tables);
  const first = members[0];
  const bands: uPlot.Band[] | undefined = withBand
    ? [{ series: [3, 2], fill: `${PALETTE[0]}22` }]
    : undefined;
  return {
    key,
    title: `${key}${first?.unit ? ` (${first.unit})` : ''}`,
    unit: first?.unit ?? null,
    data,
    series,
    ...(bands ? { bands } : {}),
    pointCount,
    imputedCount,
  };
}
