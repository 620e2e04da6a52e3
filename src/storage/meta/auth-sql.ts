/**
 * What both adapters share for credentials (the tables come from migration
 * v3 in meta-sql.ts): column lists, the values to bind, and the mapping of
 * result rows back to the core types, so that DuckDB and PostgreSQL store
 * and answer alike. `scopes` and `topics` are JSON arrays as text.
 */
import type { ApiKey, Device, Role, Scope, Session, User } from '../../core/auth.js';
import { nullable, num, str } from './meta-sql.js';

export const API_KEY_COLUMNS =
  'id, name, scopes, hash, created_at, expires_at, revoked_at, last_used_at';
export const USER_COLUMNS = 'username, role, password_hash, created_at, password_changed_at';
export const SESSION_COLUMNS = 'id, username, created_at, expires_at';
export const DEVICE_COLUMNS = 'id, password_hash, topics, created_at, revoked_at';

export type Cell = string | number | null;

export function apiKeyValues(k: ApiKey): Cell[] {
  return [
    k.id,
    k.name,
    JSON.stringify(k.scopes),
    k.hash,
    k.createdAt,
    k.expiresAt,
    k.revokedAt,
    k.lastUsedAt,
  ];
}

export function userValues(u: User): Cell[] {
  return [u.username, u.role, u.passwordHash, u.createdAt, u.passwordChangedAt];
}

export function sessionValues(s: Session): Cell[] {
  return [s.id, s.username, s.createdAt, s.expiresAt];
}

export function deviceValues(d: Device): Cell[] {
  return [d.id, d.passwordHash, JSON.stringify(d.topics), d.createdAt, d.revokedAt];
}

export function toApiKey(row: readonly unknown[]): ApiKey {
  return {
    id: str(row[0]),
    name: str(row[1]),
    scopes: JSON.parse(str(row[2])) as Scope[],
    hash: str(row[3]),
    createdAt: num(row[4]),
    expiresAt: nullable(row[5], num),
    revokedAt: nullable(row[6], num),
    lastUsedAt: nullable(row[7], num),
  };
}

export function toUser(row: readonly unknown[]): User {
  return {
    username: str(row[0]),
    role: str(row[1]) as Role,
    passwordHash: str(row[2]),
    createdAt: num(row[3]),
    passwordChangedAt: num(row[4]),
  };
}

export function toSession(row: readonly unknown[]): Session {
  return {
    id: str(row[0]),
    username: str(row[1]),
    createdAt: num(row[2]),
    expiresAt: num(row[3]),
  };
}

export function toDevice(row: readonly unknown[]): Device {
  return {
    id: str(row[0]),
    passwordHash: str(row[1]),
    topics: JSON.parse(str(row[2])) as string[],
    createdAt: num(row[3]),
    revokedAt: nullable(row[4], num),
  };
}
