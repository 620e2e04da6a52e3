import { describe, expect, it } from 'vitest';
import { hasScope, ROLE_SCOPES, SCOPES } from '../core/auth.js';
import { requiredScope } from './scopes.js';

const open = { publicMetrics: true };
const closed = { publicMetrics: false };

describe('requiredScope', () => {
  // The documented table (docs/security.md), route by route.
  const table: [string, string, ReturnType<typeof requiredScope>][] = [
    ['GET', '/healthz', null],
    ['GET', '/readyz', null],
    ['GET', '/metrics', null],
    ['GET', '/', null],
    ['GET', '/assets/index-abc123.js', null],
    ['HEAD', '/alerts/some-dashboard-page', null],
    ['POST', '/', 'admin'],
    ['DELETE', '/healthz', 'admin'],
    ['POST', '/api/session', null],
    ['GET', '/api/session', null],
    ['DELETE', '/api/session', null],
    ['POST', '/api/data', 'ingest'],
    ['GET', '/api/data', 'read'],
    ['HEAD', '/api/data', 'read'],
    ['GET', '/api/sensors', 'read'],
    ['GET', '/api/deadletters', 'read'],
    ['GET', '/api/catalog', 'read'],
    ['GET', '/api/quality/runs/:runId', 'read'],
    ['POST', '/api/query', 'query'],
    ['GET', '/api/alerts', 'read'],
    ['GET', '/api/alerts/:id', 'read'],
    ['POST', '/api/alerts/:id/ack', 'operate'],
    ['POST', '/api/alerts/:id/snooze', 'operate'],
    ['POST', '/api/alerts/:id/resolve', 'operate'],
    ['POST', '/api/alerts/:id/delete', 'admin'],
    ['GET', '/api/alert-rules', 'read'],
    ['PUT', '/api/alert-rules', 'admin'],
    ['GET', '/api/workflows', 'read'],
    ['GET', '/api/workflows/:name/runs', 'read'],
    ['POST', '/api/workflows/:name/run', 'operate'],
    ['POST', '/api/workflows/:name/backfill', 'operate'],
    ['POST', '/api/workflows/:name/pause', 'operate'],
    ['POST', '/api/workflows/:name/resume', 'operate'],
    ['POST', '/api/workflows/callbacks/:token', 'operate'],
    ['POST', '/api/workflows/:name/run/extra', 'admin'],
    ['GET', '/api/keys', 'admin'],
    ['POST', '/api/keys', 'admin'],
    ['DELETE', '/api/keys/:id', 'admin'],
    ['GET', '/api/users', 'admin'],
    ['PUT', '/api/users/:username/password', 'admin'],
    ['GET', '/api/devices', 'admin'],
    ['DELETE', '/api/devices/:id', 'admin'],
    ['GET', '/api', 'read'],
    ['GET', '/api/keysmith', 'read'],
    ['PATCH', '/api/data', 'admin'],
    ['DELETE', '/api/data', 'admin'],
    ['OPTIONS', '/api/data', 'admin'],
    ['POST', '/api/something-new', 'admin'],
  ];
  it.each(table)('%s %s needs %s', (method, path, expected) => {
    expect(requiredScope(method, path, open)).toBe(expected);
  });

  it('/metrics needs read when it is not public, and nothing else changes', () => {
    expect(requiredScope('GET', '/metrics', closed)).toBe('read');
    for (const [method, path, expected] of table)
      if (path !== '/metrics') expect(requiredScope(method, path, closed)).toBe(expected);
  });
});

describe('scopes and roles', () => {
  it('admin holds every scope; every other scope holds only itself', () => {
    for (const needed of SCOPES) expect(hasScope(['admin'], needed)).toBe(true);
    for (const granted of SCOPES.filter((s) => s !== 'admin'))
      for (const needed of SCOPES) expect(hasScope([granted], needed)).toBe(granted === needed);
  });

  it('a viewer reads; an operator also queries and acts; an admin does everything', () => {
    const can = (role: keyof typeof ROLE_SCOPES) =>
      SCOPES.filter((needed) => hasScope(ROLE_SCOPES[role], needed));
    expect(can('viewer')).toEqual(['read']);
    expect(can('operator')).toEqual(['read', 'query', 'operate']);
    expect(can('admin')).toEqual([...SCOPES]);
  });
});
