/**
 * The authentication contract: API keys with scopes, dashboard users with
 * roles and their sessions, and MQTT device credentials, kept in the
 * metadata store (DuckDB by default, PostgreSQL by config). Every adapter
 * passes the conformance suite in `src/storage/meta/auth-store.conformance.ts`.
 *
 * The store holds only hashes: an API key, a session token or a device
 * password is shown once when made and never stored in clear (see
 * src/auth/secrets.ts for how each is hashed). Times are epoch milliseconds.
 */

/**
 * What a caller may do. `admin` includes every other scope.
 * - `ingest`: send readings (`POST /api/data`).
 * - `read`: every `GET` of the API (readings, sensors, alerts, rules, runs, …).
 * - `query`: read-only SQL over the lake (`POST /api/query`).
 * - `operate`: act on alerts (ack, snooze, resolve) and run, backfill, pause
 *   or resume workflows, complete workflow callbacks.
 * - `admin`: API keys, users, devices, replacing the alert rules.
 */
export type Scope = 'ingest' | 'read' | 'query' | 'operate' | 'admin';
export const SCOPES: readonly Scope[] = ['ingest', 'read', 'query', 'operate', 'admin'];

/** A dashboard user's role: which scopes a session of theirs carries (ROLE_SCOPES). */
export type Role = 'viewer' | 'operator' | 'admin';
export const ROLES: readonly Role[] = ['viewer', 'operator', 'admin'];

export const ROLE_SCOPES: Readonly<Record<Role, readonly Scope[]>> = {
  viewer: ['read'],
  operator: ['read', 'query', 'operate'],
  admin: ['admin'],
};

/** Whether `granted` allows `needed` (`admin` allows everything). */
export function hasScope(granted: readonly Scope[], needed: Scope): boolean {
  return granted.includes('admin') || granted.includes(needed);
}

export interface ApiKey {
  /** Public identifier, part of the key text (`cnp_<id>_<secret>`); how keys are listed and revoked. */
  id: string;
  /** A label for people ("grafana", "plant-floor gateway"); not unique. */
  name: string;
  scopes: Scope[];
  /** Hex SHA-256 of the whole key text. */
  hash: string;
  createdAt: number;
  /** After this the key is refused; null never expires. */
  expiresAt: number | null;
  /** When it was revoked; a revoked key is kept for the record and refused. */
  revokedAt: number | null;
  /** Last accepted use, recorded at most about once a minute; null never used. */
  lastUsedAt: number | null;
}

export interface User {
  /** Unique, as typed at login. */
  username: string;
  role: Role;
  /** scrypt hash in the self-describing form of src/auth/secrets.ts. */
  passwordHash: string;
  createdAt: number;
  /** When the password last changed (creation counts). */
  passwordChangedAt: number;
}

export interface Session {
  /** Hex SHA-256 of the session token the cookie carries. */
  id: string;
  username: string;
  createdAt: number;
  /** The session is refused from this time on. */
  expiresAt: number;
}

export interface Device {
  /** The MQTT username: letters, digits, `.`, `_`, `-`. */
  id: string;
  /** Hex SHA-256 of the generated password. */
  passwordHash: string;
  /** Topic filters the device may publish to (and subscribe under). */
  topics: string[];
  createdAt: number;
  revokedAt: number | null;
}

/**
 * Where credentials live. Writes are single statements or one transaction
 * each, so a crash leaves a credential either fully made or absent.
 */
export interface AuthStore {
  /** Inserts the key; false (and nothing written) when its id exists. */
  createApiKey(key: ApiKey): Promise<boolean>;
  getApiKey(id: string): Promise<ApiKey | undefined>;
  /** Every key, revoked and expired ones too, oldest first (ties by id). */
  listApiKeys(): Promise<ApiKey[]>;
  /** Marks the key revoked at `at`; false when unknown or already revoked (left as it was). */
  revokeApiKey(id: string, at: number): Promise<boolean>;
  /** Sets `lastUsedAt` (no-op for an unknown id). */
  touchApiKey(id: string, at: number): Promise<void>;

  /** Inserts the user; false (and nothing written) when the username exists. */
  createUser(user: User): Promise<boolean>;
  getUser(username: string): Promise<User | undefined>;
  /** Every user, by username. */
  listUsers(): Promise<User[]>;
  /**
   * Replaces the password hash and `passwordChangedAt`, and ends every
   * session of the user, in one transaction; false when the user is unknown.
   */
  setPassword(username: string, passwordHash: string, at: number): Promise<boolean>;
  /** Deletes the user and their sessions in one transaction; false when unknown. */
  removeUser(username: string): Promise<boolean>;

  /** Inserts the session (ids are random hashes: a repeat is a bug and rejects). */
  createSession(session: Session): Promise<void>;
  getSession(id: string): Promise<Session | undefined>;
  /** false when there was no such session. */
  deleteSession(id: string): Promise<boolean>;
  /** Deletes sessions whose `expiresAt` is at or before `before`; returns how many. */
  purgeSessions(before: number): Promise<number>;

  /**
   * Inserts the device. A revoked device with the same id is replaced (a
   * device gets new credentials by revoke, then create); false, and nothing
   * written, when an active one exists.
   */
  createDevice(device: Device): Promise<boolean>;
  getDevice(id: string): Promise<Device | undefined>;
  /** Every device, revoked ones too, by id. */
  listDevices(): Promise<Device[]>;
  /** Marks the device revoked; false when unknown or already revoked. */
  revokeDevice(id: string, at: number): Promise<boolean>;
}
