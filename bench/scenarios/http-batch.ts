/**
 * HTTP POST batches of 1,000 readings to Canopy's `/api/data`, as a JSON array
 * and as NDJSON (two figures), 8 keep-alive connections with one request in
 * flight each, 200 only after the durable commit. The peer is a bare Fastify
 * server taking the same bodies as raw buffers and answering 200: the HTTP
 * limit of this machine in the same run. Target (DESIGN §7): ≥ 200k readings/s.
 */
import { LoadProcess } from '../lib/load-process.js';
import {
  DISTURBED_CPU,
  freshPayloadsLeft,
  leastDisturbed,
  logGenerated,
  MAX_ATTEMPTS,
  runCanopy,
  runPeer,
  SEED,
  SENSORS,
  usedRun,
  verifyStore,
} from '../lib/flows.js';
import { startBareHttp, startBenchCanopy } from '../lib/systems.js';
import { figure, type Figure, type RunRecord, type Scenario } from '../lib/types.js';
import type { LoadParams, RunSpec } from '../load/protocol.js';

const READINGS_PER_REQUEST = 1000;
const CONNECTIONS = 8;
const WARMUP_READINGS = 100_000;
const WARMUP_MS = 2_000;
const MEASURE_READINGS = 800_000;
const MEASURE_MS = 4_000;
/** The peer reuses bodies, so its count bound can be higher: it is then time-bound like Canopy. */
const PEER_MEASURE_READINGS = 20_000_000;
const FORMATS = [
  { name: 'json', encoding: 'json-array' },
  { name: 'ndjson', encoding: 'ndjson' },
] as const;

export const httpBatch: Scenario = {
  name: 'http-batch',
  title: 'HTTP POST batches of 1,000 readings (JSON array, NDJSON)',
  async run() {
    const requests =
      Math.ceil((WARMUP_READINGS + MEASURE_READINGS) / READINGS_PER_REQUEST) + 2 * CONNECTIONS;
    const params: LoadParams = {
      readingsPerUnit: READINGS_PER_REQUEST,
      sensors: SENSORS,
      seed: SEED,
      sets: FORMATS.map((f) => ({ name: f.name, encoding: f.encoding, units: requests })),
    };
    const started = await LoadProcess.start('http-poster', params);
    logGenerated(started);
    const load = started.load;
    const runs: RunRecord[] = [];
    const figures: Figure[] = [];
    try {
      const bodyLimit = 64 * 1024 * 1024;
      const bare = await startBareHttp(bodyLimit);
      const canopy = await startBenchCanopy();
      try {
        const pairs: { peer: RunRecord; canopy: RunRecord; format: string }[] = [];
        for (const format of FORMATS) {
          const base = {
            set: format.name,
            window: CONNECTIONS,
            warmupReadings: WARMUP_READINGS,
            warmupMs: WARMUP_MS,
            measureReadings: MEASURE_READINGS,
            measureMs: MEASURE_MS,
          } satisfies Partial<RunSpec>;
          const peerSpec: RunSpec = {
            ...base,
            label: `bare-fastify/${format.name}`,
            cycle: true,
            measureReadings: PEER_MEASURE_READINGS,
            target: { kind: 'http', port: bare.port, path: '/api/data' },
          };
          const peerRuns = await leastDisturbed((n) => runPeer(load, peerSpec, n));
          const canopySpec: RunSpec = {
            ...base,
            label: `canopy/${format.name}`,
            cycle: false,
            target: { kind: 'http', port: canopy.httpPort, path: '/api/data' },
          };
          const canopyRuns = await leastDisturbed(
            (n) => runCanopy(load, canopy, canopySpec, `http-batch-${format.name}`, n),
            (done) =>
              freshPayloadsLeft(requests * READINGS_PER_REQUEST, READINGS_PER_REQUEST, done),
          );
          runs.push(...peerRuns, ...canopyRuns);
          pairs.push({ peer: usedRun(peerRuns), canopy: usedRun(canopyRuns), format: format.name });
        }
        const verification = await verifyStore(canopy, runs);
        for (const p of pairs) {
          figures.push(
            figure(
              `http-batch/${p.format}`,
              p.canopy.readingsPerSecond,
              { name: 'bare Fastify, raw body, 200', value: p.peer.readingsPerSecond },
              { kind: 'absolute', min: 200_000, text: '≥ 200,000 readings/s' },
              verification.ok,
            ),
          );
        }
        return {
          figures,
          verification,
          runs,
          parameters: {
            protocol: 'HTTP/1.1 POST /api/data, node:http keep-alive Agent',
            readingsPerRequest: READINGS_PER_REQUEST,
            connections: CONNECTIONS,
            requestsInFlight: CONNECTIONS,
            sensors: SENSORS,
            formats: FORMATS.map((f) => f.name),
            warmup: { readings: WARMUP_READINGS, maxMs: WARMUP_MS },
            measure: {
              readings: MEASURE_READINGS,
              peerReadings: PEER_MEASURE_READINGS,
              maxMs: MEASURE_MS,
            },
            repeatWhenOtherCpuAbove: DISTURBED_CPU,
            maxAttempts: MAX_ATTEMPTS,
            generatedReadings: started.generatedReadings,
            generatedBytes: started.generatedBytes,
          },
        };
      } finally {
        await canopy.dispose();
        await bare.stop();
      }
    } finally {
      await load.close();
    }
  },
};
