/**
 * The `AuthStore` half of `PostgresMetaStore`: one function per method, over
 * the store's pool. Here the tables have primary keys, so "insert unless it
 * exists" is ON CONFLICT DO NOTHING, safe when two processes race.
 */
import type { ApiKey, Device, Session, User } from '../../core/auth.js';
import {
  API_KEY_COLUMNS,
  DEVICE_COLUMNS,
  SESSION_COLUMNS,
  USER_COLUMNS,
  apiKeyValues,
  deviceValues,
  sessionValues,
  toApiKey,
  toDevice,
  toSession,
  toUser,
  userValues,
} from './auth-sql.js';
import type { PgAccess } from './postgres-workflows.js';

// Casts in `*_COLUMNS` order: pg sends every parameter as text.
const API_KEY_CASTS = ['text', 'text', 'text', 'text', 'bigint', 'bigint', 'bigint', 'bigint'];
const USER_CASTS = ['text', 'text', 'text', 'bigint', 'bigint'];
const SESSION_CASTS = ['text', 'text', 'bigint', 'bigint'];
const DEVICE_CASTS = ['text', 'text', 'text', 'bigint', 'bigint'];

function castPlaceholders(casts: readonly string[]): string {
  return casts.map((cast, i) => `$${i + 1}::${cast}`).join(', ');
}

/** Rows a statement changed, from its RETURNING 1. */
async function changed(db: PgAccess, text: string, values: unknown[]): Promise<number> {
  return (await db.rows(`${text} RETURNING 1`, values)).length;
}

export async function createApiKey(db: PgAccess, key: ApiKey): Promise<boolean> {
  const n = await changed(
    db,
    `INSERT INTO ${db.t('auth_api_keys')} (${API_KEY_COLUMNS}) VALUES (${castPlaceholders(API_KEY_CASTS)})
     ON CONFLICT (id) DO NOTHING`,
    apiKeyValues(key),
  );
  return n > 0;
}

export async function getApiKey(db: PgAccess, id: string): Promise<ApiKey | undefined> {
  const [row] = await db.rows(
    `SELECT ${API_KEY_COLUMNS} FROM ${db.t('auth_api_keys')} WHERE id = $1`,
    [id],
  );
  return row === undefined ? undefined : toApiKey(row);
}

export async function listApiKeys(db: PgAccess): Promise<ApiKey[]> {
  return (
    await db.rows(
      `SELECT ${API_KEY_COLUMNS} FROM ${db.t('auth_api_keys')} ORDER BY created_at, id COLLATE "C"`,
    )
  ).map(toApiKey);
}

export async function revokeApiKey(db: PgAccess, id: string, at: number): Promise<boolean> {
  const n = await changed(
    db,
    `UPDATE ${db.t('auth_api_keys')} SET revoked_at = $2::bigint WHERE id = $1 AND revoked_at IS NULL`,
    [id, at],
  );
  return n > 0;
}

export async function touchApiKey(db: PgAccess, id: string, at: number): Promise<void> {
  await db.rows(`UPDATE ${db.t('auth_api_keys')} SET last_used_at = $2::bigint WHERE id = $1`, [
    id,
    at,
  ]);
}

export async function createUser(db: PgAccess, user: User): Promise<boolean> {
  const n = await changed(
    db,
    `INSERT INTO ${db.t('auth_users')} (${USER_COLUMNS}) VALUES (${castPlaceholders(USER_CASTS)})
     ON CONFLICT (username) DO NOTHING`,
    userValues(user),
  );
  return n > 0;
}

export async function getUser(db: PgAccess, username: string): Promise<User | undefined> {
  const [row] = await db.rows(
    `SELECT ${USER_COLUMNS} FROM ${db.t('auth_users')} WHERE username = $1`,
    [username],
  );
  return row === undefined ? undefined : toUser(row);
}

export async function listUsers(db: PgAccess): Promise<User[]> {
  return (
    await db.rows(`SELECT ${USER_COLUMNS} FROM ${db.t('auth_users')} ORDER BY username COLLATE "C"`)
  ).map(toUser);
}

export function setPassword(
  db: PgAccess,
  username: string,
  passwordHash: string,
  at: number,
): Promise<boolean> {
  return db.transaction(async (client) => {
    const updated = await client.query(
      `UPDATE ${db.t('auth_users')} SET password_hash = $2, password_changed_at = $3::bigint
       WHERE username = $1`,
      [username, passwordHash, at],
    );
    if ((updated.rowCount ?? 0) === 0) return false;
    await client.query(`DELETE FROM ${db.t('auth_sessions')} WHERE username = $1`, [username]);
    return true;
  });
}

export function removeUser(db: PgAccess, username: string): Promise<boolean> {
  return db.transaction(async (client) => {
    await client.query(`DELETE FROM ${db.t('auth_sessions')} WHERE username = $1`, [username]);
    const deleted = await client.query(`DELETE FROM ${db.t('auth_users')} WHERE username = $1`, [
      username,
    ]);
    return (deleted.rowCount ?? 0) > 0;
  });
}

export async function createSession(db: PgAccess, session: Session): Promise<void> {
  await db.rows(
    `INSERT INTO ${db.t('auth_sessions')} (${SESSION_COLUMNS}) VALUES (${castPlaceholders(SESSION_CASTS)})`,
    sessionValues(session),
  );
}

export async function getSession(db: PgAccess, id: string): Promise<Session | undefined> {
  const [row] = await db.rows(
    `SELECT ${SESSION_COLUMNS} FROM ${db.t('auth_sessions')} WHERE id = $1`,
    [id],
  );
  return row === undefined ? undefined : toSession(row);
}

export async function deleteSession(db: PgAccess, id: string): Promise<boolean> {
  return (await changed(db, `DELETE FROM ${db.t('auth_sessions')} WHERE id = $1`, [id])) > 0;
}

export function purgeSessions(db: PgAccess, before: number): Promise<number> {
  return changed(db, `DELETE FROM ${db.t('auth_sessions')} WHERE expires_at <= $1::bigint`, [
    before,
  ]);
}

/** Replaces a revoked device with the same id, or inserts where none exists; one transaction. */
export function createDevice(db: PgAccess, device: Device): Promise<boolean> {
  return db.transaction(async (client) => {
    await client.query(
      `DELETE FROM ${db.t('auth_devices')} WHERE id = $1 AND revoked_at IS NOT NULL`,
      [device.id],
    );
    const inserted = await client.query(
      `INSERT INTO ${db.t('auth_devices')} (${DEVICE_COLUMNS}) VALUES (${castPlaceholders(DEVICE_CASTS)})
       ON CONFLICT (id) DO NOTHING`,
      deviceValues(device),
    );
    return (inserted.rowCount ?? 0) > 0;
  });
}

export async function getDevice(db: PgAccess, id: string): Promise<Device | undefined> {
  const [row] = await db.rows(
    `SELECT ${DEVICE_COLUMNS} FROM ${db.t('auth_devices')} WHERE id = $1`,
    [id],
  );
  return row === undefined ? undefined : toDevice(row);
}

export async function listDevices(db: PgAccess): Promise<Device[]> {
  return (
    await db.rows(`SELECT ${DEVICE_COLUMNS} FROM ${db.t('auth_devices')} ORDER BY id COLLATE "C"`)
  ).map(toDevice);
}

export async function revokeDevice(db: PgAccess, id: string, at: number): Promise<boolean> {
  const n = await changed(
    db,
    `UPDATE ${db.t('auth_devices')} SET revoked_at = $2::bigint WHERE id = $1 AND revoked_at IS NULL`,
    [id, at],
  );
  return n > 0;
}
