/**
 * The sensor-id alphabet of the data contract: `[A-Za-z0-9._:/-]+`.
 * Checked with a lookup table because it runs once per reading.
 */

const ALLOWED = new Uint8Array(128);
for (let c = 48; c <= 57; c++) ALLOWED[c] = 1; // 0-9
for (let c = 65; c <= 90; c++) ALLOWED[c] = 1; // A-Z
for (let c = 97; c <= 122; c++) ALLOWED[c] = 1; // a-z
for (const ch of '._:/-') ALLOWED[ch.charCodeAt(0)] = 1;

export const SENSOR_ID_ALPHABET = '[A-Za-z0-9._:/-]';

/** True when `id` is non-empty and every character is in {@link SENSOR_ID_ALPHABET}. */
export function isValidSensorId(id: string): boolean {
  const len = id.length;
  if (len === 0) return false;
  for (let i = 0; i < len; i++) {
    const c = id.charCodeAt(i);
    if (c >= 128 || ALLOWED[c] === 0) return false;
  }
  return true;
}
