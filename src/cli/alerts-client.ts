/**
 * `canopy alerts list|ack|snooze|resolve`: a client of a running Canopy's
 * API (see api-client.ts).
 */
import type { alertToWire } from '../api/alerts.js';
import { callApi } from './api-client.js';

export type WireAlert = ReturnType<typeof alertToWire>;

export interface AlertListFilters {
  state?: string;
  severity?: string;
  sensor?: string;
  location?: string;
  rule?: string;
  limit?: string;
}

export async function listAlerts(
  baseUrl: string,
  filters: AlertListFilters,
  apiKey?: string,
): Promise<WireAlert[]> {
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
  const body = (await callApi(`${baseUrl}/api/alerts?${params.toString()}`, {}, apiKey)) as {
    data: WireAlert[];
  };
  return body.data;
}

export async function actOnAlert(
  baseUrl: string,
  id: string,
  action: 'ack' | 'snooze' | 'resolve',
  body: Record<string, string>,
  apiKey?: string,
): Promise<WireAlert> {
  const answer = (await callApi(
    `${baseUrl}/api/alerts/${encodeURIComponent(id)}/${action}`,
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    },
    apiKey,
  )) as { alert: WireAlert };
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
