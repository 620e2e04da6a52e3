/**
 * Secure by default: whether authentication is on follows from the config.
 * `auth.mode` set is obeyed. Unset, Canopy runs open only while nothing
 * listens beyond loopback (the two-command demo on a laptop); a listener on
 * any other address with `auth.mode` unset refuses to start, saying what to
 * set. An explicit `auth.mode: off` beyond loopback starts, with a warning
 * at every start (the caller logs `warning`).
 */
import net from 'node:net';
import type { CanopyConfig } from '../config/schema.js';
import { CanopyError } from '../core/errors.js';

export type AuthMode = 'off' | 'required';

/** `localhost`, `127.0.0.0/8`, `::1` (and their IPv4-mapped form); not `0.0.0.0` or `::`. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return net.isIPv4(v4) && v4.startsWith('127.');
}

/**
 * Whether a rate limit applies: as set, else on for a listener beyond loopback
 * (the local demo and benchmarks run unthrottled).
 */
export function rateLimitEnabled(enabled: boolean | undefined, host: string): boolean {
  return enabled ?? !isLoopback(host);
}

/** The listeners reachable from beyond this machine, as `name host:port`. */
export function exposedListeners(config: CanopyConfig): string[] {
  const exposed: string[] = [];
  if (config.http.enabled && !isLoopback(config.http.host))
    exposed.push(`the API on ${config.http.host}:${config.http.port} (http.host)`);
  const mqtt = config.mqtt.embedded;
  if (mqtt.enabled && !isLoopback(mqtt.host))
    exposed.push(`the MQTT broker on ${mqtt.host}:${mqtt.port} (mqtt.embedded.host)`);
  return exposed;
}

/**
 * The effective mode. Throws CANOPY_CONFIG_INVALID when something listens
 * beyond loopback and `auth.mode` is unset; `warning` is set when it is
 * explicitly off there.
 */
export function resolveAuthMode(config: CanopyConfig): { mode: AuthMode; warning?: string } {
  const exposed = exposedListeners(config);
  const configured = config.auth.mode;
  if (configured === 'required') return { mode: 'required' };
  if (exposed.length === 0) return { mode: 'off' };
  if (configured === undefined) {
    const problem = `${exposed.join(' and ')} would be reachable from other machines with no authentication. Set auth.mode: required (CANOPY_AUTH_MODE=required) and create credentials first (canopy keys create --name admin --scopes admin; canopy users add; canopy devices create), or set auth.mode: off to run open on purpose, or bind to 127.0.0.1`;
    throw new CanopyError('CANOPY_CONFIG_INVALID', `refusing to start: ${problem}`, {
      details: [`auth.mode: ${problem}`],
    });
  }
  return {
    mode: 'off',
    warning: `AUTHENTICATION IS OFF (auth.mode: off) while ${exposed.join(' and ')} can be reached from other machines: anyone who can connect may read, write and delete. Set auth.mode: required unless a trusted network or proxy guards every port.`,
  };
}
