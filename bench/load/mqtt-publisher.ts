/**
 * Load process: an mqtt.js 5 client publishing QoS 1 messages (MQTT 3.1.1,
 * clean session) and counting PUBACKs, at most `window` messages in flight.
 */
import mqtt from 'mqtt';
import { serveLoad } from './child.js';

let clients = 0;

await serveLoad(async (spec) => {
  const target = spec.target;
  if (target.kind !== 'mqtt') throw new Error('mqtt-publisher needs an mqtt target');
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${target.port}`, {
    protocolVersion: 4,
    clean: true,
    clientId: `canopy-bench-${process.pid}-${++clients}`,
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  return {
    send(unit, done) {
      client.publish(target.topic, unit.payload, { qos: 1 }, (err) =>
        done(err ?? null, unit.readings),
      );
    },
    close: () => client.endAsync(),
  };
});
