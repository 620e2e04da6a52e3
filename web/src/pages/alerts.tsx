/**
 * Alerts: the list with filters, and one alert's detail with its history,
 * notifications and the acknowledge / snooze / resolve actions. Both follow
 * the `alert` events of /api/live.
 */
import { useState } from 'preact/hooks';
import { ApiError, getJson, postJson } from '../api.js';
import { Empty, ErrorState, Loaded, TableWrap } from '../components/states.js';
import { formatAgo, formatTime, formatValue } from '../format.js';
import { useLive } from '../live.js';
import { useResource } from '../resource.js';
import { usePrincipal } from '../session.js';
import { href, navigate, type Route } from '../router.js';
import type { Alert, AlertDetail } from '../types.js';

const STATE_FILTERS = [
  { value: 'active', label: 'Active (open, escalated, acknowledged)' },
  { value: 'open,escalated', label: 'Needing attention (open, escalated)' },
  { value: 'acknowledged', label: 'Acknowledged' },
  { value: 'resolved', label: 'Resolved' },
  { value: '', label: 'All' },
];
const SEVERITIES = ['critical', 'warning'];

export function AlertsPage({ route }: { route: Route }) {
  const id = route.path.startsWith('/alerts/')
    ? decodeURIComponent(route.path.slice('/alerts/'.length))
    : null;
  return id ? <AlertDetailView id={id} /> : <AlertList params={route.params} />;
}

const ALERTING_OFF_HINT =
  'Alerting is turned off in this Canopy (alerting.enabled: false). Turn it on and restart to see alerts.';

function AlertList({ params }: { params: URLSearchParams }) {
  const state = params.get('state') ?? 'active';
  const severity = params.get('severity') ?? '';
  const sensor = params.get('sensor_id') ?? '';
  const alerts = useResource(
    (signal) =>
      getJson<{ data: Alert[] }>(
        '/api/alerts',
        { state, severity, sensor_id: sensor, limit: 500 },
        signal,
      ),
    [state, severity, sensor],
  );
  useLive('alert', () => alerts.reload());
  const set = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    next.set(name, value);
    if (value === '' && name !== 'state') next.delete(name);
    navigate('/alerts', next);
  };

  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title">Alerts</h1>
      <form class="controls" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
        <label>
          State{' '}
          <select value={state} onChange={(e) => set('state', e.currentTarget.value)}>
            {STATE_FILTERS.map((f) => (
              <option key={f.value} value={f.value}>
                {f.label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Severity{' '}
          <select value={severity} onChange={(e) => set('severity', e.currentTarget.value)}>
            <option value="">Any</option>
            {SEVERITIES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Sensor{' '}
          <input
            type="search"
            value={sensor}
            placeholder="sensor id"
            onChange={(e) => set('sensor_id', e.currentTarget.value.trim())}
          />
        </label>
      </form>
      {alerts.error?.code === 'CANOPY_API_NOT_FOUND' ? (
        <Empty title="No alerts here.">{ALERTING_OFF_HINT}</Empty>
      ) : (
        <Loaded resource={alerts} what="the alerts">
          {(data) =>
            data.data.length === 0 ? (
              <Empty title="No alerts match.">
                Alerts open when readings break the rules in the alert-rules file (
                <code>data/alert-rules.yaml</code>, or <code>canopy alerts rules export</code>).
                Choose “All” to see resolved ones.
              </Empty>
            ) : (
              <TableWrap label="Alerts">
                <table class="data-table">
                  <thead>
                    <tr>
                      <th scope="col">Severity</th>
                      <th scope="col">Summary</th>
                      <th scope="col">State</th>
                      <th scope="col">Sensor</th>
                      <th scope="col">Opened</th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.data.map((a) => (
                      <tr key={a.id} data-alert={a.id}>
                        <td>
                          <span class={`badge sev-${a.severity}`}>{a.severity}</span>
                        </td>
                        <th scope="row">
                          <a href={`#/alerts/${encodeURIComponent(a.id)}`}>{a.summary}</a>
                        </th>
                        <td>
                          <StateText alert={a} />
                        </td>
                        <td>{a.sensor_id ?? a.subject}</td>
                        <td title={formatTime(a.opened_at)}>{formatAgo(a.opened_at)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </TableWrap>
            )
          }
        </Loaded>
      )}
    </section>
  );
}

function StateText({ alert }: { alert: Alert }) {
  const snoozed = alert.snoozed_until !== null && Date.parse(alert.snoozed_until) > Date.now();
  return (
    <span class={`state-text state-${alert.state}`}>
      {alert.state}
      {snoozed ? ` (snoozed until ${formatTime(alert.snoozed_until)})` : ''}
    </span>
  );
}

const SNOOZE_CHOICES = ['30m', '1h', '4h', '1d'];

function AlertDetailView({ id }: { id: string }) {
  const detail = useResource(
    (signal) => getJson<AlertDetail>(`/api/alerts/${encodeURIComponent(id)}`, {}, signal),
    [id],
  );
  useLive('alert', (a) => {
    if (a.id === id) detail.reload();
  });
  return (
    <section aria-labelledby="alert-title">
      <p>
        <a href={href('/alerts')}>← All alerts</a>
      </p>
      <Loaded resource={detail} what={`alert ${id}`}>
        {(data) => <AlertBody data={data} onChanged={detail.reload} />}
      </Loaded>
    </section>
  );
}

function AlertBody({ data, onChanged }: { data: AlertDetail; onChanged: () => void }) {
  const a = data.alert;
  const [note, setNote] = useState('');
  const [snoozeFor, setSnoozeFor] = useState('1h');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const principal = usePrincipal();

  const act = async (action: 'ack' | 'snooze' | 'resolve', done: string) => {
    setBusy(true);
    setError(null);
    setMessage(null);
    try {
      const body: Record<string, string> = { by: principal?.name ?? 'dashboard' };
      if (note.trim() !== '') body.note = note.trim();
      if (action === 'snooze') body.for = snoozeFor;
      await postJson(`/api/alerts/${encodeURIComponent(a.id)}/${action}`, body);
      setMessage(done);
      setNote('');
      onChanged();
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'CLIENT', String(err)));
    } finally {
      setBusy(false);
    }
  };
  const resolved = a.state === 'resolved';

  return (
    <>
      <h1 id="alert-title">
        <span class={`badge sev-${a.severity}`}>{a.severity}</span> {a.summary}
      </h1>
      <dl class="facts facts-wide">
        <dt>State</dt>
        <dd data-testid="alert-state">
          <StateText alert={a} />
        </dd>
        <dt>Rule</dt>
        <dd>
          <code>{a.rule_id}</code>
        </dd>
        <dt>Subject</dt>
        <dd>
          {a.sensor_id ? (
            <a href={href('/trends', { sensor: a.sensor_id })}>{a.sensor_id}</a>
          ) : (
            a.subject
          )}
          {a.location ? ` at ${a.location}` : ''}
        </dd>
        <dt>Value / threshold</dt>
        <dd>
          {formatValue(a.value)} / {formatValue(a.threshold)}
        </dd>
        <dt>Opened</dt>
        <dd>{formatTime(a.opened_at)}</dd>
        {a.acknowledged_at ? (
          <>
            <dt>Acknowledged</dt>
            <dd>
              {formatTime(a.acknowledged_at)} by {a.acknowledged_by ?? 'unknown'}
            </dd>
          </>
        ) : null}
        {a.resolved_at ? (
          <>
            <dt>Resolved</dt>
            <dd>{formatTime(a.resolved_at)}</dd>
          </>
        ) : null}
      </dl>

      <form
        class="alert-actions"
        onSubmit={(e) => e.preventDefault()}
        aria-label="Act on this alert"
      >
        <label class="block-field">
          Note (optional){' '}
          <input
            type="text"
            value={note}
            maxLength={1000}
            onInput={(e) => setNote(e.currentTarget.value)}
          />
        </label>
        <div class="toolbar">
          <button
            type="button"
            disabled={busy || resolved || a.state === 'acknowledged'}
            onClick={() => void act('ack', 'Acknowledged: reminders stop.')}
          >
            Acknowledge
          </button>
          <label>
            Snooze for{' '}
            <select value={snoozeFor} onChange={(e) => setSnoozeFor(e.currentTarget.value)}>
              {SNOOZE_CHOICES.map((c) => (
                <option key={c}>{c}</option>
              ))}
            </select>
          </label>
          <button
            type="button"
            disabled={busy || resolved}
            onClick={() => void act('snooze', `Snoozed for ${snoozeFor}.`)}
          >
            Snooze
          </button>
          <button
            type="button"
            class="danger"
            disabled={busy || resolved}
            onClick={() => void act('resolve', 'Resolved.')}
          >
            Resolve
          </button>
        </div>
        <p role="status" class="action-status">
          {message}
        </p>
        {error ? <ErrorState error={error} what="the action" /> : null}
      </form>

      <h2>History</h2>
      {data.events.length === 0 ? (
        <p>No events recorded.</p>
      ) : (
        <ol class="timeline">
          {data.events.map((e) => (
            <li key={String(e.id)}>
              <time dateTime={e.at}>{formatTime(e.at)}</time> <strong>{e.kind}</strong>
              {e.from_state || e.to_state ? ` ${e.from_state ?? '∅'} → ${e.to_state ?? '∅'}` : ''}
              {e.actor ? ` by ${e.actor}` : ''}
              {e.value !== null ? ` · value ${formatValue(e.value)}` : ''}
              {e.note ? ` · “${e.note}”` : ''}
            </li>
          ))}
        </ol>
      )}

      <h2>Notifications</h2>
      {data.notifications.length === 0 ? (
        <p>None sent: no channel is routed for this alert's events.</p>
      ) : (
        <TableWrap label="Notifications">
          <table class="data-table">
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Channel</th>
                <th scope="col">Status</th>
                <th scope="col" class="num">
                  Attempts
                </th>
                <th scope="col">Created</th>
                <th scope="col">Last error</th>
              </tr>
            </thead>
            <tbody>
              {data.notifications.map((n) => (
                <tr key={String(n.id)}>
                  <td>{n.event}</td>
                  <td>{n.channel}</td>
                  <td>{n.status}</td>
                  <td class="num">{n.attempts}</td>
                  <td>{formatTime(n.created_at)}</td>
                  <td>{n.last_error ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableWrap>
      )}
    </>
  );
}
