import { duckDbHarness } from './warehouse-harness.fixture.js';
import { describeWarehouseConformance } from './warehouse.conformance.js';

describeWarehouseConformance('DuckDB file', duckDbHarness, {
  // Declared gap, see DuckDbWarehouse's dialect: a plain UNIQUE constraint
  // does not compare rows with a null in the key.
  nullGrainUnenforced: 'DuckDB has no NULLS NOT DISTINCT; its unique constraint skips null keys',
});
