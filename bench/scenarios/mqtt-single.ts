/**
 * MQTT QoS 1, one reading per message, to durable commit: Canopy's embedded
 * broker with the whole pipeline and the DuckDB file store, against a bare
 * aedes broker with the same publisher and window. PUBACKs count readings.
 * Target (DESIGN §7): Canopy ≥ 0.8 × the bare broker.
 */
import { runMqttFlow } from '../lib/flows.js';
import { figure, type Scenario } from '../lib/types.js';

export const mqttSingle: Scenario = {
  name: 'mqtt-single',
  title: 'MQTT QoS 1, one reading per message, to durable commit',
  async run() {
    const r = await runMqttFlow('mqtt-single', {
      readingsPerMessage: 1,
      window: 1000,
      warmupReadings: 20_000,
      warmupMs: 3_000,
      measureReadings: 150_000,
      measureMs: 5_000,
      generateReadings: 400_000,
      peerMeasureReadings: 300_000,
    });
    return {
      figures: [
        figure(
          'mqtt-single',
          r.canopy.readingsPerSecond,
          { name: 'bare aedes broker, QoS 1', value: r.peer.readingsPerSecond },
          { kind: 'ratio', min: 0.8, text: '≥ 0.8 × bare aedes QoS 1 rate' },
          r.verification.ok,
        ),
      ],
      verification: r.verification,
      runs: r.runs,
      parameters: r.parameters,
    };
  },
};
