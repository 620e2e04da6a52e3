/**
 * Which scope each route needs: the whole policy in one function, so it can
 * be read (and tested) in one place rather than spread over the routes.
 *
 * Deny by default: a route not named here needs `read` for GET and HEAD
 * under `/api/`, and `admin` for any other method, so a route added later is
 * closed until someone decides otherwise. Outside `/api/` GET and HEAD are
 * open (health, readiness, the dashboard's static files — the data behind
 * them is under `/api/`); other methods there need `admin` too.
 */
import type { Scope } from '../core/auth.js';

export interface ScopePolicy {
  /** Whether `GET /metrics` is open (Prometheus scrapes without a key), else it needs `read`. */
  publicMetrics: boolean;
}

/** `null`: open to anyone. */
export type Requirement = Scope | null;

const ADMIN_PREFIXES = ['/api/keys', '/api/users', '/api/devices'];

/** Acting on alerts and workflows (patterns or concrete paths alike: a segment is one level). */
const OPERATE_POSTS = [
  /^\/api\/alerts\/[^/]+\/(ack|snooze|resolve)$/,
  /^\/api\/workflows\/[^/]+\/(run|backfill|pause|resume)$/,
  /^\/api\/workflows\/callbacks\/[^/]+$/,
];

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * The scope `method path` needs. `path` is the matched route pattern
 * (`/api/alerts/:id/ack`) or, for a request that matched no route, its path
 * without the query string.
 */
export function requiredScope(method: string, path: string, policy: ScopePolicy): Requirement {
  const reading = method === 'GET' || method === 'HEAD';
  if (!under(path, '/api')) {
    if (path === '/metrics') return policy.publicMetrics ? null : 'read';
    return reading ? null : 'admin';
  }
  // Login, logout and "who am I" check credentials themselves.
  if (path === '/api/session') return null;
  if (ADMIN_PREFIXES.some((prefix) => under(path, prefix))) return 'admin';
  if (reading) return 'read';
  if (method === 'POST') {
    if (path === '/api/data') return 'ingest';
    if (path === '/api/query') return 'query';
    if (OPERATE_POSTS.some((pattern) => pattern.test(path))) return 'operate';
  }
  return 'admin';
}
