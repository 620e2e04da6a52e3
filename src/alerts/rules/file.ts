/**
 * Rules files: YAML (or JSON) text in, normalized YAML out, and the file on
 * disk read, written atomically, and created with the starter rules.
 *
 * Round trip contract: `parseRules(exportRules(set), context)` deep-equals
 * `set` for every valid set. The export leaves out each field whose removal
 * parses back to the same rule (defaults), checked field by field, so it
 * stays short without a hand-kept list of defaults that could drift from
 * the schema.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Document, parseDocument } from 'yaml';
import { CanopyError } from '../../core/errors.js';
import type { CanopyConfig } from '../../config/schema.js';
import { ruleSchema, type Rule, type RuleSet } from './schema.js';
import { starterRulesFor } from './starter.js';
import { rulesInvalid, validateRuleSet, type RuleContext } from './validate.js';

/**
 * Parses YAML or JSON (YAML 1.2 reads JSON as is) and validates it. An empty
 * document is an empty rule set. Throws CANOPY_ALERT_RULES_INVALID; a syntax
 * error is reported with its line and column.
 */
export function parseRules(text: string, context: RuleContext, source = '(inline)'): RuleSet {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    rulesInvalid(
      doc.errors.map((e) => ({
        rule: '(root)',
        field: '',
        message: `not valid YAML${e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : ''}: ${firstLine(e.message).replace(/ at line \d+, column \d+:?$/, '')}`,
      })),
      source,
      doc.errors[0],
    );
  }
  const raw: unknown = doc.toJS();
  return validateRuleSet(raw ?? { rules: [] }, context, source);
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/** Key order in the export: identity first, the notify policy last. */
const LEADING_KEYS = ['id', 'kind', 'description', 'enabled', 'labels', 'signal', 'select'];

/** The normalized YAML of `set`: defaults left out, one rule after another. */
export function exportRules(set: RuleSet): string {
  const rules = set.rules.map((rule) => orderKeys(minimize(rule)));
  const doc = new Document({ rules });
  doc.commentBefore =
    ' Canopy alert rules. `canopy alerts rules check` validates this file; see docs/alerting.md.';
  return doc.toString({ lineWidth: 100 });
}

/**
 * Removes every field, at any depth outside lists' positions, whose absence
 * parses back to the same rule.
 */
function minimize(rule: Rule): Record<string, unknown> {
  const draft = structuredClone(rule) as Record<string, unknown>;
  const reparsesSame = (): boolean => {
    const result = ruleSchema.safeParse(draft);
    return result.success && isDeepStrictEqual(result.data, rule);
  };
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      if (key === 'kind') continue;
      const value = record[key];
      delete record[key];
      if (reparsesSame()) continue;
      record[key] = value;
      visit(value);
    }
  };
  visit(draft);
  return draft;
}

function orderKeys(rule: Record<string, unknown>): Record<string, unknown> {
  const ordered: Record<string, unknown> = {};
  for (const key of LEADING_KEYS) if (key in rule) ordered[key] = rule[key];
  for (const key of Object.keys(rule))
    if (!(key in ordered) && key !== 'notify') ordered[key] = rule[key];
  if ('notify' in rule) ordered.notify = rule.notify;
  return ordered;
}

/** Reads and validates a rules file. Throws CANOPY_ALERT_RULES_UNREADABLE or _INVALID. */
export async function loadRulesFile(file: string, context: RuleContext): Promise<RuleSet> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new CanopyError(
      'CANOPY_ALERT_RULES_UNREADABLE',
      `cannot read alert rules ${file}: ${(cause as Error).message}`,
      { cause },
    );
  }
  return parseRules(text, context, file);
}

/**
 * Writes `set` as normalized YAML, atomically: a temporary file in the same
 * folder is written and fsynced, then renamed over `file`, so a reader (or a
 * crash) sees the old file or the new one, never a part. With
 * `onlyIfMissing` the temporary file is hard-linked instead, which fails
 * when `file` exists; returns whether `file` was written. Throws
 * CANOPY_ALERT_RULES_UNREADABLE when the write fails; `file` is then
 * unchanged and the temporary file removed. Does not validate: callers
 * write sets that passed `validateRuleSet`.
 */
export async function saveRulesFile(
  file: string,
  set: RuleSet,
  options: { onlyIfMissing?: boolean } = {},
): Promise<boolean> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(temp, 'wx');
    try {
      await handle.writeFile(exportRules(set), 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.onlyIfMissing) {
      try {
        await link(temp, file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
    } else {
      await rename(temp, file);
    }
    await syncDirectory(dir);
    return true;
  } catch (cause) {
    throw new CanopyError(
      'CANOPY_ALERT_RULES_UNREADABLE',
      `cannot write alert rules ${file}: ${(cause as Error).message}`,
      { cause },
    );
  } finally {
    await rm(temp, { force: true });
  }
}

/** Makes the rename durable; some platforms cannot open a folder, which only loses that guarantee. */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    return;
  } finally {
    await handle?.close();
  }
}

/**
 * Loads `file`, first writing the starter rules (adapted to the configured
 * channels) when it does not exist. A file that exists is never overwritten,
 * even one created by another process meanwhile.
 */
export async function ensureRulesFile(file: string, context: RuleContext): Promise<RuleSet> {
  try {
    await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return loadRulesFile(file, context);
    await saveRulesFile(file, starterRulesFor(context.channels), { onlyIfMissing: true });
  }
  return loadRulesFile(file, context);
}

/** The configured rules file: `alerting.rulesFile`, or `<dataDir>/alert-rules.yaml`. */
export function rulesFilePath(config: Pick<CanopyConfig, 'alerting' | 'dataDir'>): string {
  return config.alerting.rulesFile ?? path.join(config.dataDir, 'alert-rules.yaml');
}
