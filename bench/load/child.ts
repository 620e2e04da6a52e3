/**
 * The child side of a load process: generate every payload (and start the
 * webhook receiver when asked), report `ready`, then execute the parent's
 * `run` commands one at a time: windowed (driver.ts), or paced (paced.ts)
 * when the spec has `pace`.
 */
import type { ChildMessage, LoadParams, ParentMessage, RunSpec } from './protocol.js';
import { generatePayloads } from './readings.js';
import { drive, type Connection } from './driver.js';
import { drivePaced, type TriggerCounter } from './paced.js';
import { startWebhookReceiver } from './receiver.js';

export type Connect = (spec: RunSpec, params: LoadParams) => Promise<Connection>;

function send(message: ChildMessage): void {
  process.send?.(message);
}

export async function serveLoad(connect: Connect): Promise<void> {
  if (!process.send)
    throw new Error('a load process must be started by bench/run.ts (it needs an IPC channel)');
  const params = JSON.parse(process.env.BENCH_LOAD_PARAMS ?? 'null') as LoadParams | null;
  if (!params) throw new Error('BENCH_LOAD_PARAMS is not set');

  const started = performance.now();
  const payloads = generatePayloads(params);
  const generateMs = Math.round(performance.now() - started);
  const receiver = params.receiver === true ? await startWebhookReceiver() : undefined;
  send({
    type: 'ready',
    generatedReadings: payloads.readings,
    generatedBytes: payloads.bytes,
    generateMs,
    ...(receiver === undefined ? {} : { receiverPort: receiver.port }),
  });
  const triggers: TriggerCounter = { next: 0 };

  // Where the next non-cycling run of each set continues.
  const cursors = new Map<string, number>();

  const runOne = async (spec: RunSpec): Promise<void> => {
    const units = payloads.sets.get(spec.set);
    if (!units) throw new Error(`no payload set named ${spec.set}`);
    const start = spec.cycle ? 0 : (cursors.get(spec.set) ?? 0);
    const conn = await connect(spec, params);
    try {
      const todo = spec.cycle ? units : units.slice(start);
      let result;
      if (spec.pace === undefined) result = await drive(todo, spec, conn, send);
      else if (spec.pace.triggers !== undefined && receiver === undefined)
        throw new Error('a paced run with triggers needs LoadParams.receiver');
      else result = await drivePaced(todo, spec, conn, send, receiver, triggers, params.seed);
      if (!spec.cycle) cursors.set(spec.set, start + result.unitsSent);
      send({ type: 'result', result });
    } finally {
      await conn.close();
    }
  };

  process.on('message', (message: ParentMessage) => {
    if (message.type === 'exit') {
      process.disconnect();
      void receiver?.close();
      return;
    }
    runOne(message.spec).catch((err: unknown) =>
      send({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
    );
  });
}
