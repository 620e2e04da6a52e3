/**
 * The imputation worker thread: trains models and predicts missing values
 * off the main thread, so ingest and the API keep answering while a forest
 * grows. One request per worker (see `runInWorker`); the result goes back as
 * one message, an error as an `error` message with its text.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { loadModel } from '../ml/index.js';
import { createObjectStore } from '../storage/object-store.js';
import { runStagingKey } from './lake-io.js';
import {
  predictTarget,
  trainSensorModel,
  type Prediction,
  type PredictionTarget,
} from './sensor-models.js';
import type { WorkerRequest, WorkerResponse, PredictionSummary } from './worker-protocol.js';

async function predict(
  request: Extract<WorkerRequest, { kind: 'predict' }>,
): Promise<PredictionSummary> {
  const lake = createObjectStore(request.lake, request.dataDir);
  try {
    const input = JSON.parse(
      (await lake.get(runStagingKey(request.runId, 'input'))).toString('utf8'),
    ) as { targets: PredictionTarget[] };
    const predictions: Prediction[] = [];
    for (const target of input.targets) {
      const { model, meta } = await loadModel(lake, target.model.name, target.model.version);
      predictions.push(...predictTarget(target, model, meta));
    }
    const key = runStagingKey(request.runId, 'predictions');
    await lake.put(key, JSON.stringify({ predictions }));
    const filled = predictions.filter((p) => p.value !== null).length;
    return {
      key,
      predictions: predictions.length,
      filled,
      leftMissing: predictions.length - filled,
    };
  } finally {
    lake.close();
  }
}

async function handle(request: WorkerRequest): Promise<WorkerResponse> {
  if (request.kind === 'train') {
    return { kind: 'train', models: request.jobs.map((job) => trainSensorModel(job)) };
  }
  return { kind: 'predict', summary: await predict(request) };
}

handle(workerData as WorkerRequest).then(
  (result) => parentPort!.postMessage({ ok: true, result }),
  (err: unknown) =>
    parentPort!.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) }),
);
