/**
 * Commands that act on a running Canopy (`canopy alerts list|ack|…`,
 * `canopy jobs runs|backfill`, and `jobs run` of a workflow) are clients of
 * its HTTP API: alerts and run history live in the running process's
 * metadata store (a DuckDB file one process holds open), and workflows run in
 * its scheduler, so the CLI asks that process rather than opening the store.
 */
import type { CanopyConfig } from '../config/schema.js';
import { CanopyError, ERROR_CODES, type ErrorCode } from '../core/errors.js';

/** The running Canopy's API, from config `http` (a wildcard bind is reached on loopback). */
export function apiBaseUrl(config: CanopyConfig): string {
  const host = ['0.0.0.0', '::'].includes(config.http.host) ? '127.0.0.1' : config.http.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`;
}

export async function callApi(url: string, init?: RequestInit): Promise<unknown> {
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
