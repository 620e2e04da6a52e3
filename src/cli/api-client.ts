/**
 * Commands that act on a running Canopy (`canopy alerts list|ack|…`,
 * `canopy jobs runs|backfill`, and `jobs run` of a workflow) are clients of
 * its HTTP API: alerts and run history live in the running process's
 * metadata store (a DuckDB file one process holds open), and workflows run in
 * its scheduler, so the CLI asks that process rather than opening the store.
 */
import { Option, type Command } from 'commander';
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

/** The flags of every command that talks to the running Canopy. */
export interface ApiFlags {
  config?: string;
  url?: string;
}

export function addApiOptions(command: Command): Command {
  return command
    .addOption(new Option('--config <file>', 'YAML config file (gives the API address)'))
    .addOption(new Option('--url <url>', 'the running Canopy (default: from config http)'));
}

/** `--url`, else the address in the config's `http` section; no trailing slash. */
export function apiUrlFrom(
  flags: ApiFlags,
  load: (configFile: string | undefined) => CanopyConfig,
): string {
  return (flags.url ?? apiBaseUrl(load(flags.config))).replace(/\/+$/, '');
}
