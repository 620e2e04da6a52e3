import { describe, expect, it } from 'vitest';
import { partitionOf, type BusMessage } from '../core/bus.js';
import { BUS_WIRE_VERSION, decodeBusMessage, encodeBusMessage } from './wire.js';

const full: BusMessage = {
  key: 'sensors/α-7',
  source: 'mqtt',
  payload: Buffer.from([0x7b, 0x00, 0xff, 0x0a]),
  format: 'ndjson',
  contentType: 'application/x-ndjson',
  origin: 'sensors/α-7',
  receivedAt: 1_700_000_000_123,
  idempotencyKey: 'http:k1',
  wideCsvMapping: 'air-quality-uci',
};

/** A frame with the given header and payload, laid out by hand (the format's second writer). */
function frame(
  header: unknown,
  payload: Uint8Array = Buffer.alloc(0),
  version = BUS_WIRE_VERSION,
): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(json.length);
  return Buffer.concat([Buffer.from('CB'), Buffer.from([version]), length, json, payload]);
}

describe('bus wire format v1', () => {
  it('round-trips every field and the payload bytes', () => {
    const decoded = decodeBusMessage(encodeBusMessage(full));
    expect(decoded).toEqual({ ok: true, message: full });
    const bare: BusMessage = { key: 'k', source: 'http', payload: Buffer.alloc(0), receivedAt: 0 };
    expect(decodeBusMessage(encodeBusMessage(bare))).toEqual({ ok: true, message: bare });
    const deadLetter: BusMessage = {
      ...bare,
      source: 'poll:plants',
      payload: Buffer.from('HTTP 500'),
      deadLetter: { reason: 'POLL_HTTP_ERROR', message: 'answered 500' },
    };
    expect(decodeBusMessage(encodeBusMessage(deadLetter))).toEqual({
      ok: true,
      message: deadLetter,
    });
  });

  it('is the documented layout: magic, version, header length, JSON header, payload', () => {
    const bytes = encodeBusMessage(full);
    const header = {
      key: full.key,
      source: full.source,
      receivedAt: full.receivedAt,
      format: full.format,
      contentType: full.contentType,
      origin: full.origin,
      idempotencyKey: full.idempotencyKey,
      wideCsvMapping: full.wideCsvMapping,
    };
    expect(bytes.equals(frame(header, full.payload))).toBe(true);
  });

  it('reads a frame from a view into a larger buffer (as brokers hand them over)', () => {
    const inner = encodeBusMessage(full);
    const outer = Buffer.concat([Buffer.from('xxxx'), inner, Buffer.from('yy')]);
    const view = new Uint8Array(outer.buffer, outer.byteOffset + 4, inner.length);
    expect(decodeBusMessage(view)).toEqual({ ok: true, message: full });
  });

  it('ignores header fields it does not know', () => {
    const decoded = decodeBusMessage(
      frame({ key: 'k', source: 's', receivedAt: 5, addedLater: true }, Buffer.from('p')),
    );
    expect(decoded).toEqual({
      ok: true,
      message: { key: 'k', source: 's', receivedAt: 5, payload: Buffer.from('p') },
    });
  });

  it.each([
    ['no magic', Buffer.from('{"sensor_id":"a"}'), /magic/],
    ['too short', Buffer.from('CB'), /magic/],
    ['another version', frame({ key: 'k', source: 's', receivedAt: 1 }, undefined, 2), /version 2/],
    [
      'header past the end',
      frame({ key: 'k', source: 's', receivedAt: 1 }).subarray(0, 12),
      /past/,
    ],
    ['header not JSON', frame('{key'), /not valid JSON/],
    ['header not an object', frame([1, 2]), /not a JSON object/],
    ['no key', frame({ source: 's', receivedAt: 1 }), /key or source/],
    ['no receive time', frame({ key: 'k', source: 's' }), /receivedAt/],
    [
      'a field of the wrong type',
      frame({ key: 'k', source: 's', receivedAt: 1, origin: 3 }),
      /origin/,
    ],
    [
      'a dead letter with an unknown reason',
      frame({ key: 'k', source: 's', receivedAt: 1, deadLetter: { reason: 'NOPE', message: 'm' } }),
      /deadLetter/,
    ],
    ['an unknown format', frame({ key: 'k', source: 's', receivedAt: 1, format: 'xml' }), /format/],
  ])('refuses %s, saying why', (_case, bytes, reason) => {
    const decoded = decodeBusMessage(bytes);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.reason).toMatch(reason);
  });
});

describe('partitionOf', () => {
  it('is FNV-1a of the UTF-8 key modulo the partition count', () => {
    // FNV-1a 32-bit reference values: "" → 0x811c9dc5, "a" → 0xe40c292c, "foobar" → 0xbf9cf968.
    expect(partitionOf('', 2 ** 31)).toBe(0x811c9dc5 % 2 ** 31);
    expect(partitionOf('a', 1_000_003)).toBe(0xe40c292c % 1_000_003);
    expect(partitionOf('foobar', 97)).toBe(0xbf9cf968 % 97);
  });

  it('spreads keys over every partition and stays within range', () => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 1_600; i++) counts[partitionOf(`sensor-${i}`, 16)]!++;
    for (const count of counts) expect(count).toBeGreaterThan(50);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(1_600);
  });
});
