/**
 * The wire form of a `BusMessage` on a broker (NATS, Kafka), version 1:
 *
 *   offset 0   2 bytes  magic `CB` (0x43 0x42)
 *   offset 2   1 byte   version, 1
 *   offset 3   4 bytes  header length H, unsigned big-endian
 *   offset 7   H bytes  header: a UTF-8 JSON object
 *                       {"key", "source", "receivedAt", and when set "format",
 *                        "contentType", "origin", "idempotencyKey", "wideCsvMapping",
 *                        "deadLetter": {"reason", "message"}}
 *   offset 7+H          the payload, byte for byte as the source received it
 *
 * The payload is not re-encoded (no base64, no JSON escaping), so a large CSV
 * costs its own size plus a small header. A reader refuses any other magic or
 * version rather than guessing: a newer writer must bump the version, and the
 * readers of a rolling upgrade are upgraded first. Readers ignore header fields
 * they do not know, so adding an optional field needs no new version.
 */
import type { BusMessage } from '../core/bus.js';
import { REJECT_REASONS, type RejectReason } from '../core/errors.js';
import type { PayloadFormat } from '../core/ingest.js';

export const BUS_WIRE_VERSION = 1;
const MAGIC_0 = 0x43;
const MAGIC_1 = 0x42;
const PREAMBLE_BYTES = 7;
const FORMATS: ReadonlySet<string> = new Set<PayloadFormat>([
  'json',
  'ndjson',
  'csv',
  'csv-wide',
  'plants',
]);

export function encodeBusMessage(message: BusMessage): Buffer {
  const header: Record<string, unknown> = {
    key: message.key,
    source: message.source,
    receivedAt: message.receivedAt,
  };
  if (message.format !== undefined) header.format = message.format;
  if (message.contentType !== undefined) header.contentType = message.contentType;
  if (message.origin !== undefined) header.origin = message.origin;
  if (message.idempotencyKey !== undefined) header.idempotencyKey = message.idempotencyKey;
  if (message.wideCsvMapping !== undefined) header.wideCsvMapping = message.wideCsvMapping;
  if (message.deadLetter !== undefined) header.deadLetter = message.deadLetter;
  const headerBytes = Buffer.from(JSON.stringify(header), 'utf8');
  const frame = Buffer.allocUnsafe(PREAMBLE_BYTES + headerBytes.length + message.payload.length);
  frame[0] = MAGIC_0;
  frame[1] = MAGIC_1;
  frame[2] = BUS_WIRE_VERSION;
  frame.writeUInt32BE(headerBytes.length, 3);
  headerBytes.copy(frame, PREAMBLE_BYTES);
  message.payload.copy(frame, PREAMBLE_BYTES + headerBytes.length);
  return frame;
}

export type DecodedFrame = { ok: true; message: BusMessage } | { ok: false; reason: string };

/** Reads a frame; never throws. `reason` says what is wrong with a frame it cannot read. */
export function decodeBusMessage(frame: Uint8Array): DecodedFrame {
  const bytes = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (bytes.length < PREAMBLE_BYTES || bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1)
    return { ok: false, reason: 'not a Canopy bus frame (no CB magic)' };
  if (bytes[2] !== BUS_WIRE_VERSION)
    return { ok: false, reason: `unsupported bus wire version ${bytes[2]}` };
  const headerLength = bytes.readUInt32BE(3);
  if (PREAMBLE_BYTES + headerLength > bytes.length)
    return { ok: false, reason: 'bus frame header runs past the end of the frame' };
  let header: unknown;
  try {
    header = JSON.parse(bytes.toString('utf8', PREAMBLE_BYTES, PREAMBLE_BYTES + headerLength));
  } catch {
    return { ok: false, reason: 'bus frame header is not valid JSON' };
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    return { ok: false, reason: 'bus frame header is not a JSON object' };
  const h = header as Record<string, unknown>;
  if (typeof h.key !== 'string' || typeof h.source !== 'string')
    return { ok: false, reason: 'bus frame header lacks a string key or source' };
  if (typeof h.receivedAt !== 'number' || !Number.isFinite(h.receivedAt))
    return { ok: false, reason: 'bus frame header lacks a numeric receivedAt' };
  const message: BusMessage = {
    key: h.key,
    source: h.source,
    receivedAt: h.receivedAt,
    payload: bytes.subarray(PREAMBLE_BYTES + headerLength),
  };
  for (const field of ['contentType', 'origin', 'idempotencyKey', 'wideCsvMapping'] as const) {
    const value = h[field];
    if (value === undefined) continue;
    if (typeof value !== 'string')
      return { ok: false, reason: `bus frame header field ${field} is not a string` };
    message[field] = value;
  }
  if (h.format !== undefined) {
    if (typeof h.format !== 'string' || !FORMATS.has(h.format))
      return { ok: false, reason: `bus frame header has an unknown format` };
    message.format = h.format as PayloadFormat;
  }
  if (h.deadLetter !== undefined) {
    const deadLetter = h.deadLetter as Record<string, unknown> | null;
    if (
      typeof deadLetter !== 'object' ||
      deadLetter === null ||
      typeof deadLetter.reason !== 'string' ||
      !Object.hasOwn(REJECT_REASONS, deadLetter.reason) ||
      typeof deadLetter.message !== 'string'
    )
      return { ok: false, reason: 'bus frame header has an invalid deadLetter' };
    message.deadLetter = {
      reason: deadLetter.reason as RejectReason,
      message: deadLetter.message,
    };
  }
  return { ok: true, message };
}
