/** A preset select plus an optional custom from/to, all kept in the page's URL. */
import { useEffect, useState } from 'preact/hooks';
import { formatTime, fromLocalInput, toLocalInput } from '../format.js';
import { RANGE_PRESETS, type TimeRange } from '../ranges.js';

export function RangePicker({
  range,
  onPreset,
  onFixed,
  idPrefix,
}: {
  range: TimeRange;
  onPreset: (preset: string) => void;
  onFixed: (from: number, to: number) => void;
  idPrefix: string;
}) {
  const [from, setFrom] = useState(toLocalInput(range.from));
  const [to, setTo] = useState(toLocalInput(range.to));
  useEffect(() => {
    setFrom(toLocalInput(range.from));
    setTo(toLocalInput(range.to));
  }, [range.from, range.to]);
  const [problem, setProblem] = useState<string | null>(null);

  return (
    <fieldset class="range-picker">
      <legend>Time range</legend>
      <label>
        Range{' '}
        <select
          id={`${idPrefix}-preset`}
          value={range.preset ?? 'custom'}
          onChange={(e) => {
            const value = e.currentTarget.value;
            if (value !== 'custom') onPreset(value);
          }}
        >
          {RANGE_PRESETS.map((p) => (
            <option key={p.id} value={p.id}>
              {p.label}
            </option>
          ))}
          <option value="custom">Custom (from – to)</option>
        </select>
      </label>
      <form
        class="range-custom"
        onSubmit={(e) => {
          e.preventDefault();
          const a = fromLocalInput(from);
          const b = fromLocalInput(to);
          if (a === null || b === null || a >= b) {
            setProblem('Choose a start before the end.');
            return;
          }
          setProblem(null);
          onFixed(a, b);
        }}
      >
        <label>
          From{' '}
          <input
            type="datetime-local"
            value={from}
            onInput={(e) => setFrom(e.currentTarget.value)}
          />
        </label>
        <label>
          To{' '}
          <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </label>
        <button type="submit">Apply</button>
      </form>
      {problem ? (
        <p class="field-error" role="alert">
          {problem}
        </p>
      ) : null}
      <p class="muted range-summary">
        {formatTime(new Date(range.from).toISOString())} –{' '}
        {formatTime(new Date(range.to).toISOString())}
      </p>
    </fieldset>
  );
}
