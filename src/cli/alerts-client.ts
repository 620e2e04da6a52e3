/**
 * `canopy alerts list|ack|snooze|resolve`: a client of a running Canopy's
 * API. The alerts live in the running process's metadata store (a DuckDB
 * file one process holds open), so the CLI asks that process rather than
 * opening the store itself.
 */
import type { CanopyConfig } from '../config/schema.js';
import { CanopyError, ERROR_CODES, type ErrorCode } from '../core/errors.js';
import type { alertToWire } from '../api/alerts.js';

export type WireAlert = ReturnType<typeof alertToWire>;

export interface AlertListFilters {
  state?: string;
  severity?: string;
  sensor?: string;
  location?: string;
  rule?: string;
  limit?: string;
}

/** The running Canopy's API, from config `http` (a wildcard bind is reached on loopback). */
export function apiBaseUrl(config: CanopyConfig): string {
  const host = ['0.0.0.0', '::'].includes(config.http.host) ? '127.0.0.1' : config.http.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`;
}

async function call(url: string, init?: RequestInit): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new CanopyError(
      'CANOPY_API_UNREACHABLE',
      `no Canopy answers at ${new URL(url).origin}: is it running? (--url sets where)`,
      { cause: err },
    );
  }
  const body = (await response.json().catch(() => ({}))) as {
    error?: { code?: string; message?: string };
  };
  if (!response.ok) {
    const code = body.error?.code;
    throw new CanopyError(
      code !== undefined && code in ERROR_CODES ? (code as ErrorCode) : 'CANOPY_API_INTERNAL',
      body.error?.message ?? `HTTP ${response.status}`,
    );
  }
  return body;
}

export async function listAlerts(baseUrl: string, filters: AlertListFilters): Promise<WireAlert[]> {
  const params = new URLSearchParams();
  const names: [keyof AlertListFilters, string][] = [
    ['state', 'state'],
    ['severity', 'severity'],
    ['sensor', 'sensor_id'],
    ['location', 'location'],
    ['rule', 'rule_id'],
    ['limit', 'limit'],
  ];
  for (const [flag, param] of names) {
    const value = filters[flag];
    if (value !== undefined) params.set(param, value);
  }
  const body = (await call(`${baseUrl}/api/alerts?${params.toString()}`)) as { data: WireAlert[] };
  return body.data;
}

export async function actOnAlert(
  baseUrl: string,
  id: string,
  action: 'ack' | 'snooze' | 'resolve',
  body: Record<string, string>,
): Promise<WireAlert> {
  const answer = (await call(`${baseUrl}/api/alerts/${encodeURIComponent(id)}/${action}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })) as { alert: WireAlert };
  return answer.alert;
}

/** One line per alert, columns aligned: what a person scanning a terminal needs. */
export function formatAlerts(alerts: readonly WireAlert[]): string {
  if (alerts.length === 0) return 'no alerts';
  const rows = [
    ['ID', 'STATE', 'SEVERITY', 'RULE', 'SUBJECT', 'OPENED', 'SUMMARY'],
    ...alerts.map((a) => [
      a.id,
      a.state + (a.snoozed_until === null ? '' : ' (snoozed)'),
      a.severity,
      a.rule_id,
      a.subject,
      a.opened_at ?? '',
      a.summary,
    ]),
  ];
  const widths = rows[0]!.map((_, i) =>
    i === rows[0]!.length - 1 ? 0 : Math.max(...rows.map((r) => r[i]!.length)),
  );
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')).join('\n');
}
