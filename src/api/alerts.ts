/**
 * Alert routes: list and inspect alerts, act on them (acknowledge, snooze,
 * resolve), and read or replace the rule set.
 *
 *   GET  /api/alerts                 filters: state (comma list, or `active`), severity,
 *                                    rule_id, sensor_id, location (prefix), from, to, limit
 *   GET  /api/alerts/:id             the alert, its events and its notifications
 *   POST /api/alerts/:id/ack         {"by", "note"}
 *   POST /api/alerts/:id/snooze      {"by", "note", "until": time | "for": "30m"}
 *   POST /api/alerts/:id/resolve     {"by", "note"}
 *   GET  /api/alert-rules            YAML (or JSON with `Accept: application/json`)
 *   PUT  /api/alert-rules            YAML or JSON body; validated, saved, applied
 *
 * Wire form: snake_case, ISO 8601 times, like the rest of the API.
 */
import type { FastifyInstance } from 'fastify';
import {
  ALERT_SEVERITIES,
  ALERT_STATES,
  type Alert,
  type AlertEvent,
  type AlertSeverity,
  type AlertState,
  type AlertStore,
  type OutboxEntry,
} from '../core/alerts.js';
import { CanopyError } from '../core/errors.js';
import { DURATION_PATTERN, durationMs } from '../alerts/rules/schema.js';
import type { RuleSet } from '../alerts/rules/schema.js';
import { jsonObjectBody, optionalString, parseLimit, parseTimeParam } from './params.js';

export type AlertActionRequest =
  | { kind: 'acknowledge' | 'resolve'; actor: string; note?: string }
  | { kind: 'snooze'; actor: string; until: number; note?: string };

/** What the routes need of the running alerting (AlertService, the rules file). */
export interface AlertApiDeps {
  store: Pick<AlertStore, 'listAlerts' | 'getAlert' | 'alertEvents' | 'alertNotifications'>;
  act(alertId: string, action: AlertActionRequest): Promise<Alert>;
  rules(): RuleSet;
  /** Validates, saves and applies; throws CANOPY_ALERT_RULES_INVALID / _READ_ONLY. */
  replaceRules(text: string): Promise<RuleSet>;
  exportRules(set: RuleSet): string;
  now(): number;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export function alertToWire(a: Alert) {
  return {
    id: a.id,
    rule_id: a.ruleId,
    subject: a.subject,
    sensor_id: a.sensorId,
    location: a.location,
    severity: a.severity,
    state: a.state,
    summary: a.summary,
    labels: a.labels,
    value: a.value,
    threshold: a.threshold,
    opened_at: iso(a.openedAt),
    updated_at: iso(a.updatedAt),
    escalated_at: iso(a.escalatedAt),
    acknowledged_at: iso(a.acknowledgedAt),
    acknowledged_by: a.acknowledgedBy,
    resolved_at: iso(a.resolvedAt),
    snoozed_until: iso(a.snoozedUntil),
    tier: a.tier,
    last_notified_at: iso(a.lastNotifiedAt),
    notified_channels: a.notifiedChannels,
  };
}

function eventToWire(e: AlertEvent) {
  return {
    id: e.id,
    at: iso(e.at),
    kind: e.kind,
    actor: e.actor,
    from_state: e.fromState,
    to_state: e.toState,
    severity: e.severity,
    note: e.note,
    value: e.value,
  };
}

function notificationToWire(n: OutboxEntry) {
  return {
    id: n.id,
    event_id: n.eventId,
    event: n.payload.event,
    channel: n.channel,
    status: n.status,
    attempts: n.attempts,
    created_at: iso(n.createdAt),
    next_attempt_at: n.status === 'pending' ? iso(n.nextAttemptAt) : null,
    delivered_at: iso(n.deliveredAt),
    last_error: n.lastError,
  };
}

/** A comma list of allowed words, e.g. `state=open,escalated`. */
function parseList<T extends string>(
  query: Record<string, unknown>,
  name: string,
  allowed: readonly T[],
): T[] | undefined {
  const raw = optionalString(query, name);
  if (raw === undefined) return undefined;
  const items = raw.split(',').map((s) => s.trim());
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item))
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `${name} must be a comma list of ${allowed.join(', ')}; got "${item}"`,
      );
  }
  return items as T[];
}

function parseStates(query: Record<string, unknown>): AlertState[] | undefined {
  if (optionalString(query, 'state') === 'active') return ['open', 'escalated', 'acknowledged'];
  return parseList(query, 'state', ALERT_STATES);
}

function bodyString(body: Record<string, unknown>, name: string, max: number): string | undefined {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > max)
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      `${name} must be a string of 1 to ${max} characters`,
    );
  return value;
}

/** Who acts, and their note: `by` defaults to `api` until requests are authenticated. */
function actor(body: Record<string, unknown>): { actor: string; note?: string } {
  const note = bodyString(body, 'note', 1_000);
  return { actor: bodyString(body, 'by', 128) ?? 'api', ...(note === undefined ? {} : { note }) };
}

function snoozeUntil(body: Record<string, unknown>, now: number): number {
  const forText = bodyString(body, 'for', 16);
  const untilText = bodyString(body, 'until', 64);
  if ((forText === undefined) === (untilText === undefined))
    throw new CanopyError(
      'CANOPY_API_BAD_REQUEST',
      'give either "until" (an ISO 8601 time) or "for" (a duration such as 30m)',
    );
  if (forText !== undefined) {
    if (!DURATION_PATTERN.test(forText))
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        `"for" must be a duration such as 30m, 2h or 1d; got "${forText}"`,
      );
    return now + durationMs(forText);
  }
  const until = parseTimeParam({ until: untilText }, 'until');
  return until!;
}

const YAML_MEDIA_TYPES = ['text/yaml', 'application/yaml', 'application/x-yaml', 'text/plain'];

export function registerAlertRoutes(app: FastifyInstance, deps: AlertApiDeps): void {
  app.get('/api/alerts', async (request) => {
    const q = request.query as Record<string, unknown>;
    const state = parseStates(q);
    const severity = parseList<AlertSeverity>(q, 'severity', ALERT_SEVERITIES);
    const ruleId = optionalString(q, 'rule_id');
    const sensorId = optionalString(q, 'sensor_id');
    const location = optionalString(q, 'location');
    const from = parseTimeParam(q, 'from');
    const to = parseTimeParam(q, 'to');
    const alerts = await deps.store.listAlerts({
      limit: parseLimit(q, 100, 1_000),
      ...(state === undefined ? {} : { state }),
      ...(severity === undefined ? {} : { severity }),
      ...(ruleId === undefined ? {} : { ruleId }),
      ...(sensorId === undefined ? {} : { sensorId }),
      ...(location === undefined ? {} : { location }),
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
    });
    return { data: alerts.map(alertToWire) };
  });

  app.get('/api/alerts/:id', async (request) => {
    const { id } = request.params as { id: string };
    const alert = await deps.store.getAlert(id);
    if (alert === undefined) throw new CanopyError('CANOPY_ALERT_NOT_FOUND', `no alert ${id}`);
    const [events, notifications] = await Promise.all([
      deps.store.alertEvents(id),
      deps.store.alertNotifications(id),
    ]);
    return {
      alert: alertToWire(alert),
      events: events.map(eventToWire),
      notifications: notifications.map(notificationToWire),
    };
  });

  app.post('/api/alerts/:id/ack', async (request) => {
    const { id } = request.params as { id: string };
    const alert = await deps.act(id, {
      kind: 'acknowledge',
      ...actor(jsonObjectBody(request.body)),
    });
    return { alert: alertToWire(alert) };
  });

  app.post('/api/alerts/:id/resolve', async (request) => {
    const { id } = request.params as { id: string };
    const alert = await deps.act(id, { kind: 'resolve', ...actor(jsonObjectBody(request.body)) });
    return { alert: alertToWire(alert) };
  });

  app.post('/api/alerts/:id/snooze', async (request) => {
    const { id } = request.params as { id: string };
    const body = jsonObjectBody(request.body);
    const until = snoozeUntil(body, deps.now());
    const alert = await deps.act(id, { kind: 'snooze', until, ...actor(body) });
    return { alert: alertToWire(alert) };
  });

  app.get('/api/alert-rules', async (request, reply) => {
    const rules = deps.rules();
    if ((request.headers.accept ?? '').includes('application/json')) return rules;
    return reply.type('application/yaml; charset=utf-8').send(deps.exportRules(rules));
  });

  // YAML bodies only here: registered in their own context so POST /api/data keeps refusing them.
  void app.register((scope, _options, done) => {
    scope.addContentTypeParser(YAML_MEDIA_TYPES, { parseAs: 'buffer' }, (_req, body, next) =>
      next(null, body),
    );
    scope.put('/api/alert-rules', async (request) => {
      const raw = request.body;
      const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : '';
      if (text.trim() === '')
        throw new CanopyError(
          'CANOPY_API_BAD_REQUEST',
          'the body must be a rule set in YAML or JSON: {"rules": [...]}',
        );
      const rules = await deps.replaceRules(text);
      return { rules: rules.rules.length };
    });
    done();
  });
}
