/**
 * What the PostgreSQL adapters (metadata store, warehouse) share: how a
 * connection is named in logs and errors (never with its password), and one
 * transaction on one pooled client.
 */
import pg from 'pg';

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
