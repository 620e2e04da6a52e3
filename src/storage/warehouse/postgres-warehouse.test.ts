import { describe, expect, it } from 'vitest';
import { serviceForTests } from '../../../test/helpers/services.js';
import { isCanopyError } from '../../core/errors.js';
import { PostgresWarehouse } from './postgres-warehouse.js';
import { postgresHarness } from './warehouse-harness.fixture.js';
import { describeWarehouseConformance } from './warehouse.conformance.js';

const postgres = await serviceForTests('PostgreSQL', 5432);

if (postgres) describeWarehouseConformance('PostgreSQL', postgresHarness);

describe('PostgresWarehouse', () => {
  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => new PostgresWarehouse({ schema: 'canopy; DROP TABLE x' })).toThrow(/schema/);
  });

  it('reports an unreachable server as CANOPY_WAREHOUSE_UNAVAILABLE, without the password', async () => {
    const w = new PostgresWarehouse({
      connectionString: 'postgres://postgres:hunter2@127.0.0.1:1/test',
      schema: 'canopy',
    });
    expect(w.location).not.toContain('hunter2');
    const err = await w.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isCanopyError(err, 'CANOPY_WAREHOUSE_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).not.toContain('hunter2');
  });
});
