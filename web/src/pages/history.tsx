/**
 * History: read-only SQL over the lake with a date range, results as a table
 * and a chart, and the same query as a CSV download (POST /api/query with
 * `Accept: text/csv`).
 */
import { useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { ApiError, postJson, request } from '../api.js';
import { Chart } from '../components/chart.js';
import { Empty, ErrorState, TableWrap } from '../components/states.js';
import { PALETTE } from '../theme.js';
import type { QueryResponse } from '../types.js';

const DAY_MS = 86_400_000;
const SHOWN_ROWS = 500;

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Example queries over the range [from, to) (dates, UTC). */
const EXAMPLES: { label: string; sql: (from: string, to: string) => string }[] = [
  {
    label: 'Hourly mean per type',
    sql: (
      from,
      to,
    ) => `SELECT date_trunc('hour', event_time) AS hour, sensor_type, avg(value) AS mean
FROM bronze_readings
WHERE event_time >= TIMESTAMP '${from}' AND event_time < TIMESTAMP '${to}'
GROUP BY ALL
ORDER BY hour, sensor_type`,
  },
  {
    label: 'Readings per minute',
    sql: (from, to) => `SELECT date_trunc('minute', event_time) AS minute, count(*) AS readings
FROM bronze_readings
WHERE event_time >= TIMESTAMP '${from}' AND event_time < TIMESTAMP '${to}'
GROUP BY ALL
ORDER BY minute`,
  },
  {
    label: 'Latest readings',
    sql: (from, to) => `SELECT event_time, sensor_id, sensor_type, location, value, unit
FROM bronze_readings
WHERE event_time >= TIMESTAMP '${from}' AND event_time < TIMESTAMP '${to}'
ORDER BY event_time DESC
LIMIT 100`,
  },
  {
    label: 'Daily summary (gold)',
    sql: (from, to) => `SELECT *
FROM gold_daily_summary
WHERE date >= DATE '${from}' AND date < DATE '${to}'
ORDER BY date`,
  },
  {
    label: 'Dead letters by reason',
    sql: (from, to) => `SELECT reason, count(*) AS letters
FROM dead_letters
WHERE date >= DATE '${from}' AND date < DATE '${to}'
GROUP BY ALL
ORDER BY letters DESC`,
  },
];

export function HistoryPage() {
  const today = Date.now();
  const [from, setFrom] = useState(isoDate(today - 6 * DAY_MS));
  const [to, setTo] = useState(isoDate(today));
  const toExclusive = (date: string) => isoDate(Date.parse(date) + DAY_MS);
  const [sql, setSql] = useState(() => EXAMPLES[0]!.sql(from, toExclusive(to)));
  const [result, setResult] = useState<QueryResponse | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState<'run' | 'csv' | null>(null);
  const [csvNote, setCsvNote] = useState<string | null>(null);

  const run = async () => {
    setBusy('run');
    setError(null);
    try {
      setResult(await postJson<QueryResponse>('/api/query', { sql }));
    } catch (err) {
      setResult(null);
      setError(err instanceof ApiError ? err : new ApiError(0, 'CLIENT', String(err)));
    } finally {
      setBusy(null);
    }
  };

  const downloadCsv = async () => {
    setBusy('csv');
    setError(null);
    setCsvNote(null);
    try {
      const response = await request('/api/query', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/csv' },
        body: JSON.stringify({ sql }),
      });
      if (response.headers.get('x-canopy-truncated') === 'true')
        setCsvNote(
          'The CSV holds the first 10,000 rows only: aggregate or add a WHERE to get all.',
        );
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement('a');
      link.href = url;
      link.download = `canopy-query-${new Date().toISOString().replace(/[:.]/g, '-')}.csv`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'CLIENT', String(err)));
    } finally {
      setBusy(null);
    }
  };

  return (
    <section aria-labelledby="history-title">
      <h1 id="history-title">History</h1>
      <p>
        Read-only SQL over the lake: <code>readings</code> (silver), <code>bronze_readings</code>,{' '}
        <code>anomalies</code>, <code>gold_sensor_5min</code>, <code>gold_location_hourly</code>,{' '}
        <code>gold_daily_summary</code>, <code>gold_device_summary</code>, <code>dead_letters</code>
        . Times are UTC.
      </p>
      <form
        class="controls"
        aria-label="Example query over a date range"
        onSubmit={(e) => {
          e.preventDefault();
          const chosen = EXAMPLES[Number(new FormData(e.currentTarget).get('example'))];
          if (chosen) setSql(chosen.sql(from, toExclusive(to)));
        }}
      >
        <label>
          From{' '}
          <input
            type="date"
            value={from}
            max={to}
            onInput={(e) => setFrom(e.currentTarget.value)}
          />
        </label>
        <label>
          To{' '}
          <input type="date" value={to} min={from} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <label>
          Example{' '}
          <select name="example">
            {EXAMPLES.map((x, i) => (
              <option key={x.label} value={i}>
                {x.label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit">Put in editor</button>
      </form>
      <form
        class="sql-form"
        onSubmit={(e) => {
          e.preventDefault();
          void run();
        }}
      >
        <label for="sql" class="block-field">
          SQL <span class="muted">(Ctrl+Enter runs)</span>
        </label>
        <textarea
          id="sql"
          class="sql"
          rows={8}
          spellcheck={false}
          value={sql}
          onInput={(e) => setSql(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              void run();
            }
          }}
        />
        <div class="toolbar">
          <button type="submit" disabled={busy !== null || sql.trim() === ''}>
            {busy === 'run' ? 'Running…' : 'Run query'}
          </button>
          <button
            type="button"
            disabled={busy !== null || sql.trim() === ''}
            onClick={() => void downloadCsv()}
          >
            {busy === 'csv' ? 'Preparing…' : 'Download CSV'}
          </button>
        </div>
      </form>
      {csvNote ? (
        <p class="muted" role="status">
          {csvNote}
        </p>
      ) : null}
      {error ? (
        <ErrorState
          error={
            error.code === 'CANOPY_QUERY_FAILED' &&
            /No files found|does not exist/i.test(error.message)
              ? new ApiError(
                  error.status,
                  error.code,
                  error.message,
                  'That table has no files yet: the bronze export runs every minute, silver and gold hourly (or run `canopy jobs run silver`).',
                )
              : error
          }
          what="the query result"
        />
      ) : null}
      {result ? <Result result={result} /> : null}
    </section>
  );
}

function display(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function Result({ result }: { result: QueryResponse }) {
  if (result.rows.length === 0)
    return (
      <Empty title="The query returned no rows.">Widen the date range or check the filters.</Empty>
    );
  const shown = result.rows.slice(0, SHOWN_ROWS);
  return (
    <>
      <p role="status" data-testid="query-status">
        {result.row_count} row{result.row_count === 1 ? '' : 's'} in {Math.round(result.elapsed_ms)}{' '}
        ms
        {result.truncated
          ? ' (truncated: the server returns at most this many; add LIMIT or aggregate)'
          : ''}
        {result.rows.length > SHOWN_ROWS ? `; the table shows the first ${SHOWN_ROWS}` : ''}.
      </p>
      <ResultChart result={result} />
      <TableWrap label="Query result">
        <table class="data-table" data-testid="query-result">
          <thead>
            <tr>
              {result.columns.map((c) => (
                <th key={c.name} scope="col" title={c.type}>
                  {c.name}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((row, i) => (
              <tr key={i}>
                {row.map((cell, j) => (
                  <td key={j} class={typeof cell === 'number' ? 'num' : undefined}>
                    {display(cell)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </TableWrap>
    </>
  );
}

const NUMERIC =
  /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|REAL|DECIMAL)/i;
const TEMPORAL = /^(TIMESTAMP|DATE)/i;

/**
 * A line chart when the first column is a time or a number and at least one
 * other column is numeric; with one text column besides (e.g. sensor_type),
 * one line per value of it.
 */
function ResultChart({ result }: { result: QueryResponse }) {
  const spec = useMemo(() => {
    const [first, ...rest] = result.columns;
    if (!first) return null;
    const xTime = TEMPORAL.test(first.type);
    if (!xTime && !NUMERIC.test(first.type)) return null;
    const numeric = rest.map((c, i) => ({ c, i: i + 1 })).filter(({ c }) => NUMERIC.test(c.type));
    const text = rest.map((c, i) => ({ c, i: i + 1 })).filter(({ c }) => !NUMERIC.test(c.type));
    if (numeric.length === 0) return null;
    const xOf = (row: unknown[]) => (xTime ? Date.parse(String(row[0])) : Number(row[0]));
    const rows = result.rows.filter((r) => Number.isFinite(xOf(r))).sort((a, b) => xOf(a) - xOf(b));
    let labels: string[];
    let columns: (number | null)[][];
    const xs = [...new Set(rows.map(xOf))];
    const at = new Map(xs.map((x, i) => [x, i]));
    const num = (v: unknown) => (typeof v === 'number' ? v : null);
    if (text.length === 1 && numeric.length === 1) {
      const split = text[0]!.i;
      const valueAt = numeric[0]!.i;
      labels = [...new Set(rows.map((r) => display(r[split])))].slice(0, PALETTE.length);
      columns = labels.map(() => Array<number | null>(xs.length).fill(null));
      for (const r of rows) {
        const k = labels.indexOf(display(r[split]));
        if (k >= 0) columns[k]![at.get(xOf(r))!] = num(r[valueAt]);
      }
    } else {
      const used = numeric.slice(0, PALETTE.length);
      labels = used.map(({ c }) => c.name);
      columns = used.map(() => Array<number | null>(xs.length).fill(null));
      for (const r of rows) used.forEach(({ i }, k) => (columns[k]![at.get(xOf(r))!] = num(r[i])));
    }
    const series: uPlot.Series[] = labels.map((label, k) => ({
      label,
      stroke: PALETTE[k % PALETTE.length],
      width: 1.5,
    }));
    return {
      data: [xs, ...columns] as uPlot.AlignedData,
      series,
      xTime,
      count: columns.reduce((n, c) => n + c.filter((v) => v !== null).length, 0),
    };
  }, [result]);
  if (!spec || spec.data[0].length < 2) return null;
  return (
    <Chart
      title="Query result"
      data={spec.data}
      series={spec.series}
      xTime={spec.xTime}
      height={240}
      pointCount={spec.count}
    />
  );
}
