/** The `canopy` command as a user runs it: exit codes, messages, and what lands in the store. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCanopy, type CliResult } from './helpers/cli.js';
import { DuckDBInstance } from '@duckdb/node-api';
import { systemClock } from '../src/core/clock.js';
import { QualityHistory, type QualityRun } from '../src/lake/index.js';
import { DuckDbHotStore, LocalObjectStore } from '../src/storage/index.js';
import { startTestApp } from './helpers/app.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-cli-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function canopy(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCanopy(args, { CANOPY_DATA_DIR: dataDir, ...env });
}

describe('canopy config check', () => {
  it('passes a valid configuration', async () => {
    const result = await canopy(['config', 'check', '--config', 'canopy.example.yaml']);
    expect(result).toMatchObject({ code: 0, stdout: 'configuration is valid\n' });
  });

  it('lists every problem at once and exits 2', async () => {
    const file = path.join(dataDir, 'bad.yaml');
    writeFileSync(file, 'http:\n  port: 99999\nstore:\n  kind: oracle\n');
    const result = await canopy(['config', 'check', '--config', file], {
      CANOPY_MQTT_PORT: 'abc',
      CANOPY_TYPO: '1',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/CANOPY_CONFIG_INVALID: configuration has 4 problems/);
    for (const part of ['http.port', 'store.kind', 'CANOPY_MQTT_PORT', 'CANOPY_TYPO'])
      expect(result.stderr).toContain(part);
  });

  it('never prints secrets', async () => {
    const result = await canopy(['config', 'check', '--print'], {
      CANOPY_MQTT_CLIENT_PASSWORD: 'hunter2',
    });
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('hunter2');
    expect(result.stdout).toContain('"password": "***"');
  });
});

describe('canopy ingest', () => {
  it('loads the UCI air-quality file through the wide-CSV mapping, keeping -200 as missing', async () => {
    const result = await canopy([
      'ingest',
      '../shared/datasets/air-quality-uci.csv',
      '--mapping',
      'air-quality-uci',
    ]);
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout) as {
      accepted: number;
      rejected: number;
      via: string;
    };
    expect(summary).toMatchObject({ accepted: 9_357 * 13, rejected: 0, via: 'store' });

    const store = new DuckDbHotStore({ path: path.join(dataDir, 'canopy.duckdb') });
    await store.open();
    try {
      expect(await store.countReadings()).toBe(9_357 * 13);
      const co = await store.queryReadings({ sensorId: 'airquality-uci.CO_GT', limit: 10_000 });
      // The first row of the file: 10/03/2004 18:00 (UTC+1), CO_GT 2.6.
      expect(co.items.at(-1)).toMatchObject({
        value: 2.6,
        eventTime: Date.UTC(2004, 2, 10, 17),
        unit: 'mg/m³',
      });
    } finally {
      await store.close();
    }

    // Oracle: the -200 cells of the file, counted by plain splitting, are the null values in plain SQL.
    const cells = readFileSync('../shared/datasets/air-quality-uci.csv', 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .flatMap((line) => line.split(',').slice(2));
    const sentinels = cells.filter((cell) => Number(cell) === -200).length;
    expect(sentinels).toBeGreaterThan(10_000);
    const db = await DuckDBInstance.create(path.join(dataDir, 'canopy.duckdb'));
    const connection = await db.connect();
    try {
      const nulls = await connection.runAndReadAll(
        'SELECT count(*) FROM readings WHERE value IS NULL',
      );
      expect(Number(nulls.getRows()[0]?.[0])).toBe(sentinels);
    } finally {
      connection.closeSync();
      db.closeSync();
    }
  });

  it('reports a missing file clearly', async () => {
    const result = await canopy(['ingest', 'no-such-file.csv']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/CANOPY_SOURCE_FILE_UNREADABLE: cannot read no-such-file.csv/);
  });
});

describe('canopy simulate', () => {
  it('sends a seeded batch over HTTP and over MQTT to a running Canopy', async () => {
    const app = await startTestApp();
    try {
      const http = await canopy([
        'simulate',
        '--mode',
        'batch',
        '--count',
        '300',
        '--target',
        'http',
        '--url',
        `http://127.0.0.1:${app.httpPort}/api/data`,
        '--seed',
        '5',
      ]);
      expect(http.code).toBe(0);
      expect(JSON.parse(http.stdout)).toMatchObject({ sent: 300, failed: 0, error: null });
      const mqtt = await canopy([
        'simulate',
        '--mode',
        'batch',
        '--count',
        '200',
        '--target',
        'mqtt',
        '--url',
        `mqtt://127.0.0.1:${app.mqttPort}`,
        '--per-message',
        '10',
        '--seed',
        '6',
      ]);
      expect(mqtt.code).toBe(0);
      expect(JSON.parse(mqtt.stdout)).toMatchObject({ sent: 200, failed: 0 });
      expect(await app.store.countReadings()).toBe(500);
    } finally {
      await app.dispose();
    }
  });

  it('exits 1 and says so when the target cannot be reached', async () => {
    const result = await canopy([
      'simulate',
      '--mode',
      'batch',
      '--count',
      '10',
      '--target',
      'http',
      '--url',
      'http://127.0.0.1:9/api/data',
    ]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ sent: 0, failed: 10 });
  });
});

describe('canopy jobs run bronze-export and silver, then canopy query', () => {
  it('exports to bronze, builds silver, and answers SQL over both', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'canopy-jobs-'));
    try {
      const file = path.join(dir, 'readings.csv');
      const t = Date.UTC(2026, 10, 20, 8);
      writeFileSync(
        file,
        `timestamp,device_id,value\n${t},a,1\n${t + 3_600_000},a,2\n${t + 7_200_000},b,3\n`,
      );
      expect((await canopy(['ingest', file], { CANOPY_DATA_DIR: dir })).code).toBe(0);
      const result = await canopy(['jobs', 'run', 'bronze-export'], { CANOPY_DATA_DIR: dir });
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({
        rows: 3,
        watermark: '3',
        partitions: [
          'date=2026-11-20/hour=08',
          'date=2026-11-20/hour=09',
          'date=2026-11-20/hour=10',
        ],
      });
      expect((await canopy(['jobs', 'run', 'nope'], { CANOPY_DATA_DIR: dir })).stderr).toMatch(
        /"nope" is not a batch job \(bronze-export, silver, gold, quality, retention, warehouse-load\), and as a workflow: no Canopy answers/,
      );

      const query = await canopy(
        ['query', 'SELECT sum(value) AS total, count(*) AS n FROM bronze_readings'],
        {
          CANOPY_DATA_DIR: dir,
        },
      );
      expect(query.code).toBe(0);
      expect(JSON.parse(query.stdout)).toMatchObject({ rows: [[6, 3]], rowCount: 1 });

      const silver = await canopy(['jobs', 'run', 'silver'], { CANOPY_DATA_DIR: dir });
      expect(silver.code).toBe(0);
      expect(JSON.parse(silver.stdout)).toMatchObject([
        { date: '2026-11-20', rows: 3, duplicatesDropped: 0 },
      ]);
      const fromSilver = await canopy(
        ['query', 'SELECT count(*) AS n, min(source_file) AS lineage FROM silver_readings'],
        {
          CANOPY_DATA_DIR: dir,
        },
      );
      expect(JSON.parse(fromSilver.stdout)).toMatchObject({
        rows: [[3, expect.stringMatching(/^bronze\/readings\/date=2026-11-20\//) as unknown]],
      });

      const gold = await canopy(['jobs', 'run', 'gold'], { CANOPY_DATA_DIR: dir });
      expect(gold.code).toBe(0);
      expect(JSON.parse(gold.stdout)).toMatchObject({
        dates: [{ date: '2026-11-20', dailySummary: 2 }],
        devices: 2,
      });
      const daily = await canopy(
        [
          'query',
          'SELECT sensor_id, reading_count, avg FROM gold_daily_summary ORDER BY sensor_id',
        ],
        { CANOPY_DATA_DIR: dir },
      );
      expect(JSON.parse(daily.stdout)).toMatchObject({
        rows: [
          ['a', 2, 1.5],
          ['b', 1, 3],
        ],
      });

      const retention = await canopy(['jobs', 'run', 'retention', '--dry-run'], {
        CANOPY_DATA_DIR: dir,
      });
      expect(retention.code).toBe(0);
      expect(JSON.parse(retention.stdout)).toMatchObject({
        dryRun: true,
        layers: { bronze: { keys: [] } },
      });

      const quality = await canopy(['jobs', 'run', 'quality'], { CANOPY_DATA_DIR: dir });
      expect(quality.code).toBe(0);
      const run = JSON.parse(quality.stdout) as QualityRun;
      expect(run.success).toBe(true);
      expect(run.suites.map((r) => [r.suite, r.success])).toEqual([
        ['bronze_readings', true],
        ['silver_readings', true],
      ]);
      // The run is kept in the lake, where the API and the metrics find it.
      const history = await new QualityHistory(
        new LocalObjectStore({ root: path.join(dir, 'lake') }),
        systemClock,
      ).list(5);
      expect(history.map((r) => r.run_id)).toEqual([run.run_id]);

      const oneDate = await canopy(['jobs', 'run', 'silver', '--date', '2026-11-20'], {
        CANOPY_DATA_DIR: dir,
      });
      expect(JSON.parse(oneDate.stdout)).toMatchObject([{ date: '2026-11-20', rows: 3 }]);
      const badDate = await canopy(['jobs', 'run', 'quality', '--date', '2026-02-30'], {
        CANOPY_DATA_DIR: dir,
      });
      expect(badDate.code).not.toBe(0);
      expect(badDate.stderr).toMatch(/CANOPY_JOB_BAD_DATE/);

      const refused = await canopy(['query', 'DROP VIEW bronze_readings'], {
        CANOPY_DATA_DIR: dir,
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/CANOPY_QUERY_REFUSED/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000); // about ten CLI runs, each paying Node and tsx start-up
});
