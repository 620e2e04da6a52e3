/**
 * `canopy up --simulate`: a newcomer sees data at once. Starts the sensor
 * fleet, sending to this Canopy's own embedded broker (or API), and the
 * plants API with a polling source pointed at it — the conservatory
 * reference system in miniature.
 */
import type { Scope } from '../core/auth.js';
import type { Clock } from '../core/clock.js';
import { CanopyError } from '../core/errors.js';
import type { CanopyConfig, PollSourceConfig } from '../config/schema.js';
import type { Logger } from '../observability/logger.js';
import { runSimulator, startPlantsServer, type SimulatorTarget } from '../simulator/index.js';

export interface Simulation {
  stop(): Promise<void>;
}

export async function startSimulation(
  config: CanopyConfig,
  deps: {
    httpPort: number | null;
    mqttPort: number | null;
    clock: Clock;
    logger: Logger;
    /** Starts a polling source in the app, which also owns stopping it. */
    startPoll: (poll: PollSourceConfig) => void;
    /** With authentication on: makes the fleet's process-lifetime credentials. */
    credentials?: {
      ephemeralDevice(id: string, topics: readonly string[]): string;
      ephemeralApiKey(name: string, scopes: readonly Scope[]): string;
    };
  },
): Promise<Simulation> {
  const sim = config.simulator;
  let target: SimulatorTarget;
  if (sim.target === 'mqtt' && deps.mqttPort !== null) {
    const clientId = 'canopy-simulator';
    target = {
      kind: 'mqtt',
      url: `mqtt://127.0.0.1:${deps.mqttPort}`,
      topic: 'iot/data',
      qos: 1,
      clientId,
      ...(deps.credentials === undefined
        ? {}
        : {
            username: clientId,
            password: deps.credentials.ephemeralDevice(clientId, ['iot/data']),
          }),
    };
  } else if (sim.target === 'http' && deps.httpPort !== null) {
    target = {
      kind: 'http',
      url: `http://127.0.0.1:${deps.httpPort}/api/data`,
      batchSize: Math.max(1, Math.round(sim.ratePerSecond / 10)),
      ...(deps.credentials === undefined
        ? {}
        : {
            headers: {
              authorization: `Bearer ${deps.credentials.ephemeralApiKey('simulator', ['ingest'])}`,
            },
          }),
    };
  } else {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `simulator.target is ${sim.target}, but that part of Canopy is disabled`,
      {
        details: [
          `simulator.target: ${sim.target} needs ${sim.target === 'mqtt' ? 'mqtt.embedded' : 'http'}.enabled`,
        ],
      },
    );
  }

  const fleet = runSimulator(
    {
      mode: 'continuous',
      target,
      sensors: sim.sensors,
      ratePerSecond: sim.ratePerSecond,
      anomalyRate: sim.anomalyRate,
      seed: sim.seed,
    },
    { clock: deps.clock, logger: deps.logger },
  );
  deps.logger.info(
    { sensors: sim.sensors, ratePerSecond: sim.ratePerSecond, target: target.kind },
    'simulated fleet started',
  );

  let plants: Awaited<ReturnType<typeof startPlantsServer>> | undefined;
  if (sim.plants.enabled) {
    plants = await startPlantsServer({
      port: sim.plants.port,
      count: sim.plants.count,
      seed: sim.seed,
      clock: deps.clock,
    });
    deps.logger.info({ url: plants.url, plants: sim.plants.count }, 'plants API started');
    deps.startPoll({
      name: 'plants',
      urlTemplate: `${plants.url}/plants/{id}`,
      ids: Array.from({ length: sim.plants.count }, (_, i) => i + 1),
      format: 'plants',
      intervalMs: sim.plants.intervalMs,
      timeoutMs: 5_000,
      concurrency: 8,
      retries: 2,
    });
  }

  return {
    async stop() {
      await fleet.stop();
      await plants?.close();
    },
  };
}
