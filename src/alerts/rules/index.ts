/** The alert-rule language: schema, validation, rules files and the starter rules. */
export * from './schema.js';
export {
  formatProblem,
  ruleContextOf,
  validateRuleSet,
  type RuleContext,
  type RuleProblem,
} from './validate.js';
export {
  ensureRulesFile,
  exportRules,
  loadRulesFile,
  parseRules,
  rulesFilePath,
  saveRulesFile,
} from './file.js';
export { STARTER_RULES, starterRulesFor } from './starter.js';
