/**
 * Column mapping of the UCI "Air Quality" data set (S. De Vito et al., 2008):
 * hourly rows of a gas multisensor device, `Date` (dd/mm/yyyy) and `Time`
 * (h:mm:ss) then 13 measures, `-200` for missing values.
 */
import type { WideCsvMapping } from './types.js';

/**
 * The device's clock is taken as UTC+1 (Italian standard time) all year: every
 * date in the file has exactly 24 hourly rows, the daylight-saving change days
 * included, so the clock did not follow daylight saving.
 *
 * Sensor types are the lower-cased column names, except T, RH and AH, which
 * get the platform's usual type names so range checks keyed by type apply.
 * The PT08_* columns are raw metal-oxide sensor responses and have no unit.
 */
export const AIR_QUALITY_UCI_MAPPING: WideCsvMapping = Object.freeze<WideCsvMapping>({
  deviceId: 'airquality-uci',
  timestamp: { column: 'Date', timeColumn: 'Time', format: 'dmy', utcOffsetMinutes: 60 },
  missingValue: -200,
  columns: {
    CO_GT: { unit: 'mg/m³' },
    PT08_S1_CO: {},
    NMHC_GT: { unit: 'µg/m³' },
    C6H6_GT: { unit: 'µg/m³' },
    PT08_S2_NMHC: {},
    NOx_GT: { unit: 'ppb' },
    PT08_S3_NOx: {},
    NO2_GT: { unit: 'µg/m³' },
    PT08_S4_NO2: {},
    PT08_S5_O3: {},
    T: { sensorType: 'temperature', unit: '°C' },
    RH: { sensorType: 'humidity', unit: '%' },
    AH: { sensorType: 'absolute_humidity', unit: 'g/m³' },
  },
});
