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

/** The log lines of a whole Canopy that say it is taking readings. */
const WHOLE_CANOPY_READY = ['API listening', 'embedded MQTT broker listening'];

/**
 * Starts `canopy up [upArgs]` with tsx on ports 0 and resolves once every
 * message of `readyWhen` was logged (by default: the API and the embedded
 * broker listen). `mqttUrl` is empty when no embedded broker started.
 */
export async function spawnCanopy(
  env: Record<string, string>,
  upArgs: string[] = [],
  timeoutMs = 20_000,
  readyWhen: readonly string[] = WHOLE_CANOPY_READY,
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
    let mqttUrl = '';
    const waitingFor = new Set(readyWhen);
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
      if (entry.msg !== undefined) waitingFor.delete(entry.msg);
      if (httpUrl !== undefined && waitingFor.size === 0) {
        clearTimeout(timer);
        resolve({ httpUrl, mqttUrl });
      }
    });
  });
  return { child, exited, ...ports };
}
