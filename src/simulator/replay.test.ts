import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../core/clock.js';
import { readLongCsv, type BadRow, type ReplayRow } from './replay.js';
import { runSimulator } from './run.js';
import { splitCsvLine, toLongCsv, type SimReading } from './wire.js';

let dir = '';
let files = 0;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'canopy-replay-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(text: string): Promise<{ rows: ReplayRow[]; bad: BadRow[] }> {
  const path = join(dir, `f-${++files}.csv`);
  await writeFile(path, text);
  const rows: ReplayRow[] = [];
  const bad: BadRow[] = [];
  for await (const row of readLongCsv(path, (b) => bad.push(b))) rows.push(row);
  return { rows, bad };
}

describe('long CSV reading', () => {
  it('takes the five columns in order when there is no header', async () => {
    const { rows, bad } = await readAll('2026-11-22T10:00:00Z,a,1.5,C,0.2\n1795341601000,b,,%,\n');
    expect(bad).toEqual([]);
    expect(rows.map((r) => r.reading)).toEqual([
      {
        sensor_id: 'a',
        value: 1.5,
        unit: 'C',
        timestamp: '2026-11-22T10:00:00.000Z',
        anomaly_score: 0.2,
      },
      { sensor_id: 'b', value: null, unit: '%', timestamp: '2026-11-22T10:00:01.000Z' },
    ]);
  });

  it('finds columns by name, accepts aliases, a BOM, CRLF and extra columns', async () => {
    const text =
      '\uFEFFlocation,value,sensor_id,event_time,sensor_type\r\n' +
      '"kew/floor-1/zone-a",21,t-1,2026-11-22T10:00:00Z,temperature\r\n';
    const { rows, bad } = await readAll(text);
    expect(bad).toEqual([]);
    expect(rows[0]?.reading).toEqual({
      sensor_id: 't-1',
      sensor_type: 'temperature',
      value: 21,
      timestamp: '2026-11-22T10:00:00.000Z',
      location: 'kew/floor-1/zone-a',
    });
  });

  it('reports unreadable rows with their line and keeps going', async () => {
    const text = [
      'timestamp,device_id,value,unit,anomaly_score',
      'yesterday,a,1,C,0',
      '2026-11-22T10:00:00Z,,1,C,0',
      '2026-11-22T10:00:00Z,a,abc,C,0',
      '2026-11-22T10:00:00Z,a,1,C,high',
      '2026-11-22T10:00:00Z,"a,1,C,0',
      '2026-11-22T10:00:00Z,a,2,C,0',
    ].join('\n');
    const { rows, bad } = await readAll(text);
    expect(bad.map((b) => b.line)).toEqual([2, 3, 4, 5, 6]);
    expect(rows.map((r) => [r.line, r.reading.value])).toEqual([[7, 2]]);
  });

  it('reads back what toLongCsv writes', async () => {
    const readings: SimReading[] = [
      {
        sensor_id: 'x',
        value: -3.25,
        unit: 'C',
        timestamp: '2026-11-22T10:00:00.000Z',
        anomaly_score: 0.7,
      },
      {
        sensor_id: 'y',
        value: null,
        unit: 'mm/s',
        timestamp: '2026-11-22T10:00:01.000Z',
        anomaly_score: 0,
      },
    ];
    const { rows } = await readAll(toLongCsv(readings));
    expect(rows.map((r) => r.reading)).toEqual(readings);
    expect(splitCsvLine('a,"b ""c"", d",')).toEqual(['a', 'b "c", d', '']);
  });

  it('a replay whose file cannot be read ends early with the error in its stats', async () => {
    const run = runSimulator(
      { mode: 'replay', file: dir, target: { kind: 'file', dir: join(dir, 'out') } },
      { clock: new ManualClock(0), logger: pino({ level: 'silent' }) },
    );
    await run.done;
    expect(run.stats()).toMatchObject({ sent: 0, failed: 0 });
    expect(run.stats().error?.code).toBe('CANOPY_SOURCE_FILE_UNREADABLE');
  });
});
