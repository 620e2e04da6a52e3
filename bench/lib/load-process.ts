/**
 * The parent side of a load process. The load generator runs in its own
 * Node process (`node --import tsx bench/load/<name>.ts`) so that the system
 * under test, hosted by this process, keeps a core of its own. While the child
 * measures, this side samples its own CPU time and event-loop utilisation:
 * those are the system under test's figures for the same window.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { ChildMessage, LoadParams, RunResult, RunSpec } from '../load/protocol.js';

export const repoRoot = path.resolve(import.meta.dirname, '../..');

export interface MeasuredRun extends RunResult {
  /** CPU used by the bench process (the system under test, all threads) over the window; 1 = one core. */
  sutCpu: number;
  /** Event-loop utilisation of the system under test's main thread over the window (0..1). */
  sutElu: number;
  /**
   * CPU used over the window by everything else on the machine (other
   * processes, the kernel's share not charged to ours), in cores; null where
   * /proc/stat is missing. Much above 0.1 means the figures are disturbed.
   */
  otherCpu: number | null;
}

/** Busy and total jiffies of all CPUs (Linux), or null. */
export function machineTicks(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (f[3] ?? 0) + (f[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

interface Waiter {
  resolve: (m: ChildMessage) => void;
  reject: (err: Error) => void;
  onProgress?: (m: ChildMessage) => void;
}

export class LoadProcess {
  private waiter: Waiter | undefined;
  private exitError: Error | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly name: string,
  ) {
    child.on('message', (m: ChildMessage) => this.onMessage(m));
    child.once('exit', (code, signal) => {
      this.exitError = new Error(`load process ${name} exited (${signal ?? String(code)})`);
      this.waiter?.reject(this.exitError);
      this.waiter = undefined;
    });
  }

  /** Starts `bench/load/<script>.ts` and resolves once its payloads are generated. */
  static async start(
    script: 'mqtt-publisher' | 'http-poster',
    params: LoadParams,
  ): Promise<{
    load: LoadProcess;
    generatedReadings: number;
    generatedBytes: number;
    generateMs: number;
    /** With `params.receiver`: the port of the child's webhook receiver. */
    receiverPort?: number;
  }> {
    const child = fork(path.join(repoRoot, 'bench', 'load', `${script}.ts`), [], {
      cwd: repoRoot,
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_LOAD_PARAMS: JSON.stringify(params) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const load = new LoadProcess(child, script);
    const ready = await load.next(120_000);
    if (ready.type !== 'ready')
      throw new Error(`load process ${script}: expected ready, got ${ready.type}`);
    return {
      load,
      generatedReadings: ready.generatedReadings,
      generatedBytes: ready.generatedBytes,
      generateMs: ready.generateMs,
      ...(ready.receiverPort === undefined ? {} : { receiverPort: ready.receiverPort }),
    };
  }

  /**
   * Runs one warm-up + measurement against a target; resolves after the
   * drain. The hooks run when the child starts and ends its measured window.
   */
  async run(
    spec: RunSpec,
    hooks: { measuring?: () => void; measured?: () => void } = {},
  ): Promise<MeasuredRun> {
    let cpu0 = process.cpuUsage();
    let elu0: EventLoopUtilization = performance.eventLoopUtilization();
    let t0 = performance.now();
    let sutCpu = 0;
    let sutElu = 0;
    let ticks0 = machineTicks();
    let machineCores: number | null = null;
    const onProgress = (m: ChildMessage): void => {
      if (m.type === 'measuring') {
        cpu0 = process.cpuUsage();
        elu0 = performance.eventLoopUtilization();
        t0 = performance.now();
        ticks0 = machineTicks();
        hooks.measuring?.();
      } else if (m.type === 'measured') {
        const cpu = process.cpuUsage(cpu0);
        sutCpu = (cpu.user + cpu.system) / 1000 / (performance.now() - t0);
        sutElu = performance.eventLoopUtilization(elu0).utilization;
        const ticks1 = machineTicks();
        if (ticks0 && ticks1 && ticks1.total > ticks0.total) {
          machineCores =
            ((ticks1.busy - ticks0.busy) / (ticks1.total - ticks0.total)) * os.cpus().length;
        }
        hooks.measured?.();
      }
    };
    const done = this.next(spec.warmupMs + spec.measureMs + 60_000, onProgress);
    this.child.send({ type: 'run', spec });
    const m = await done;
    if (m.type === 'error') throw new Error(`load process ${this.name}: ${m.message}`);
    if (m.type !== 'result')
      throw new Error(`load process ${this.name}: expected result, got ${m.type}`);
    const round = (x: number): number => Math.round(x * 100) / 100;
    const otherCpu =
      machineCores === null ? null : round(Math.max(0, machineCores - sutCpu - m.result.loadCpu));
    return { ...m.result, sutCpu: round(sutCpu), sutElu: round(sutElu), otherCpu };
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    if (this.child.connected) this.child.send({ type: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  private onMessage(m: ChildMessage): void {
    const waiter = this.waiter;
    if (!waiter) return;
    if (m.type === 'measuring' || m.type === 'measured') {
      waiter.onProgress?.(m);
      return;
    }
    this.waiter = undefined;
    waiter.resolve(m);
  }

  /** The next final message (ready, result or error), with a deadline. */
  private next(timeoutMs: number, onProgress?: (m: ChildMessage) => void): Promise<ChildMessage> {
    if (this.exitError) return Promise.reject(this.exitError);
    return new Promise<ChildMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        this.child.kill('SIGKILL');
        reject(new Error(`load process ${this.name} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
        ...(onProgress ? { onProgress } : {}),
      };
    });
  }
}
