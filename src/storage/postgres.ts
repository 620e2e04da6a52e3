/**
 * What the PostgreSQL adapters (metadata store, warehouse) share: how a
 * connection is named in logs and errors (never with its password), and one
 * transaction on one pooled client.
 */
import pg from 'pg';
import { CanopyError } from '../core/errors.js';

export interface PostgresTarget {
  connectionString?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  user?: string | undefined;
  database?: string | undefined;
}

/**
 * A pool whose connections' failures never crash the process. `pg.Pool`
 * listens for errors only on idle clients; a checked-out client with no
 * query running (an adapter between two statements of a transaction) that
 * loses its server (shutdown: FATAL 57P01) would emit 'error' with nobody
 * listening. Every client is watched for its whole life instead: the
 * transaction's next query then fails, its ROLLBACK fails too, and
 * `inPostgresTransaction` discards the client; the next call connects anew.
 */
export function openPostgresPool(
  config: pg.PoolConfig,
  onError: (err: Error, when: 'idle' | 'in use') => void,
): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on('error', (err) => onError(err, 'idle'));
  pool.on('connect', (client) => client.on('error', (err) => onError(err, 'in use')));
  return pool;
}

/** Where a PostgreSQL adapter connects and which schema it owns. */
export interface PostgresConnectionOptions extends PostgresTarget {
  /** `postgres://user:password@host:port/database`; when set, the fields below are ignored except `schema`. */
  connectionString?: string | undefined;
  password?: string | undefined;
  /** Schema of the adapter's tables (created if missing): lowercase letters, digits, `_`. */
  schema: string;
}

/** What a configured schema name may be: lowercase letters, digits and `_`, as PostgreSQL folds unquoted names. */
const PLAIN_IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The pool settings of a connection, with at most `max` clients. Throws
 * CANOPY_CONFIG_INVALID when the schema is not a plain identifier (it is
 * spliced into SQL, quoted); `what` names the setting in the message.
 */
export function postgresPoolConfig(
  what: string,
  options: PostgresConnectionOptions,
  max: number,
): pg.PoolConfig {
  if (!PLAIN_IDENTIFIER.test(options.schema)) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `${what} schema must be lowercase letters, digits and _, got ${JSON.stringify(options.schema)}`,
    );
  }
  if (options.connectionString) return { connectionString: options.connectionString, max };
  const { host, port, user, password, database } = options;
  return { host, port, user, password, database, max };
}

/** `postgres://user@host:port/database`, without the password. */
export function describePostgresTarget(options: PostgresTarget): string {
  if (options.connectionString) {
    try {
      const url = new URL(options.connectionString);
      url.password = '';
      return url.toString();
    } catch {
      return 'postgres (unparsable connection string)';
    }
  }
  const user = options.user ? `${options.user}@` : '';
  return `postgres://${user}${options.host ?? 'localhost'}:${options.port ?? 5432}/${options.database ?? ''}`;
}

/** Runs `work` in one transaction on one pooled client, rolled back on any failure. */
export async function inPostgresTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw err;
  } finally {
    // A client whose ROLLBACK failed may be mid-transaction: discard it.
    client.release(broken);
  }
}
