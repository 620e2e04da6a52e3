/**
 * Commands that act on a running Canopy (`canopy alerts list|ack|…`,
 * `canopy jobs runs|backfill`, and `jobs run` of a workflow) are clients of
 * its HTTP API: alerts and run history live in the running process's
 * metadata store (a DuckDB file one process holds open), and workflows run in
 * its scheduler, so the CLI asks that process rather than opening the store.
 *
 * With authentication on, each sends the API key of `--api-key` or
 * `CANOPY_API_KEY` as `Authorization: Bearer <key>`.
 */
import { Option, type Command } from 'commander';
import type { CanopyConfig } from '../config/schema.js';
import { CanopyError, ERROR_CODES, type ErrorCode } from '../core/errors.js';

/** The running Canopy's API, from config `http` (a wildcard bind is reached on loopback). */
export function apiBaseUrl(config: CanopyConfig): string {
  const host = ['0.0.0.0', '::'].includes(config.http.host) ? '127.0.0.1' : config.http.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}`;
}

/** `init` with the key's `Authorization` header added (none without a key). */
export function withApiKey(init: RequestInit | undefined, apiKey: string | undefined): RequestInit {
  if (apiKey === undefined) return init ?? {};
  const headers = new Headers(init?.headers);
  headers.set('authorization', `Bearer ${apiKey}`);
  return { ...init, headers };
}

export async function callApi(url: string, init?: RequestInit, apiKey?: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(url, withApiKey(init, apiKey));
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

/** The flags of every command that talks to the running Canopy. */
export interface ApiFlags {
  config?: string;
  url?: string;
  /** From `--api-key` or `CANOPY_API_KEY`. */
  apiKey?: string;
}

/** `--api-key`, read from `CANOPY_API_KEY` when not given (keeps the key out of shell history). */
export function apiKeyOption(): Option {
  return new Option(
    '--api-key <key>',
    'API key, when the running Canopy requires authentication',
  ).env('CANOPY_API_KEY');
}

export function addApiOptions(command: Command): Command {
  return command
    .addOption(new Option('--config <file>', 'YAML config file (gives the API address)'))
    .addOption(new Option('--url <url>', 'the running Canopy (default: from config http)'))
    .addOption(apiKeyOption());
}

/** `--url`, else the address in the config's `http` section; no trailing slash. */
export function apiUrlFrom(
  flags: ApiFlags,
  load: (configFile: string | undefined) => CanopyConfig,
): string {
  return (flags.url ?? apiBaseUrl(load(flags.config))).replace(/\/+$/, '');
}
