/**
 * Authentication and authorisation of the HTTP API: one `onRequest` hook that
 * finds the scope a route needs (src/auth/scopes.ts), checks the caller's
 * credentials and refuses with 401 (none, or not accepted) or 403 (accepted,
 * but without the scope); plus the routes of sessions (`/api/session`) and of
 * credentials (`/api/keys`, `/api/users`, `/api/devices`, admin only).
 *
 * Credentials, in order: an API key in `Authorization: Bearer <key>` or
 * `X-Api-Key: <key>`; else the dashboard's session cookie. A request with a
 * session cookie that changes something must not come from another site:
 * the cookie is SameSite=Strict, and a request whose `Origin` names another
 * host is refused besides (a second line against cross-site requests).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DURATION_PATTERN, durationMs } from '../alerts/rules/schema.js';
import { requiredScope } from '../auth/scopes.js';
import {
  ANONYMOUS,
  CredentialsRefused,
  type AuthService,
  type Principal,
} from '../auth/service.js';
import type { AuthMode } from '../auth/mode.js';
import type { AuthFailureLimiter } from '../auth/failure-limit.js';
import { hasScope, type ApiKey, type Device, type User } from '../core/auth.js';
import { CanopyError } from '../core/errors.js';
import type { Metrics } from '../observability/metrics.js';
import { jsonObjectBody, parseTimeParam } from './params.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Who made the request, once the auth hook has checked it: `anonymous`
     * with every scope when authentication is off; null on an open route.
     */
    principal: Principal | null;
  }
}

export interface AuthApiDeps {
  mode: AuthMode;
  /** Credentials; null without a metadata store (only possible with authentication off). */
  service: AuthService | null;
  /** `GET /metrics` without credentials. */
  publicMetrics: boolean;
  /** Mark the session cookie `Secure`. */
  secureCookies: boolean;
  metrics: Metrics;
  /** Called after a device is revoked, to end its MQTT connection at once. */
  onDeviceRevoked?: (id: string) => void;
  /**
   * Failed-authentication throttle per client address (`auth.failureLimit`):
   * counts refused API keys and passwords, and refuses them unchecked from a
   * throttled address. Sessions are neither counted nor refused: their
   * tokens are not guessable, and an ended session is routine.
   */
  failureLimiter?: AuthFailureLimiter;
}

export const SESSION_COOKIE = 'canopy_session';
/** A session token as generated (src/auth/secrets.ts); anything else is not looked up. */
const SESSION_TOKEN = /^[A-Za-z0-9_-]{43}$/;

type Credential = 'none' | 'api_key' | 'session' | 'password';

/** The value of cookie `name` in a `Cookie` header. */
function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The API key a request presents, if any. */
function presentedKey(request: FastifyRequest): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const bearer = /^Bearer +(\S+)$/i.exec(authorization.trim());
    if (bearer) return bearer[1];
  }
  const header = request.headers['x-api-key'];
  return typeof header === 'string' && header !== '' ? header : undefined;
}

/**
 * What the scope map judges: the matched route's pattern (`/api/alerts/:id/ack`);
 * for a request that matched no route, or only a wildcard (the dashboard's
 * `/*` fallback), its decoded path, so `/api/…` is judged as the API.
 */
function policyPath(request: FastifyRequest): string {
  const pattern = request.routeOptions.url;
  if (pattern !== undefined && !pattern.includes('*')) return pattern;
  const raw = request.url.split('?')[0]!;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Throws CANOPY_AUTH_FORBIDDEN when an unsafe request names another site as
 * its origin. The origin must match the `Host` header or, behind a proxy
 * that rewrites `Host`, `X-Forwarded-Host`: a page on another site cannot
 * set that header on a request without a CORS preflight, which Canopy never
 * grants, so trusting it here opens nothing.
 */
function checkSameOrigin(request: FastifyRequest): void {
  if (SAFE_METHODS.has(request.method)) return;
  const origin = request.headers.origin;
  if (origin === undefined) return;
  const forwarded = request.headers['x-forwarded-host'];
  const hosts = [
    request.headers.host,
    ...(typeof forwarded === 'string' ? [forwarded.split(',')[0]!.trim()] : []),
  ];
  let sameHost = false;
  try {
    const from = new URL(origin);
    // Parsed alike, so a default port (`:80`, `:443`) written in one and not the other still matches.
    sameHost = hosts.some(
      (host) => host !== undefined && from.host === new URL(`${from.protocol}//${host}`).host,
    );
  } catch {
    sameHost = false;
  }
  if (!sameHost)
    throw new CanopyError(
      'CANOPY_AUTH_FORBIDDEN',
      'a request from another site may not use the dashboard session',
    );
}

function sessionCookie(token: string, maxAgeMs: number, secure: boolean): string {
  const maxAge = Math.max(0, Math.floor(maxAgeMs / 1000));
  return `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

export function principalToWire(p: Principal) {
  return {
    kind: p.kind,
    name: p.name,
    ...(p.role === undefined ? {} : { role: p.role }),
    scopes: [...p.scopes],
    ...(p.expiresAt === undefined ? {} : { expires_at: iso(p.expiresAt) }),
  };
}

export function apiKeyToWire(k: ApiKey, now: number) {
  return {
    id: k.id,
    name: k.name,
    scopes: k.scopes,
    state:
      k.revokedAt !== null
        ? 'revoked'
        : k.expiresAt !== null && now >= k.expiresAt
          ? 'expired'
          : 'active',
    created_at: iso(k.createdAt),
    expires_at: iso(k.expiresAt),
    revoked_at: iso(k.revokedAt),
    last_used_at: iso(k.lastUsedAt),
  };
}

export function userToWire(u: User) {
  return {
    username: u.username,
    role: u.role,
    created_at: iso(u.createdAt),
    password_changed_at: iso(u.passwordChangedAt),
  };
}

export function deviceToWire(d: Device) {
  return {
    id: d.id,
    topics: d.topics,
    state: d.revokedAt === null ? 'active' : 'revoked',
    created_at: iso(d.createdAt),
    revoked_at: iso(d.revokedAt),
  };
}

function bodyString(body: Record<string, unknown>, name: string): string {
  const value = body[name];
  if (typeof value !== 'string' || value === '')
    throw new CanopyError('CANOPY_API_BAD_REQUEST', `"${name}" must be a non-empty string`);
  return value;
}

function bodyStrings(body: Record<string, unknown>, name: string): string[] | undefined {
  const value = body[name];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw new CanopyError('CANOPY_API_BAD_REQUEST', `"${name}" must be an array of strings`);
  return value;
}

/** `expires_at` (ISO 8601) or `expires_in` (30d, 12h, …) of a new key; neither: never. */
function keyExpiry(body: Record<string, unknown>, now: number): number | undefined {
  const at = body.expires_at;
  const inText = body.expires_in;
  if (at !== undefined && inText !== undefined)
    throw new CanopyError('CANOPY_API_BAD_REQUEST', 'give "expires_at" or "expires_in", not both');
  if (inText !== undefined) {
    if (typeof inText !== 'string' || !DURATION_PATTERN.test(inText))
      throw new CanopyError(
        'CANOPY_API_BAD_REQUEST',
        '"expires_in" must be a duration such as 90d or 12h',
      );
    return now + durationMs(inText);
  }
  if (at === undefined) return undefined;
  if (typeof at !== 'string')
    throw new CanopyError('CANOPY_API_BAD_REQUEST', '"expires_at" must be an ISO 8601 time');
  return parseTimeParam({ expires_at: at }, 'expires_at');
}

export function registerAuth(app: FastifyInstance, deps: AuthApiDeps): void {
  const { service, metrics } = deps;
  const refuse = (credential: Credential, reason: 'missing' | 'invalid' | 'forbidden'): void => {
    metrics.authFailures.inc({ credential, reason });
  };
  const limiter = deps.failureLimiter;

  /** Throws CANOPY_AUTH_THROTTLED (429, `Retry-After`) while the caller's address is throttled. */
  function checkThrottle(request: FastifyRequest, reply: FastifyReply): void {
    const waitMs = limiter?.retryAfterMs(request.ip) ?? 0;
    if (waitMs === 0) return;
    metrics.authThrottled.inc({ channel: 'http' });
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    reply.header('retry-after', String(seconds));
    throw new CanopyError(
      'CANOPY_AUTH_THROTTLED',
      `too many refused credentials from ${request.ip} (auth.failureLimit); retry after ${seconds} s`,
    );
  }

  /**
   * The caller's principal from an API key or the session cookie. Throws
   * CANOPY_AUTH_REQUIRED with none or one not accepted; `null` with none and
   * `optional`.
   */
  async function authenticate(
    request: FastifyRequest,
    reply: FastifyReply,
    optional = false,
  ): Promise<Principal | null> {
    if (service === null) throw new Error('authentication is required but no store is open');
    const key = presentedKey(request);
    const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
    try {
      if (key !== undefined) {
        checkThrottle(request, reply);
        return await service.authenticateKey(key);
      }
      if (token !== undefined) {
        if (!SESSION_TOKEN.test(token))
          throw new CredentialsRefused('the session has ended; log in again', 'malformed');
        const principal = await service.authenticateSession(token);
        checkSameOrigin(request);
        return principal;
      }
    } catch (err) {
      if (err instanceof CredentialsRefused) {
        const credential = key !== undefined ? 'api_key' : 'session';
        refuse(credential, 'invalid');
        if (key !== undefined) limiter?.recordFailure(request.ip);
        request.log.info({ credential, why: err.why, ip: request.ip }, 'credentials refused');
        reply.header('www-authenticate', 'Bearer realm="canopy"');
      }
      throw err;
    }
    if (optional) return null;
    refuse('none', 'missing');
    reply.header('www-authenticate', 'Bearer realm="canopy"');
    throw new CanopyError(
      'CANOPY_AUTH_REQUIRED',
      'this route needs credentials: an API key (Authorization: Bearer <key>, or X-Api-Key) or a dashboard session (POST /api/session)',
    );
  }

  app.decorateRequest('principal', null);

  app.addHook('onRequest', async (request, reply) => {
    if (deps.mode === 'off') {
      request.principal = ANONYMOUS;
      return;
    }
    const path = policyPath(request);
    const needed = requiredScope(request.method, path, deps);
    if (needed === null) return;
    const principal = (await authenticate(request, reply))!;
    if (!hasScope(principal.scopes, needed)) {
      refuse(principal.kind === 'session' ? 'session' : 'api_key', 'forbidden');
      throw new CanopyError(
        'CANOPY_AUTH_FORBIDDEN',
        `${request.method} ${path} needs the "${needed}" scope; ${principal.kind === 'session' ? `the role ${principal.role}` : `key ${principal.id}`} has ${principal.scopes.join(', ')}`,
      );
    }
    request.principal = principal;
  });

  /** Who am I: the dashboard asks at load; 401 means "show the login form". */
  app.get('/api/session', async (request, reply) => {
    if (deps.mode === 'off') return { auth: 'off', principal: principalToWire(ANONYMOUS) };
    const principal = (await authenticate(request, reply))!;
    return { auth: 'required', principal: principalToWire(principal) };
  });

  if (service === null) return;

  app.post('/api/session', async (request, reply) => {
    checkSameOrigin(request);
    const body = jsonObjectBody(request.body);
    const username = bodyString(body, 'username');
    const password = bodyString(body, 'password');
    checkThrottle(request, reply);
    try {
      const { token, session, principal } = await service.login(username, password);
      reply.header(
        'set-cookie',
        sessionCookie(token, session.expiresAt - session.createdAt, deps.secureCookies),
      );
      return { auth: deps.mode, principal: principalToWire(principal) };
    } catch (err) {
      if (err instanceof CredentialsRefused) {
        refuse('password', 'invalid');
        limiter?.recordFailure(request.ip);
        request.log.warn({ username, why: err.why, ip: request.ip }, 'login refused');
      }
      throw err;
    }
  });

  app.delete('/api/session', async (request, reply) => {
    const token = cookieValue(request.headers.cookie, SESSION_COOKIE);
    const ended = token !== undefined && SESSION_TOKEN.test(token) && (await service.logout(token));
    reply.header('set-cookie', sessionCookie('', 0, deps.secureCookies));
    return { ended };
  });

  app.get('/api/keys', async () => {
    const now = service.now();
    return { data: (await service.listApiKeys()).map((k) => apiKeyToWire(k, now)) };
  });

  app.post('/api/keys', async (request, reply) => {
    const body = jsonObjectBody(request.body);
    const scopes = bodyStrings(body, 'scopes');
    if (scopes === undefined)
      throw new CanopyError('CANOPY_API_BAD_REQUEST', '"scopes" must be an array of strings');
    const { apiKey, key } = await service.createApiKey({
      name: bodyString(body, 'name'),
      scopes,
      expiresAt: keyExpiry(body, service.now()),
    });
    // The key's text is in this answer only.
    return reply.status(201).send({ ...apiKeyToWire(apiKey, apiKey.createdAt), key });
  });

  app.delete('/api/keys/:id', async (request) => {
    const { id } = request.params as { id: string };
    await service.revokeApiKey(id);
    return { id, revoked: true };
  });

  app.get('/api/users', async () => ({ data: (await service.listUsers()).map(userToWire) }));

  app.post('/api/users', async (request, reply) => {
    const body = jsonObjectBody(request.body);
    const user = await service.addUser(
      bodyString(body, 'username'),
      bodyString(body, 'role'),
      bodyString(body, 'password'),
    );
    return reply.status(201).send(userToWire(user));
  });

  app.put('/api/users/:username/password', async (request) => {
    const { username } = request.params as { username: string };
    await service.setPassword(username, bodyString(jsonObjectBody(request.body), 'password'));
    return { username, password_changed: true };
  });

  app.delete('/api/users/:username', async (request) => {
    const { username } = request.params as { username: string };
    await service.removeUser(username);
    return { username, removed: true };
  });

  app.get('/api/devices', async () => ({
    data: (await service.listDevices()).map(deviceToWire),
  }));

  app.post('/api/devices', async (request, reply) => {
    const body = jsonObjectBody(request.body);
    const { device, password } = await service.createDevice(
      bodyString(body, 'id'),
      bodyStrings(body, 'topics'),
    );
    // The password is in this answer only.
    return reply.status(201).send({ ...deviceToWire(device), password });
  });

  app.delete('/api/devices/:id', async (request) => {
    const { id } = request.params as { id: string };
    await service.revokeDevice(id);
    deps.onDeviceRevoked?.(id);
    return { id, revoked: true };
  });
}
