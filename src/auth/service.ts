/**
 * Credentials as Canopy uses them: making API keys, users and devices (the
 * secret returned once), and checking what a request or an MQTT connection
 * presents. The HTTP API, the embedded broker and the `canopy keys|users|
 * devices` commands all go through this class, so the rules (validation,
 * expiry, revocation, what a role may do) live in one place.
 *
 * A refusal never says which part was wrong (unknown key, wrong secret,
 * revoked, expired all read "not accepted"), so a caller learns nothing by
 * probing; the log says which, for the operator.
 */
import type { Logger } from 'pino';
import { pino } from 'pino';
import {
  ROLE_SCOPES,
  ROLES,
  SCOPES,
  type ApiKey,
  type AuthStore,
  type Device,
  type Role,
  type Scope,
  type Session,
  type User,
} from '../core/auth.js';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import {
  apiKeyId,
  checkPasswordPolicy,
  generateApiKey,
  generateDevicePassword,
  generateSessionToken,
  hashPassword,
  matchesHash,
  sha256Hex,
  spendPasswordCheck,
  verifyPassword,
} from './secrets.js';
import { isTopicFilter } from '../sources/topic.js';

/** Who made a request, and what they may do. */
export interface Principal {
  kind: 'api-key' | 'session' | 'anonymous';
  /** The key id, the username; `anonymous` when authentication is off. */
  id: string;
  /** The key's name, the username. */
  name: string;
  scopes: readonly Scope[];
  /** For a session: the user's role. */
  role?: Role;
  /** For a session: when it ends. */
  expiresAt?: number;
}

export const ANONYMOUS: Principal = {
  kind: 'anonymous',
  id: 'anonymous',
  name: 'anonymous',
  scopes: ['admin'],
};

/** Letters, digits and `._@-`: safe in logs, URLs and shells. */
const USERNAME = /^[A-Za-z0-9._@-]{1,64}$/;
/** A device id is its MQTT username and a topic level, so no `/`, `+`, `#`. */
const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_KEY_NAME = 100;
/** `lastUsedAt` is written at most this often per key, not on every request. */
const TOUCH_INTERVAL_MS = 60_000;

export interface AuthServiceOptions {
  store: AuthStore;
  clock: Clock;
  /** How long a dashboard session lasts from login. */
  sessionTtlMs: number;
  logger?: Logger;
}

export interface NewApiKey {
  name: string;
  scopes: readonly string[];
  /** Epoch ms, in the future; absent: never expires. */
  expiresAt?: number | undefined;
}

/** A refusal of presented credentials (CANOPY_AUTH_REQUIRED), with why for the log. */
export class CredentialsRefused extends CanopyError {
  constructor(
    message: string,
    readonly why: string,
  ) {
    super('CANOPY_AUTH_REQUIRED', message);
  }
}

export class AuthService {
  private readonly store: AuthStore;
  private readonly clock: Clock;
  private readonly log: Logger;
  readonly sessionTtlMs: number;
  /** When each key's last use was last written (see TOUCH_INTERVAL_MS). */
  private readonly touched = new Map<string, number>();
  /** Credentials that live only in this process (the built-in simulator's); never stored. */
  private readonly ephemeralKeys = new Map<string, Principal>();
  private readonly ephemeralDevices = new Map<string, Device>();

  constructor(options: AuthServiceOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.sessionTtlMs = options.sessionTtlMs;
    this.log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'auth' });
  }

  /** The service's clock (for callers that work out expiry times). */
  now(): number {
    return this.clock.now();
  }

  // ---- API keys ---------------------------------------------------------

  /** Makes a key; `key` is its text, shown once and never stored. */
  async createApiKey(spec: NewApiKey): Promise<{ apiKey: ApiKey; key: string }> {
    const name = spec.name.trim();
    if (name.length === 0 || name.length > MAX_KEY_NAME)
      throw badRequest(`a key name must be 1 to ${MAX_KEY_NAME} characters`);
    const scopes = checkScopes(spec.scopes);
    const now = this.clock.now();
    if (spec.expiresAt !== undefined && !(spec.expiresAt > now))
      throw badRequest('a key must expire in the future');
    const { id, key, hash } = generateApiKey();
    const apiKey: ApiKey = {
      id,
      name,
      scopes,
      hash,
      createdAt: now,
      expiresAt: spec.expiresAt ?? null,
      revokedAt: null,
      lastUsedAt: null,
    };
    // 64 random bits of id: a clash is a broken random source, not bad luck.
    if (!(await this.store.createApiKey(apiKey))) throw new Error(`API key id ${id} exists`);
    this.log.info({ keyId: id, name, scopes }, 'API key created');
    return { apiKey, key };
  }

  listApiKeys(): Promise<ApiKey[]> {
    return this.store.listApiKeys();
  }

  /** Throws CANOPY_API_NOT_FOUND for an unknown or already revoked key. */
  async revokeApiKey(id: string): Promise<void> {
    if (!(await this.store.revokeApiKey(id, this.clock.now())))
      throw new CanopyError('CANOPY_API_NOT_FOUND', `no active API key ${id}`);
    this.log.info({ keyId: id }, 'API key revoked');
  }

  /**
   * The principal of a presented key. Throws CredentialsRefused for a
   * malformed, unknown, wrong, revoked or expired key.
   */
  async authenticateKey(text: string): Promise<Principal> {
    const ephemeral = this.ephemeralKeys.get(sha256Hex(text));
    if (ephemeral) return ephemeral;
    const id = apiKeyId(text);
    if (id === undefined) throw keyRefused('malformed');
    const key = await this.store.getApiKey(id);
    if (key === undefined) throw keyRefused('unknown id');
    if (!matchesHash(text, key.hash)) throw keyRefused('wrong secret');
    const now = this.clock.now();
    if (key.revokedAt !== null) throw keyRefused('revoked');
    if (key.expiresAt !== null && now >= key.expiresAt) throw keyRefused('expired');
    this.touch(id, now);
    return { kind: 'api-key', id, name: key.name, scopes: key.scopes };
  }

  /** Records the use in the background, at most once per TOUCH_INTERVAL_MS per key. */
  private touch(id: string, now: number): void {
    const last = this.touched.get(id);
    if (last !== undefined && now - last < TOUCH_INTERVAL_MS) return;
    this.touched.set(id, now);
    this.store.touchApiKey(id, now).catch((err: unknown) => {
      this.log.warn({ err, keyId: id }, 'could not record the last use of an API key');
    });
  }

  /** A key valid until this process ends, never stored (the built-in simulator's). */
  ephemeralApiKey(name: string, scopes: readonly Scope[]): string {
    const { id, key } = generateApiKey();
    this.ephemeralKeys.set(sha256Hex(key), { kind: 'api-key', id, name, scopes });
    return key;
  }

  // ---- users and sessions ----------------------------------------------

  async addUser(username: string, role: string, password: string): Promise<User> {
    checkUsername(username);
    const checkedRole = checkRole(role);
    checkPasswordPolicy(password);
    const now = this.clock.now();
    const user: User = {
      username,
      role: checkedRole,
      passwordHash: await hashPassword(password),
      createdAt: now,
      passwordChangedAt: now,
    };
    if (!(await this.store.createUser(user)))
      throw new CanopyError('CANOPY_AUTH_CONFLICT', `a user ${username} exists already`);
    this.log.info({ username, role: checkedRole }, 'user added');
    return user;
  }

  listUsers(): Promise<User[]> {
    return this.store.listUsers();
  }

  /** Throws CANOPY_API_NOT_FOUND for an unknown user. Their sessions end. */
  async removeUser(username: string): Promise<void> {
    if (!(await this.store.removeUser(username)))
      throw new CanopyError('CANOPY_API_NOT_FOUND', `no user ${username}`);
    this.log.info({ username }, 'user removed');
  }

  /** Throws CANOPY_API_NOT_FOUND for an unknown user. Their sessions end. */
  async setPassword(username: string, password: string): Promise<void> {
    checkPasswordPolicy(password);
    const hash = await hashPassword(password);
    if (!(await this.store.setPassword(username, hash, this.clock.now())))
      throw new CanopyError('CANOPY_API_NOT_FOUND', `no user ${username}`);
    this.log.info({ username }, 'password changed; the user’s sessions ended');
  }

  /**
   * Checks a username and password and opens a session; `token` goes in the
   * cookie and is never stored. Throws CredentialsRefused when either is
   * wrong, taking as long whether or not the user exists.
   */
  async login(
    username: string,
    password: string,
  ): Promise<{ token: string; session: Session; principal: Principal }> {
    const user = USERNAME.test(username) ? await this.store.getUser(username) : undefined;
    if (user === undefined) {
      await spendPasswordCheck(password);
      throw new CredentialsRefused('the username or password is wrong', 'unknown user');
    }
    if (!(await verifyPassword(password, user.passwordHash)))
      throw new CredentialsRefused('the username or password is wrong', 'wrong password');
    const token = generateSessionToken();
    const now = this.clock.now();
    const session: Session = {
      id: sha256Hex(token),
      username,
      createdAt: now,
      expiresAt: now + this.sessionTtlMs,
    };
    await this.store.createSession(session);
    this.log.info({ username }, 'logged in');
    return { token, session, principal: sessionPrincipal(user, session) };
  }

  /** Ends the session of `token`; false when there was none. */
  logout(token: string): Promise<boolean> {
    return this.store.deleteSession(sha256Hex(token));
  }

  /**
   * The principal of a session cookie, with the user's role as it is now
   * (a role change or removal applies to open sessions at once). Throws
   * CredentialsRefused for an unknown, expired or orphaned session.
   */
  async authenticateSession(token: string): Promise<Principal> {
    const session = await this.store.getSession(sha256Hex(token));
    if (session === undefined) throw sessionRefused('unknown');
    if (this.clock.now() >= session.expiresAt) throw sessionRefused('expired');
    const user = await this.store.getUser(session.username);
    if (user === undefined) throw sessionRefused('user removed');
    return sessionPrincipal(user, session);
  }

  // ---- MQTT devices ----------------------------------------------------

  /**
   * Makes a device's credentials; `password` is shown once, never stored.
   * Default ACL: `sensors/<id>/#`. Throws CANOPY_AUTH_CONFLICT when an
   * active device has the id.
   */
  async createDevice(
    id: string,
    topics?: readonly string[],
  ): Promise<{ device: Device; password: string }> {
    if (!DEVICE_ID.test(id))
      throw badRequest('a device id must be 1 to 64 letters, digits, ".", "_" or "-"');
    const acl = topics === undefined || topics.length === 0 ? [`sensors/${id}/#`] : [...topics];
    for (const filter of acl) {
      if (!isTopicFilter(filter) || filter.startsWith('$'))
        throw badRequest(`"${filter}" is not an MQTT topic filter a device may be given`);
    }
    const password = generateDevicePassword();
    const device: Device = {
      id,
      passwordHash: sha256Hex(password),
      topics: acl,
      createdAt: this.clock.now(),
      revokedAt: null,
    };
    if (!(await this.store.createDevice(device)))
      throw new CanopyError(
        'CANOPY_AUTH_CONFLICT',
        `device ${id} exists already; revoke it first to give it new credentials`,
      );
    this.log.info({ deviceId: id, topics: acl }, 'device credentials created');
    return { device, password };
  }

  listDevices(): Promise<Device[]> {
    return this.store.listDevices();
  }

  /** Throws CANOPY_API_NOT_FOUND for an unknown or already revoked device. */
  async revokeDevice(id: string): Promise<void> {
    if (!(await this.store.revokeDevice(id, this.clock.now())))
      throw new CanopyError('CANOPY_API_NOT_FOUND', `no active device ${id}`);
    this.log.info({ deviceId: id }, 'device revoked');
  }

  /** The device whose username and password these are, or undefined (unknown, wrong, revoked). */
  async authenticateDevice(username: string, password: string): Promise<Device | undefined> {
    const device = this.ephemeralDevices.get(username) ?? (await this.store.getDevice(username));
    if (device === undefined || device.revokedAt !== null) return undefined;
    return matchesHash(password, device.passwordHash) ? device : undefined;
  }

  /** Device credentials valid until this process ends, never stored; returns the password. */
  ephemeralDevice(id: string, topics: readonly string[]): string {
    const password = generateDevicePassword();
    this.ephemeralDevices.set(id, {
      id,
      passwordHash: sha256Hex(password),
      topics: [...topics],
      createdAt: this.clock.now(),
      revokedAt: null,
    });
    return password;
  }
}

function sessionPrincipal(user: User, session: Session): Principal {
  return {
    kind: 'session',
    id: user.username,
    name: user.username,
    scopes: ROLE_SCOPES[user.role],
    role: user.role,
    expiresAt: session.expiresAt,
  };
}

function badRequest(message: string): CanopyError {
  return new CanopyError('CANOPY_API_BAD_REQUEST', message);
}

function keyRefused(why: string): CredentialsRefused {
  return new CredentialsRefused('the API key is not accepted', why);
}

function sessionRefused(why: string): CredentialsRefused {
  return new CredentialsRefused('the session has ended; log in again', why);
}

export function checkScopes(scopes: readonly string[]): Scope[] {
  const unknown = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (scopes.length === 0 || unknown.length > 0)
    throw badRequest(
      `scopes must be one or more of ${SCOPES.join(', ')}${unknown.length > 0 ? `; unknown: ${unknown.join(', ')}` : ''}`,
    );
  return SCOPES.filter((s) => scopes.includes(s));
}

function checkRole(role: string): Role {
  if (!(ROLES as readonly string[]).includes(role))
    throw badRequest(`role must be one of ${ROLES.join(', ')}`);
  return role as Role;
}

function checkUsername(username: string): void {
  if (!USERNAME.test(username))
    throw badRequest('a username must be 1 to 64 letters, digits, ".", "_", "@" or "-"');
}
