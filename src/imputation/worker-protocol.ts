/**
 * Messages between the main thread and the imputation worker, and the
 * launcher. A worker runs one request and exits; its input is plain data
 * (structured clone), so the worker needs no handle of the main thread's.
 */
import { Worker } from 'node:worker_threads';
import { CanopyError } from '../core/errors.js';
import type { LakeConfig } from '../config/schema.js';
import type { SerializedModel } from '../ml/index.js';
import type { TrainJob } from './sensor-models.js';

export type WorkerRequest =
  | { kind: 'train'; jobs: TrainJob[] }
  | {
      kind: 'predict';
      /** The worker opens its own lake client from this. */
      lake: LakeConfig;
      dataDir: string;
      runId: string;
    };

export interface PredictionSummary {
  /** Where the predictions are (`imputations/_runs/<run>/predictions.json`). */
  key: string;
  predictions: number;
  filled: number;
  leftMissing: number;
}

export type WorkerResponse =
  | { kind: 'train'; models: (SerializedModel | null)[] }
  | { kind: 'predict'; summary: PredictionSummary };

type Reply = { ok: true; result: WorkerResponse } | { ok: false; error: string };

/**
 * A worker for the worker module: the compiled `.js` beside this file, or,
 * under tsx (tests, `npm run canopy`), the `.ts` source, loaded through tsx
 * registered inside the worker (a worker does not inherit the main thread's
 * loader hooks, and Node 20 ignores `--import` in a worker's execArgv).
 */
function startWorker(workerData: WorkerRequest): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./worker.js', import.meta.url), { workerData });
  }
  const source = JSON.stringify(new URL('./worker.ts', import.meta.url).href);
  return new Worker(
    `import('tsx/esm/api').then(({ register }) => { register(); return import(${source}); });`,
    { eval: true, workerData },
  );
}

/**
 * Runs one request in a new worker thread. Rejects with
 * CANOPY_IMPUTATION_FAILED when the worker reports an error or exits without
 * a result; an abort terminates the worker.
 */
export function runInWorker<K extends WorkerRequest['kind']>(
  request: Extract<WorkerRequest, { kind: K }>,
  signal?: AbortSignal,
): Promise<Extract<WorkerResponse, { kind: K }>> {
  return new Promise((resolve, reject) => {
    const worker = startWorker(request);
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const fail = (message: string, cause?: unknown) =>
      finish(() =>
        reject(
          new CanopyError(
            'CANOPY_IMPUTATION_FAILED',
            `imputation worker (${request.kind}): ${message}`,
            {
              cause,
            },
          ),
        ),
      );
    const onAbort = () => {
      fail('aborted');
      void worker.terminate();
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (reply: Reply) => {
      if (reply.ok) finish(() => resolve(reply.result as Extract<WorkerResponse, { kind: K }>));
      else fail(reply.error);
    });
    worker.once('error', (err) => fail(err.message, err));
    worker.once('exit', (code) => fail(`exited with code ${code} before answering`));
  });
}
