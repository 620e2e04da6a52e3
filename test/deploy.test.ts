/**
 * The deployment files in deploy/ (compose, Dockerfile, Helm chart, the role
 * configs) checked as far as this machine allows: no container engine runs here
 * and no Helm binary is packaged for Debian, so nothing is built, started or
 * rendered. What is checked:
 * - every YAML file parses;
 * - compose: references between services, mounts and volumes resolve; each
 *   Canopy service's config file plus its environment (image ENV, compose
 *   `environment` with their defaults, the entrypoint's own variables) loads
 *   through Canopy's own loader and schema, with the roles and stores the split
 *   needs; the Prometheus config, laid out as compose mounts it, passes promtool;
 * - Dockerfile: multi-stage, non-root, no dependency install in the runtime
 *   stage, every file it copies exists and is not excluded by .dockerignore, and
 *   the lock file gives the slim image prebuilt DuckDB bindings and no install
 *   scripts;
 * - Helm: Chart.yaml, values; templates checked structurally (blocks balanced,
 *   helpers defined, functions known, every `.Values` path present) and the
 *   Canopy config each group's ConfigMap entry is made of loads through the
 *   schema, with the secret variable names the chart sets.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { resolveAuthMode } from '../src/auth/mode.js';
import { configLeaves, loadConfig, type CanopyConfig } from '../src/config/index.js';
import { debianToolForTests } from './helpers/prometheus.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const deployDir = path.join(root, 'deploy');
const chartDir = path.join(deployDir, 'helm', 'canopy');
const scratch = mkdtempSync(path.join(tmpdir(), 'canopy-deploy-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const parseYaml = (file: string): unknown =>
  YAML.parse(readFileSync(file, 'utf8'), { merge: true });

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)],
  );
}

const knownEnv = new Set(configLeaves().map((leaf) => leaf.env));

/** Loads a config file with an environment through Canopy's own loader, as `canopy up` does. */
function loadCanopyFile(file: string, env: Record<string, string>): CanopyConfig {
  const { config } = loadConfig({ file, env });
  // `canopy up` refuses a config whose listeners are exposed without auth.
  expect(resolveAuthMode(config).warning).toBeUndefined();
  return config;
}

/** The same for a config made here (what a Helm template renders). */
function loadCanopy(raw: Obj, env: Record<string, string>, name: string): CanopyConfig {
  const file = path.join(scratch, `${name}.yaml`);
  writeFileSync(file, YAML.stringify(raw));
  return loadCanopyFile(file, env);
}

describe('deploy/ YAML', () => {
  it('parses every YAML file (Helm templates aside, which are not YAML until rendered)', () => {
    const files = walk(deployDir).filter(
      (f) => /\.ya?ml$/.test(f) && !f.includes(`${path.sep}templates${path.sep}`),
    );
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      const docs = YAML.parseAllDocuments(readFileSync(file, 'utf8'), { merge: true });
      for (const doc of docs) expect(doc.errors, file).toEqual([]);
    }
  });
});

// ---------------------------------------------------------------- Dockerfile

interface Stage {
  name: string | undefined;
  base: string;
  lines: string[];
}

function dockerStages(text: string): Stage[] {
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of logical) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) stages.push({ base: from[1]!, name: from[2], lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

const dockerfile = path.join(deployDir, 'docker', 'Dockerfile');
const stages = dockerStages(readFileSync(dockerfile, 'utf8'));
const runtime = stages.at(-1)!;
const instr = (stage: Stage, name: string): string[] =>
  stage.lines
    .filter((l) => l.toUpperCase().startsWith(`${name} `))
    .map((l) => l.slice(name.length + 1).trim());

/** ENV of the runtime stage: what every container starts with. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const body of instr(runtime, 'ENV')) {
    for (const m of body.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = m[2]!;
  }
  return env;
}

describe('deploy/docker/Dockerfile', () => {
  it('builds in one stage and runs in another, as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((s) => s.name === 'build')!;
    expect(build.lines.join('\n')).toMatch(/RUN npm ci\b/);
    expect(build.lines.join('\n')).toMatch(/RUN npm run build\b/);
    expect(runtime.base).toMatch(/node|NODE_IMAGE/);
    const users = instr(runtime, 'USER');
    expect(users.length).toBeGreaterThan(0);
    expect(['root', '0']).not.toContain(users.at(-1));
  });

  it('installs nothing in the runtime stage: production dependencies come from an npm ci --omit=dev stage', () => {
    expect(instr(runtime, 'RUN').join('\n')).not.toMatch(/\b(npm|yarn|pnpm|apt-get)\b/);
    const copied = instr(runtime, 'COPY').filter((c) => c.includes('node_modules'));
    expect(copied).toHaveLength(1);
    const from = /--from=(\S+)/.exec(copied[0]!)![1];
    const deps = stages.find((s) => s.name === from)!;
    expect(deps.lines.join('\n')).toMatch(/npm ci --omit=dev/);
  });

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const ignored = readFileSync(path.join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    let count = 0;
    for (const stage of stages) {
      for (const body of instr(stage, 'COPY')) {
        if (body.includes('--from=')) continue;
        const sources = body.split(/\s+/).slice(0, -1);
        for (const source of sources) {
          count++;
          expect(existsSync(path.join(root, source)), source).toBe(true);
          const top = source.replace(/^\.\//, '').split('/')[0]!;
          expect(ignored, `${source} is excluded by .dockerignore`).not.toContain(top);
          expect(ignored).not.toContain(source.replace(/^\.\//, ''));
        }
      }
    }
    expect(count).toBeGreaterThan(4);
    // The runtime copies the build stage's outputs: the server's and the dashboard's.
    const fromBuild = instr(runtime, 'COPY').filter((c) => c.includes('--from=build'));
    const buildConfig = JSON.parse(
      readFileSync(path.join(root, 'tsconfig.build.json'), 'utf8'),
    ) as {
      compilerOptions: { outDir: string };
    };
    expect(fromBuild.join('\n')).toContain(`/app/${buildConfig.compilerOptions.outDir}`);
    expect(fromBuild.join('\n')).toContain('/app/web/dist');
  });

  it('runs `node dist/cli/main.js up`, probes /healthz and exposes HTTP and MQTT', () => {
    expect(instr(runtime, 'ENTRYPOINT')).toEqual(['["node", "dist/cli/main.js"]']);
    expect(instr(runtime, 'CMD')).toEqual(['["up"]']);
    expect(instr(runtime, 'HEALTHCHECK').join(' ')).toContain('/healthz');
    expect(instr(runtime, 'EXPOSE').join(' ').split(/\s+/)).toEqual(['3000', '1883']);
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin.canopy).toBe('dist/cli/main.js');
    // The image's own ENV is valid Canopy configuration.
    for (const name of Object.keys(imageEnv()).filter((n) => n.startsWith('CANOPY_'))) {
      expect(knownEnv.has(name), name).toBe(true);
    }
  });

  it('needs no compiler in the slim image: prebuilt DuckDB bindings for amd64 and arm64, no install scripts', () => {
    const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; hasInstallScript?: boolean }>;
    };
    for (const arch of ['x64', 'arm64']) {
      const binding = lock.packages[`node_modules/@duckdb/node-bindings-linux-${arch}`];
      expect(binding, arch).toBeDefined();
      expect(binding!.dev).not.toBe(true);
    }
    const scripted = Object.entries(lock.packages)
      .filter(([, p]) => p.hasInstallScript && !p.dev)
      .map(([name]) => name);
    expect(scripted).toEqual([]);
  });
});

// ---------------------------------------------------------------- compose

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  deploy?: { replicas?: number };
  restart?: string;
}
const compose = parseYaml(path.join(deployDir, 'compose.yaml')) as {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
};
const services = compose.services;

/** Compose interpolation as far as these files use it: `${VAR:-default}` → default, `$$` → `$`. */
const interpolate = (value: string): string =>
  value.replace(/\$\{\w+:-([^}]*)\}/g, '$1').replace(/\$\$/g, '$');

/** Where a service's container path is mounted from, on this repository's side. */
function mountSource(service: ComposeService, containerPath: string): string | undefined {
  for (const volume of service.volumes ?? []) {
    const [source, target] = volume.split(':');
    if (target === containerPath && source!.startsWith('.')) return path.join(deployDir, source!);
  }
  return undefined;
}

/** A Canopy service's config, loaded the way its container would load it. */
function canopyService(name: string): CanopyConfig {
  const service = services[name]!;
  const args = service.command!;
  expect(args[0]).toBe('up');
  const configPath = args[args.indexOf('--config') + 1]!;
  const file = mountSource(service, configPath);
  expect(file, `${name}: ${configPath} is mounted from deploy/`).toBeDefined();
  expect(path.dirname(file!)).toBe(path.join(deployDir, 'config'));
  const env: Record<string, string> = { ...imageEnv() };
  for (const [key, value] of Object.entries(service.environment ?? {})) {
    env[key] = interpolate(String(value));
  }
  // Variables the entrypoint sets itself (`VAR="…" exec node …`).
  for (const m of (service.entrypoint ?? []).join(' ').matchAll(/\b(CANOPY_\w+)=/g)) {
    env[m[1]!] = 'set-by-entrypoint';
  }
  return loadCanopyFile(file!, env);
}

describe('deploy/compose.yaml', () => {
  it('has the services the split deployment needs', () => {
    for (const name of [
      'mosquitto',
      'postgres',
      'nats',
      'minio',
      'minio-init',
      'prometheus',
      'grafana',
      'api',
      'worker',
    ]) {
      expect(services[name], name).toBeDefined();
    }
    expect(services.nats!.command).toContain('-js');
    expect(services.worker!.deploy?.replicas).toBe(2);
    expect(services.api!.deploy?.replicas ?? 1).toBe(1);
  });

  it('gives every service an image or a build whose Dockerfile exists', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.image ?? service.build, name).toBeDefined();
      if (service.build) {
        const context = path.resolve(deployDir, service.build.context);
        expect(existsSync(path.join(context, service.build.dockerfile)), name).toBe(true);
      }
    }
  });

  it('depends only on defined services, waiting for health only where a healthcheck exists', () => {
    const hasImageHealthcheck = instr(runtime, 'HEALTHCHECK').length > 0;
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(service.depends_on ?? {})) {
        const target = services[dep];
        expect(target, `${name} → ${dep}`).toBeDefined();
        expect(['service_started', 'service_healthy', 'service_completed_successfully']).toContain(
          condition,
        );
        if (condition === 'service_healthy') {
          expect(
            target!.healthcheck !== undefined ||
              (target!.build !== undefined && hasImageHealthcheck),
            `${dep} has a healthcheck`,
          ).toBe(true);
        }
        if (condition === 'service_completed_successfully') expect(target!.restart).toBe('no');
      }
    }
  });

  it('mounts files that exist and named volumes that are declared', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) {
          expect(existsSync(path.join(deployDir, source)), `${name}: ${source}`).toBe(true);
        } else {
          expect(Object.keys(compose.volumes), `${name}: ${source}`).toContain(source);
        }
      }
    }
  });

  it('runs api + jobs in the api service: its config loads through the schema', () => {
    const config = canopyService('api');
    expect(config.roles).toEqual(['api', 'jobs']);
    expect(config.store.kind).toBe('postgres');
    expect(config.meta.kind).toBe('postgres');
    expect(config.lake.kind).toBe('s3');
    expect(config.lake.s3.bucket).toBe('canopy');
    expect(config.store.postgres.password).toBe('canopy-dev-only');
    expect(config.http.host).toBe('0.0.0.0');
    // The port the image's HEALTHCHECK and compose's port mapping use.
    expect(config.http.port).toBe(3000);
  });

  it('runs ingest + process in the worker service on NATS, sharing one MQTT subscription on Mosquitto', () => {
    const config = canopyService('worker');
    expect(config.roles).toEqual(['ingest', 'process']);
    expect(config.bus.kind).toBe('nats');
    expect(config.bus.nats.servers).toEqual(['nats://nats:4222']);
    expect(config.store.kind).toBe('postgres');
    expect(config.meta.kind).toBe('postgres');
    expect(config.mqtt.client.enabled).toBe(true);
    expect(new URL(config.mqtt.client.url).hostname).toBe('mosquitto');
    expect(config.mqtt.client.clientId).toBe('set-by-entrypoint');
    expect(config.mqtt.embedded.enabled).toBe(false);
    expect(config.mqtt.client.shareGroup).toBe('canopy');
    // Every host a Canopy config names is a compose service.
    expect(services['postgres']).toBeDefined();
    expect(new URL(config.lake.s3.endpoint!).hostname).toBe('minio');
    expect(config.store.postgres.host).toBe('postgres');
  });

  it('lets the bucket-creating one-shot create the bucket the lake names', () => {
    const config = canopyService('api');
    expect(services['minio-init']!.entrypoint!.join(' ')).toContain(
      `mc mb --ignore-existing local/${config.lake.s3.bucket}`,
    );
  });

  it('scrapes every Canopy service with job="canopy", the job the rules select', () => {
    const promConfig = parseYaml(
      mountSource(services.prometheus!, '/etc/prometheus/prometheus.yml')!,
    ) as {
      scrape_configs: {
        job_name: string;
        static_configs: { targets: string[] }[];
        dns_sd_configs: { names: string[]; port: number }[];
      }[];
    };
    const job = promConfig.scrape_configs.find((c) => c.job_name === 'canopy')!;
    const targets = [
      ...job.static_configs.flatMap((c) => c.targets),
      ...job.dns_sd_configs.flatMap((c) => c.names.map((n) => `${n}:${c.port}`)),
    ];
    const canopyServices = Object.entries(services)
      .filter(([, s]) => s.build !== undefined)
      .map(([name]) => `${name}:3000`);
    expect(targets.sort()).toEqual(canopyServices.sort());
  });
});

const promtool = debianToolForTests('promtool');
describe.runIf(promtool)('deploy/compose.yaml Prometheus (promtool)', () => {
  it('passes promtool check config with the files laid out as compose mounts them', async () => {
    const etc = mkdtempSync(path.join(scratch, 'prometheus-'));
    for (const volume of services.prometheus!.volumes!) {
      const [source, target] = volume.split(':');
      if (!source!.startsWith('.') || !target!.startsWith('/etc/prometheus/')) continue;
      writeFileSync(
        path.join(etc, path.basename(target!)),
        readFileSync(path.join(deployDir, source!)),
      );
    }
    const { stdout, stderr } = await run(promtool!, ['check', 'config', 'prometheus.yml'], {
      cwd: etc,
    });
    expect(stdout + stderr).toContain('SUCCESS');
    expect(stdout + stderr).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('provisions Grafana from the existing dashboards with a data source on the prometheus service', () => {
    const grafana = services.grafana!;
    const dashboards = mountSource(grafana, '/var/lib/grafana/dashboards/canopy')!;
    expect(readdirSync(dashboards).filter((f) => f.endsWith('.json')).length).toBeGreaterThan(0);
    const provider = parseYaml(
      mountSource(grafana, '/etc/grafana/provisioning/dashboards/canopy.yml')!,
    ) as { providers: { options: { path: string } }[] };
    expect(provider.providers[0]!.options.path).toBe('/var/lib/grafana/dashboards/canopy');
    const source = parseYaml(
      mountSource(grafana, '/etc/grafana/provisioning/datasources/canopy.yml')!,
    ) as { datasources: { url: string }[] };
    expect(new URL(source.datasources[0]!.url).hostname).toBe('prometheus');
  });
});

// ---------------------------------------------------------------- Helm

const chart = parseYaml(path.join(chartDir, 'Chart.yaml')) as Obj;
const values = parseYaml(path.join(chartDir, 'values.yaml')) as Obj;
const templatesDir = path.join(chartDir, 'templates');
const templates = Object.fromEntries(
  readdirSync(templatesDir).map((f) => [f, readFileSync(path.join(templatesDir, f), 'utf8')]),
);

/** The actions of a Go template: the text between `{{` and `}}`, trim markers and comments removed. */
function actions(text: string): string[] {
  return [...text.matchAll(/\{\{-?\s*([\s\S]*?)\s*-?\}\}/g)]
    .map((m) => m[1]!.trim())
    .filter((a) => !a.startsWith('/*'));
}

// Go template built-ins, and the Sprig and Helm functions this chart may use.
const KNOWN_FUNCTIONS = new Set([
  'and',
  'or',
  'not',
  'eq',
  'ne',
  'lt',
  'le',
  'gt',
  'ge',
  'len',
  'index',
  'print',
  'printf',
  'include',
  'tpl',
  'required',
  'toYaml',
  'default',
  'quote',
  'squote',
  'trunc',
  'trimSuffix',
  'replace',
  'contains',
  'nindent',
  'indent',
  'dict',
  'list',
  'set',
  'deepCopy',
  'mergeOverwrite',
  'sha256sum',
  'b64enc',
  'join',
  'empty',
  'toString',
]);
const KEYWORDS = new Set([
  'if',
  'else',
  'end',
  'range',
  'with',
  'define',
  'template',
  'block',
  'nil',
  'true',
  'false',
]);

/** `.Values` of the chart at a dotted path, or undefined. */
function valueAt(keys: string[], from: unknown = values): unknown {
  let node = from;
  for (const key of keys) node = isObj(node) ? node[key] : undefined;
  return node;
}

describe('deploy/helm/canopy', () => {
  it('has a v2 Chart.yaml whose name is its folder and whose appVersion is Canopy’s version', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      version: string;
    };
    expect(chart.apiVersion).toBe('v2');
    expect(chart.name).toBe(path.basename(chartDir));
    expect(String(chart.version)).toMatch(/^\d+\.\d+\.\d+$/);
    expect(chart.appVersion).toBe(pkg.version);
    for (const file of [
      '_helpers.tpl',
      'NOTES.txt',
      'configmap.yaml',
      'secret.yaml',
      'deployment-api.yaml',
      'deployment-worker.yaml',
      'service-api.yaml',
      'service-worker.yaml',
      'hpa.yaml',
    ]) {
      expect(templates[file], file).toBeDefined();
    }
  });

  it('has balanced blocks, defined helpers and only known functions in every template', () => {
    const defined = new Set<string>();
    const used = new Set<string>();
    for (const [file, text] of Object.entries(templates)) {
      const stack: string[] = [];
      for (const action of actions(text)) {
        const head = /^(\w+)/.exec(action)?.[1];
        if (head && ['if', 'range', 'with', 'define', 'block'].includes(head)) stack.push(head);
        if (head === 'else') expect(stack.at(-1), `${file}: else`).toMatch(/^(if|with|range)$/);
        if (head === 'end') expect(stack.pop(), `${file}: end without a block`).toBeDefined();
        const define = /^define "([^"]+)"/.exec(action);
        if (define) defined.add(define[1]!);
        for (const m of action.matchAll(/\b(?:include|template) "([^"]+)"/g)) used.add(m[1]!);
        // Identifiers in function position: not fields (.x, $x.y), strings or keywords.
        const code = action.replace(/"(?:[^"\\]|\\.)*"/g, '""');
        for (const m of code.matchAll(/(?<![.$\w])([A-Za-z_]\w*)/g)) {
          const name = m[1]!;
          if (KEYWORDS.has(name)) continue;
          expect(KNOWN_FUNCTIONS.has(name), `${file}: unknown function ${name}`).toBe(true);
        }
      }
      expect(stack, `${file}: unclosed blocks`).toEqual([]);
    }
    for (const name of used) expect(defined.has(name), `include "${name}"`).toBe(true);
    for (const name of defined) expect(used.has(name), `"${name}" is never used`).toBe(true);
  });

  it('refers only to values that values.yaml defines', () => {
    let count = 0;
    for (const [file, text] of Object.entries(templates)) {
      for (const action of actions(text)) {
        // `.Values.x.y`, `$root.Values.x.y`, `.root.Values.x.y`.
        for (const m of action.matchAll(/\.Values((?:\.\w+)+)/g)) {
          count++;
          const keys = m[1]!.slice(1).split('.');
          expect(valueAt(keys), `${file}: .Values.${keys.join('.')}`).not.toBeUndefined();
        }
        // `$group.x`: a field of the api or worker group (index .root.Values .group).
        for (const m of action.matchAll(/\$group((?:\.\w+)+)/g)) {
          count++;
          const keys = m[1]!.slice(1).split('.');
          expect(
            valueAt(keys, values.worker),
            `${file}: worker.${keys.join('.')}`,
          ).not.toBeUndefined();
          // Only the worker has these; the templates read them guarded.
          if (!['autoscaling', 'mqttClientIdPrefix'].includes(keys[0]!)) {
            expect(valueAt(keys, values.api), `${file}: api.${keys.join('.')}`).not.toBeUndefined();
          }
        }
      }
    }
    expect(count).toBeGreaterThan(20);
  });

  it('probes /healthz and /readyz and runs non-root on a read-only root file system', () => {
    expect(valueAt(['probes', 'liveness', 'path'])).toBe('/healthz');
    expect(valueAt(['probes', 'readiness', 'path'])).toBe('/readyz');
    expect(valueAt(['podSecurityContext', 'runAsNonRoot'])).toBe(true);
    // uid 1000 is the `node` user the Dockerfile switches to.
    expect(instr(runtime, 'USER').at(-1)).toBe('node');
    expect(valueAt(['podSecurityContext', 'runAsUser'])).toBe(1000);
    expect(valueAt(['securityContext', 'readOnlyRootFilesystem'])).toBe(true);
    expect(valueAt(['securityContext', 'allowPrivilegeEscalation'])).toBe(false);
    const helpers = templates['_helpers.tpl']!;
    // The writable places: the data directory and /tmp (DuckDB extensions, query scratch).
    expect(helpers).toContain('mountPath: {{ $root.Values.config.dataDir }}');
    expect(helpers).toContain('mountPath: /tmp');
    expect(helpers).toMatch(
      /livenessProbe:\s+httpGet:\s+path: \{\{ \$root\.Values\.probes\.liveness\.path \}\}/,
    );
    expect(helpers).toMatch(
      /readinessProbe:\s+httpGet:\s+path: \{\{ \$root\.Values\.probes\.readiness\.path \}\}/,
    );
    // The HPA scales the worker Deployment; that Deployment then leaves `replicas` to it.
    expect(templates['hpa.yaml']).toContain('name: {{ include "canopy.fullname" . }}-worker');
    expect(templates['deployment-worker.yaml']).toContain('"group" "worker"');
  });

  /** What `canopy.groupConfig` renders for a group: `config` with the group's merged over it, plus roles. */
  function groupConfig(group: 'api' | 'worker'): Obj {
    const merge = (base: unknown, over: unknown): unknown => {
      if (!isObj(base) || !isObj(over)) return over === undefined ? base : over;
      const out: Obj = { ...base };
      for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
      return out;
    };
    const g = values[group] as Obj;
    return { ...(merge(values.config, g.config) as Obj), roles: g.roles };
  }

  /** The CANOPY_* variables the chart's Secret and Deployments may set. */
  const chartEnv = (): Record<string, string> => {
    const names = [
      ...(templates['secret.yaml']! + templates['_helpers.tpl']!).matchAll(
        /\b(CANOPY_[A-Z0-9_]+)\b/g,
      ),
    ].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(5);
    return Object.fromEntries(names.map((n) => [n, n.endsWith('_ID') ? 'canopy-x' : 'secret']));
  };

  it('writes an api config (roles api, jobs) that loads through the schema with every secret variable set', () => {
    const raw = groupConfig('api');
    const config = loadCanopy(raw, chartEnv(), 'helm-api');
    expect(config.roles).toEqual(['api', 'jobs']);
    expect(config.store.kind).toBe('postgres');
    expect(config.meta.kind).toBe('postgres');
    expect(valueAt(['api', 'replicas'])).toBe(1);
  });

  it('writes a worker config (roles ingest, process) on a shared bus and store, with a shared MQTT subscription', () => {
    const raw = groupConfig('worker');
    const config = loadCanopy(raw, chartEnv(), 'helm-worker');
    expect(config.roles).toEqual(['ingest', 'process']);
    expect(config.bus.kind).toBe('nats');
    expect(config.store.kind).toBe('postgres');
    expect(config.meta.kind).toBe('postgres');
    expect(config.mqtt.client.enabled).toBe(true);
    expect(config.mqtt.client.shareGroup).toBe('canopy');
    expect(valueAt(['worker', 'autoscaling', 'minReplicas'])).toBeGreaterThanOrEqual(2);
  });
});
