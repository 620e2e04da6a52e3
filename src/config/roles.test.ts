import { describe, expect, it } from 'vitest';
import { isCanopyError } from '../core/errors.js';
import { loadConfig } from './load.js';
import { ROLES } from './roles.js';

/** The problems loadConfig reports for `raw` (an empty list when it loads). */
function problems(raw: Record<string, unknown>): string[] {
  try {
    loadConfig({ env: {}, overrides: (target) => Object.assign(target, raw) });
    return [];
  } catch (err) {
    if (!isCanopyError(err) || err.code !== 'CANOPY_CONFIG_INVALID') throw err;
    return err.details as string[];
  }
}

const sharedEngines = {
  bus: { kind: 'nats' },
  store: { kind: 'postgres' },
  meta: { kind: 'postgres' },
};

describe('roles', () => {
  it('default to all four, which needs no shared engine', () => {
    expect(loadConfig({ env: {} }).config.roles).toEqual([...ROLES]);
    expect(problems({ roles: ['api', 'jobs', 'process', 'ingest'] })).toEqual([]);
  });

  it('take a JSON list from CANOPY_ROLES', () => {
    const { config } = loadConfig({
      env: { CANOPY_ROLES: '["ingest"]', CANOPY_BUS_KIND: 'nats' },
    });
    expect(config.roles).toEqual(['ingest']);
  });

  it('refuse an unknown role, an empty list and a repeated role', () => {
    expect(problems({ roles: ['ingest', 'worker'] }).join('\n')).toMatch(/^roles\.1: /m);
    expect(problems({ roles: [] }).join('\n')).toMatch(/^roles: /m);
    expect(problems({ ...sharedEngines, roles: ['ingest', 'ingest'] })).toEqual([
      'roles: a role is listed twice',
    ]);
  });

  it('need a bus between ingest and process when they run apart', () => {
    for (const roles of [['ingest'], ['process', 'jobs', 'api']])
      expect(problems({ roles })).toContain(
        `roles: ${roles[0] === 'ingest' ? 'ingest without process' : 'process without ingest'} needs a bus between the processes: set bus.kind to nats or kafka`,
      );
    expect(problems({ roles: ['ingest'], bus: { kind: 'nats' } })).toEqual([]);
  });

  it('keep the DuckDB hot store in one process: process, jobs and api together or PostgreSQL', () => {
    const duckdb = { bus: { kind: 'nats' } };
    expect(problems({ ...duckdb, roles: ['ingest', 'process'] })[0]).toMatch(
      /store\.kind duckdb is a file one process holds/,
    );
    expect(problems({ ...duckdb, roles: ['process', 'jobs', 'api'] })).toEqual([]);
    expect(problems({ ...sharedEngines, roles: ['ingest', 'process'] })).toEqual([]);
  });

  it('keep api with jobs while alerting or workflows are on', () => {
    const apiAlone = { ...sharedEngines, roles: ['api'] };
    expect(problems(apiAlone)[0]).toMatch(/api without jobs cannot act on alerts or workflows/);
    expect(
      problems({ ...apiAlone, alerting: { enabled: false }, workflows: { enabled: false } }),
    ).toEqual([]);
  });

  it('need a PostgreSQL metadata store for split processes with authentication', () => {
    const split = { bus: { kind: 'nats' }, store: { kind: 'postgres' }, roles: ['ingest'] };
    expect(problems({ ...split, auth: { mode: 'required' } })[0]).toMatch(
      /set meta\.kind to postgres/,
    );
    expect(problems({ ...split, auth: { mode: 'required' }, meta: { kind: 'postgres' } })).toEqual(
      [],
    );
  });
});
