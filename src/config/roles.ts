/**
 * Process roles: which parts of Canopy one process runs. All four by default
 * (one process, no servers); `canopy up --role …` or `roles` in the config
 * picks a subset, so several processes share the work (docs/scaling.md).
 *
 * - `ingest`: the sources (embedded MQTT broker, MQTT client, HTTP
 *   `POST /api/data`, polled endpoints, file drop) and the simulator.
 * - `process`: the pipeline — stream checks and hot-store commits — fed by
 *   the ingest role directly (same process) or through the bus.
 * - `jobs`: housekeeping, workflows and lake jobs, and alerting (rule
 *   evaluation and notifications), which keeps state in memory and so must
 *   run in one process.
 * - `api`: the read API and the dashboard; alert and workflow actions go to
 *   the services of the jobs role, so the two share a process while
 *   alerting or workflows are on.
 *
 * Every process serves `/healthz`, `/readyz` and `/metrics` on its HTTP port.
 */

export const ROLES = ['ingest', 'process', 'jobs', 'api'] as const;
export type Role = (typeof ROLES)[number];

/** What the role rules read of the validated config. */
export interface RoleRuleInput {
  roles: readonly Role[];
  bus: { kind: string };
  store: { kind: string };
  meta: { kind: string };
  auth: { mode?: string | undefined };
  alerting: { enabled: boolean };
  workflows: { enabled: boolean };
}

/** Roles that open the hot store: a DuckDB file can be open in one process only. */
const HOT_STORE_ROLES: readonly Role[] = ['process', 'jobs', 'api'];

/**
 * Why this set of roles cannot work with the rest of the config, one line a
 * problem (empty when it can). Every process of a deployment checks its own
 * set, which catches a split that would need a shared engine the config
 * does not name.
 */
export function roleProblems(config: RoleRuleInput): string[] {
  const has = new Set(config.roles);
  const problems: string[] = [];
  if (has.size !== config.roles.length) problems.push('a role is listed twice');
  if (has.size === ROLES.length) return problems;
  if (has.has('ingest') !== has.has('process') && config.bus.kind === 'in-process')
    problems.push(
      `${has.has('ingest') ? 'ingest without process' : 'process without ingest'} needs a bus between the processes: set bus.kind to nats or kafka`,
    );
  if (has.has('api') && !has.has('jobs') && (config.alerting.enabled || config.workflows.enabled))
    problems.push(
      'api without jobs cannot act on alerts or workflows (their services run in the jobs role): add jobs to this process, or turn alerting and workflows off',
    );
  const storeRoles = HOT_STORE_ROLES.filter((r) => has.has(r));
  if (
    config.store.kind === 'duckdb' &&
    storeRoles.length > 0 &&
    storeRoles.length < HOT_STORE_ROLES.length
  )
    problems.push(
      `store.kind duckdb is a file one process holds, so ${HOT_STORE_ROLES.join(', ')} must run together: set store.kind to postgres to split them`,
    );
  if (config.meta.kind === 'duckdb' && config.auth.mode === 'required')
    problems.push(
      'with auth.mode required every process checks credentials in the metadata store, which meta.kind duckdb keeps in one process: set meta.kind to postgres',
    );
  return problems;
}
