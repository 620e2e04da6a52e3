/**
 * Readings for the imputation tests: three co-located sensors every 10
 * minutes following one daily cycle, with known values hidden (sent as
 * null) on one date: a two-hour gap and three single readings of the
 * temperature (short: filled), and ten hours of the humidity (longer than a
 * 6-hour maximum gap: left missing).
 */
export const STEP = 10 * 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
export const LOCATION = 'greenhouse/east';
export const SENSORS = ['gh-temp', 'gh-humidity', 'gh-co2'] as const;
const TYPES = ['temperature', 'humidity', 'co2'] as const;

/** The true value of sensor `s` at epoch ms `t`. */
export function truth(s: number, t: number): number {
  const phase = (2 * Math.PI * (t % DAY)) / DAY;
  const noise = Math.sin(t / 7_777 + s) * 0.05;
  const values = [20 + 5 * Math.sin(phase), 60 - 15 * Math.sin(phase), 420 + 80 * Math.cos(phase)];
  return values[s]! + noise;
}

export interface GappedDay {
  /** The date with the hidden values, YYYY-MM-DD. */
  date: string;
  /** Readings from `historyDays` before the date up to `end` (exclusive), hidden ones as null. */
  readings(hide: boolean): Record<string, unknown>[];
  /** Whether the temperature's reading at t is hidden (short gaps). */
  shortGap(t: number): boolean;
  /** Whether the humidity's reading at t is hidden (the long gap). */
  longGap(t: number): boolean;
  /** Count of hidden readings: short, long. */
  hidden: { short: number; long: number };
}

export function gappedDay(date: string, end: number, historyDays = 6): GappedDay {
  const dayStart = Date.parse(`${date}T00:00:00Z`);
  const singles = [dayStart + 10 * HOUR, dayStart + 18 * HOUR + STEP, dayStart + 21 * HOUR];
  const shortGap = (t: number) =>
    (t >= dayStart + 14 * HOUR && t < dayStart + 16 * HOUR) || singles.includes(t);
  const longGap = (t: number) => t >= dayStart + 12 * HOUR && t < dayStart + 22 * HOUR;
  const readings = (hide: boolean) => {
    const out: Record<string, unknown>[] = [];
    for (let t = dayStart - historyDays * DAY; t < end; t += STEP) {
      SENSORS.forEach((sensor, s) => {
        const hidden = hide && ((s === 0 && shortGap(t)) || (s === 1 && longGap(t)));
        out.push({
          sensor_id: sensor,
          sensor_type: TYPES[s],
          location: LOCATION,
          timestamp: new Date(t).toISOString(),
          value: hidden ? null : Number(truth(s, t).toFixed(3)),
        });
      });
    }
    return out;
  };
  return {
    date,
    readings,
    shortGap,
    longGap,
    hidden: { short: 12 + singles.length, long: 60 },
  };
}
