import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { serviceForTests } from '../../../test/helpers/services.js';
import { isCanopyError } from '../../core/errors.js';
import { describeAlertStoreConformance } from './alert-store.conformance.js';
import { describeAuthStoreConformance } from './auth-store.conformance.js';
import type { MetaMigration } from './meta-sql.js';
import { PostgresMetaStore } from './postgres-meta-store.js';
import { describeWorkflowStoreConformance } from './workflow-store.conformance.js';

const PG_TEST_URL = 'postgres://postgres@127.0.0.1:5432/test';

const postgres = await serviceForTests('postgresql', 5432);

/** A schema unique to each test (workers run in parallel), dropped afterwards. */
function harness() {
  const schema = `canopy_meta_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const made: PostgresMetaStore[] = [];
  return Promise.resolve({
    // Every store has a pool of its own: another process, as far as the database can tell.
    sharedStorage: true,
    make: (options?: { migrations?: readonly MetaMigration[] }) => {
      const store = new PostgresMetaStore({ connectionString: PG_TEST_URL, schema, ...options });
      made.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of made) await store.close();
      const client = new pg.Client({ connectionString: PG_TEST_URL });
      await client.connect();
      try {
        await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      } finally {
        await client.end();
      }
    },
  });
}

if (postgres) {
  describeAlertStoreConformance('PostgreSQL', harness);
  describeWorkflowStoreConformance('PostgreSQL', harness);
  describeAuthStoreConformance('PostgreSQL', harness);
}

describe('PostgresMetaStore', () => {
  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => new PostgresMetaStore({ schema: 'meta; DROP TABLE x' })).toThrow(/schema/);
  });

  it('reports an unreachable server as CANOPY_META_UNAVAILABLE, without the password', async () => {
    const store = new PostgresMetaStore({
      connectionString: 'postgres://postgres:hunter2@127.0.0.1:1/test',
      schema: 'canopy_meta',
    });
    const err = await store.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCanopyError(err, 'CANOPY_META_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).not.toContain('hunter2');
    expect((err as Error).cause).toBeInstanceOf(Error);
    await expect(store.activeAlerts()).rejects.toThrow(/not open/);
    await store.close();
  });
});
