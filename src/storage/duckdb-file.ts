/**
 * Opening a DuckDB file the way every Canopy store does: one instance per
 * file per process, and no extension downloads.
 *
 * DuckDB's file lock only keeps other processes out; a second instance on
 * the same file in this process would open it too, and two writers would
 * corrupt it. `claimDuckDbFile` keeps a process-wide registry of the files
 * the stores hold.
 */
import { mkdirSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const openFiles = new Set<string>();

export interface DuckDbFileClaim {
  /** Where DuckDB may keep extensions: beside the file, or a temp folder for `:memory:`. */
  extensionDir: string;
  /** Gives the file up (idempotent): another store in this process may then open it. */
  release(): void;
}

/**
 * Creates the file's folder and claims the file for the caller. `:memory:`
 * needs no claim. Throws what `fail` builds: `folder` when the folder cannot
 * be made (with the cause), `already-open` when another store here holds it.
 */
export function claimDuckDbFile(
  dbPath: string,
  fail: (problem: 'folder' | 'already-open', cause?: unknown) => Error,
): DuckDbFileClaim {
  if (dbPath === ':memory:')
    return { extensionDir: path.join(tmpdir(), 'canopy-duckdb-extensions'), release() {} };
  const dir = path.dirname(dbPath);
  let key: string;
  try {
    mkdirSync(dir, { recursive: true });
    key = path.join(realpathSync(dir), path.basename(dbPath));
  } catch (cause) {
    throw fail('folder', cause);
  }
  if (openFiles.has(key)) throw fail('already-open');
  openFiles.add(key);
  let held = true;
  return {
    extensionDir: path.join(dir, '.duckdb-extensions'),
    release() {
      if (held) openFiles.delete(key);
      held = false;
    },
  };
}

/**
 * Instance options: no network, so no extension is installed or loaded
 * behind Canopy's back (parquet, json and icu are built in); an attempt to
 * download one would only hang or fail.
 */
export function offlineDuckDbOptions(extensionDir: string): Record<string, string> {
  return {
    extension_directory: extensionDir,
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  };
}
