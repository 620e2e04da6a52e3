/** `canopy alerts rules check|export` run as a user runs them: a child process, exit codes, output. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCanopy, type CliResult } from '../../test/helpers/cli.js';
import { exportRules, parseRules, STARTER_RULES } from '../alerts/rules/index.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'canopy-alerts-cli-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function canopy(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runCanopy(args, { CANOPY_DATA_DIR: dataDir, ...env });
}

const logOnly = { channels: new Set(['log']), sensors: [], sensorTypes: {} };

describe('canopy alerts rules', () => {
  it('checks the default file, <dataDir>/alert-rules.yaml', async () => {
    writeFileSync(path.join(dataDir, 'alert-rules.yaml'), exportRules(STARTER_RULES));
    const result = await canopy(['alerts', 'rules', 'check']);
    expect(result).toMatchObject({ code: 0, stdout: `ok: ${STARTER_RULES.rules.length} rules\n` });
  });

  it('checks alerting.rulesFile, and --file over it', async () => {
    const configured = path.join(dataDir, 'configured.yaml');
    writeFileSync(configured, 'rules:\n  - {id: quiet, kind: no-data, after: 5m}\n');
    const env = { CANOPY_ALERTING_RULES_FILE: configured };
    expect(await canopy(['alerts', 'rules', 'check'], env)).toMatchObject({
      code: 0,
      stdout: 'ok: 1 rule\n',
    });
    const other = path.join(dataDir, 'other.yaml');
    writeFileSync(other, 'rules: []\n');
    expect(await canopy(['alerts', 'rules', 'check', '--file', other], env)).toMatchObject({
      code: 0,
      stdout: 'ok: 0 rules\n',
    });
  });

  it('lists every problem, naming rule and field, and exits 1', async () => {
    const file = path.join(dataDir, 'bad.yaml');
    writeFileSync(
      file,
      `rules:
  - {id: soil, kind: reading, warning: {below: 30, above: 10}}
  - {id: soil, kind: no-data, after: 5m, notify: {open: [pager]}}
`,
    );
    const result = await canopy(['alerts', 'rules', 'check', '--file', file]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      [
        `CANOPY_ALERT_RULES_INVALID: alert rules ${file} have 3 problems:`,
        '  - rule "soil": warning.above: inverted band: above 10 is not higher than below 30, so every value breaches; the good range is from `below` up to `above`',
        '  - rule "soil": id: duplicate id: rules[0] has the same id',
        '  - rule "soil": notify.open[0]: unknown channel "pager"; configured in alerting.notifiers: log',
        '',
      ].join('\n'),
    );
  });

  it('reports a YAML syntax error with its line, and a missing file as unreadable', async () => {
    const file = path.join(dataDir, 'broken.yaml');
    writeFileSync(file, 'rules:\n  - id: a\n    kind: [reading\n');
    const broken = await canopy(['alerts', 'rules', 'check', '--file', file]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/\(root\): not valid YAML at line \d+, column \d+/);

    const missing = await canopy([
      'alerts',
      'rules',
      'check',
      '--file',
      path.join(dataDir, 'no.yaml'),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^CANOPY_ALERT_RULES_UNREADABLE: cannot read alert rules /);
  });

  it('exports the normalized YAML, which imports to the same rules', async () => {
    const file = path.join(dataDir, 'verbose.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        rules: [
          {
            id: 'soil',
            kind: 'reading',
            enabled: true,
            warning: { below: 30 },
            open: { consecutive: 1 },
            notify: { open: ['log'], resolved: true },
          },
        ],
      }),
    );
    const result = await canopy(['alerts', 'rules', 'export', '--file', file]);
    expect(result.code).toBe(0);
    expect(parseRules(result.stdout, logOnly)).toEqual(
      parseRules(
        '{"rules":[{"id":"soil","kind":"reading","warning":{"below":30},"notify":{"open":["log"]}}]}',
        logOnly,
      ),
    );
    expect(result.stdout).not.toMatch(/enabled|consecutive|resolved/);
  });
});
