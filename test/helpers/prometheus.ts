/**
 * Debian's Prometheus and promtool in tests: finding the binaries (skip locally
 * with a note when missing, fail in CI, like services.ts), a copy of
 * deploy/prometheus/rules.yml with shortened durations, and a real server on a
 * free port with a temp data dir.
 *
 * Shortening rule (the only transform the scrape test applies to the shipped
 * rules): every duration in a rule's `for:` and in a PromQL range or subquery
 * (`[5m]`, `[1h:1m]`) is divided by `divisor` and rounded to whole seconds, at
 * least 1 s. Nothing else in the expressions changes, so the copy alerts on the
 * same conditions, `divisor` times sooner. Recording-rule names (e.g. `…:rate5m`)
 * keep their names and so keep naming the original window.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { inCI } from './services.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
export const prometheusDeployDir = path.join(repoRoot, 'deploy/prometheus');
export const rulesFile = path.join(prometheusDeployDir, 'rules.yml');

/**
 * The path of `/usr/bin/<name>` when tests should use it: when it exists, or in
 * CI (where the test then fails on spawning it). Null locally when missing.
 */
export function debianToolForTests(name: 'promtool' | 'prometheus'): string | null {
  const file = `/usr/bin/${name}`;
  try {
    accessSync(file, constants.X_OK);
    return file;
  } catch {
    if (inCI) return file;
    console.warn(
      `skipping ${name} tests: ${file} is missing (apt-get install prometheus; CI=true makes this a failure)`,
    );
    return null;
  }
}

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** Milliseconds of a Prometheus duration such as `90s` or `1h30m`. */
export function parseDuration(text: string): number {
  const parts = [...text.matchAll(/(\d+)(ms|[smhdwy])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text)
    throw new Error(`not a Prometheus duration: ${text}`);
  return parts.reduce((ms, [, n, unit]) => ms + Number(n) * (UNIT_MS[unit as string] ?? 0), 0);
}

function shortened(duration: string, divisor: number): string {
  return `${Math.max(1, Math.round(parseDuration(duration) / divisor / 1_000))}s`;
}

interface RuleGroup {
  rules: { expr: string; for?: string }[];
}

/** The rules text with every `for:` and range/subquery duration divided (see the header). */
export function shortenRuleDurations(rulesText: string, divisor: number): string {
  const doc = YAML.parse(rulesText) as { groups: RuleGroup[] };
  for (const group of doc.groups)
    for (const rule of group.rules) {
      rule.expr = rule.expr.replace(
        /\[([0-9a-z]+)(?::([0-9a-z]*))?\]/g,
        (_all, range: string, step: string | undefined) =>
          step === undefined
            ? `[${shortened(range, divisor)}]`
            : `[${shortened(range, divisor)}:${step === '' ? '' : shortened(step, divisor)}]`,
      );
      if (rule.for !== undefined) rule.for = shortened(rule.for, divisor);
    }
  return YAML.stringify(doc);
}

/** A TCP port that was free a moment ago (Prometheus cannot listen on port 0 and report it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface PrometheusAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

export interface PrometheusServer {
  url: string;
  /** An instant query's result vector. */
  query(promql: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Active (pending or firing) alerts. */
  alerts(): Promise<PrometheusAlert[]>;
  /** Each loaded rule's evaluation health (`unknown` before its first evaluation). */
  ruleHealth(): Promise<{ name: string; health: 'ok' | 'err' | 'unknown'; lastError?: string }[]>;
  /** Kills the server and deletes its data dir. */
  stop(): Promise<void>;
}

async function apiGet<T>(url: string): Promise<T> {
  const res = await fetch(url);
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${url}: ${body.error ?? res.status}`);
  return body.data;
}

/**
 * Starts `binary` with `config` (a prometheus.yml object; `rule_files` is
 * filled in) and `rulesText` written to a temp dir, on a free 127.0.0.1 port,
 * and resolves once `/-/ready` answers.
 */
export async function startPrometheus(
  binary: string,
  config: Record<string, unknown>,
  rulesText: string,
  timeoutMs = 15_000,
): Promise<PrometheusServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'canopy-prometheus-'));
  writeFileSync(path.join(dir, 'rules.yml'), rulesText);
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    YAML.stringify({ ...config, rule_files: [path.join(dir, 'rules.yml')] }),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let running = true;
  void exited.then(() => (running = false));

  const stop = async (): Promise<void> => {
    if (running) {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!running) {
      await stop();
      throw new Error(`prometheus exited at start-up: ${stderr}`);
    }
    const ready = await fetch(`${url}/-/ready`).then(
      (res) => res.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within ${timeoutMs} ms: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  return {
    url,
    async query(promql) {
      const data = await apiGet<{
        result: { metric: Record<string, string>; value: [number, string] }[];
      }>(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
      return data.result;
    },
    async alerts() {
      return (await apiGet<{ alerts: PrometheusAlert[] }>(`${url}/api/v1/alerts`)).alerts;
    },
    async ruleHealth() {
      const data = await apiGet<{
        groups: { rules: Awaited<ReturnType<PrometheusServer['ruleHealth']>> }[];
      }>(`${url}/api/v1/rules`);
      return data.groups.flatMap((g) =>
        g.rules.map(({ name, health, lastError }) => ({ name, health, lastError })),
      );
    },
    stop,
  };
}
