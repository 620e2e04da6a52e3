/** Running `canopy up` as a child process and reading the ports it bound from its JSON log. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';

const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface CanopyProcess {
  child: ChildProcess;
  httpUrl: string;
  mqttUrl: string;
  /** Resolves with the exit code or signal. */
  exited: Promise<number | NodeJS.Signals | null>;
}

/** Starts `canopy up [upArgs]` with tsx on ports 0 and resolves once the API and broker listen. */
export async function spawnCanopy(
  env: Record<string, string>,
  upArgs: string[] = [],
  timeoutMs = 20_000,
): Promise<CanopyProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'up', ...upArgs],
    {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        CANOPY_HTTP_PORT: '0',
        CANOPY_MQTT_PORT: '0',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));

  const ports = await new Promise<{ httpUrl: string; mqttUrl: string }>((resolve, reject) => {
    let httpUrl: string | undefined;
    let mqttUrl: string | undefined;
    const timer = setTimeout(
      () => reject(new Error(`canopy did not start within ${timeoutMs} ms; stderr: ${stderr}`)),
      timeoutMs,
    );
    void exited.then((code) =>
      reject(new Error(`canopy exited early (${String(code)}); stderr: ${stderr}`)),
    );
    createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: { msg?: string; url?: string; port?: number };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        return;
      }
      if (entry.msg === 'API listening') httpUrl = entry.url;
      if (entry.msg === 'embedded MQTT broker listening')
        mqttUrl = `mqtt://127.0.0.1:${entry.port}`;
      if (httpUrl && mqttUrl) {
        clearTimeout(timer);
        resolve({ httpUrl, mqttUrl });
      }
    });
  });
  return { child, exited, ...ports };
}
