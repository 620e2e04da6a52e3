/**
 * The conservatory plants API record:
 *
 *   {"plant_id": 7, "name": "Venus flytrap", "soil_moisture": 33.1, "temperature": 21.4,
 *    "last_watered": "…", "recording_taken": "2026-11-22T10:00:00.000Z", "botanist": {…}}
 *
 * becomes a multi-measure record for sensor `plant-7` with the measures
 * soil_moisture (%) and temperature (C) at `recording_taken`. The plant's
 * own fields are checked here so that rejections name them (plant_id,
 * recording_taken); the measures and the future-time bound are left to
 * validation, so a bad measure rejects only that measure.
 */
import type { Candidate } from '../core/ingest.js';
import { JsonCandidate } from './candidate.js';
import { errorText, recordText, rejection, show, tooManyReadings, typeName } from './rejection.js';
import { isValidSensorId, SENSOR_ID_ALPHABET } from './sensor-id.js';
import { parseTimestamp } from './timestamp.js';
import type { DecodeResult, IngestLimits } from './types.js';

export const DEFAULT_PLANTS_LOCATION = 'conservatory';

/** The measures a plant record carries, with their units. */
const PLANT_UNITS: Readonly<Record<string, string>> = Object.freeze({
  soil_moisture: '%',
  temperature: 'C',
});

/** A plant record, or an array of them (index = array position). */
export function decodePlants(
  text: string,
  limits: IngestLimits,
  location: string,
  out: DecodeResult,
): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    out.rejections.push(
      rejection('INVALID_JSON', `plants payload is not valid JSON: ${errorText(err)}`, text),
    );
    return;
  }
  const records = Array.isArray(parsed) ? parsed : [parsed];
  const readingCount = records.length * 2;
  if (readingCount > limits.maxReadingsPerPayload) {
    out.rejections.push(tooManyReadings(text, readingCount, limits.maxReadingsPerPayload));
    return;
  }
  for (let i = 0; i < records.length; i++) decodePlant(records[i], i, location, out);
}

/**
 * A plant record's `plant_id` as the id its sensors are named after
 * (`plant-<id>`): a non-negative integer or a sensor-id string; undefined
 * for anything else (which the decoder rejects).
 */
export function plantIdOf(id: unknown): string | undefined {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return String(id);
  if (typeof id === 'string' && isValidSensorId(id)) return id;
  return undefined;
}

function decodePlant(plant: unknown, index: number, location: string, out: DecodeResult): void {
  if (typeof plant !== 'object' || plant === null || Array.isArray(plant)) {
    // Validation turns this into NOT_AN_OBJECT with the usual message.
    out.candidates.push(new JsonCandidate(plant, index));
    return;
  }
  const p = plant as Record<string, unknown>;
  const raw = recordText(plant);
  const id = p.plant_id;
  const plantId = plantIdOf(id);
  if (plantId === undefined) {
    out.rejections.push(
      id === undefined || id === null
        ? rejection('MISSING_SENSOR_ID', 'plant record has no plant_id', raw, index)
        : rejection(
            'INVALID_SENSOR_ID',
            `plant_id must be a non-negative integer or a string of ${SENSOR_ID_ALPHABET}, got ${typeName(id)}: ${show(id)}`,
            raw,
            index,
          ),
    );
    return;
  }
  const taken = p.recording_taken;
  if (taken === undefined || taken === null) {
    out.rejections.push(
      rejection('MISSING_TIMESTAMP', `plant ${plantId} has no recording_taken`, raw, index),
    );
    return;
  }
  if (Number.isNaN(parseTimestamp(taken))) {
    out.rejections.push(
      rejection(
        'INVALID_TIMESTAMP',
        `recording_taken ${show(taken)} of plant ${plantId} is not ISO 8601 or epoch time`,
        raw,
        index,
      ),
    );
    return;
  }
  const record = {
    sensor_id: `plant-${plantId}`,
    timestamp: taken,
    location,
    // An absent measure stays as an `undefined` entry so validation reports MISSING_VALUE for it.
    readings: { soil_moisture: p.soil_moisture, temperature: p.temperature },
    units: PLANT_UNITS,
  };
  const candidate: Candidate = { record, index, raw };
  out.candidates.push(candidate);
}
