/**
 * The `AuthStore` half of `DuckDbMetaStore`: one function per method, each
 * given the store's connection by the store's queue (so none interleaves
 * with another call). Keys, users and devices have no table keys in DuckDB
 * (see migration v3 in meta-sql.ts): they are inserted only where absent.
 */
import { BIGINT, VARCHAR, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
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
import { bind, inTransaction, ms, placeholders } from './duckdb-sql.js';

// Parameter types in the column order of auth-sql's `*_COLUMNS`.
const API_KEY_TYPES: readonly DuckDBType[] = [
  VARCHAR, // id
  VARCHAR, // name
  VARCHAR, // scopes
  VARCHAR, // hash
  BIGINT, // created_at
  BIGINT, // expires_at
  BIGINT, // revoked_at
  BIGINT, // last_used_at
];
const USER_TYPES: readonly DuckDBType[] = [VARCHAR, VARCHAR, VARCHAR, BIGINT, BIGINT];
const SESSION_TYPES: readonly DuckDBType[] = [VARCHAR, VARCHAR, BIGINT, BIGINT];
const DEVICE_TYPES: readonly DuckDBType[] = [VARCHAR, VARCHAR, VARCHAR, BIGINT, BIGINT];

async function rows(
  conn: DuckDBConnection,
  sql: string,
  values: (string | bigint)[] = [],
  types: DuckDBType[] = [],
): Promise<unknown[][]> {
  return (await conn.runAndReadAll(sql, values, types)).getRows();
}

/** Runs `sql` (whose first parameter is the row's key) and tells whether it changed a row. */
async function changed(
  conn: DuckDBConnection,
  sql: string,
  values: (string | bigint)[],
  types: DuckDBType[],
): Promise<boolean> {
  return (await conn.run(sql, values, types)).rowsChanged > 0;
}

/** `INSERT … SELECT <row> WHERE NOT EXISTS (row with the same first column)`. */
async function insertWhereAbsent(
  conn: DuckDBConnection,
  table: string,
  columns: string,
  values: (string | number | null)[],
  types: readonly DuckDBType[],
): Promise<boolean> {
  const keyColumn = columns.split(', ')[0]!;
  const inserted = await conn.run(
    `INSERT INTO ${table} (${columns}) SELECT ${placeholders(types.length)}
     WHERE NOT EXISTS (SELECT 1 FROM ${table} WHERE ${keyColumn} = $1)`,
    ...bind(values, types),
  );
  return inserted.rowsChanged > 0;
}

export function createApiKey(conn: DuckDBConnection, key: ApiKey): Promise<boolean> {
  return insertWhereAbsent(
    conn,
    'auth_api_keys',
    API_KEY_COLUMNS,
    apiKeyValues(key),
    API_KEY_TYPES,
  );
}

export async function getApiKey(conn: DuckDBConnection, id: string): Promise<ApiKey | undefined> {
  const [row] = await rows(
    conn,
    `SELECT ${API_KEY_COLUMNS} FROM auth_api_keys WHERE id = $1`,
    [id],
    [VARCHAR],
  );
  return row === undefined ? undefined : toApiKey(row);
}

export async function listApiKeys(conn: DuckDBConnection): Promise<ApiKey[]> {
  return (
    await rows(conn, `SELECT ${API_KEY_COLUMNS} FROM auth_api_keys ORDER BY created_at, id`)
  ).map(toApiKey);
}

export function revokeApiKey(conn: DuckDBConnection, id: string, at: number): Promise<boolean> {
  return changed(
    conn,
    'UPDATE auth_api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL',
    [id, ms(at)],
    [VARCHAR, BIGINT],
  );
}

export async function touchApiKey(conn: DuckDBConnection, id: string, at: number): Promise<void> {
  await conn.run(
    'UPDATE auth_api_keys SET last_used_at = $2 WHERE id = $1',
    [id, ms(at)],
    [VARCHAR, BIGINT],
  );
}

export function createUser(conn: DuckDBConnection, user: User): Promise<boolean> {
  return insertWhereAbsent(conn, 'auth_users', USER_COLUMNS, userValues(user), USER_TYPES);
}

export async function getUser(conn: DuckDBConnection, username: string): Promise<User | undefined> {
  const [row] = await rows(
    conn,
    `SELECT ${USER_COLUMNS} FROM auth_users WHERE username = $1`,
    [username],
    [VARCHAR],
  );
  return row === undefined ? undefined : toUser(row);
}

export async function listUsers(conn: DuckDBConnection): Promise<User[]> {
  return (await rows(conn, `SELECT ${USER_COLUMNS} FROM auth_users ORDER BY username`)).map(toUser);
}

export function setPassword(
  conn: DuckDBConnection,
  username: string,
  passwordHash: string,
  at: number,
): Promise<boolean> {
  return inTransaction(conn, async () => {
    const updated = await changed(
      conn,
      'UPDATE auth_users SET password_hash = $2, password_changed_at = $3 WHERE username = $1',
      [username, passwordHash, ms(at)],
      [VARCHAR, VARCHAR, BIGINT],
    );
    if (updated) {
      await conn.run('DELETE FROM auth_sessions WHERE username = $1', [username], [VARCHAR]);
    }
    return updated;
  });
}

export function removeUser(conn: DuckDBConnection, username: string): Promise<boolean> {
  return inTransaction(conn, async () => {
    await conn.run('DELETE FROM auth_sessions WHERE username = $1', [username], [VARCHAR]);
    return changed(conn, 'DELETE FROM auth_users WHERE username = $1', [username], [VARCHAR]);
  });
}

export async function createSession(conn: DuckDBConnection, session: Session): Promise<void> {
  await conn.run(
    `INSERT INTO auth_sessions (${SESSION_COLUMNS}) VALUES (${placeholders(SESSION_TYPES.length)})`,
    ...bind(sessionValues(session), SESSION_TYPES),
  );
}

export async function getSession(conn: DuckDBConnection, id: string): Promise<Session | undefined> {
  const [row] = await rows(
    conn,
    `SELECT ${SESSION_COLUMNS} FROM auth_sessions WHERE id = $1`,
    [id],
    [VARCHAR],
  );
  return row === undefined ? undefined : toSession(row);
}

export function deleteSession(conn: DuckDBConnection, id: string): Promise<boolean> {
  return changed(conn, 'DELETE FROM auth_sessions WHERE id = $1', [id], [VARCHAR]);
}

export async function purgeSessions(conn: DuckDBConnection, before: number): Promise<number> {
  const deleted = await conn.run(
    'DELETE FROM auth_sessions WHERE expires_at <= $1',
    [ms(before)],
    [BIGINT],
  );
  return Number(deleted.rowsChanged);
}

/** Replaces a revoked device with the same id, or inserts where none exists; one transaction. */
export function createDevice(conn: DuckDBConnection, device: Device): Promise<boolean> {
  return inTransaction(conn, async () => {
    await conn.run(
      'DELETE FROM auth_devices WHERE id = $1 AND revoked_at IS NOT NULL',
      [device.id],
      [VARCHAR],
    );
    return insertWhereAbsent(
      conn,
      'auth_devices',
      DEVICE_COLUMNS,
      deviceValues(device),
      DEVICE_TYPES,
    );
  });
}

export async function getDevice(conn: DuckDBConnection, id: string): Promise<Device | undefined> {
  const [row] = await rows(
    conn,
    `SELECT ${DEVICE_COLUMNS} FROM auth_devices WHERE id = $1`,
    [id],
    [VARCHAR],
  );
  return row === undefined ? undefined : toDevice(row);
}

export async function listDevices(conn: DuckDBConnection): Promise<Device[]> {
  return (await rows(conn, `SELECT ${DEVICE_COLUMNS} FROM auth_devices ORDER BY id`)).map(toDevice);
}

export function revokeDevice(conn: DuckDBConnection, id: string, at: number): Promise<boolean> {
  return changed(
    conn,
    'UPDATE auth_devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL',
    [id, ms(at)],
    [VARCHAR, BIGINT],
  );
}
