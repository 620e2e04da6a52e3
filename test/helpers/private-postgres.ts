/**
 * A private PostgreSQL cluster for fault tests that stop the database: its own
 * data folder and port, so the machine's server on 5432 (which other tests use
 * at the same time) is never touched.
 *
 * Uses Debian's server binaries (/usr/lib/postgresql/<version>/bin). PostgreSQL
 * refuses to run as root, so when the tests run as root the binaries run as
 * the `postgres` OS user, and the data folder belongs to it. With CI=true
 * missing binaries are a failure; elsewhere `privatePostgresForTests` warns
 * and the suite is skipped.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, waitFor } from './faults.js';
import { inCI } from './services.js';

const DEBIAN_POSTGRES = '/usr/lib/postgresql';

/** The bin folder of the newest installed server, or null. */
export function findPostgresBinaries(): string | null {
  if (!existsSync(DEBIAN_POSTGRES)) return null;
  const versions = readdirSync(DEBIAN_POSTGRES)
    .filter((v) => existsSync(path.join(DEBIAN_POSTGRES, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length === 0 ? null : path.join(DEBIAN_POSTGRES, versions[0]!, 'bin');
}

/**
 * Whether the suite needing a private cluster should run: true when the
 * binaries exist, or in CI (where `startPrivatePostgres` then throws).
 */
export function privatePostgresForTests(): boolean {
  if (findPostgresBinaries() !== null || inCI) return true;
  console.warn(
    `skipping private-PostgreSQL tests: no server binaries under ${DEBIAN_POSTGRES}/<version>/bin (set CI=true to make this a failure)`,
  );
  return false;
}

export interface PrivatePostgres {
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust authentication). */
  readonly url: string;
  /** Starts the server and resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops the server: `fast` ends sessions cleanly, `immediate` as after a crash (WAL recovery at start). */
  stop(mode?: 'fast' | 'immediate'): void;
  /** Runs one statement on a fresh connection. */
  query<T extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<T[]>;
  /** Stops the server if running and deletes the data folder. */
  cleanup(): void;
}

/** initdb a cluster in a temp folder on a free port and start it. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = findPostgresBinaries();
  if (bin === null) throw new Error(`no PostgreSQL server binaries under ${DEBIAN_POSTGRES}`);
  const root = userInfo().uid === 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'canopy-private-pg-'));
  const dataDir = path.join(dir, 'data');
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const run = (tool: string, args: string[]): void => {
    const command = path.join(bin, tool);
    if (root)
      execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: 'pipe' });
    else execFileSync(command, args, { stdio: 'pipe' });
  };
  run('initdb', ['-D', dataDir, '--auth=trust', '-U', 'postgres', '--no-sync']);
  const port = await freePort();
  // Unix socket in the temp folder: the default /var/run/postgresql belongs to the machine's server.
  const serverOptions = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir}`;
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let running = false;

  const cluster: PrivatePostgres = {
    port,
    url,
    async start() {
      run('pg_ctl', [
        '-D',
        dataDir,
        '-o',
        serverOptions,
        '-l',
        path.join(dir, 'server.log'),
        '-w',
        'start',
      ]);
      running = true;
      await waitFor(`private PostgreSQL on port ${port}`, async () => {
        const client = new pg.Client({ connectionString: url });
        try {
          await client.connect();
          await client.end();
          return true;
        } catch {
          return false;
        }
      });
    },
    stop(mode = 'fast') {
      run('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
      running = false;
    },
    async query<T extends pg.QueryResultRow>(text: string, values: unknown[] = []) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return (await client.query<T>(text, values)).rows;
      } finally {
        await client.end();
      }
    },
    cleanup() {
      if (running) {
        try {
          run('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
        } catch {
          // Already stopped (a failed test may have left it either way).
        }
        running = false;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
