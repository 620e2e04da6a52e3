import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isCanopyError } from '../core/errors.js';
import { renderConfigDocs } from './docs.js';
import { configLeaves, loadConfig } from './load.js';

function tempYaml(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'canopy-config-')), 'canopy.yaml');
  writeFileSync(file, text);
  return file;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (isCanopyError(err, 'CANOPY_CONFIG_INVALID')) return err.details as string[];
    throw err;
  }
  throw new Error('expected CANOPY_CONFIG_INVALID');
}

describe('config', () => {
  it('defaults give the embedded mode', () => {
    const { config } = loadConfig({ env: {} });
    expect(config.http.port).toBe(3000);
    expect(config.mqtt.embedded).toMatchObject({
      enabled: true,
      port: 1883,
      topics: ['iot/data', 'sensors/#'],
    });
    expect(config.mqtt.client.enabled).toBe(false);
    expect(config.store).toMatchObject({ kind: 'duckdb', retentionHours: 24 });
    expect(config.stream).toEqual({
      zscoreWindow: 60,
      zscoreMinHistory: 10,
      zscoreThreshold: 3,
      deviceScoreThreshold: 0.5,
    });
  });

  it('applies the file, then the environment (named and aliased variables)', () => {
    const file = tempYaml('http:\n  port: 4000\nstore:\n  retentionHours: 48\n');
    const { config } = loadConfig({
      file,
      env: {
        CANOPY_HTTP_PORT: '5000',
        CANOPY_MQTT_PORT: '1999',
        CANOPY_DATA_DIR: '/tmp/x',
        CANOPY_MQTT_EMBEDDED_TOPICS: '["a/#"]',
      },
    });
    expect(config.http.port).toBe(5000);
    expect(config.store.retentionHours).toBe(48);
    expect(config.mqtt.embedded.port).toBe(1999);
    expect(config.mqtt.embedded.topics).toEqual(['a/#']);
    expect(config.dataDir).toBe('/tmp/x');
  });

  it('lists every problem at once: unknown keys, bad types, unknown and malformed env vars', () => {
    const file = tempYaml(
      'http:\n  port: "x"\n  colour: blue\nbogus: 1\nsensors:\n  - id: s1\n    range: { min: 5, max: 1 }\n',
    );
    const problems = problemsOf(() =>
      loadConfig({ file, env: { CANOPY_NOPE: '1', CANOPY_STORE_RETENTION_HOURS: 'many' } }),
    );
    expect(problems).toHaveLength(6);
    expect(problems.join('\n')).toMatch(/CANOPY_NOPE: unknown environment variable/);
    expect(problems.join('\n')).toMatch(/CANOPY_STORE_RETENTION_HOURS: expected a number/);
    expect(problems.join('\n')).toMatch(/http\.port: /);
    expect(problems.join('\n')).toMatch(/colour/);
    expect(problems.join('\n')).toMatch(/bogus/);
    expect(problems.join('\n')).toMatch(/sensors\.0\.range: min must be below max/);
  });

  it('reports an unreadable or non-YAML file clearly', () => {
    expect(() => loadConfig({ file: '/nonexistent/canopy.yaml', env: {} })).toThrow(
      /cannot read config file/,
    );
    expect(() => loadConfig({ file: tempYaml('a: [1, 2'), env: {} })).toThrow(/not valid YAML/);
  });

  it('derives one distinct environment name per key', () => {
    const names = configLeaves().map((leaf) => leaf.env);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('CANOPY_HTTP_PORT');
    expect(names).toContain('CANOPY_DATA_DIR');
  });

  it('docs/config.md is generated from the schema (run `npm run docs` after changing it)', () => {
    expect(readFileSync('docs/config.md', 'utf8')).toBe(renderConfigDocs());
  });
});

describe('canopy.example.yaml', () => {
  it('is a valid configuration', () => {
    const { config } = loadConfig({ file: 'canopy.example.yaml', env: {} });
    expect(config.sensors[0]?.id).toBe('conservatory-07');
    expect(config.poll[0]?.format).toBe('plants');
  });
});
