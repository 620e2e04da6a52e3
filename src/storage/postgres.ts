/**
 * What the PostgreSQL adapters (metadata store, warehouse) share: how a
 * connection is named in logs and errors (never with its password), and one
 * transaction on one pooled client.
 */
import type pg from 'pg';

export interface PostgresTarget {
  connectionString?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  user?: string | undefined;
  database?: string | undefined;
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
