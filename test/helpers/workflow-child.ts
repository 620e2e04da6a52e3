/**
 * Runs test/fixtures/workflow-child.ts as a child process (`node --import
 * tsx`, as the CLI tests run Canopy) and follows the JSON lines it prints.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface ChildEvent {
  event: string;
  pid: number;
  [key: string]: unknown;
}

export interface WorkflowChild {
  child: ChildProcessWithoutNullStreams;
  /** Every event printed so far, in order. */
  events: ChildEvent[];
  /** Resolves with the exit code, or the signal's name. */
  exited: Promise<number | string>;
  /** Resolves with the first event (past or future) named `event`; rejects on exit or timeout. */
  waitFor(event: string, timeoutMs?: number): Promise<ChildEvent>;
  /** Writes one command line to its stdin. */
  send(line: string): void;
  stderr(): string;
}

export function spawnWorkflowChild(args: string[]): WorkflowChild {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/fixtures/workflow-child.ts', ...args],
    {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' },
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const events: ChildEvent[] = [];
  const listeners = new Set<() => void>();
  let done = false;
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      done = true;
      resolve(code ?? signal ?? 'unknown');
      for (const listener of listeners) listener();
    }),
  );
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      events.push(JSON.parse(line) as ChildEvent);
    } catch {
      return; // not one of ours
    }
    for (const listener of listeners) listener();
  });
  return {
    child,
    events,
    exited,
    stderr: () => stderr,
    send: (line) => void child.stdin.write(`${line}\n`),
    waitFor(event, timeoutMs = 20_000) {
      return new Promise<ChildEvent>((resolve, reject) => {
        const check = (): void => {
          const found = events.find((e) => e.event === event);
          if (found !== undefined || done) {
            listeners.delete(check);
            clearTimeout(timer);
            if (found !== undefined) resolve(found);
            else reject(new Error(`the child exited before "${event}"; stderr: ${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(
            new Error(`no "${event}" from the child within ${timeoutMs} ms; stderr: ${stderr}`),
          );
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
  };
}
