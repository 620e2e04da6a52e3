/**
 * The idempotency key of a message the MQTT client source takes, so a QoS 1
 * message a broker delivers twice is stored once: `mqtt:` + SHA-256 over the topic, a NUL (which a topic
 * name cannot contain, MQTT §4.7.3) and the payload bytes.
 *
 * Why keying by content is safe: every reading a payload can produce carries
 * its own event time from the payload (a record without `timestamp`,
 * `event_time` or `ts` is rejected as MISSING_TIMESTAMP; the plants and wide
 * CSV decoders likewise), and decoding depends only on the payload (MQTT
 * messages carry no format or mapping of their own). So two messages with the
 * same topic and bytes yield the same `(sensor_id, event_time)` rows, which
 * the dedup contract (DESIGN.md §2) makes one row anyway. A payload that
 * yields only dead letters (say, without timestamps) is dead-lettered once,
 * however often it is sent within the window. If a decoder ever stamps a
 * reading with the receive time, this key must stop covering its payloads.
 *
 * The window is `store.mqttReceiptRetentionHours`: a copy arriving after its
 * first copy's receipt was purged is ingested again. The embedded broker does
 * not use it: a lookup and a receipt per message cost too much at its rates
 * (docs/reliability.md).
 */
import { createHash } from 'node:crypto';

export function mqttMessageKey(topic: string, payload: Buffer | string): string {
  const hash = createHash('sha256');
  hash.update(topic, 'utf8');
  hash.update('\0');
  hash.update(payload);
  return `mqtt:${hash.digest('hex')}`;
}
