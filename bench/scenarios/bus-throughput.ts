/**
 * The bus on its own: how many messages per second it takes from `publish`
 * to the handler's acknowledgement, with no pipeline or store behind it.
 * Each message is one simulator reading in the bus wire format (≈ 200 bytes),
 * published one per call with up to WINDOW calls in flight, as sources do
 * (one message per MQTT PUBLISH or HTTP request); the consumer's handler
 * resolves at once.
 *
 * - `bus-throughput/in-process`: Canopy's in-process bus, publish → handled
 *   and acknowledged, end to end. Peer: none; the target (≥ 50,000/s) keeps
 *   it well above the ≈ 30,000 readings/s of one-reading MQTT messages, so
 *   the bus is never what limits a process.
 * - `bus-throughput/nats-publish`: `NatsBus.publish` until every JetStream
 *   publish ack is in. Peer: bare `@nats-io/jetstream` publishes of the same
 *   bytes with the same window, to a stream of the same kind.
 * - `bus-throughput/nats-end-to-end`: publishing and consuming at once,
 *   until the `NatsBus` consumer has acknowledged every message. Peer: bare
 *   publishes plus a bare pull consumer (`consume`, ack per message).
 *
 * Publisher, consumer and client all run in this process (the NATS server is
 * the other process), so the figures are for one Canopy process doing both
 * roles. Each run is verified: every message handled (ids checked), lag 0.
 * Needs nats-server with JetStream on 127.0.0.1:4222.
 */
import { randomBytes } from 'node:crypto';
import {
  AckPolicy,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { createFleet } from '../../src/simulator/index.js';
import { partitionOf, type Bus, type BusMessage } from '../../src/core/bus.js';
import { InProcessBus } from '../../src/bus/in-process.js';
import { openNatsBus } from '../../src/bus/nats.js';
import { encodeBusMessage } from '../../src/bus/wire.js';
import { silentLogger } from '../../src/observability/logger.js';
import { figure, type BatchRunRecord, type Scenario } from '../lib/types.js';

const WINDOW = 1_000;
const PARTITIONS = 16;
const MAX_IN_FLIGHT = 1_000;
const MAX_BATCH = 100;
const IN_PROCESS_MESSAGES = 200_000;
const NATS_MESSAGES = 50_000;
const SERVERS = ['nats://127.0.0.1:4222'];

const fmt = new Intl.NumberFormat('en-US');

/** One simulator reading per message (its wire form plus a sequence number), keyed by its sensor. */
function messages(count: number): BusMessage[] {
  const start = Date.now() - 3_600_000;
  const fleet = createFleet({ sensors: 50, seed: 42, start });
  const out: BusMessage[] = [];
  for (const { reading } of fleet.readings({ count })) {
    out.push({
      key: reading.sensor_id,
      source: 'mqtt',
      payload: Buffer.from(JSON.stringify({ ...reading, seq: out.length })),
      contentType: 'application/json',
      origin: `sensors/${reading.sensor_id}`,
      receivedAt: start + out.length,
    });
  }
  return out;
}

/** Calls `send(i)` for every i < count with at most WINDOW in flight. */
async function windowed(count: number, send: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) await send(next++);
  };
  await Promise.all(Array.from({ length: Math.min(WINDOW, count) }, lane));
}

interface Timed {
  ms: number;
  cpu: number;
}

async function timed(work: () => Promise<void>): Promise<Timed> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  const used = process.cpuUsage(cpu0);
  return { ms, cpu: Math.round(((used.user + used.system) / 1000 / ms) * 100) / 100 };
}

function record(
  system: BatchRunRecord['system'],
  label: string,
  readings: number,
  t: Timed,
): BatchRunRecord {
  const run: BatchRunRecord = {
    system,
    label,
    attempt: 1,
    used: true,
    readings,
    ms: Math.round(t.ms),
    readingsPerSecond: Math.round((readings / t.ms) * 1000),
    peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    cpu: t.cpu,
    otherCpu: null,
  };
  console.log(
    `    ${label.padEnd(28)} ${fmt.format(run.readingsPerSecond).padStart(9)} messages/s  (${fmt.format(readings)} in ${(t.ms / 1000).toFixed(2)} s, cpu ${Math.round(t.cpu * 100)}%)`,
  );
  return run;
}

/** Publishes all, consumes all; resolves when every id was handled. Returns ids seen twice. */
async function endToEnd(
  publisher: Bus,
  consumer: Bus,
  all: readonly BusMessage[],
): Promise<{ t: Timed; duplicates: number; missing: number }> {
  const seen = new Uint8Array(all.length);
  let handled = 0;
  let duplicates = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const t = await timed(async () => {
    const sub = await consumer.consume((batch) => {
      for (const d of batch) {
        const seq = (JSON.parse(d.message.payload.toString('utf8')) as { seq: number }).seq;
        if (seen[seq] === 0) handled++;
        else duplicates++;
        seen[seq] = 1;
      }
      if (handled === all.length) done();
      return Promise.resolve();
    });
    await windowed(all.length, (i) => publisher.publish([all[i]!]));
    await finished;
    await sub.stop();
  });
  return { t, duplicates, missing: all.length - handled };
}

/** The bus's lag once it stops falling to a non-zero value (polled up to 5 s). */
async function settledLag(bus: Bus): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lag = await bus.lag();
    if (lag === 0 || Date.now() > deadline) return lag;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function addStream(jsm: JetStreamManager, name: string, prefix: string): Promise<void> {
  await jsm.streams.add({
    name,
    subjects: [`${prefix}.*`],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
  });
}

/** Bare JetStream: the same frames, same window, same stream kind; with a pull consumer when `consume`. */
async function bareNats(
  nc: NatsConnection,
  jsm: JetStreamManager,
  frames: readonly { subject: string; data: Buffer }[],
  consume: boolean,
): Promise<Timed> {
  const id = randomBytes(4).toString('hex');
  const prefix = `bench-bare.${id}`;
  const stream = `BENCH_BARE_${id}`;
  await addStream(jsm, stream, prefix);
  try {
    await jsm.consumers.add(stream, {
      durable_name: 'bare',
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: -1,
    });
    const js = jsm.jetstream();
    return await timed(async () => {
      let received = 0;
      const consumed = (async () => {
        if (!consume) return;
        const messages = await (
          await js.consumers.get(stream, 'bare')
        ).consume({
          max_messages: MAX_IN_FLIGHT,
        });
        for await (const m of messages) {
          m.ack();
          if (++received === frames.length) break;
        }
        await nc.flush();
      })();
      await windowed(frames.length, (i) =>
        js.publish(`${prefix}.${frames[i]!.subject}`, frames[i]!.data),
      );
      await consumed;
    });
  } finally {
    await jsm.streams.delete(stream);
  }
}

export const busThroughput: Scenario = {
  name: 'bus-throughput',
  title:
    'The bus alone: publish → acknowledged, in-process and NATS JetStream (one message per reading)',
  async run() {
    const runs: BatchRunRecord[] = [];
    const problems: string[] = [];
    const logger = silentLogger();
    const options = {
      partitions: PARTITIONS,
      maxInFlight: MAX_IN_FLIGHT,
      maxBatch: MAX_BATCH,
      maxDeliver: 0,
      retryInitialMs: 100,
      retryMaxMs: 5_000,
      logger,
    };

    // In-process, end to end.
    const local = messages(IN_PROCESS_MESSAGES);
    const inProcess = new InProcessBus({ ...options, capacity: 10_000 });
    const e2eLocal = await endToEnd(inProcess, inProcess, local);
    if (e2eLocal.missing > 0 || e2eLocal.duplicates > 0)
      problems.push(`in-process: ${e2eLocal.missing} missing, ${e2eLocal.duplicates} duplicates`);
    if ((await inProcess.lag()) !== 0) problems.push('in-process: lag not 0 at the end');
    await inProcess.close();
    runs.push(record('canopy', 'in-process end to end', local.length, e2eLocal.t));

    // NATS.
    const remote = messages(NATS_MESSAGES);
    const frames = remote.map((m) => ({
      subject: String(partitionOf(m.key, PARTITIONS)),
      data: encodeBusMessage(m),
    }));
    const nc = await connect({ servers: SERVERS });
    const jsm = await jetstreamManager(nc);
    const openCanopy = async () => {
      const id = randomBytes(4).toString('hex');
      const natsOptions = {
        ...options,
        servers: SERVERS,
        stream: `BENCH_CANOPY_${id}`,
        subjectPrefix: `bench-canopy.${id}`,
        consumer: 'canopy',
        ackWaitMs: 30_000,
        publishTimeoutMs: 30_000,
      };
      return { bus: await openNatsBus(natsOptions), stream: natsOptions.stream };
    };
    try {
      // Publish only: the consumer exists (the bus creates it) but nobody pulls.
      const pub = await openCanopy();
      const publishTimed = await timed(() =>
        windowed(remote.length, (i) => pub.bus.publish([remote[i]!])),
      );
      if ((await pub.bus.lag()) !== remote.length)
        problems.push(`nats publish: lag ${await pub.bus.lag()}, expected ${remote.length}`);
      await pub.bus.close();
      await jsm.streams.delete(pub.stream);
      runs.push(record('canopy', 'nats publish', remote.length, publishTimed));
      runs.push(
        record(
          'peer',
          'bare jetstream publish',
          frames.length,
          await bareNats(nc, jsm, frames, false),
        ),
      );

      const e2e = await openCanopy();
      const e2eNats = await endToEnd(e2e.bus, e2e.bus, remote);
      if (e2eNats.missing > 0 || e2eNats.duplicates > 0)
        problems.push(
          `nats end to end: ${e2eNats.missing} missing, ${e2eNats.duplicates} duplicates`,
        );
      // The server applies acks asynchronously: give the last ones a moment to count.
      const lagAfter = await settledLag(e2e.bus);
      if (lagAfter !== 0) problems.push(`nats end to end: lag ${lagAfter} at the end`);
      await e2e.bus.close();
      await jsm.streams.delete(e2e.stream);
      runs.push(record('canopy', 'nats end to end', remote.length, e2eNats.t));
      runs.push(
        record(
          'peer',
          'bare jetstream end to end',
          frames.length,
          await bareNats(nc, jsm, frames, true),
        ),
      );
    } finally {
      await nc.close();
    }

    const rate = (label: string) => runs.find((r) => r.label === label)!.readingsPerSecond;
    const ok = problems.length === 0;
    return {
      figures: [
        figure(
          'bus-throughput/in-process',
          rate('in-process end to end'),
          { name: 'none (absolute target)', value: 0 },
          { kind: 'absolute', min: 50_000, text: '≥ 50,000 messages/s' },
          ok,
        ),
        figure(
          'bus-throughput/nats-publish',
          rate('nats publish'),
          { name: 'bare JetStream publish', value: rate('bare jetstream publish') },
          { kind: 'ratio', min: 0.8, text: 'ratio ≥ 0.8' },
          ok,
        ),
        figure(
          'bus-throughput/nats-end-to-end',
          rate('nats end to end'),
          { name: 'bare JetStream publish + pull', value: rate('bare jetstream end to end') },
          { kind: 'ratio', min: 0.7, text: 'ratio ≥ 0.7' },
          ok,
        ),
      ],
      verification: {
        ackedReadings: local.length + 2 * remote.length,
        storedReadings: 0,
        deadLetters: 0,
        errors: problems.length,
        ok,
        summary: ok
          ? `every message handled once, lag 0 (${fmt.format(local.length)} in-process, ${fmt.format(remote.length)} × 2 NATS)`
          : problems.join('; '),
      },
      runs,
      parameters: {
        window: WINDOW,
        partitions: PARTITIONS,
        maxInFlight: MAX_IN_FLIGHT,
        maxBatch: MAX_BATCH,
        inProcessMessages: IN_PROCESS_MESSAGES,
        natsMessages: NATS_MESSAGES,
      },
    };
  },
};
