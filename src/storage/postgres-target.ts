/** How a PostgreSQL connection is named in logs and errors: never with its password. */

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
