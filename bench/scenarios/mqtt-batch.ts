/**
 * MQTT QoS 1, 100 readings per message (a JSON array): Canopy's embedded
 * broker to durable commit. The same messages to a bare aedes broker give the
 * limit, for context. Target (DESIGN §7): ≥ 200k readings/s.
 */
import { runMqttFlow } from '../lib/flows.js';
import { figure, type Scenario } from '../lib/types.js';

export const mqttBatch: Scenario = {
  name: 'mqtt-batch',
  title: 'MQTT QoS 1, 100 readings per message',
  async run() {
    const r = await runMqttFlow('mqtt-batch', {
      readingsPerMessage: 100,
      window: 1000,
      warmupReadings: 150_000,
      warmupMs: 2_000,
      measureReadings: 1_200_000,
      measureMs: 4_000,
      generateReadings: 1_350_000,
      peerMeasureReadings: 20_000_000,
    });
    return {
      figures: [
        figure(
          'mqtt-batch',
          r.canopy.readingsPerSecond,
          { name: 'bare aedes broker, same messages', value: r.peer.readingsPerSecond },
          { kind: 'absolute', min: 200_000, text: '≥ 200,000 readings/s' },
          r.verification.ok,
        ),
      ],
      verification: r.verification,
      runs: r.runs,
      parameters: r.parameters,
    };
  },
};
