/**
 * A uPlot chart sized to its container. uPlot draws on canvas and copes with
 * 100k points; the pages still ask the server for about one point per pixel
 * (`points` ≈ width), so wide ranges arrive downsampled.
 *
 * Dragging across the plot selects a time range: with `onSelectRange` the
 * page fetches that range at full resolution (zoom), instead of uPlot only
 * stretching the points it has. Double-click calls `onReset`.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { cssVar, useEffectiveTheme } from '../theme.js';

export interface ChartProps {
  /** Accessible name, also shown as the caption. */
  title: string;
  /** x in epoch milliseconds (or plain numbers with `xTime: false`), then one array per series. */
  data: uPlot.AlignedData;
  /** The y series (the x series is added here). Keep the array stable between renders: a new one rebuilds the chart. */
  series: uPlot.Series[];
  bands?: uPlot.Band[];
  height?: number;
  xTime?: boolean;
  yLabel?: string;
  /** The x extent to show (e.g. the chosen time range) instead of the data's own. */
  xRange?: [number, number];
  /** Drawn points, for the caption and for tests (`data-points`). */
  pointCount: number;
  onSelectRange?: (fromMs: number, toMs: number) => void;
  onReset?: () => void;
}

export function Chart(props: ChartProps) {
  const { title, data, series, bands, height = 280, xTime = true, yLabel, pointCount } = props;
  const container = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(props);
  latest.current = props;
  const theme = useEffectiveTheme();

  useEffect(() => {
    const el = container.current;
    if (!el) return undefined;
    const text = cssVar('--muted');
    const grid = cssVar('--grid');
    const axis = (label?: string): uPlot.Axis => ({
      stroke: text,
      grid: { stroke: grid, width: 1 },
      ticks: { stroke: grid, width: 1 },
      ...(label ? { label } : {}),
    });
    const options: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      ms: 1,
      scales: {
        x: {
          time: xTime,
          range: (_u, min, max) => latest.current.xRange ?? [min, max],
        },
      },
      series: [{ label: xTime ? 'time' : 'x' }, ...series],
      axes: [axis(), axis(yLabel)],
      ...(bands ? { bands } : {}),
      legend: { live: true },
      cursor: {
        drag: { x: true, y: false, setScale: latest.current.onSelectRange === undefined },
      },
      hooks: {
        setSelect: [
          (u) => {
            const onSelect = latest.current.onSelectRange;
            if (!onSelect || u.select.width < 4) return;
            const from = u.posToVal(u.select.left, 'x');
            const to = u.posToVal(u.select.left + u.select.width, 'x');
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            onSelect(Math.round(from), Math.round(to));
          },
        ],
      },
    };
    const chart = new uPlot(options, latest.current.data, el);
    plot.current = chart;
    const onDblClick = (): void => latest.current.onReset?.();
    chart.over.addEventListener('dblclick', onDblClick);
    const resize = new ResizeObserver(() => {
      chart.setSize({ width: Math.max(200, el.clientWidth), height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      chart.over.removeEventListener('dblclick', onDblClick);
      chart.destroy();
      plot.current = null;
    };
  }, [series, bands, height, xTime, yLabel, theme]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data]);

  return (
    <figure class="chart" data-points={pointCount}>
      <figcaption>
        {title}
        <span class="muted"> · {pointCount.toLocaleString()} points</span>
      </figcaption>
      <div ref={container} class="chart-canvas" />
    </figure>
  );
}
