/** Generates docs/config.md from the schema; a test fails when the file drifts. */
import { configLeaves, ENV_ALIASES } from './load.js';

function formatDefault(value: unknown): string {
  if (value === undefined) return '—';
  return '`' + JSON.stringify(value) + '`';
}

export function renderConfigDocs(): string {
  const lines = [
    '# Configuration',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs`. Do not edit by hand. -->',
    '',
    'Canopy reads an optional YAML file (`canopy up --config FILE`, or `CANOPY_CONFIG`), then',
    'environment variables, then validates the result against one schema. Unknown keys and unknown',
    '`CANOPY_*` variables are errors; `canopy config check` lists every problem at once.',
    '',
    'Environment rule: a key path in SCREAMING_SNAKE_CASE behind `CANOPY_` (`store.retentionHours` →',
    '`CANOPY_STORE_RETENTION_HOURS`). Lists and maps take JSON. Aliases: ' +
      Object.entries(ENV_ALIASES)
        .map(([env, path]) => `\`${env}\` = \`${path}\``)
        .join(', ') +
      '.',
    '',
    '| key | type | default | environment | description |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const leaf of configLeaves()) {
    const type = leaf.enum
      ? leaf.enum.map((v) => `\`${String(v)}\``).join(' \\| ')
      : `\`${leaf.type.replaceAll('|', '\\|')}\``;
    const description = (leaf.description ?? '').replaceAll('|', '\\|');
    lines.push(
      `| \`${leaf.path.join('.')}\` | ${type} | ${formatDefault(leaf.default)} | \`${leaf.env}\` | ${description} |`,
    );
  }
  lines.push(
    '',
    'Entries of `sensors`, `sensorTypes`, `poll` and `ingest.wideCsv` are described in the schema',
    '(`src/config/schema.ts`); `canopy.example.yaml` shows each of them.',
    '',
  );
  return lines.join('\n');
}
