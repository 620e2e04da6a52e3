/**
 * Pipeline health: ingest rate, dead letters by reason (with their raw
 * payloads), lake partitions, quality results over time, workflow runs and
 * deadline misses.
 */
import { useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { getJson } from '../api.js';
import { Chart } from '../components/chart.js';
import { Empty, Loaded, TableWrap } from '../components/states.js';
import {
  formatAgo,
  formatBytes,
  formatCount,
  formatDuration,
  formatRate,
  formatTime,
} from '../format.js';
import { useLive } from '../live.js';
import { useResource } from '../resource.js';
import { PALETTE } from '../theme.js';
import type { DeadLetter, Pipeline, QualityResponse } from '../types.js';

export function PipelinePage() {
  const pipeline = useResource(
    (signal) => getJson<Pipeline>('/api/pipeline', {}, signal),
    [],
    10_000,
  );
  const [rate, setRate] = useState<number | null>(null);
  useLive('stats', (s) => setRate(s.readingsPerSecond));

  return (
    <section aria-labelledby="pipeline-title">
      <h1 id="pipeline-title">Pipeline health</h1>
      <Loaded resource={pipeline} what="pipeline health">
        {(data) => (
          <>
            <Ingest data={data} rate={rate} />
            <DeadLetters data={data} />
            <Workflows data={data} />
            <Partitions data={data} />
            <h2>Data quality</h2>
            <Quality data={data.quality} />
          </>
        )}
      </Loaded>
    </section>
  );
}

const ingestSeries: uPlot.Series[] = [
  { label: 'readings per minute', stroke: PALETTE[0], fill: `${PALETTE[0]}33`, width: 1.5 },
];

function Ingest({ data, rate }: { data: Pipeline; rate: number | null }) {
  const chartData = useMemo(
    () =>
      [
        data.ingest.perMinute.map((p) => p[0]),
        data.ingest.perMinute.map((p) => p[1]),
      ] as uPlot.AlignedData,
    [data],
  );
  const total = data.ingest.perMinute.reduce((n, p) => n + p[1], 0);
  return (
    <>
      <h2>Ingest</h2>
      <p>
        <span class="figure" data-testid="pipeline-rate">
          {formatRate(rate ?? data.ingest.readingsPerSecond)}
        </span>{' '}
        readings per second now; {formatCount(total)} in the last hour.
      </p>
      {data.ingest.perMinute.length === 0 ? (
        <Empty title="Nothing ingested in the last hour.">
          Start the simulator with <code>canopy simulate</code> or send readings to{' '}
          <code>POST /api/data</code>.
        </Empty>
      ) : (
        <Chart
          title="Readings per minute, last 60 minutes"
          data={chartData}
          series={ingestSeries}
          height={180}
          pointCount={data.ingest.perMinute.length}
        />
      )}
    </>
  );
}

function DeadLetters({ data }: { data: Pipeline }) {
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <h2>Dead letters</h2>
      {data.deadLetters.total === 0 ? (
        <p>
          No dead letters in the lake for the last 24 hours (they are exported each minute): every
          message was accepted.
        </p>
      ) : (
        <>
          <p>{formatCount(data.deadLetters.total)} turned away in the last 24 hours, by reason:</p>
          <TableWrap label="Dead letters by reason">
            <table class="data-table">
              <thead>
                <tr>
                  <th scope="col">Reason</th>
                  <th scope="col" class="num">
                    Count
                  </th>
                  <th scope="col">Payloads</th>
                </tr>
              </thead>
              <tbody>
                {data.deadLetters.byReason.map((r) => (
                  <tr key={r.reason}>
                    <th scope="row">
                      <code>{r.reason}</code>
                    </th>
                    <td class="num">{formatCount(r.count)}</td>
                    <td>
                      <button
                        type="button"
                        aria-expanded={open === r.reason}
                        aria-controls="dead-letter-payloads"
                        onClick={() => setOpen(open === r.reason ? null : r.reason)}
                      >
                        {open === r.reason ? 'Hide' : 'Show'} latest
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </TableWrap>
          <div id="dead-letter-payloads">{open ? <Payloads reason={open} /> : null}</div>
        </>
      )}
    </>
  );
}

function Payloads({ reason }: { reason: string }) {
  const letters = useResource(
    (signal) => getJson<{ data: DeadLetter[] }>('/api/deadletters', { reason, limit: 10 }, signal),
    [reason],
  );
  return (
    <Loaded resource={letters} what={`dead letters for ${reason}`}>
      {(data) =>
        data.data.length === 0 ? (
          <p>
            None left in the hot store for <code>{reason}</code>; older ones are in the lake (the{' '}
            <code>dead_letters</code> view on the History page).
          </p>
        ) : (
          <ul class="payloads" aria-label={`Latest dead letters for ${reason}`}>
            {data.data.map((d) => (
              <li key={d.id}>
                <p>
                  <time dateTime={d.received_at}>{formatTime(d.received_at)}</time> from{' '}
                  <code>{d.source}</code>
                  {d.origin ? (
                    <>
                      {' '}
                      (<code>{d.origin}</code>)
                    </>
                  ) : null}
                  : {d.message}
                </p>
                <pre>{d.raw ?? '(no payload kept)'}</pre>
              </li>
            ))}
          </ul>
        )
      }
    </Loaded>
  );
}

function Workflows({ data }: { data: Pipeline }) {
  const runs = data.workflows.runs;
  return (
    <>
      <h2>Workflow runs</h2>
      <p>
        Deadline misses:{' '}
        <strong class={data.workflows.deadlineMisses > 0 ? 'text-bad' : undefined}>
          {formatCount(data.workflows.deadlineMisses)}
        </strong>
      </p>
      {!data.workflows.enabled ? (
        <p>
          Workflows are turned off in this Canopy (<code>workflows.enabled: false</code>): the lake
          jobs run only when started by hand.
        </p>
      ) : runs.length === 0 ? (
        <p>
          No runs yet. Workflows run on their schedules (housekeeping every minute); start one with{' '}
          <code>canopy jobs run hourly-lake</code>.
        </p>
      ) : (
        <TableWrap label="Workflow runs">
          <table class="data-table">
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">State</th>
                <th scope="col">Trigger</th>
                <th scope="col">Started</th>
                <th scope="col" class="num">
                  Took
                </th>
                <th scope="col">Deadline</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {runs.map((r) => (
                <tr key={r.id}>
                  <th scope="row">{r.workflow}</th>
                  <td>
                    <span class={`run-state run-${r.state}`}>{r.state}</span>
                  </td>
                  <td>{r.trigger}</td>
                  <td title={formatTime(r.created_at)}>{formatAgo(r.created_at)}</td>
                  <td class="num">{formatDuration(r.duration_ms)}</td>
                  <td>{r.deadline_missed ? <strong class="text-bad">missed</strong> : 'met'}</td>
                  <td>{r.error ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </>
  );
}

function Partitions({ data }: { data: Pipeline }) {
  const partitions = data.lake.partitions;
  return (
    <>
      <h2>Lake partitions</h2>
      {partitions.length === 0 ? (
        <p>
          Nothing in the lake yet. The bronze export runs every minute (or run{' '}
          <code>canopy jobs run bronze-export</code>); silver and gold follow hourly.
        </p>
      ) : (
        <TableWrap label="Lake partitions">
          <table class="data-table">
            <thead>
              <tr>
                <th scope="col">Layer</th>
                <th scope="col">Table</th>
                <th scope="col">Date</th>
                <th scope="col" class="num">
                  Files
                </th>
                <th scope="col" class="num">
                  Rows
                </th>
                <th scope="col" class="num">
                  Size
                </th>
              </tr>
            </thead>
            <tbody>
              {partitions.map((p) => (
                <tr key={`${p.layer}/${p.table}/${p.date ?? ''}`}>
                  <td>{p.layer}</td>
                  <th scope="row">{p.table}</th>
                  <td>{p.date ?? '—'}</td>
                  <td class="num">{formatCount(p.files)}</td>
                  <td class="num">{formatCount(p.rows)}</td>
                  <td class="num">{formatBytes(p.bytes)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </>
  );
}

function Quality({ data }: { data: QualityResponse }) {
  const chart = useMemo(() => {
    const runs = [...data.runs].sort((a, b) => a.finished_at.localeCompare(b.finished_at));
    const suites = [...new Set(runs.flatMap((r) => r.suites.map((s) => s.suite)))].sort();
    const xs = runs.map((r) => Date.parse(r.finished_at));
    const columns = suites.map((suite) =>
      runs.map((r) => r.suites.find((s) => s.suite === suite)?.failed ?? null),
    );
    const series: uPlot.Series[] = suites.map((suite, i) => ({
      label: `${suite} failed`,
      stroke: PALETTE[(i + 4) % PALETTE.length],
      width: 1.5,
      points: { show: true, size: 6 },
    }));
    return { data: [xs, ...columns] as uPlot.AlignedData, series, count: runs.length };
  }, [data]);

  if (data.runs.length === 0)
    return (
      <p>
        No quality runs yet. Run <code>canopy jobs run quality</code>, or wait for the daily
        pipeline.
      </p>
    );
  return (
    <>
      <TableWrap label="Latest result per suite">
        <table class="data-table">
          <thead>
            <tr>
              <th scope="col">Suite</th>
              <th scope="col">Table</th>
              <th scope="col">Result</th>
              <th scope="col" class="num">
                Failed / expectations
              </th>
              <th scope="col">Run</th>
            </tr>
          </thead>
          <tbody>
            {data.suites.map((s) => (
              <tr key={s.suite}>
                <th scope="row">{s.suite}</th>
                <td>{s.table}</td>
                <td>{s.success ? 'passed' : <strong class="text-bad">failed</strong>}</td>
                <td class="num">
                  {s.failed} / {s.expectations}
                </td>
                <td title={s.run_id}>{formatAgo(s.finished_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
      <Chart
        title="Failed expectations per run"
        data={chart.data}
        series={chart.series}
        height={180}
        pointCount={chart.count}
      />
    </>
  );
}
