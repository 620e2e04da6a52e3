/**
 * Validation of decoded records against the reading contract (DESIGN.md §2).
 *
 * A record is either a single reading (`value`) or a multi-measure record
 * (`readings: {measure: value}`), which yields one long-form reading per
 * measure with sensor id `<id>.<measure>`. Record-level problems (id,
 * timestamp, optional fields) reject the whole record once; a bad measure
 * rejects only that measure. Each rejected record or measure yields exactly
 * one rejection: the first rule it breaks.
 *
 * This runs once per reading on every ingest path, so it avoids closures,
 * regular expressions and allocations on the success path; messages are
 * built only for rejections.
 */
import type { RejectReason } from '../core/errors.js';
import type { Candidate } from '../core/ingest.js';
import { parseDecimal } from './numbers.js';
import { rejectCandidate, show, typeName } from './rejection.js';
import { isValidSensorId, SENSOR_ID_ALPHABET } from './sensor-id.js';
import { MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS, parseTimestamp } from './timestamp.js';
import type { DecodeOptions, IngestLimits, ValidationResult } from './types.js';

type Fields = Record<string, unknown>;

/**
 * Validates one decoded record. Never throws on bad input: every problem is
 * returned as a rejection carrying the candidate's index and raw text.
 * `now` (epoch ms) bounds how far in the future an event time may be.
 */
export function validateRecord(
  candidate: Candidate,
  options: DecodeOptions,
  now: number,
): ValidationResult {
  const out: ValidationResult = { readings: [], rejections: [] };
  validateInto(candidate, options.limits, now, out);
  return out;
}

/** {@link validateRecord} appending to existing arrays, so a whole payload shares one result. */
export function validateInto(
  candidate: Candidate,
  limits: IngestLimits,
  now: number,
  out: ValidationResult,
): void {
  const rec = candidate.record;
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
    reject(
      out,
      candidate,
      'NOT_AN_OBJECT',
      `record must be a JSON object, got ${typeName(rec)}: ${show(rec)}`,
    );
    return;
  }
  const r = rec as Fields;
  const maxLen = limits.maxStringLength;

  // sensor_id, alias device_id
  let idField = 'sensor_id';
  let idValue = r.sensor_id;
  if (idValue === undefined || idValue === null) {
    const alias = r.device_id;
    if (alias !== undefined && alias !== null) {
      idField = 'device_id';
      idValue = alias;
    }
  }
  let sensorId: string;
  if (typeof idValue === 'string') {
    sensorId = idValue;
  } else if (typeof idValue === 'number' && Number.isFinite(idValue)) {
    sensorId = String(idValue);
  } else if (idValue === undefined || idValue === null) {
    reject(out, candidate, 'MISSING_SENSOR_ID', 'no sensor_id (or device_id)');
    return;
  } else {
    reject(
      out,
      candidate,
      'INVALID_SENSOR_ID',
      `${idField} must be a string or a number, got ${typeName(idValue)}: ${show(idValue)}`,
    );
    return;
  }
  if (sensorId.length > maxLen) {
    reject(
      out,
      candidate,
      'STRING_TOO_LONG',
      `${idField} is ${sensorId.length} characters, limit ${maxLen}: ${show(sensorId)}`,
    );
    return;
  }
  if (!isValidSensorId(sensorId)) {
    reject(
      out,
      candidate,
      'INVALID_SENSOR_ID',
      `${idField} ${show(sensorId)} is empty or has characters outside ${SENSOR_ID_ALPHABET}`,
    );
    return;
  }

  // timestamp, aliases event_time, ts
  let tsField = 'timestamp';
  let tsValue = r.timestamp;
  if (tsValue === undefined || tsValue === null) {
    tsValue = r.event_time;
    tsField = 'event_time';
    if (tsValue === undefined || tsValue === null) {
      tsValue = r.ts;
      tsField = 'ts';
      if (tsValue === undefined || tsValue === null) {
        reject(
          out,
          candidate,
          'MISSING_TIMESTAMP',
          `no timestamp (or event_time, ts) for ${sensorId}`,
        );
        return;
      }
    }
  }
  const eventTime = parseTimestamp(tsValue);
  if (Number.isNaN(eventTime)) {
    reject(
      out,
      candidate,
      'INVALID_TIMESTAMP',
      `${tsField} ${show(tsValue)} of ${sensorId} is neither ISO 8601 nor epoch seconds/milliseconds`,
    );
    return;
  }
  if (eventTime < MIN_EVENT_TIME_MS || eventTime > MAX_EVENT_TIME_MS) {
    reject(
      out,
      candidate,
      'TIMESTAMP_OUT_OF_RANGE',
      `${tsField} ${show(tsValue)} of ${sensorId} lies outside the years 1 to 9999`,
    );
    return;
  }
  if (eventTime - now > limits.maxFutureSkewMs) {
    reject(
      out,
      candidate,
      'FUTURE_TIMESTAMP',
      `${tsField} ${show(tsValue)} of ${sensorId} is ${eventTime - now} ms ahead of the clock, limit ${limits.maxFutureSkewMs} ms`,
    );
    return;
  }

  const location = optionalString(r.location, 'location', maxLen, candidate, out);
  if (location === undefined) return;
  const anomalyScore = optionalNumber(r.anomaly_score, 'anomaly_score', candidate, out);
  if (anomalyScore === undefined) return;

  const measures = r.readings;
  if (measures === undefined || measures === null) {
    const sensorType = optionalString(r.sensor_type, 'sensor_type', maxLen, candidate, out);
    if (sensorType === undefined) return;
    const unit = optionalString(r.unit, 'unit', maxLen, candidate, out);
    if (unit === undefined) return;
    const value = measureValue(r.value, 'value', sensorId, candidate, out);
    if (value === undefined) return;
    out.readings.push({ sensorId, sensorType, location, eventTime, value, unit, anomalyScore });
    return;
  }
  expandMeasures(r, measures, sensorId, eventTime, location, anomalyScore, maxLen, candidate, out);
}

/** One reading per entry of a multi-measure record's `readings` object. */
function expandMeasures(
  r: Fields,
  measures: unknown,
  baseId: string,
  eventTime: number,
  location: string | null,
  anomalyScore: number | null,
  maxLen: number,
  candidate: Candidate,
  out: ValidationResult,
): void {
  if (r.value !== undefined) {
    reject(
      out,
      candidate,
      'INVALID_FIELD',
      `${baseId} has both value and readings; send one or the other`,
    );
    return;
  }
  if (typeof measures !== 'object' || Array.isArray(measures)) {
    reject(
      out,
      candidate,
      'INVALID_VALUE',
      `readings of ${baseId} must be an object of measure -> value, got ${typeName(measures)}: ${show(measures)}`,
    );
    return;
  }
  const units = r.units;
  if (
    units !== undefined &&
    units !== null &&
    (typeof units !== 'object' || Array.isArray(units))
  ) {
    reject(
      out,
      candidate,
      'INVALID_FIELD',
      `units of ${baseId} must be an object of measure -> unit, got ${typeName(units)}: ${show(units)}`,
    );
    return;
  }
  const values = measures as Fields;
  const unitMap = units as Fields | null | undefined;
  const names = Object.keys(values);
  if (names.length === 0) {
    reject(out, candidate, 'MISSING_VALUE', `readings of ${baseId} has no measures`);
    return;
  }
  for (const measure of names) {
    const sensorId = `${baseId}.${measure}`;
    if (sensorId.length > maxLen) {
      reject(
        out,
        candidate,
        'STRING_TOO_LONG',
        `sensor id ${show(sensorId)} (${baseId} + measure) is ${sensorId.length} characters, limit ${maxLen}`,
      );
      continue;
    }
    if (measure.length === 0 || !isValidSensorId(measure)) {
      reject(
        out,
        candidate,
        'INVALID_SENSOR_ID',
        `measure name ${show(measure)} of ${baseId} is empty or has characters outside ${SENSOR_ID_ALPHABET}`,
      );
      continue;
    }
    let unit: string | null = null;
    if (unitMap !== undefined && unitMap !== null) {
      const u = unitMap[measure];
      if (typeof u === 'string') {
        if (u.length > maxLen) {
          reject(
            out,
            candidate,
            'STRING_TOO_LONG',
            `units.${measure} of ${baseId} is ${u.length} characters, limit ${maxLen}: ${show(u)}`,
          );
          continue;
        }
        if (u.includes('\0')) {
          reject(
            out,
            candidate,
            'NUL_CHARACTER',
            `units.${measure} of ${baseId} contains a NUL character: ${show(u)}`,
          );
          continue;
        }
        unit = u.length === 0 ? null : u;
      } else if (u !== undefined && u !== null) {
        reject(
          out,
          candidate,
          'INVALID_FIELD',
          `units.${measure} of ${baseId} must be a string, got ${typeName(u)}: ${show(u)}`,
        );
        continue;
      }
    }
    const value = measureValue(values[measure], `readings.${measure}`, sensorId, candidate, out);
    if (value === undefined) continue;
    out.readings.push({
      sensorId,
      sensorType: measure,
      location,
      eventTime,
      value,
      unit,
      anomalyScore,
    });
  }
}

/**
 * A measured value: a finite number, a decimal string, or null (known
 * missing). Returns undefined after pushing a rejection.
 * `undefined` input is MISSING_VALUE; it only reaches a measure when a decoder
 * (plants) names an expected measure that the device did not send.
 */
function measureValue(
  v: unknown,
  field: string,
  sensorId: string,
  candidate: Candidate,
  out: ValidationResult,
): number | null | undefined {
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return v;
  } else if (v === null) {
    return null;
  } else if (typeof v === 'string') {
    const n = parseDecimal(v);
    if (!Number.isNaN(n)) return n;
  } else if (v === undefined) {
    reject(
      out,
      candidate,
      'MISSING_VALUE',
      `no ${field} for ${sensorId} (send null for a known-missing value)`,
    );
    return undefined;
  }
  reject(
    out,
    candidate,
    'INVALID_VALUE',
    `${field} of ${sensorId} is ${typeName(v)} ${show(v)}, not a finite number or null`,
  );
  return undefined;
}

/**
 * An optional string field: absent, null or '' become null (an empty label
 * carries nothing and would split groupings). Returns undefined after pushing
 * a rejection.
 */
function optionalString(
  v: unknown,
  field: string,
  maxLen: number,
  candidate: Candidate,
  out: ValidationResult,
): string | null | undefined {
  if (typeof v === 'string') {
    if (v.length > maxLen) {
      reject(
        out,
        candidate,
        'STRING_TOO_LONG',
        `${field} is ${v.length} characters, limit ${maxLen}: ${show(v)}`,
      );
      return undefined;
    }
    // PostgreSQL text cannot hold U+0000, so a label with one could never be stored.
    if (v.includes('\0')) {
      reject(out, candidate, 'NUL_CHARACTER', `${field} contains a NUL character: ${show(v)}`);
      return undefined;
    }
    return v.length === 0 ? null : v;
  }
  if (v === undefined || v === null) return null;
  reject(
    out,
    candidate,
    'INVALID_FIELD',
    `${field} must be a string, got ${typeName(v)}: ${show(v)}`,
  );
  return undefined;
}

/** An optional number field (finite number or decimal string). Returns undefined after pushing a rejection. */
function optionalNumber(
  v: unknown,
  field: string,
  candidate: Candidate,
  out: ValidationResult,
): number | null | undefined {
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return v;
  } else if (v === undefined || v === null) {
    return null;
  } else if (typeof v === 'string') {
    const n = parseDecimal(v);
    if (!Number.isNaN(n)) return n;
  }
  reject(
    out,
    candidate,
    'INVALID_FIELD',
    `${field} must be a finite number, got ${typeName(v)}: ${show(v)}`,
  );
  return undefined;
}

function reject(
  out: ValidationResult,
  candidate: Candidate,
  reason: RejectReason,
  message: string,
): void {
  out.rejections.push(rejectCandidate(reason, message, candidate));
}
