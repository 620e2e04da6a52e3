/** Building the dashboard (web/) into a folder of the test's own, so tests never touch web/dist. */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Runs `vite build web --outDir <fresh temp dir>`; resolves to that dir. */
export async function buildDashboard(): Promise<string> {
  const outDir = mkdtempSync(path.join(tmpdir(), 'canopy-web-'));
  await promisify(execFile)(
    process.execPath,
    [
      path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'),
      'build',
      'web',
      '--outDir',
      outDir,
      '--emptyOutDir',
      '--logLevel',
      'warn',
    ],
    // vitest sets NODE_ENV=test, which would make Vite build a development bundle.
    { cwd: root, timeout: 120_000, env: { ...process.env, NODE_ENV: 'production' } },
  );
  return outDir;
}
