/**
 * Loading the configuration: an optional YAML file, then environment
 * overrides, then the schema. Every problem is collected and reported at
 * once in one CANOPY_CONFIG_INVALID error.
 *
 * Environment rule: each leaf key path maps to `CANOPY_` + the path in
 * SCREAMING_SNAKE_CASE (`http.port` → `CANOPY_HTTP_PORT`, `dataDir` →
 * `CANOPY_DATA_DIR`, `store.retentionHours` → `CANOPY_STORE_RETENTION_HOURS`).
 * Arrays and maps take JSON. A few short aliases exist (see `ENV_ALIASES`).
 * `CANOPY_CONFIG` names the file, and `CANOPY_API_KEY` is the key CLI
 * commands send to a running Canopy (not configuration). An unknown
 * `CANOPY_*` variable is an error, like an unknown key in the file.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { CanopyError } from '../core/errors.js';
import { configSchema, type CanopyConfig } from './schema.js';

export const ENV_ALIASES: Record<string, string> = {
  CANOPY_MQTT_PORT: 'mqtt.embedded.port',
};
const RESERVED_ENV = new Set(['CANOPY_CONFIG', 'CANOPY_API_KEY']);

interface JsonSchemaNode {
  type?: string | string[];
  properties?: Record<string, JsonSchemaNode>;
  default?: unknown;
  description?: string;
  enum?: unknown[];
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
}

export interface ConfigLeaf {
  path: string[];
  env: string;
  type: string;
  default: unknown;
  description: string | undefined;
  enum: unknown[] | undefined;
}

function screamingSnake(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

function leafType(node: JsonSchemaNode): string {
  if (node.enum) return 'enum';
  if (node.anyOf) return node.anyOf.map(leafType).join(' | ');
  const t = Array.isArray(node.type) ? node.type.join(' | ') : (node.type ?? 'any');
  if (t === 'array' && node.items) return `${leafType(node.items)}[]`;
  return t;
}

/** Every settable key of the schema, in schema order. Used for env names and the docs. */
export function configLeaves(): ConfigLeaf[] {
  const root = z.toJSONSchema(configSchema, {
    io: 'input',
    unrepresentable: 'any',
  }) as JsonSchemaNode;
  const leaves: ConfigLeaf[] = [];
  const walk = (node: JsonSchemaNode, path: string[]): void => {
    if (node.type === 'object' && node.properties) {
      for (const [key, child] of Object.entries(node.properties)) walk(child, [...path, key]);
      return;
    }
    leaves.push({
      path,
      env: 'CANOPY_' + path.map(screamingSnake).join('_'),
      type: leafType(node),
      default: node.default,
      description: node.description,
      enum: node.enum,
    });
  };
  walk(root, []);
  return leaves;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function parseEnvValue(leaf: ConfigLeaf, raw: string): { value: unknown } | { error: string } {
  const kind = leaf.type;
  if (kind === 'integer' || kind === 'number') {
    const n = Number(raw);
    return raw.trim() !== '' && Number.isFinite(n)
      ? { value: n }
      : { error: `expected a number, got "${raw}"` };
  }
  if (kind === 'boolean') {
    if (raw === 'true' || raw === '1') return { value: true };
    if (raw === 'false' || raw === '0') return { value: false };
    return { error: `expected true or false, got "${raw}"` };
  }
  if (kind === 'string' || kind === 'enum') return { value: raw };
  try {
    return { value: JSON.parse(raw) as unknown };
  } catch {
    return { error: `expected JSON (${kind}), got "${raw}"` };
  }
}

export interface LoadOptions {
  /** YAML file path; when absent, `CANOPY_CONFIG` or no file. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Applied after the file and env (used by CLI flags such as --simulate). */
  overrides?: (raw: Record<string, unknown>) => void;
}

export interface LoadedConfig {
  config: CanopyConfig;
  file: string | null;
}

/** Loads and validates; throws CANOPY_CONFIG_UNREADABLE or CANOPY_CONFIG_INVALID (details: string[]). */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? env.CANOPY_CONFIG ?? null;
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new CanopyError('CANOPY_CONFIG_UNREADABLE', `cannot read config file ${file}`, {
        cause,
      });
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (cause) {
      throw new CanopyError(
        'CANOPY_CONFIG_UNREADABLE',
        `config file ${file} is not valid YAML: ${(cause as Error).message}`,
        { cause },
      );
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new CanopyError(
          'CANOPY_CONFIG_INVALID',
          `config file ${file} must hold a mapping at the top`,
          {
            details: ['(root): expected a mapping'],
          },
        );
      }
      raw = parsed as Record<string, unknown>;
    }
  }

  const problems: string[] = [];
  const leaves = new Map(configLeaves().map((leaf) => [leaf.env, leaf]));
  for (const [alias, path] of Object.entries(ENV_ALIASES)) {
    const leaf = [...leaves.values()].find((l) => l.path.join('.') === path);
    if (leaf) leaves.set(alias, leaf);
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('CANOPY_') || RESERVED_ENV.has(name) || value === undefined) continue;
    const leaf = leaves.get(name);
    if (!leaf) {
      problems.push(`${name}: unknown environment variable (see docs/config.md for the names)`);
      continue;
    }
    const parsed = parseEnvValue(leaf, value);
    if ('error' in parsed) problems.push(`${name}: ${parsed.error}`);
    else setPath(raw, leaf.path, parsed.value);
  }
  options.overrides?.(raw);

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const where = issue.path.length ? issue.path.join('.') : '(root)';
      problems.push(`${where}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) {
    throw new CanopyError(
      'CANOPY_CONFIG_INVALID',
      `configuration has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n  - ${problems.join('\n  - ')}`,
      { details: problems },
    );
  }
  return { config: result.data, file };
}

/** A copy safe to log or show: secrets replaced. */
export function redactConfig(config: CanopyConfig): CanopyConfig {
  const copy = structuredClone(config);
  if (copy.mqtt.client.password !== undefined) copy.mqtt.client.password = '***';
  if (copy.lake.s3.secretAccessKey !== undefined) copy.lake.s3.secretAccessKey = '***';
  if (copy.warehouse.postgres.password !== undefined) copy.warehouse.postgres.password = '***';
  if (copy.warehouse.postgres.url !== undefined) {
    copy.warehouse.postgres.url = redactUrlPassword(copy.warehouse.postgres.url);
  }
  return copy;
}

/** A URL with its password replaced; an unparsable URL is hidden whole (it may hold one). */
function redactUrlPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '***';
  }
}
